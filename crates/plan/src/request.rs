//! The request to send: target, method, headers, body, protocol.

use bytes::Bytes;
use http::{Method, Uri};

use crate::PlanError;

/// Headers whose values are secrets wherever they appear: no output shows
/// them, and a redirect to another host does not carry them.
pub const SENSITIVE_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Whether `name` (any case) is one of [`SENSITIVE_HEADERS`].
pub fn is_sensitive_header(name: &str) -> bool {
    SENSITIVE_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name.trim()))
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain TCP.
    Http,
    /// TLS (rustls).
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`, as in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Which HTTP version to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1 with keep-alive.
    Http1,
    /// HTTP/2: prior knowledge (h2c) on plain TCP, ALPN `h2` over TLS.
    Http2,
}

/// TLS settings. Verification is on unless `insecure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Accept any certificate (`--insecure`).
    pub insecure: bool,
    /// Extra trusted roots, PEM (`--cacert`), added to the built-in ones.
    pub extra_roots_pem: Option<Vec<u8>>,
    /// Resume TLS sessions with tickets, each user its own (on unless
    /// `--tls-resumption off`).
    pub resumption: bool,
}

impl Default for TlsOptions {
    fn default() -> TlsOptions {
        TlsOptions {
            insecure: false,
            extra_roots_pem: None,
            resumption: true,
        }
    }
}

/// One request, fully resolved.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// The endpoint's name in every report: method and path, e.g. `GET /`.
    pub name: String,
    /// HTTP method.
    pub method: Method,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host name or address, as written in the URL (no brackets).
    pub host: String,
    /// Port (the scheme's default when the URL has none).
    pub port: u16,
    /// The `Host` header value (`host[:port]` as in the URL).
    pub authority: String,
    /// Path and query, at least `/`.
    pub path_and_query: String,
    /// Extra headers, in order, as given.
    pub headers: Vec<(String, String)>,
    /// The body (empty for none).
    pub body: Bytes,
    /// Protocol version.
    pub version: HttpVersion,
    /// TLS settings, used when the scheme is https.
    pub tls: TlsOptions,
}

impl RequestSpec {
    /// A GET of `url` with no extra headers, over HTTP/1.1.
    pub fn get(url: &str) -> Result<RequestSpec, PlanError> {
        let err = |why: &str| PlanError::Url {
            input: url.to_string(),
            why: why.to_string(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| err(&e.to_string()))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some(_) => return Err(err("only http:// and https:// are supported")),
            None => return Err(err("it needs a scheme, e.g. http://127.0.0.1:8080/")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| err("it needs a host, e.g. http://127.0.0.1:8080/"))?;
        if authority.as_str().contains('@') {
            return Err(err(
                "user:password@ in URLs is not supported; send -H 'Authorization: ...'",
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        });
        let path_and_query = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/")
            .to_string();
        let path = path_and_query.split('?').next().unwrap_or("/");
        Ok(RequestSpec {
            name: format!("GET {path}"),
            method: Method::GET,
            scheme,
            host: host.to_string(),
            port,
            authority: authority.as_str().to_string(),
            path_and_query,
            headers: Vec::new(),
            body: Bytes::new(),
            version: HttpVersion::Http1,
            tls: TlsOptions::default(),
        })
    }

    /// Sets the method (and the endpoint name that shows it).
    pub fn with_method(mut self, method: &str) -> Result<RequestSpec, PlanError> {
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| PlanError::Invalid(format!("invalid HTTP method {method:?}")))?;
        let path = self.path_and_query.split('?').next().unwrap_or("/");
        self.name = format!("{method} {path}");
        self.method = method;
        Ok(self)
    }

    /// Adds a header written as `Name: value`.
    pub fn with_header_line(mut self, line: &str) -> Result<RequestSpec, PlanError> {
        let err = |why| PlanError::Header {
            input: line.to_string(),
            why,
        };
        let (name, value) = line.split_once(':').ok_or_else(|| err("there is no ':'"))?;
        let name = name.trim();
        let value = value.trim();
        http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| err("the name is not a valid header name"))?;
        http::HeaderValue::from_str(value)
            .map_err(|_| err("the value has characters a header cannot hold"))?;
        self.headers.push((name.to_string(), value.to_string()));
        Ok(self)
    }

    /// Whether a header of this name (any case) was given.
    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}
