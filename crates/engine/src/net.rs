//! TCP and TLS connections, with their phases timed.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::HandshakeKind;
use rustls_pki_types::ServerName;
use stats::{ErrorKind, Phases};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{EngineError, Failure};

/// A plain or TLS byte stream.
pub(crate) enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// The ALPN protocol the server chose, if any.
    pub(crate) fn alpn(&self) -> Option<&[u8]> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(s) => s.get_ref().1.alpn_protocol(),
        }
    }

    /// Whether the peer closed this idle stream, reset it or sent on it
    /// unasked, as far as can be told without waiting: one read that
    /// does not block (and, when the socket has shown no sign of life
    /// since the last read ran dry, no system call at all). Bytes read
    /// here are lost, so ask only of a stream on which nothing is due.
    pub(crate) fn closed_while_idle(&mut self) -> bool {
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // Pending: nothing to read, the stream is open. Pending is also
        // what tokio's cooperative budget answers when spent; the stream
        // is then taken as open, and a request that fails on it is
        // judged as any other.
        Pin::new(self).poll_read(&mut cx, &mut buf).is_ready()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// TLS settings for one target, built once per run.
#[derive(Clone)]
pub(crate) struct TlsTarget {
    /// The configuration (roots, ALPN, the run's own ticket store for
    /// connections of no user: HTTP/2's shared ones, scrapes); a user's
    /// connections use a copy with the user's tickets.
    pub(crate) config: Arc<rustls::ClientConfig>,
    /// Whether sessions are resumed (`--tls-resumption`, on by default).
    pub(crate) resume: bool,
    /// The name the certificate must match, and SNI.
    pub(crate) name: ServerName<'static>,
}

impl TlsTarget {
    /// Connections to `name` with `config`.
    pub(crate) fn new(
        config: &Arc<rustls::ClientConfig>,
        resume: bool,
        name: ServerName<'static>,
    ) -> TlsTarget {
        TlsTarget {
            config: config.clone(),
            resume,
            name,
        }
    }
}

/// A user's TLS session tickets, kept as a browser keeps them: the
/// user's later connections to a host resume the session an earlier one
/// began (a cheaper handshake, counted as `tls_resumed`). A new visitor
/// (each session with `connections: per_session`) starts with none. The
/// store is made on the first TLS connection, and shared with the page
/// lanes the user opens.
#[derive(Clone, Default, Debug)]
pub(crate) struct Tickets(Arc<OnceLock<Arc<ClientSessionMemoryCache>>>);

impl Tickets {
    /// Tickets from none: the next connection is a full handshake.
    pub(crate) fn forget(&mut self) {
        *self = Tickets::default();
    }

    /// A connector like `tls`'s that keeps and uses these tickets.
    fn connector(&self, tls: &TlsTarget) -> TlsConnector {
        // Up to 8 servers, 8 tickets each: the target and the hosts its
        // redirects and pages lead to.
        let store = self
            .0
            .get_or_init(|| Arc::new(ClientSessionMemoryCache::new(64)));
        let mut config = (*tls.config).clone();
        config.resumption = Resumption::store(store.clone());
        TlsConnector::from(Arc::new(config))
    }
}

/// Who dials: the user's source address and TLS tickets.
#[derive(Clone, Copy, Default)]
pub(crate) struct Caller<'a> {
    /// The local address (the system's choice when `None`).
    pub(crate) source: Option<std::net::IpAddr>,
    /// The user's tickets; `None` for connections of no user, which
    /// resume from the run's own store.
    pub(crate) tickets: Option<&'a Tickets>,
}

/// Where and how to connect.
#[derive(Clone)]
pub(crate) struct Dialer {
    /// The resolved target address.
    pub(crate) addr: SocketAddr,
    /// TLS, for https targets.
    pub(crate) tls: Option<TlsTarget>,
}

impl Dialer {
    /// Connects (and handshakes) as `caller`, recording the phases and
    /// whether the TLS session was resumed.
    pub(crate) async fn dial(
        &self,
        phases: &mut Phases,
        caller: Caller<'_>,
    ) -> Result<Stream, Failure> {
        let t0 = Instant::now();
        phases.resumed = false;
        let connected = match caller.source {
            None => TcpStream::connect(self.addr).await,
            Some(ip) => {
                let socket = if self.addr.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()
                } else {
                    tokio::net::TcpSocket::new_v6()
                };
                match socket.and_then(|s| s.bind(std::net::SocketAddr::new(ip, 0)).map(|()| s)) {
                    Ok(s) => s.connect(self.addr).await,
                    Err(e) => Err(e),
                }
            }
        };
        let tcp = connected.map_err(|e| {
            let kind = match e.kind() {
                io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
                io::ErrorKind::TimedOut => ErrorKind::ConnectTimeout,
                _ => ErrorKind::Connect,
            };
            Failure::io(kind, e)
        })?;
        // Requests are written whole; waiting to coalesce them only adds latency.
        let _ = tcp.set_nodelay(true);
        let t1 = Instant::now();
        phases.connect = Some(t1 - t0);
        let Some(tls) = &self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        let connector = match caller.tickets {
            Some(tickets) if tls.resume => tickets.connector(tls),
            _ => TlsConnector::from(tls.config.clone()),
        };
        let stream = connector
            .connect(tls.name.clone(), tcp)
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::BrokenPipe => Failure::io(ErrorKind::Reset, e),
                _ => Failure::io(ErrorKind::Tls, e),
            })?;
        phases.tls = Some(t1.elapsed());
        phases.resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        Ok(Stream::Tls(Box::new(stream)))
    }
}

