//! A virtual user's cookie jar.
//!
//! One target per run, so cookies are kept by name only: domain and path
//! attributes are not needed to decide where to send them. A cookie is
//! removed by `Max-Age=0` (or less) or an empty value, as browsers do for
//! logouts. The `Cookie` header is rebuilt only when the jar changes.

/// Cookies by name, in the order first set.
#[derive(Debug, Default, Clone)]
pub(crate) struct Jar {
    cookies: Vec<(String, String)>,
    header: String,
}

impl Jar {
    /// Applies one `Set-Cookie` header value.
    pub(crate) fn set(&mut self, set_cookie: &str) {
        let mut attrs = set_cookie.split(';');
        let Some((name, value)) = attrs.next().and_then(|nv| nv.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim(), value.trim().trim_matches('"'));
        if name.is_empty() {
            return;
        }
        let expired = attrs.any(|a| {
            a.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("max-age")
                    && v.trim().parse::<i64>().is_ok_and(|n| n <= 0)
            })
        });
        let existing = self.cookies.iter().position(|(n, _)| n == name);
        match (existing, expired || value.is_empty()) {
            (Some(i), true) => {
                self.cookies.remove(i);
            }
            (Some(i), false) => self.cookies[i].1 = value.to_string(),
            (None, true) => return,
            (None, false) => self.cookies.push((name.to_string(), value.to_string())),
        }
        self.header = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
    }

    /// The `Cookie` header value, or `None` when the jar is empty.
    pub(crate) fn header(&self) -> Option<&str> {
        (!self.header.is_empty()).then_some(self.header.as_str())
    }

    /// Empties the jar (a new visitor).
    pub(crate) fn clear(&mut self) {
        self.cookies.clear();
        self.header.clear();
    }
}
