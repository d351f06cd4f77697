//! The recording's writer: one thread that takes finished exchanges from
//! the proxy, names their sessions, masks their secrets and writes them,
//! flushing every second (gzip included: a sync flush), so a recorder
//! that is killed loses at most the last second.

use std::io::Write;
use std::net::IpAddr;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::{HeaderMap, Method, Version};
use replay::recording::{End, Exchange, Head, Totals, Use};

use crate::flows::{self, Flows};
use crate::mask::Masker;
use crate::session::{Seen, Sessions};

/// An exchange as the proxy saw it, secrets and all. Never written as
/// it is: [`Writer::exchange`] masks it.
pub(crate) struct Raw {
    pub at: Duration,
    pub connection: u64,
    pub client: IpAddr,
    pub method: Method,
    pub path: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub body_size: u64,
    pub status: u16,
    pub response_headers: HeaderMap,
    pub response_size: u64,
    /// The first part of a JSON or HTML response's body: looked at for
    /// values later requests send back, never written.
    pub response_body: Vec<u8>,
    pub ttfb: Duration,
    pub duration: Duration,
    pub error: Option<String>,
    pub upgraded: bool,
}

/// Where the recording goes: a file, gzip-compressed or not.
pub(crate) enum Sink {
    Plain(std::io::BufWriter<std::fs::File>),
    Gzip(flate2::write::GzEncoder<std::io::BufWriter<std::fs::File>>),
}

impl Sink {
    fn out(&mut self) -> &mut dyn Write {
        match self {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w,
        }
    }

    fn finish(self) -> std::io::Result<()> {
        match self {
            Sink::Plain(mut w) => w.flush(),
            Sink::Gzip(w) => w.finish()?.flush(),
        }
    }
}

/// Names sessions and masks; pure apart from the sink it is given.
pub(crate) struct Writer {
    pub masker: Masker,
    pub sessions: Sessions,
    pub session_header: Option<http::HeaderName>,
    pub flows: Flows,
    pub totals: Totals,
}

impl Writer {
    /// The line written for `raw`.
    pub fn exchange(&mut self, raw: Raw) -> Exchange {
        let cookies = cookie_values(raw.headers.get_all(http::header::COOKIE).iter());
        let header = self
            .session_header
            .as_ref()
            .and_then(|name| raw.headers.get(name))
            .and_then(|v| v.to_str().ok());
        let session = self.sessions.of(
            Seen {
                connection: raw.connection,
                header,
                cookies: &cookies,
            },
            raw.at,
        );
        let set = set_cookie_values(
            raw.response_headers
                .get_all(http::header::SET_COOKIE)
                .iter(),
        );
        self.sessions.learn(session, &set, raw.at);
        for gone in self.sessions.take_forgotten() {
            self.flows.forget(gone);
        }
        let seq = self.totals.exchanges + 1;
        let encoded: Vec<(String, String)>;
        let found = {
            let body = String::from_utf8_lossy(&raw.body);
            let header_values = raw
                .headers
                .iter()
                .filter(|(name, _)| *name != http::header::COOKIE)
                .filter_map(|(_, v)| v.to_str().ok());
            // A value that went into the path or a form percent-encoded
            // (a CSRF token `ab+c/d==` sent as `ab%2Bc%2Fd%3D%3D`) is
            // matched decoded, and found as the text it was written as.
            encoded = flows::words(&raw.path)
                .chain(flows::words(&body))
                .filter_map(|w| flows::decoded(w).map(|d| (d, w.to_string())))
                .collect();
            let words: Vec<&str> = flows::words(&raw.path)
                .chain(header_values.flat_map(flows::words))
                .chain(flows::words(&body))
                .chain(encoded.iter().map(|(d, _)| d.as_str()))
                .collect();
            self.flows.request(session, &words)
        };
        let offered = flows::offers(&raw.response_headers, &raw.response_body);
        self.flows.response(session, seq, offered);

        let headers = self.headers(&raw.headers);
        let response_headers = self.headers(&raw.response_headers);
        let path = self.masker.path(&raw.path).unwrap_or(raw.path);
        let content_type = raw
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let body_cut = raw.body_size > raw.body.len() as u64;
        let body_bytes = self
            .masker
            .body(content_type, &raw.body)
            .unwrap_or(raw.body);
        let (body, body_b64) = if body_bytes.is_empty() {
            (None, None)
        } else {
            match String::from_utf8(body_bytes) {
                Ok(text) => (Some(text), None),
                Err(e) => (
                    None,
                    Some(base64::engine::general_purpose::STANDARD.encode(e.as_bytes())),
                ),
            }
        };
        // How each value a response gave reads in this request as written:
        // as it is, or as the placeholder masking made of it.
        let written = |text: &str| {
            path.contains(text)
                || body.as_deref().is_some_and(|b| b.contains(text))
                || headers.iter().any(|(_, v)| v.contains(text))
        };
        let mut uses = Vec::new();
        for f in found {
            // The value as it came, and each way this request wrote it.
            let forms = std::iter::once(f.value.as_str()).chain(
                encoded
                    .iter()
                    .filter(|(d, _)| *d == f.value)
                    .map(|(_, e)| e.as_str()),
            );
            for as_sent in forms {
                let text = if written(as_sent) {
                    Some(as_sent.to_string())
                } else {
                    self.masker.placeholder_of(as_sent).filter(|p| written(p))
                };
                if let Some(text) = text.filter(|t| !uses.iter().any(|u: &Use| u.text == *t)) {
                    uses.push(Use {
                        text,
                        from: f.from,
                        rule: f.rule.clone(),
                    });
                }
            }
        }
        self.totals.exchanges += 1;
        self.totals.bodies_cut += u64::from(body_cut);
        if raw.status == 0 {
            if raw.error.as_deref() == Some(crate::proxy::CLIENT_GONE) {
                self.totals.client_gone += 1;
            } else {
                self.totals.upstream_errors += 1;
            }
        }
        Exchange {
            at_us: micros(raw.at),
            session,
            client: raw.client.to_string(),
            method: raw.method.to_string(),
            path,
            version: match raw.version {
                Version::HTTP_10 => "HTTP/1.0",
                Version::HTTP_2 => "HTTP/2",
                _ => "HTTP/1.1",
            }
            .to_string(),
            headers,
            body,
            body_b64,
            body_size: raw.body_size,
            body_cut,
            status: raw.status,
            response_headers,
            response_size: raw.response_size,
            ttfb_us: micros(raw.ttfb),
            duration_us: micros(raw.duration),
            error: raw.error,
            upgraded: raw.upgraded,
            seq,
            uses,
        }
    }