/// Builds the TLS configuration: verification on (built-in Mozilla roots
/// plus `--cacert`) unless `insecure`; ALPN `h2` or `http/1.1`; the
/// run's own ticket store (rustls' default, 256 sessions) for
/// connections of no user, or none when resumption is off.
pub(crate) fn tls_config(
    opts: &plan::TlsOptions,
    http2: bool,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::ClientConfig;
    let mut provider = rustls::crypto::ring::default_provider();
    // Offer AES-128-GCM with SHA-256 first, as Chrome and Firefox do
    // (rustls' own order puts AES-256-GCM with SHA-384 first): a server
    // that follows the client's order then runs the handshake's key
    // schedule on SHA-256, which CPUs accelerate, as it would for a
    // browser. Measured: SHA-384's block function was 10-14% of the CPU
    // of a handshake per request.
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let provider = Arc::new(provider);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = &opts.extra_roots_pem {
            use rustls_pki_types::pem::PemObject;
            let mut added = 0;
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("--cacert: not a PEM certificate: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("--cacert: certificate rejected: {e}"))?;
                added += 1;
            }
            if added == 0 {
                return Err("--cacert: the file holds no PEM certificate".into());
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    if !opts.resumption {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// `--insecure`: accepts any certificate, still checking handshake
/// signatures so the connection is at least well-formed TLS.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The first address of `host` of the family of `sources` (any without
/// them), once per run (never per request).
pub(crate) fn resolve(
    host: &str,
    port: u16,
    sources: &[IpAddr],
) -> Result<SocketAddr, EngineError> {
    Ok(of_sources_family(host, lookup(host, port)?, sources)?[0])
}

/// Every address of `host` (at least one), in the resolver's order.
fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, EngineError> {
    let why = match (host, port).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if !addrs.is_empty() {
                return Ok(addrs);
            }
            io::Error::new(io::ErrorKind::NotFound, "no addresses")
        }
        Err(why) => why,
    };
    Err(EngineError::Resolve {
        host: host.to_string(),
        why,
    })
}

/// How long a target's address is given to accept the one connection that
/// tells whether to use it, when its host has several (see [`reachable`]).
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// At most this many of a host's addresses are tried.
const PROBED: usize = 4;

/// The address of a target's `host` to send to, once per run: the first
/// the resolver gives, unless it gives several and the first does not take
/// a connection; then the first that does, as curl and browsers would
/// reach it. (`localhost` resolves to `::1` first on many systems, and a
/// server started on 127.0.0.1 alone then refused every request.) When
/// none does, the first: the run then counts the errors its connections
/// meet. A host of one address is not connected to before the run.
///
/// With source addresses (`clients.source_ips`), only the host's
/// addresses of their family are candidates, and each is tried from the
/// first source address (a user bound to 127.0.0.2 cannot reach `::1`,
/// however well `::1` answers the machine's default address).
///
/// Also a note for the user when an address other than the first was
/// chosen, or none took a connection: the probe's wait (up to 500 ms an
/// address) and the address the run uses are then worth knowing.
pub(crate) fn resolve_target(
    host: &str,
    port: u16,
    sources: &[IpAddr],
) -> Result<(SocketAddr, Option<String>), EngineError> {
    let addrs = of_sources_family(host, lookup(host, port)?, sources)?;
    let reached = reachable(&addrs, PROBE_TIMEOUT, sources.first().copied());
    Ok((
        reached.unwrap_or(addrs[0]),
        probe_note(host, &addrs, reached),
    ))
}

/// [`resolve_target`]'s note: `None` when the first of `addrs` was
/// `reached`.
pub(crate) fn probe_note(
    host: &str,
    addrs: &[SocketAddr],
    reached: Option<SocketAddr>,
) -> Option<String> {
    let first = *addrs.first()?;
    let tried: Vec<String> = addrs.iter().take(PROBED).map(|a| a.to_string()).collect();
    let (tried, wait) = (tried.join(", "), PROBE_TIMEOUT.as_millis());
    match reached {
        Some(a) if a == first => None,
        Some(a) => Some(format!(
            "{host} resolves to {tried}; those before {a} took no TCP connection within {wait} ms, so the run sends to {a}"
        )),
        None => Some(format!(
            "{host} resolves to {tried}, and none took a TCP connection within {wait} ms: the run sends to {first}, and counts what its connections meet"
        )),
    }
}

/// Of `addrs` (`host`'s), those of the family of `sources` (all when there
/// are none). An error, before the run, when the sources mix IPv4 and
/// IPv6 (a target address is one or the other, and the users of the
/// other family could never connect), or when the host has no address
/// of theirs.
pub(crate) fn of_sources_family(
    host: &str,
    addrs: Vec<SocketAddr>,
    sources: &[IpAddr],
) -> Result<Vec<SocketAddr>, EngineError> {
    let Some(first) = sources.first() else {
        return Ok(addrs);
    };
    let family = |ip: &IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    if let Some(other) = sources.iter().find(|s| s.is_ipv4() != first.is_ipv4()) {
        return Err(EngineError::Source(format!(
            "clients.source_ips mixes {} ({first}) and {} ({other}) addresses: a target is reached over one of them, and the users of the other could not connect. Give addresses of one family",
            family(first),
            family(other)
        )));
    }
    let kept: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| a.is_ipv4() == first.is_ipv4())
        .collect();
    if kept.is_empty() {
        let found: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        return Err(EngineError::Source(format!(
            "{host:?} has no {} address ({}), and clients.source_ips are {} addresses: send from addresses of the target's family",
            family(first),
            found.join(", "),
            family(first)
        )));
    }
    Ok(kept)
}

/// At most this many source addresses are bound before the run (~5 µs
/// each); of a longer list, this many spread evenly over it, the first and
/// the last among them.
const SOURCES_CHECKED: usize = 4096;

/// Binds source addresses once each, before the run (all of them, or
/// [`SOURCES_CHECKED`] spread over a longer list), so that an address this
/// machine does not have stops the run with the reason rather than
/// failing every connection of its users.
pub(crate) fn check_sources(sources: &[IpAddr]) -> Result<(), EngineError> {
    let n = sources.len();
    let picked = (0..n.min(SOURCES_CHECKED)).map(|i| {
        if n <= SOURCES_CHECKED {
            i
        } else {
            i * (n - 1) / (SOURCES_CHECKED - 1)
        }
    });
    let mut checked = std::collections::HashSet::new();
    for ip in picked.map(|i| sources[i]) {
        if !checked.insert(ip) {
            continue;
        }
        if let Err(why) = socket_from(ip, SocketAddr::new(ip, 0)) {
            return Err(EngineError::Source(format!(
                "source address {ip} cannot be used: {why}. On Linux every address of 127.0.0.0/8 is local; others must be configured on this machine first (ip addr add {ip}/32 dev DEVICE)"
            )));
        }
    }
    Ok(())
}

/// A TCP socket for connecting to `to`, bound to `source` (the system
/// picks the port).
fn socket_from(source: IpAddr, to: SocketAddr) -> io::Result<socket2::Socket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        None,
    )?;
    s.bind(&SocketAddr::new(source, 0).into())?;
    Ok(s)
}

