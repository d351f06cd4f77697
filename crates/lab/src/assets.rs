//! Static assets behind an edge cache (incident I8).
//!
//! The lab plays both the CDN and the origin. The edge keeps an asset as
//! long as its `Cache-Control` lifetime allows and answers with `X-Cache:
//! HIT` and `Age`; otherwise it fetches it from the origin, which costs a
//! round trip (`ORIGIN_RTT`, the distance between an edge and an origin)
//! plus rendering the asset, and answers `X-Cache: MISS`. Assets normally
//! carry a one-year lifetime; `--short-cache` gives the stylesheet
//! `no-cache` and the others five seconds, so under load nearly every
//! stylesheet request pays the trip to the origin.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// What a fetch from the origin costs in waiting, on top of rendering.
pub const ORIGIN_RTT: Duration = Duration::from_millis(20);

/// An asset the site serves under `/static/`.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    render: fn() -> String,
}

const ASSETS: [Asset; 4] = [
    Asset {
        name: "app.css",
        content_type: "text/css",
        render: css,
    },
    Asset {
        name: "app.js",
        content_type: "application/javascript",
        render: js,
    },
    Asset {
        name: "logo.svg",
        content_type: "image/svg+xml",
        render: logo,
    },
    Asset {
        name: "font.woff2",
        content_type: "font/woff2",
        render: font,
    },
];

fn css() -> String {
    let mut out = String::from(
        "/* Fundfill */\nbody { font-family: sans-serif; margin: 0 auto; max-width: 48rem; }\n",
    );
    for i in 0..200 {
        out.push_str(&format!(
            ".fund-{i} {{ border-left: {}px solid #3a7; padding: 0.{}rem; }}\n",
            i % 7 + 1,
            i % 9 + 1
        ));
    }
    out
}

fn js() -> String {
    "document.addEventListener('DOMContentLoaded', () => { document.body.dataset.ready = '1'; });\n"
        .repeat(20)
}

fn logo() -> String {
    r##"<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle cx="32" cy="32" r="30" fill="#3a7"/></svg>"##.to_string()
}

fn font() -> String {
    // Not a real font; bytes of a plausible size.
    "wOF2".repeat(2048)
}

/// An asset response.
pub struct Served {
    /// The body.
    pub body: Bytes,
    /// Its media type.
    pub content_type: &'static str,
    /// `Cache-Control`.
    pub cache_control: &'static str,
    /// Whether the edge had it.
    pub hit: bool,
    /// Seconds since the edge fetched it.
    pub age: u64,
}

/// The edge cache.
pub struct Edge {
    short: bool,
    cache: Mutex<HashMap<&'static str, (Bytes, Instant)>>,
}

const LONG: (&str, Duration) = (
    "public, max-age=31536000, immutable",
    Duration::from_secs(31_536_000),
);

impl Edge {
    /// An empty edge cache; `short` is `--short-cache`.
    pub fn new(short: bool) -> Edge {
        Edge {
            short,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn policy(&self, name: &str) -> (&'static str, Duration) {
        match (self.short, name) {
            (false, _) => LONG,
            (true, "app.css") => ("no-cache", Duration::ZERO),
            (true, _) => ("public, max-age=5", Duration::from_secs(5)),
        }
    }

    /// Serves `/static/{name}`, or `None` for an unknown asset.
    pub async fn get(&self, name: &str) -> Option<Served> {
        let asset = ASSETS.iter().find(|a| a.name == name)?;
        let (cache_control, ttl) = self.policy(asset.name);
        let now = Instant::now();
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(asset.name)
            .filter(|(_, at)| now.duration_since(*at) < ttl)
            .cloned();
        if let Some((body, at)) = cached {
            return Some(Served {
                body,
                content_type: asset.content_type,
                cache_control,
                hit: true,
                age: now.duration_since(at).as_secs(),
            });
        }
        tokio::time::sleep(ORIGIN_RTT).await;
        let body = Bytes::from((asset.render)());
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(asset.name, (body.clone(), Instant::now()));
        Some(Served {
            body,
            content_type: asset.content_type,
            cache_control,
            hit: false,
            age: 0,
        })
    }
}