    fn headers(&mut self, headers: &HeaderMap) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(name, value)| {
                let text = String::from_utf8_lossy(value.as_bytes());
                let name = name.as_str();
                let value = self
                    .masker
                    .header(name, &text)
                    .unwrap_or_else(|| text.into_owned());
                (name.to_string(), value)
            })
            .collect()
    }

    fn finish_totals(&mut self, not_recorded: u64) -> Totals {
        let mut totals = self.totals.clone();
        totals.sessions = self.sessions.count();
        totals.masked = self.masker.masked;
        totals.placeholders = self.masker.placeholders();
        totals.not_recorded = not_recorded;
        totals
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The values of `Cookie` headers' pairs.
fn cookie_values<'a>(headers: impl Iterator<Item = &'a http::HeaderValue>) -> Vec<&'a str> {
    headers
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.split_once('=').map(|(_, value)| value.trim()))
        .filter(|v| !v.is_empty())
        .collect()
}

/// The values `Set-Cookie` headers set.
fn set_cookie_values<'a>(headers: impl Iterator<Item = &'a http::HeaderValue>) -> Vec<&'a str> {
    headers
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.split_once('=').map(|(_, value)| value.trim()))
        .filter(|v| !v.is_empty())
        .collect()
}

/// How often the writer takes what the queue holds.
const BATCH_EVERY: Duration = Duration::from_millis(10);

/// A batch's lines are written out when they reach this size.
const LINES_CAP: usize = 1 << 20;

/// Writes the batch's `lines` (`batch` exchanges) to the sink and counts
/// them written.
fn write_lines(
    sink: &mut Sink,
    lines: &mut Vec<u8>,
    batch: &mut u64,
    shared: &Shared,
) -> std::io::Result<()> {
    sink.out().write_all(lines)?;
    lines.clear();
    shared
        .written
        .fetch_add(*batch, std::sync::atomic::Ordering::Relaxed);
    *batch = 0;
    Ok(())
}

/// Counters the proxy and the writer share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Exchanges the proxy could not hand to the writer (it was behind).
    pub not_recorded: std::sync::atomic::AtomicU64,
    /// Exchanges written.
    pub written: std::sync::atomic::AtomicU64,
}

/// Writes `head`, then each exchange as it comes, until every sender is
/// gone; then the end line. An error writing stops the recording (the
/// proxy goes on forwarding; its exchanges are counted as not recorded).
pub(crate) fn run(
    mut sink: Sink,
    head: &Head,
    mut writer: Writer,
    rx: Receiver<Raw>,
    shared: &Shared,
) -> std::io::Result<Totals> {
    serde_json::to_writer(sink.out(), head)?;
    sink.out().write_all(b"\n")?;
    sink.out().flush()?;
    let mut flushed = Instant::now();
    let mut dirty = false;
    // Background work: on a machine whose cores the service and the proxy
    // share, the writer gives way to them (the lowest priority, nice 19:
    // they preempt it as soon as they wake), and it wakes every 10 ms,
    // not once per exchange, taking what the queue holds. A best effort:
    // if the system refuses, it runs at its normal priority.
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
    // A batch's lines, written to the sink in one piece: serde_json writes
    // a line in many small pieces, and the gzip encoder's every write costs
    // the same (flate2 clears its 32 KiB output buffer each time), which
    // was most of the writer's time.
    let mut lines: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut open = true;
    while open {
        std::thread::sleep(BATCH_EVERY);
        let mut batch = 0;
        loop {
            match rx.try_recv() {
                Ok(raw) => {
                    let exchange = writer.exchange(raw);
                    serde_json::to_writer(&mut lines, &exchange)?;
                    lines.push(b'\n');
                    batch += 1;
                    if lines.len() >= LINES_CAP {
                        write_lines(&mut sink, &mut lines, &mut batch, shared)?;
                        dirty = true;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if batch > 0 {
            write_lines(&mut sink, &mut lines, &mut batch, shared)?;
            dirty = true;
        }
        if dirty && flushed.elapsed() >= Duration::from_secs(1) {
            sink.out().flush()?;
            flushed = Instant::now();
            dirty = false;
        }
    }
    let totals = writer.finish_totals(
        shared
            .not_recorded
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    serde_json::to_writer(
        sink.out(),
        &End {
            end: totals.clone(),
        },
    )?;
    sink.out().write_all(b"\n")?;
    sink.finish()?;
    Ok(totals)
}
