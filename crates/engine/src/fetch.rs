//! One GET at a time, off the load's path: how the binary reads the
//! target's metrics endpoints during a run (`--scrape`). The same dialer
//! as requests (resolved once, TLS as the run's), hyper's HTTP/1.1
//! client, a new connection per read (a scrape a second does not need
//! keep-alive, and a fresh connection cannot carry a broken state over),
//! a deadline over the whole exchange and a cap on the body.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use plan::{RequestSpec, Target};
use stats::Phases;

use crate::error::EngineError;
use crate::net::{dialer, Caller, Dialer};

/// What a metrics endpoint is asked for: OpenMetrics first, then the
/// Prometheus text format (as Prometheus asks).
const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No whole answer within the timeout.
    #[error("no whole answer within {0:?}")]
    Timeout(Duration),
    /// The connection (or TLS) could not be made, or broke.
    #[error("could not read it: {0}")]
    Connect(String),
    /// An answer other than 200.
    #[error("it answered {0}")]
    Status(u16),
    /// A body longer than the cap.
    #[error("its answer is longer than {0} bytes (raise max_size, or narrow what it serves)")]
    TooLarge(u64),
}

impl FetchError {
    /// A short, stable word for counting failures by.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::Timeout(_) => "timeout",
            FetchError::Connect(_) => "connect",
            FetchError::Status(_) => "status",
            FetchError::TooLarge(_) => "too_large",
        }
    }
}

/// Reads one URL, again and again.
pub struct Fetcher {
    dialer: Dialer,
    authority: String,
    path: String,
}

impl Fetcher {
    /// Resolves the URL's host and builds its TLS client, once.
    pub fn new(request: &RequestSpec) -> Result<Fetcher, EngineError> {
        let dialer = dialer(&Target::of(request), &request.tls, false)?;
        Ok(Fetcher {
            dialer,
            authority: request.authority.clone(),
            path: request.path_and_query.clone(),
        })
    }

    /// One GET: the body of a 200 answer, at most `max_size` bytes, all
    /// within `timeout`.
    pub async fn get(&self, timeout: Duration, max_size: u64) -> Result<Bytes, FetchError> {
        tokio::time::timeout(timeout, self.exchange(max_size))
            .await
            .unwrap_or(Err(FetchError::Timeout(timeout)))
    }

    async fn exchange(&self, max_size: u64) -> Result<Bytes, FetchError> {
        let broke = |e: &dyn std::fmt::Display| FetchError::Connect(e.to_string());
        let stream = self
            .dialer
            .dial(&mut Phases::default(), Caller::default())
            .await
            .map_err(|f| match &f.detail {
                Some(e) => FetchError::Connect(format!("{}: {e}", f.kind.as_str())),
                None => FetchError::Connect(f.kind.as_str().to_string()),
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| broke(&e))?;
        let conn = tokio::spawn(conn);
        let request = http::Request::get(self.path.as_str())
            .header(http::header::HOST, self.authority.as_str())
            .header(http::header::ACCEPT, ACCEPT)
            .header(
                http::header::USER_AGENT,
                concat!("throng/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| broke(&e))?;
        let read = async {
            let response = sender.send_request(request).await.map_err(|e| broke(&e))?;
            let status = response.status().as_u16();
            if status != 200 {
                return Err(FetchError::Status(status));
            }
            let mut body = response.into_body();
            let mut text = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| broke(&e))?;
                if let Some(data) = frame.data_ref() {
                    if (text.len() + data.len()) as u64 > max_size {
                        return Err(FetchError::TooLarge(max_size));
                    }
                    text.extend_from_slice(data);
                }
            }
            Ok(Bytes::from(text))
        };
        let out = read.await;
        // A body left unread, or a read done: the connection goes.
        conn.abort();
        out
    }
}
