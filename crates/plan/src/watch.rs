//! What throng reads of the target beside the load: its metrics
//! endpoints. (Its processes are found by the binary, which reads
//! `/proc`.)

use std::time::Duration;

use crate::{PlanError, RequestSpec};

/// How often a metrics endpoint is read unless told otherwise.
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest interval allowed: reading faster only loads the target.
pub const MIN_SCRAPE_INTERVAL: Duration = Duration::from_millis(100);

/// The largest scrape read unless told otherwise; a longer one fails as
/// `too_large` and is not parsed.
pub const DEFAULT_SCRAPE_MAX_SIZE: u64 = 4 << 20;

/// A metrics endpoint read during the run (`--scrape`, `scrape:`).
#[derive(Debug, Clone)]
pub struct Scrape {
    /// The GET that reads it (TLS options as the run's).
    pub request: RequestSpec,
    /// How often.
    pub interval: Duration,
    /// How long one read may take (at most the interval); a read that
    /// takes longer is abandoned and counted as `timeout`.
    pub timeout: Duration,
    /// The largest text read.
    pub max_size: u64,
    /// Only metrics whose name this matches are kept (searched, not
    /// anchored: `db_` keeps `app_db_pool_in_use`).
    pub matcher: Option<regex::Regex>,
}

impl Scrape {
    /// A scrape of `url`; a path (`/metrics`) is on `target`, the run's
    /// base URL. The interval and timeout are checked here.
    pub fn new(
        url: &str,
        target: Option<&str>,
        interval: Duration,
        timeout: Option<Duration>,
    ) -> Result<Scrape, PlanError> {
        let absolute = match (url.starts_with('/'), target) {
            (true, Some(t)) => format!("{}{url}", t.trim_end_matches('/')),
            (true, None) => {
                return Err(PlanError::Invalid(format!(
                    "scrape {url:?} is a path, and there is no target to put it on: give a whole URL, e.g. http://127.0.0.1:9100{url}"
                )))
            }
            (false, _) => url.to_string(),
        };
        let request = RequestSpec::get(&absolute)?;
        if interval < MIN_SCRAPE_INTERVAL {
            return Err(PlanError::Invalid(format!(
                "a scrape interval of {interval:?} is too short: at least 100ms (1s is usual)"
            )));
        }
        let timeout = timeout.unwrap_or(interval);
        if timeout > interval || timeout.is_zero() {
            return Err(PlanError::Invalid(format!(
                "a scrape timeout of {timeout:?} must be above zero and at most the interval ({interval:?}), so that reads never pile up"
            )));
        }
        Ok(Scrape {
            request,
            interval,
            timeout,
            max_size: DEFAULT_SCRAPE_MAX_SIZE,
            matcher: None,
        })
    }

    /// Keeps only metrics whose name `pattern` matches.
    pub fn matching(mut self, pattern: &str) -> Result<Scrape, PlanError> {
        let re = regex::Regex::new(pattern).map_err(|e| {
            PlanError::Invalid(format!("scrape match {pattern:?} is not a regex: {e}"))
        })?;
        self.matcher = Some(re);
        Ok(self)
    }

    /// The URL, for people.
    pub fn url(&self) -> String {
        let r = &self.request;
        let scheme = match r.scheme {
            crate::Scheme::Http => "http",
            crate::Scheme::Https => "https",
        };
        format!("{scheme}://{}{}", r.authority, r.path_and_query)
    }

    /// Whether a metric named `name` is kept.
    pub fn keeps(&self, name: &str) -> bool {
        self.matcher.as_ref().is_none_or(|m| m.is_match(name))
    }
}
