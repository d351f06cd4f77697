//! `throng record`: a reverse proxy put in front of a service for a
//! while, forwarding every request unchanged and writing each exchange to
//! a recording (`replay::recording`'s format) for `throng replay` and
//! `throng import`.
//!
//! Three parts: the proxy ([`proxy`]: hyper's server, HTTP/1.1 and
//! HTTP/2, and hyper-util's pooled client to the upstream over rustls),
//! which hands each finished exchange to a bounded queue and never waits
//! on it (an exchange the writer is too far behind for is forwarded and
//! counted as not recorded, so recording never slows the service); the
//! writer thread ([`writer`]), which names sessions ([`session`]), masks
//! secrets ([`mask`]) and writes; and [`Recorder`], which starts and
//! stops them.

pub mod flows;
pub mod mask;
mod proxy;
pub mod session;
mod writer;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use replay::recording::{Head, Totals, SCHEMA};

pub use mask::Rules;

/// How to record.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The service to forward to: `http://` or `https://`, host, port
    /// and an optional path prefix.
    pub upstream: http::Uri,
    /// The recording's file.
    pub out: PathBuf,
    /// Compress it with gzip.
    pub gzip: bool,
    /// Request bodies are kept up to this many bytes.
    pub body_cap: usize,
    /// What to mask.
    pub rules: Rules,
    /// A request header whose value names the session.
    pub session_header: Option<http::HeaderName>,
    /// Send the client's `Host` to the upstream, not the upstream's own.
    pub preserve_host: bool,
    /// TLS to an `https://` upstream (no ALPN: the proxy offers `h2` and
    /// `http/1.1` itself).
    pub tls: Arc<rustls::ClientConfig>,
}

/// Why recording could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The upstream URL is not one the proxy can forward to.
    #[error("--upstream {0}: {1}")]
    Upstream(String, String),
    /// Listening failed.
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    /// The recording's file could not be created.
    #[error("cannot create {0}: {1}")]
    Create(PathBuf, std::io::Error),
    /// Writing the recording failed.
    #[error("writing {0} failed: {1}")]
    Write(PathBuf, std::io::Error),
    /// The async runtime could not start.
    #[error("cannot start the proxy's threads: {0}")]
    Runtime(std::io::Error),
}

/// How far the recording has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Requests forwarded.
    pub forwarded: u64,
    /// Exchanges written.
    pub written: u64,
    /// Exchanges not yet finished.
    pub in_flight: u64,
    /// Exchanges forwarded but not written.
    pub not_recorded: u64,
}

/// A recorder running on its own threads.
pub struct Recorder {
    /// The address it listens on (the port chosen, for port 0).
    pub addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    proxy: Arc<proxy::Proxy>,
    accept: tokio::task::JoinHandle<()>,
    writer: std::thread::JoinHandle<std::io::Result<Totals>>,
    out: PathBuf,
}

/// Exchanges waiting for the writer; past this they are not recorded. The
/// writer takes them every 50 ms: room for over 300,000 a second.
const QUEUE: usize = 16_384;

