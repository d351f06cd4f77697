//! Loopback test servers: a scriptable HTTP/1.1 server, an h2c server and
//! a TLS server. Each binds 127.0.0.1:0 and runs on its own thread until
//! dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How the HTTP/1.1 server answers.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// 200 "hello", keep-alive, Content-Length.
    Ok,
    /// 200 with a chunked body.
    Chunked,
    /// This status, keep-alive.
    Status(u16),
    /// 200, but the whole server freezes `stall` out of every `period`
    /// (counted from its start): answers due in a freeze wait for its end.
    Stall { stall: Duration, period: Duration },
    /// 200 with `Connection: close`, then closes.
    Close,
    /// 200 with a body of this many bytes.
    Body(usize),
    /// A tiny app: `POST /login` sets `session=ok`; `GET /private` answers
    /// 200 with that cookie and 401 without; `GET /flaky` answers 200 but
    /// shows "An error has occurred" on every 4th request; `POST /token`
    /// returns `{"token":"t-123"}` and `GET /api` wants it as a bearer
    /// token; `GET /hop/N` redirects N times before it lands; `GET
    /// /away?to=URL` redirects to URL; `POST /sign-in` sets `session=ok`
    /// and sends the client on to `private` with a 303; `GET /whoami` echoes the Authorization, Cookie and X-Key
    /// headers in its body and sets `sid=sid-secret-5150`; `GET /` is a
    /// form with a hidden `csrf` field; `GET /page?cdn=HOST:PORT` is a page
    /// naming `/a.css`, `http://HOST:PORT/b.png` and a script on
    /// 127.0.0.3; `GET /list`
    /// lists three items whose ids need escaping (`{"items":[{"id":"a
    /// b"},...]}`); `GET /pages?page=N` answers `{"next":N+1}` up to page
    /// 2, then `{}`; anything else 200.
    App,
}

/// What the server saw.
#[derive(Default)]
pub struct Seen {
    /// Requests to `/flaky` so far.
    pub flaky: AtomicU64,
    /// Requests by "METHOD /path?query".
    pub paths: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    pub requests: AtomicU64,
    pub connections: AtomicU64,
    /// HTTP/2 requests being answered now, and the most at once.
    pub streams_open: AtomicU64,
    pub streams_max: AtomicU64,
    pub posts_with_body: AtomicU64,
    pub with_header: AtomicU64,
    /// The client address of every connection.
    pub peers: std::sync::Mutex<Vec<std::net::IpAddr>>,
    /// Every request as (when it arrived, "METHOD /path", Host, User-Agent).
    pub log: std::sync::Mutex<Vec<(Instant, String, String, String)>>,
    /// The body of every request that had one, as "METHOD /path body".
    pub bodies: std::sync::Mutex<Vec<String>>,
}

/// A loopback server (or proxy) on its own thread, with what it counts;
/// it stops when dropped.
pub struct Running<S> {
    pub addr: SocketAddr,
    pub seen: Arc<S>,
    _stop: oneshot::Sender<()>,
}

impl<S> Running<S> {
    /// Runs `serve` with a listener on 127.0.0.1:0 on a thread of its own,
    /// until the result is dropped.
    pub fn start<F, Fut>(seen: Arc<S>, serve: F) -> Running<S>
    where
        F: FnOnce(TcpListener) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let (addr, stop) = spawn_runtime(serve);
        Running {
            addr,
            seen,
            _stop: stop,
        }
    }

    /// A port with nothing listening on it, refusing every connection.
    pub fn refusing(seen: Arc<S>) -> Running<S> {
        Running {
            addr: closed_port(),
            seen,
            _stop: oneshot::channel().0,
        }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// A loopback HTTP server and what it saw.
pub type Server = Running<Seen>;

fn spawn_runtime<F, Fut>(f: F) -> (SocketAddr, oneshot::Sender<()>)
where
    F: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    spawn_runtime_on("127.0.0.1", f)
}

fn spawn_runtime_on<F, Fut>(ip: &'static str, f: F) -> (SocketAddr, oneshot::Sender<()>)
where
    F: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            let listener = TcpListener::bind((ip, 0)).await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            tokio::select! {
                _ = f(listener) => {}
                _ = stop_rx => {}
            }
        });
    });
    (addr_rx.recv().unwrap(), stop_tx)
}

/// Starts an HTTP/1.1 server.
pub fn http1(mode: Mode) -> Server {
    http1_on("127.0.0.1", mode)
}

/// Starts an HTTP/1.1 server on another loopback address, e.g.
/// `127.0.0.2`: another host, as far as a client can tell.
pub fn http1_on(ip: &'static str, mode: Mode) -> Server {
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let (addr, stop) = spawn_runtime_on(ip, move |listener| async move {
        let started = Instant::now();
        while let Some(stream) = accept(&listener, &s).await {
            tokio::spawn(handle(stream, mode, s.clone(), started));
        }
    });
    Server {
        addr,
        seen,
        _stop: stop,
    }
}

