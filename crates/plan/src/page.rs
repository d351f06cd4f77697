//! Page loads: a document and its assets, fetched the way a browser does
//! (the document first, then the assets several at a time), reported as
//! one endpoint besides each request's own.

use std::time::Duration;

/// Most connections a page uses per host unless it says otherwise: the
/// browsers' (and Gatling's) default.
pub const DEFAULT_PAGE_CONNECTIONS: u32 = 6;

/// Most assets taken from one document (`assets: from_html`): a hostile
/// page cannot make a session fetch without end.
pub const MAX_HTML_ASSETS: usize = 100;

/// A page load in a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The page's own endpoint: its latency is from the page's intended
    /// start to the end of its last request.
    pub endpoint: usize,
    /// The document's step (in [`crate::Flow::steps`]), fetched before
    /// the assets; `None` when every request goes at once as written.
    pub document: Option<usize>,
    /// The listed assets' steps.
    pub assets: Vec<usize>,
    /// Also fetch the stylesheets, scripts, images and icons the document
    /// names, on the target's host or an allowed one.
    pub from_html: bool,
    /// Most requests in flight at once (connections per host).
    pub connections: u32,
    /// Honour `Cache-Control` within the session: an asset fetched before
    /// and still fresh is not fetched again.
    pub cache: bool,
}

/// The assets an HTML document names, in document order, at most `max`:
/// stylesheets (`<link rel=stylesheet href>`), icons and preloads
/// (`<link rel=icon|preload href>`), scripts (`<script src>`) and images
/// (`<img src>`), each once, as written (relative or absolute).
pub fn html_assets(html: &str, max: usize) -> Vec<String> {
    use std::sync::OnceLock;
    static SELECTOR: OnceLock<Option<scraper::Selector>> = OnceLock::new();
    let Some(selector) =
        SELECTOR.get_or_init(|| scraper::Selector::parse("link[href], script[src], img[src]").ok())
    else {
        return Vec::new();
    };
    let doc = scraper::Html::parse_document(html);
    let mut out: Vec<String> = Vec::new();
    for el in doc.select(selector) {
        let e = el.value();
        let url = match e.name() {
            "link" => {
                let rel = e.attr("rel").unwrap_or_default().to_ascii_lowercase();
                let wanted = rel
                    .split_ascii_whitespace()
                    .any(|r| matches!(r, "stylesheet" | "icon" | "preload" | "modulepreload"));
                if !wanted {
                    continue;
                }
                e.attr("href")
            }
            _ => e.attr("src"),
        };
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            continue;
        };
        if url.starts_with("data:") || url.starts_with('#') {
            continue;
        }
        if !out.iter().any(|o| o == url) {
            out.push(url.to_string());
            if out.len() >= max {
                break;
            }
        }
    }
    out
}

/// How long a response may be reused from the browser's cache, by its
/// `Cache-Control`: its `max-age`, unless it says `no-store` or
/// `no-cache`; `None` when it may not be reused.
pub fn fresh_for(cache_control: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in cache_control.split(',') {
        let d = directive.trim().to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            return None;
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            max_age = v.trim_matches('"').parse::<u64>().ok();
        }
    }
    max_age.filter(|s| *s > 0).map(Duration::from_secs)
}
