//! The proxy: takes each request (HTTP/1.1, or HTTP/2 with prior
//! knowledge), forwards it to the upstream with its body streaming
//! through, streams the response back, and hands the finished exchange
//! to the writer. Bodies are watched as they pass ([`TapBody`],
//! [`RecordBody`]): the request's first `body_cap` bytes kept, sizes
//! counted, nothing held back. An upgrade (WebSocket) is forwarded, and
//! after the upstream's `101` the two connections are joined byte for
//! byte.

use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioIo;

use crate::writer::{self, Raw};

/// Where requests go.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    /// A path the upstream's URL had, without its last `/`: prefixed to
    /// every request's.
    pub base: String,
}

/// What every connection's requests share.
pub(crate) struct Proxy {
    pub client: Client<HttpsConnector<HttpConnector>, TapBody>,
    pub upstream: Upstream,
    pub preserve_host: bool,
    pub body_cap: usize,
    pub start: Instant,
    pub tx: Mutex<Option<SyncSender<Raw>>>,
    pub counters: Arc<writer::Shared>,
    /// Exchanges started and not yet finished.
    pub in_flight: AtomicI64,
    /// Exchanges forwarded.
    pub forwarded: AtomicU64,
}

impl Proxy {
    fn send(&self, raw: Raw) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let sent = match &*self.tx.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(tx) => match tx.try_send(raw) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
            None => false,
        };
        if !sent {
            self.counters.not_recorded.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Headers that belong to one connection, never forwarded (RFC 9110
/// 7.6.1), besides those the `Connection` header names.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes the hop-by-hop headers; an upgrade keeps `Upgrade` and says
/// `Connection: upgrade` again.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    let kept = upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    for name in &named {
        headers.remove(name);
    }
    if let Some(protocol) = kept {
        headers.insert(header::UPGRADE, protocol);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// The request's part of an exchange, carried to its end.
struct Pending {
    at: Duration,
    connection: u64,
    client: IpAddr,
    method: http::Method,
    path: String,
    version: Version,
    headers: HeaderMap,
    tap: Arc<Mutex<Tap>>,
    started: Instant,
    proxy: Arc<Proxy>,
}

/// Why an exchange has no response when its client gave up waiting.
pub(crate) const CLIENT_GONE: &str = "the client went away before the upstream answered";

/// A request on its way to the upstream: if its handler is dropped
/// before a response (the client went away, the recorder is stopping),
/// the exchange is still recorded, with why.
struct Unanswered(Option<Pending>);

impl Unanswered {
    fn take(&mut self) -> Option<Pending> {
        self.0.take()
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(pending) = self.0.take() {
            let proxy = pending.proxy.clone();
            let ttfb = pending.started.elapsed();
            let why = CLIENT_GONE.to_string();
            proxy.send(pending.finish(0, HeaderMap::new(), 0, Vec::new(), ttfb, Some(why), false));
        }
    }
}

impl Pending {
    #[allow(clippy::too_many_arguments)]
    fn finish(
        self,
        status: u16,
        response_headers: HeaderMap,
        response_size: u64,
        response_body: Vec<u8>,
        ttfb: Duration,
        error: Option<String>,
        upgraded: bool,
    ) -> Raw {
        let duration = self.started.elapsed();
        let tap = std::mem::take(&mut *self.tap.lock().unwrap_or_else(|p| p.into_inner()));
        Raw {
            at: self.at,
            connection: self.connection,
            client: self.client,
            method: self.method,
            path: self.path,
            version: self.version,
            headers: self.headers,
            body: tap.kept,
            body_size: tap.size,
            status,
            response_headers,
            response_size,
            response_body,
            ttfb,
            duration,
            error,
            upgraded,
        }
    }
}

/// One request, forwarded.
pub(crate) async fn handle(
    proxy: Arc<Proxy>,
    connection: u64,
    client: IpAddr,
    mut req: Request<Incoming>,
) -> Result<Response<RecordBody>, Infallible> {
    let started = Instant::now();
    proxy.in_flight.fetch_add(1, Ordering::Relaxed);
    proxy.forwarded.fetch_add(1, Ordering::Relaxed);
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();

    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut recorded = parts.headers.clone();
    strip_hop_by_hop(&mut recorded, false);
    recorded.remove(header::HOST);
    let tap = Arc::new(Mutex::new(Tap::default()));
    let mut pending = Unanswered(Some(Pending {
        at: started.saturating_duration_since(proxy.start),
        connection,
        client,
        method: parts.method.clone(),
        path: path.clone(),
        version: parts.version,
        headers: recorded,
        tap: tap.clone(),
        started,
        proxy: proxy.clone(),
    }));

    let up = &proxy.upstream;
    let uri = match Uri::builder()
        .scheme(up.scheme.clone())
        .authority(up.authority.clone())
        .path_and_query(format!("{}{path}", up.base))
        .build()
    {
        Ok(uri) => uri,
        Err(e) => {
            return Ok(failed(
                &proxy,
                pending.take(),
                format!("cannot forward {path:?}: {e}"),
            ))
        }
    };
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers, upgrade);
    if !proxy.preserve_host {
        headers.remove(header::HOST);
    } else if !headers.contains_key(header::HOST) {
        if let Some(Ok(host)) = parts
            .uri
            .authority()
            .map(|a| HeaderValue::from_str(a.as_str()))
        {
            headers.insert(header::HOST, host);
        }
    }
    let mut forward = Request::new(TapBody {
        inner: body,
        tap,
        cap: proxy.body_cap,
    });
    *forward.method_mut() = parts.method;
    *forward.uri_mut() = uri;
    *forward.headers_mut() = headers;

    let mut response = match proxy.client.request(forward).await {
        Ok(r) => r,
        Err(e) => {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why.push_str(": ");
                why.push_str(&s.to_string());
                source = s.source();
            }
            return Ok(failed(&proxy, pending.take(), why));
        }
    };
    let ttfb = started.elapsed();
    let status = response.status();
    let upgraded = status == StatusCode::SWITCHING_PROTOCOLS;
    if let (true, Some(client_upgrade)) = (upgraded, client_upgrade) {
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            if let (Ok(a), Ok(b)) = tokio::join!(client_upgrade, upstream_upgrade) {
                let _ =
                    tokio::io::copy_bidirectional(&mut TokioIo::new(a), &mut TokioIo::new(b)).await;
            }
        });
    }
    let (mut parts, body) = response.into_parts();
    let recorded_response = {
        let mut h = parts.headers.clone();
        strip_hop_by_hop(&mut h, false);
        h
    };
    strip_hop_by_hop(&mut parts.headers, upgraded);
    parts.version = Version::default();
    // The body of a page or a JSON answer is looked at for the values a
    // later request sends back (never written): its first part, as much as
    // a request body's.
    let kind = recorded_response
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let keep = if kind.contains("json") || kind.contains("html") {
        proxy.body_cap
    } else {
        0
    };
    let body = RecordBody {
        inner: Inner::Upstream(body),
        size: 0,
        kept: Vec::new(),
        keep,
        end: pending.0.take().map(|pending| End {
            proxy,
            pending,
            status: status.as_u16(),
            headers: recorded_response,
            ttfb,
            upgraded,
        }),
    };
    Ok(Response::from_parts(parts, body))
}