/// Reads one whole HTTP/1.1 message (head and `Content-Length` body) into
/// the front of `buf`, returning the length of its head and of the whole;
/// `None` at the end of the stream.
pub async fn read_message<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut Vec<u8>,
) -> Option<(usize, usize)> {
    let head = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        fill(io, buf).await?;
    };
    let length: usize = String::from_utf8_lossy(&buf[..head])
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head + length {
        fill(io, buf).await?;
    }
    Some((head, head + length))
}

/// Reads more bytes onto the end of `buf`; `None` at the end of the stream.
pub async fn fill<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match io.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    mode: Mode,
    seen: Arc<Seen>,
    started: Instant,
) {
    let mut buf = Vec::new();
    loop {
        // Read one request head and body.
        let Some((head_end, len)) = read_message(&mut stream, &mut buf).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let length = len - head_end;
        let body = String::from_utf8_lossy(&buf[head_end..len]).to_string();
        buf.drain(..len);
        seen.requests.fetch_add(1, Ordering::Relaxed);
        let mut request_line = head.lines().next().unwrap_or_default().split(' ');
        let (method, target) = (
            request_line.next().unwrap_or_default(),
            request_line.next().unwrap_or_default(),
        );
        *seen
            .paths
            .lock()
            .unwrap()
            .entry(format!("{method} {target}"))
            .or_insert(0) += 1;
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        seen.log.lock().unwrap().push((
            Instant::now(),
            format!("{method} {target}"),
            header("host"),
            header("user-agent"),
        ));
        if head.starts_with("POST ") && length > 0 {
            seen.posts_with_body.fetch_add(1, Ordering::Relaxed);
        }
        if length > 0 {
            seen.bodies
                .lock()
                .unwrap()
                .push(format!("{method} {target} {body}"));
        }
        if head.to_ascii_lowercase().contains("\r\nx-test: yes\r\n") {
            seen.with_header.fetch_add(1, Ordering::Relaxed);
        }
        let response: Vec<u8> = match mode {
            Mode::Ok => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            Mode::Chunked => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n".to_vec(),
            Mode::Status(code) => format!("HTTP/1.1 {code} Status\r\nContent-Length: 2\r\n\r\nno").into_bytes(),
            Mode::Stall { stall, period } => {
                let into = Duration::from_nanos((started.elapsed().as_nanos() % period.as_nanos()) as u64);
                if into < stall {
                    tokio::time::sleep(stall - into).await;
                }
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec()
            }
            Mode::Close => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_vec(),
            Mode::Body(n) => {
                let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").into_bytes();
                r.resize(r.len() + n, b'x');
                r
            }
            Mode::App => {
                let cookie_ok = head.to_ascii_lowercase().contains("\r\ncookie: session=ok");
                match (method, target) {
                    ("POST", "/login") => {
                        b"HTTP/1.1 200 OK\r\nSet-Cookie: session=ok; Path=/; HttpOnly\r\nContent-Length: 2\r\n\r\nok".to_vec()
                    }
                    ("GET", "/private") if cookie_ok => b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret".to_vec(),
                    ("GET", "/private") => b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope".to_vec(),
                    ("GET", "/flaky") => {
                        let n = seen.flaky.fetch_add(1, Ordering::Relaxed);
                        let body = if n % 4 == 3 { "<p>An error has occurred</p>" } else { "<p>all good</p>" };
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
                    }
                    ("POST", "/token") => {
                        let body = r#"{"token":"t-123","user":{"id":7}}"#;
                        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
                    }
                    ("GET", "/api") if head.contains("\r\nAuthorization: Bearer t-123\r\n") => {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
                    }
                    ("GET", "/api") => b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope".to_vec(),
                    ("GET", t) if t.starts_with("/hop/") => {
                        // `/hop/N` redirects to `/hop/N-1`; `/hop/0` lands.
                        match t["/hop/".len()..].parse::<u32>() {
                            Ok(0) | Err(_) => b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nlanded".to_vec(),
                            Ok(n) => format!("HTTP/1.1 302 Found\r\nLocation: /hop/{}\r\nContent-Length: 0\r\n\r\n", n - 1).into_bytes(),
                        }
                    }
                    ("GET", t) if t.starts_with("/away?to=") => {
                        let to = &t["/away?to=".len()..];
                        format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n").into_bytes()
                    }
                    ("POST", "/sign-in") => {
                        b"HTTP/1.1 303 See Other\r\nLocation: private\r\nSet-Cookie: session=ok; Path=/\r\nContent-Length: 0\r\n\r\n".to_vec()
                    }
                    ("GET", "/whoami") => {
                        // Echoes what the client sent that it should keep
                        // to itself, and hands it a session secret.
                        let body = format!(
                            "authorization={} cookie={} x-key={}",
                            header("authorization"),
                            header("cookie"),
                            header("x-key")
                        );
                        format!(
                            "HTTP/1.1 200 OK\r\nSet-Cookie: sid=sid-secret-5150; Path=/\r\nX-Echo: {}\r\nContent-Length: {}\r\n\r\n{body}",
                            header("authorization"),
                            body.len()
                        )
                        .into_bytes()
                    }
                    ("GET", "/") => {
                        let body = r#"<form><input name="csrf" value="c-5150"></form>"#;
                        format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
                    }
                    ("GET", t) if t.starts_with("/page?cdn=") => {
                        let cdn = &t["/page?cdn=".len()..];
                        let body = format!(
                            r#"<link rel="stylesheet" href="/a.css"><img src="http://{cdn}/b.png"><script src="http://127.0.0.3:9/c.js"></script>"#
                        );
                        format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
                    }
                    ("GET", "/list") => {
                        let body = r#"{"items":[{"id":"a b"},{"id":"c/d"},{"id":"e&f"}]}"#;
                        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
                    }
                    ("GET", t) if t.starts_with("/pages?page=") => {
                        let page: u32 = t["/pages?page=".len()..].parse().unwrap_or(0);
                        let body = if page < 2 { format!(r#"{{"next":{}}}"#, page + 1) } else { "{}".to_string() };
                        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
                    }
                    _ => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
                }
            }
        };
        if stream.write_all(&response).await.is_err() {
            return;
        }
        if matches!(mode, Mode::Close) {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// Accepts the next connection, counting it and its peer in `seen`.
async fn accept(listener: &TcpListener, seen: &Seen) -> Option<tokio::net::TcpStream> {
    let (stream, peer) = listener.accept().await.ok()?;
    seen.connections.fetch_add(1, Ordering::Relaxed);
    seen.peers.lock().unwrap().push(peer.ip());
    Some(stream)
}

/// A port with nothing listening on it.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Starts an HTTP/2-only (h2c prior knowledge) server answering 200 "h2".
pub fn h2c() -> Server {
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let (addr, stop) = spawn_runtime(move |listener| async move {
        while let Some(stream) = accept(&listener, &s).await {
            tokio::spawn(serve_h2(stream, s.clone()));
        }
    });
    Server {
        addr,
        seen,
        _stop: stop,
    }
}

/// Serves one HTTP/2 connection: 200 "h2" to HTTP/2 requests (302 to `/`
/// for `/moved`, after 30 ms for `/slow`), 505 otherwise; counts the
/// streams open at once.
async fn serve_h2<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(stream: S, seen: Arc<Seen>) {
    use http_body_util::Full;
    use hyper::service::service_fn;
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        seen.requests.fetch_add(1, Ordering::Relaxed);
        let ok = req.version() == hyper::Version::HTTP_2;
        let moved = req.uri().path() == "/moved";
        let slow = req.uri().path() == "/slow";
        let seen = seen.clone();
        async move {
            let open = seen.streams_open.fetch_add(1, Ordering::SeqCst) + 1;
            seen.streams_max.fetch_max(open, Ordering::SeqCst);
            if slow {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            seen.streams_open.fetch_sub(1, Ordering::SeqCst);
            let status = match (ok, moved) {
                (false, _) => 505,
                (true, true) => 302,
                (true, false) => 200,
            };
            Ok::<_, std::convert::Infallible>(
                hyper::Response::builder()
                    .status(status)
                    .header("location", "/")
                    .body(Full::new(bytes::Bytes::from_static(b"h2")))
                    .unwrap(),
            )
        }
    });
    let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
}

/// A TLS server for `localhost` with a fresh self-signed certificate,
/// speaking HTTP/1.1 or (ALPN `h2`) HTTP/2; returns it with the
/// certificate's PEM.
pub fn tls(http2: bool) -> (Server, String) {
    let (acceptor, pem) = tls_acceptor(if http2 { b"h2" } else { b"http/1.1" });
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let (addr, stop) = spawn_runtime(move |listener| async move {
        let started = Instant::now();
        while let Some(stream) = accept(&listener, &s).await {
            let (acceptor, s) = (acceptor.clone(), s.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    if http2 {
                        serve_h2(tls, s).await;
                    } else {
                        handle(tls, Mode::Ok, s, started).await;
                    }
                }
            });
        }
    });
    (
        Server {
            addr,
            seen,
            _stop: stop,
        },
        pem,
    )
}

/// A TLS acceptor for a new self-signed certificate for `localhost`,
/// offering `alpn`; and the certificate's PEM, for `--cacert`.
pub fn tls_acceptor(alpn: &[u8]) -> (tokio_rustls::TlsAcceptor, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = cert.cert.pem();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap();
    config.alpn_protocols = vec![alpn.to_vec()];
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), pem)
}
