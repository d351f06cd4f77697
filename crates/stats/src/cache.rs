//! What responses of static assets say about caching (incident I8).

use serde::{Deserialize, Serialize};

/// A `max-age` of at least this many seconds counts as long-lived.
pub const LONG_MAX_AGE_S: u64 = 86_400;

/// What one response said about caching.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheObs {
    /// `Cache-Control`, classified.
    pub policy: Policy,
    /// `X-Cache` said HIT (`Some(true)`) or MISS (`Some(false)`).
    pub hit: Option<bool>,
    /// An `Age` header: a cache served it.
    pub age: bool,
}

/// A `Cache-Control` header, classified.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Policy {
    /// No `Cache-Control` at all.
    #[default]
    Missing,
    /// `no-store`, `no-cache`, `private` or `max-age=0`: not cached for
    /// other users.
    Uncacheable,
    /// Cached for this many seconds.
    MaxAge(u64),
}

impl CacheObs {
    /// Reads the caching headers of a response.
    pub fn of<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> CacheObs {
        let mut obs = CacheObs::default();
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("cache-control") {
                obs.policy = classify(value);
            } else if name.eq_ignore_ascii_case("age") {
                obs.age = true;
            } else if name.eq_ignore_ascii_case("x-cache") {
                let v = value.to_ascii_uppercase();
                obs.hit = if v.contains("HIT") {
                    Some(true)
                } else if v.contains("MISS") {
                    Some(false)
                } else {
                    None
                };
            }
        }
        obs
    }
}

fn classify(value: &str) -> Policy {
    let mut max_age = None;
    for directive in value.split(',') {
        let d = directive.trim().to_ascii_lowercase();
        if matches!(d.as_str(), "no-store" | "no-cache" | "private") {
            return Policy::Uncacheable;
        }
        // s-maxage governs shared caches (CDNs); prefer it when given.
        if let Some(v) = d.strip_prefix("s-maxage=") {
            max_age = v.trim_matches('"').parse().ok().or(max_age);
        } else if let Some(v) = d.strip_prefix("max-age=") {
            if max_age.is_none() {
                max_age = v.trim_matches('"').parse().ok();
            }
        }
    }
    match max_age {
        Some(0) => Policy::Uncacheable,
        Some(s) => Policy::MaxAge(s),
        None => Policy::Missing,
    }
}

/// An endpoint's caching, over its successful responses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Responses looked at.
    pub responses: u64,
    /// Without `Cache-Control`.
    pub missing: u64,
    /// `no-store`, `no-cache`, `private` or `max-age=0`.
    pub uncacheable: u64,
    /// A `max-age` under a day.
    pub short: u64,
    /// A `max-age` of a day or more.
    pub long: u64,
    /// The smallest `max-age` seen, in seconds.
    pub min_max_age_s: Option<u64>,
    /// `X-Cache: HIT`.
    pub hits: u64,
    /// `X-Cache: MISS`.
    pub misses: u64,
    /// With an `Age` header.
    pub with_age: u64,
}

impl CacheStats {
    /// Adds one response.
    pub fn add(&mut self, o: &CacheObs) {
        self.responses += 1;
        match o.policy {
            Policy::Missing => self.missing += 1,
            Policy::Uncacheable => self.uncacheable += 1,
            Policy::MaxAge(s) => {
                if s >= LONG_MAX_AGE_S {
                    self.long += 1;
                } else {
                    self.short += 1;
                }
                self.min_max_age_s = Some(self.min_max_age_s.map_or(s, |m| m.min(s)));
            }
        }
        match o.hit {
            Some(true) => self.hits += 1,
            Some(false) => self.misses += 1,
            None => {}
        }
        self.with_age += u64::from(o.age);
    }

    /// Adds another endpoint part's counts.
    pub fn merge(&mut self, other: &CacheStats) {
        self.responses += other.responses;
        self.missing += other.missing;
        self.uncacheable += other.uncacheable;
        self.short += other.short;
        self.long += other.long;
        self.min_max_age_s = match (self.min_max_age_s, other.min_max_age_s) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.hits += other.hits;
        self.misses += other.misses;
        self.with_age += other.with_age;
    }
}