/// A 502 for a request the upstream did not answer, recorded with status
/// 0 and why.
fn failed(proxy: &Arc<Proxy>, pending: Option<Pending>, why: String) -> Response<RecordBody> {
    if let Some(pending) = pending {
        let ttfb = pending.started.elapsed();
        proxy.send(pending.finish(
            0,
            HeaderMap::new(),
            0,
            Vec::new(),
            ttfb,
            Some(why.clone()),
            false,
        ));
    }
    let mut response = Response::new(RecordBody {
        inner: Inner::Fixed(Some(Bytes::from(format!(
            "throng record: the upstream gave no response: {why}\n"
        )))),
        size: 0,
        kept: Vec::new(),
        keep: 0,
        end: None,
    });
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A request body's first bytes, and its size.
#[derive(Debug, Default)]
pub(crate) struct Tap {
    kept: Vec<u8>,
    size: u64,
}

/// A request body on its way to the upstream, watched.
pub(crate) struct TapBody {
    inner: Incoming,
    tap: Arc<Mutex<Tap>>,
    cap: usize,
}

impl Body for TapBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let cap = self.cap;
                let mut tap = self.tap.lock().unwrap_or_else(|p| p.into_inner());
                tap.size += data.len() as u64;
                let room = cap.saturating_sub(tap.kept.len());
                let take = room.min(data.len());
                tap.kept.extend_from_slice(&data[..take]);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

enum Inner {
    Upstream(Incoming),
    Fixed(Option<Bytes>),
}

/// What finishes the exchange once its response has gone.
struct End {
    proxy: Arc<Proxy>,
    pending: Pending,
    status: u16,
    headers: HeaderMap,
    ttfb: Duration,
    upgraded: bool,
}

/// A response body on its way to the client: counted, and the exchange
/// handed to the writer when it ends, fails, or is dropped (the client
/// went away), exactly once.
pub(crate) struct RecordBody {
    inner: Inner,
    size: u64,
    /// The body's first `keep` bytes.
    kept: Vec<u8>,
    keep: usize,
    end: Option<End>,
}

impl RecordBody {
    fn finish(&mut self, error: Option<String>) {
        if let Some(end) = self.end.take() {
            let raw = end.pending.finish(
                end.status,
                end.headers,
                self.size,
                std::mem::take(&mut self.kept),
                end.ttfb,
                error,
                end.upgraded,
            );
            end.proxy.send(raw);
        }
    }
}

impl Drop for RecordBody {
    fn drop(&mut self) {
        let cut = !self.is_end_stream();
        self.finish(cut.then(|| "the client went away before the response's end".into()));
    }
}

impl Body for RecordBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = match &mut self.inner {
            Inner::Fixed(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Inner::Upstream(body) => Pin::new(body).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.size += data.len() as u64;
                    let room = self.keep.saturating_sub(self.kept.len());
                    if room > 0 {
                        let take = room.min(data.len());
                        let data = data.slice(..take);
                        self.kept.extend_from_slice(&data);
                    }
                }
                if self.is_end_stream() {
                    self.finish(None);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                let why = format!("the upstream's response broke off: {e}");
                self.finish(Some(why));
            }
            Poll::Ready(None) => self.finish(None),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Fixed(data) => data.is_none(),
            Inner::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Fixed(Some(d)) => SizeHint::with_exact(d.len() as u64),
            Inner::Fixed(None) => SizeHint::with_exact(0),
            Inner::Upstream(body) => body.size_hint(),
        }
    }
}
