//! A request prepared once, in the forms each protocol sends.

use bytes::Bytes;
use plan::RequestSpec;

/// A request ready to send: serialized once for HTTP/1.1, parts kept for
/// HTTP/2.
#[derive(Debug, Clone)]
pub struct Request {
    /// The exact HTTP/1.1 bytes: request line, headers, body.
    pub h1: Bytes,
    /// The spec it came from (HTTP/2 builds its frames from it).
    pub spec: RequestSpec,
    /// Whether a response to it has no body regardless of its headers.
    pub head: bool,
}

impl Request {
    /// Prepares `spec`, adding `Host`, `User-Agent` and `Content-Length`
    /// unless the user gave them.
    pub fn new(spec: &RequestSpec) -> Request {
        let mut out = Vec::with_capacity(256 + spec.body.len());
        out.extend_from_slice(spec.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(spec.path_and_query.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut header = |name: &str, value: &str| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        if !spec.has_header("host") {
            header("Host", &spec.authority);
        }
        if !spec.has_header("user-agent") {
            header("User-Agent", concat!("throng/", env!("CARGO_PKG_VERSION")));
        }
        for (name, value) in &spec.headers {
            header(name, value);
        }
        let wants_length =
            !spec.body.is_empty() || matches!(spec.method.as_str(), "POST" | "PUT" | "PATCH");
        if wants_length && !spec.has_header("content-length") {
            header("Content-Length", &spec.body.len().to_string());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&spec.body);
        Request {
            h1: Bytes::from(out),
            spec: spec.clone(),
            head: spec.method == http::Method::HEAD,
        }
    }
}