impl Recorder {
    /// Creates the file, writes the head and starts listening.
    pub fn start(options: Options) -> Result<Recorder, Error> {
        let upstream = upstream(&options.upstream)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("throng-record")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(options.listen))
            .map_err(|e| Error::Listen(options.listen, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Listen(options.listen, e))?;
        let file = std::fs::File::create(&options.out)
            .map_err(|e| Error::Create(options.out.clone(), e))?;
        let file = std::io::BufWriter::with_capacity(1 << 16, file);
        let sink = if options.gzip {
            writer::Sink::Gzip(flate2::write::GzEncoder::new(
                file,
                // The fastest level: a few times smaller than the text, at
                // a fraction of the default level's CPU.
                flate2::Compression::fast(),
            ))
        } else {
            writer::Sink::Plain(file)
        };
        let rules = &options.rules;
        let head = Head {
            schema: SCHEMA.to_string(),
            started: jiff::Timestamp::now().to_string(),
            upstream: options.upstream.to_string(),
            body_cap: options.body_cap as u64,
            masked_headers: rules.headers.clone(),
            masked_fields: rules.fields.clone(),
            kept_fields: rules.keep.clone(),
            masked_json: rules.json.iter().map(|(text, _)| text.clone()).collect(),
            session_header: options.session_header.as_ref().map(|h| h.to_string()),
        };
        let counters = Arc::new(writer::Shared::default());
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let state = writer::Writer {
            masker: mask::Masker::new(options.rules.clone()),
            sessions: session::Sessions::new(),
            session_header: options.session_header.clone(),
            flows: flows::Flows::new(),
            totals: Totals::default(),
        };
        let writer_counters = counters.clone();
        let writer = std::thread::Builder::new()
            .name("throng-record-writer".into())
            .spawn(move || writer::run(sink, &head, state, rx, &writer_counters))
            .map_err(Error::Runtime)?;

        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(Arc::unwrap_or_clone(options.tls))
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        let proxy = Arc::new(proxy::Proxy {
            client,
            upstream,
            preserve_host: options.preserve_host,
            body_cap: options.body_cap,
            start: Instant::now(),
            tx: Mutex::new(Some(tx)),
            counters,
            in_flight: Default::default(),
            forwarded: Default::default(),
        });
        let accept = runtime.spawn(accept(listener, proxy.clone()));
        Ok(Recorder {
            addr,
            runtime,
            proxy,
            accept,
            writer,
            out: options.out,
        })
    }

    /// How far it has got.
    pub fn progress(&self) -> Progress {
        let p = &self.proxy;
        Progress {
            forwarded: p.forwarded.load(Ordering::Relaxed),
            written: p.counters.written.load(Ordering::Relaxed),
            in_flight: p.in_flight.load(Ordering::Relaxed).max(0) as u64,
            not_recorded: p.counters.not_recorded.load(Ordering::Relaxed),
        }
    }

    /// Stops taking connections, gives the exchanges under way up to
    /// `grace` to finish, then closes the rest and writes the end line.
    pub fn stop(self, grace: Duration) -> Result<Totals, Error> {
        self.accept.abort();
        let deadline = Instant::now() + grace;
        while self.proxy.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Dropping the runtime drops every connection, and with them the
        // bodies of unfinished exchanges, which record themselves.
        self.runtime.shutdown_timeout(Duration::from_secs(1));
        drop(
            self.proxy
                .tx
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        match self.writer.join() {
            Ok(Ok(totals)) => Ok(totals),
            Ok(Err(e)) => Err(Error::Write(self.out, e)),
            Err(_) => Err(Error::Write(
                self.out,
                std::io::Error::other("the writer thread panicked"),
            )),
        }
    }
}

fn upstream(uri: &http::Uri) -> Result<proxy::Upstream, Error> {
    let bad = |why: &str| Error::Upstream(uri.to_string(), why.to_string());
    let scheme = uri
        .scheme()
        .cloned()
        .ok_or_else(|| bad("give a URL with its scheme, e.g. http://127.0.0.1:8080"))?;
    if scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS {
        return Err(bad("only http:// and https:// can be forwarded to"));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| bad("the URL has no host"))?;
    if uri.query().is_some() {
        return Err(bad(
            "the URL has a query; give only scheme, host, port and path",
        ));
    }
    Ok(proxy::Upstream {
        scheme,
        authority,
        base: uri.path().trim_end_matches('/').to_string(),
    })
}

/// Takes connections until aborted, each served on its own task.
async fn accept(listener: tokio::net::TcpListener, proxy: Arc<proxy::Proxy>) {
    static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors, or a connection reset before it was
            // taken: wait a moment and go on.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                proxy::handle(proxy.clone(), connection, peer.ip(), req)
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}
