//! Redirects: where a `Location` leads, whether the scenario lets a
//! request go there, and how to get there.
//!
//! A redirect is followed only to the target's host (any port or scheme)
//! or a host in the scenario's `allowed_hosts`, whose addresses are
//! resolved once when the run starts; anything else is `blocked`. So a
//! redirect can never turn a test into load on a third party. Following
//! one is not on the hot path (each hop is a whole request), so hops
//! allocate freely.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::Method;
use plan::{Redirects, Target};
use rustls_pki_types::ServerName;
use url::Url;

use crate::error::EngineError;
use crate::net::{Dialer, TlsTarget};

/// Whether `status` is a redirect a client follows: 301, 302, 303, 307 or
/// 308 (300 and 304 are answers, not directions).
pub(crate) fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Where redirects may go, with the addresses of those hosts.
#[derive(Default)]
pub(crate) struct Reach {
    /// Most redirects followed per request (0: none).
    pub(crate) max: u32,
    /// Every host a redirect may reach (the targets' and the allowed
    /// ones), in lower case, with its address.
    hosts: Vec<(String, IpAddr)>,
    /// For https hops to another origin: the configuration, and whether
    /// sessions are resumed.
    tls: Option<(Arc<rustls::ClientConfig>, bool)>,
}

impl Reach {
    /// Resolves the hosts `redirects` allows besides `targets`, once for
    /// the run (to an address of the family of the users' `sources`, when
    /// they have any). A host that does not resolve stops the run from
    /// starting, as the target's would.
    pub(crate) fn new(
        redirects: &Redirects,
        targets: &[(&Target, IpAddr)],
        tls: &plan::TlsOptions,
        http2: bool,
        sources: &[IpAddr],
    ) -> Result<Reach, EngineError> {
        if redirects.max == 0 {
            return Ok(Reach::default());
        }
        let mut hosts: Vec<(String, IpAddr)> = targets
            .iter()
            .map(|(t, ip)| (t.host.to_ascii_lowercase(), *ip))
            .collect();
        for host in &redirects.allowed_hosts {
            let ip = crate::net::resolve(host, 0, sources)?.ip();
            hosts.push((host.to_ascii_lowercase(), ip));
        }
        let config = crate::net::tls_config(tls, http2).map_err(EngineError::Tls)?;
        Ok(Reach {
            max: redirects.max,
            hosts,
            tls: Some((config, tls.resumption)),
        })
    }

    /// How to connect to `url`'s origin, if its host may be reached.
    pub(crate) fn dialer(&self, url: &Url) -> Option<Dialer> {
        let host = bare_host(url)?;
        let (_, ip) = self
            .hosts
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))?;
        let port = url.port_or_known_default()?;
        let tls = match url.scheme() {
            "https" => {
                let (config, resume) = self.tls.as_ref()?;
                let name = ServerName::try_from(host.to_string()).ok()?;
                Some(TlsTarget::new(config, *resume, name))
            }
            _ => None,
        };
        Some(Dialer {
            addr: SocketAddr::new(*ip, port),
            tls,
        })
    }
}

/// A URL's host without IPv6 brackets.
pub(crate) fn bare_host(url: &Url) -> Option<&str> {
    url.host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
}

/// Where a redirect leads, and with which request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hop {
    /// The next URL.
    pub(crate) url: Url,
    /// Its method: GET after a 303, and after a 301 or 302 of a POST (as
    /// browsers do); the same method after a 307 or 308.
    pub(crate) method: Method,
    /// Whether the request body is sent again (307 and 308).
    pub(crate) keep_body: bool,
}

/// The hop a `status` redirect with `location` makes from `from`, the URL
/// of a `method` request; `None` when the location is not a URL.
pub(crate) fn next(from: &Url, status: u16, method: &Method, location: &str) -> Option<Hop> {
    let mut url = from.join(location.trim()).ok()?;
    url.set_fragment(None);
    let (method, keep_body) = match status {
        307 | 308 => (method.clone(), true),
        303 if *method != Method::HEAD => (Method::GET, false),
        301 | 302 if *method == Method::POST => (Method::GET, false),
        _ => (method.clone(), false),
    };
    Some(Hop {
        url,
        method,
        keep_body,
    })
}

/// Whether `url` is on `target`'s origin (scheme, host and port), so the
/// session's own connection can carry it.
pub(crate) fn same_origin(url: &Url, target: &Target) -> bool {
    url.scheme() == target.scheme.as_str()
        && bare_host(url).is_some_and(|h| h.eq_ignore_ascii_case(&target.host))
        && url.port_or_known_default() == Some(target.port)
}

/// `url`'s origin for messages: scheme, host and port, nothing a path or
/// query might hold.
pub(crate) fn shown_origin(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}