/// The first of `addrs` (not empty) that takes a TCP connection within
/// `timeout` (from `source` when given), trying at most [`PROBED`]; `None`
/// if none does. A single address is returned untried.
pub(crate) fn reachable(
    addrs: &[SocketAddr],
    timeout: Duration,
    source: Option<IpAddr>,
) -> Option<SocketAddr> {
    if let [only] = addrs {
        return Some(*only);
    }
    let takes = |a: &SocketAddr| match source {
        None => std::net::TcpStream::connect_timeout(a, timeout).is_ok(),
        Some(ip) => socket_from(ip, *a)
            .and_then(|s| s.connect_timeout(&(*a).into(), timeout))
            .is_ok(),
    };
    addrs.iter().take(PROBED).find(|a| takes(a)).copied()
}

/// Resolves `target` ([`resolve_target`]) and builds its TLS client, once
/// per run.
pub(crate) fn dialer(
    target: &plan::Target,
    tls: &plan::TlsOptions,
    http2: bool,
) -> Result<Dialer, EngineError> {
    dialer_to(
        target,
        resolve_target(&target.host, target.port, &[])?.0,
        tls,
        http2,
    )
}

/// [`dialer`], to an address already resolved.
pub(crate) fn dialer_to(
    target: &plan::Target,
    addr: SocketAddr,
    tls: &plan::TlsOptions,
    http2: bool,
) -> Result<Dialer, EngineError> {
    let tls = match target.scheme {
        plan::Scheme::Http => None,
        plan::Scheme::Https => {
            let config = tls_config(tls, http2).map_err(EngineError::Tls)?;
            let name =
                rustls_pki_types::ServerName::try_from(target.host.clone()).map_err(|e| {
                    EngineError::Tls(format!(
                        "{:?} is not a valid TLS server name: {e}",
                        target.host
                    ))
                })?;
            Some(TlsTarget::new(&config, tls.resumption, name))
        }
    };
    Ok(Dialer { addr, tls })
}

#[cfg(test)]
mod tests;
