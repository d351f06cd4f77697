//! `throng import har`: a recorded browser session (HAR 1.2) as a scenario
//! file to edit.
//!
//! One step per request of the recording's first host, in order; think
//! times from the recorded gaps; static assets kept or dropped. Values a
//! response gave that a later request sends back (a token in a JSON body,
//! an id, a CSRF field in a form, a `Location`) become an `extract` on the
//! first step whose response had them and a `{{ variable }}` where they are
//! sent, each marked with a comment saying what was guessed. Cookies are
//! left to the cookie jar. A redirect the browser followed on the same
//! origin is one step (throng follows redirects): its hops are merged into
//! the request that caused them. A revalidation (a conditional request the
//! server answered 304) is sent without its conditions, so the replayed
//! request gets the page and a `2xx` check holds. The output is YAML
//! written by hand (every string as a JSON string, which YAML reads as
//! is), so comments can sit beside the rules they explain.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

use serde_json::Value;

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct HarOptions {
    /// Leave out static assets (stylesheets, scripts, images, fonts).
    pub no_assets: bool,
    /// The scenario's name (default: the recording's page title or "recorded").
    pub name: Option<String>,
}

/// Why a HAR could not be imported.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct HarError(String);

/// One request of the recording, as the scenario will send it.
#[derive(Debug)]
struct Entry {
    method: String,
    /// Path and query.
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    status: u16,
    /// Milliseconds since 1970 at the start, and the time it took.
    started_ms: f64,
    took_ms: f64,
    asset: bool,
    /// Values its response offered, with the rule that extracts each.
    offers: Vec<(String, Rule)>,
    /// Where a redirect response sends the browser on the same origin
    /// (path and query), if it is one.
    redirect: Option<String>,
    /// A recording's exchange numbers merged into this request (its own,
    /// then its redirect hops'); empty for a HAR's.
    seqs: Vec<u64>,
}

/// How a value is taken from a response.
#[derive(Debug, Clone, PartialEq)]
enum Rule {
    Json(String),
    Header(String),
    /// An HTML form field: a CSS selector and the attribute `value`.
    Input(String),
    /// The last segment of a link under this parent path, any of them.
    Link(String),
}

impl Rule {
    fn yaml(&self) -> String {
        let q = quote;
        match self {
            Rule::Json(p) => format!("{{ json: {} }}", q(p)),
            Rule::Header(h) => format!("{{ header: {} }}", q(h)),
            Rule::Input(name) => format!(
                "{{ css: {}, attr: value }}",
                q(&format!("input[name=\"{name}\"]"))
            ),
            Rule::Link(parent) => format!(
                "{{ regex: {}, pick: random }}",
                q(&format!(
                    "href=[\"']{}/([^\"'?#/]+)[\"'?#]",
                    regex::escape(parent)
                ))
            ),
        }
    }

    fn describe(&self) -> String {
        match self {
            Rule::Json(p) => format!("{p} of the JSON body"),
            Rule::Header(h) => format!("the {h} header"),
            Rule::Input(name) => format!("the form field {name:?}"),
            Rule::Link(parent) => {
                format!("a link under {parent}/ (any: the recording followed one)")
            }
        }
    }
}

/// Headers not carried into the scenario: the cookie jar, the connection
/// and the HTTP/2 pseudo-headers are throng's business; so are a
/// browser's cache conditions, which would turn the replayed page into a
/// 304.
const DROPPED_HEADERS: [&str; 13] = [
    "cookie",
    "host",
    "content-length",
    "connection",
    "accept-encoding",
    "user-agent",
    "te",
    "upgrade-insecure-requests",
    "priority",
    "pragma",
    "cache-control",
    "if-none-match",
    "if-modified-since",
];

/// The shortest value worth correlating: shorter ones ("1", "ok") appear
/// everywhere by chance.
const MIN_VALUE: usize = 4;

/// The scenario file of a HAR recording.
pub fn import_har(text: &str, opts: &HarOptions) -> Result<String, HarError> {
    // The HAR spec: readers ignore a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let har: Value =
        serde_json::from_str(text).map_err(|e| HarError(format!("not a HAR file: {e}")))?;
    let entries = har
        .pointer("/log/entries")
        .and_then(Value::as_array)
        .ok_or_else(|| HarError("not a HAR file: it has no log.entries".into()))?;
    let mut parsed = Vec::new();
    let mut origin: Option<String> = None;
    let mut other_hosts: BTreeMap<String, usize> = BTreeMap::new();
    let mut user_agent = None;
    for (i, e) in entries.iter().enumerate() {
        let url = e
            .pointer("/request/url")
            .and_then(Value::as_str)
            .ok_or_else(|| HarError(format!("entry {}: no request.url", i + 1)))?;
        let (this_origin, path) = split_url(url)
            .ok_or_else(|| HarError(format!("entry {}: {url:?} is not an http(s) URL", i + 1)))?;
        let origin = origin.get_or_insert_with(|| this_origin.clone());
        if *origin != this_origin {
            *other_hosts.entry(this_origin).or_insert(0) += 1;
            continue;
        }
        let headers = pairs(e.pointer("/request/headers"));
        if user_agent.is_none() {
            user_agent = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("user-agent"))
                .map(|(_, v)| v.clone());
        }
        let mut entry = entry(e, path, headers);
        entry.redirect = redirect_on(e, origin);
        parsed.push(entry);
    }
    let Some(origin) = origin else {
        return Err(HarError("the recording has no requests".into()));
    };
    let (mut parsed, hops) = merge_redirects(parsed);
    let assets = parsed.iter().filter(|e| e.asset).count();
    if opts.no_assets {
        parsed.retain(|e| !e.asset);
    }
    if parsed.is_empty() {
        return Err(HarError(
            "every request of the recording is a static asset; import without --no-assets".into(),
        ));
    }
    let name = opts.name.clone().unwrap_or_else(|| {
        har.pointer("/log/pages/0/title")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .unwrap_or("recorded")
            .to_string()
    });
    Ok(write(
        parsed,
        &Context {
            origin,
            name,
            user_agent,
            other_hosts,
            assets,
            no_assets: opts.no_assets,
            hops,
        },
    ))
}

/// Where a redirect response sends the browser, as a path and query, when
/// it stays on `origin`: the `Location` header (or HAR's `redirectURL`),
/// absolute or from the root.
fn redirect_on(e: &Value, origin: &str) -> Option<String> {
    let status = e.pointer("/response/status").and_then(Value::as_u64)?;
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = pairs(e.pointer("/response/headers"))
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("location"))
        .map(|(_, v)| v)
        .or_else(|| {
            e.pointer("/response/redirectURL")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
                .map(str::to_string)
        })?;
    if location.starts_with('/') && !location.starts_with("//") {
        return Some(location);
    }
    let (to, path) = split_url(&location)?;
    (to == origin).then_some(path)
}

/// The recording's redirect chains as single requests: a request whose
/// response redirected to the next request's path (a GET, or the same
/// method after a 307 or 308) takes that request's response, its offers
/// and its time, as throng's request will when it follows the redirect.
/// Returns the entries and the hops merged.
fn merge_redirects(entries: Vec<Entry>) -> (Vec<Entry>, usize) {
    let mut out: Vec<Entry> = Vec::with_capacity(entries.len());
    let mut hops = 0;
    for e in entries {
        if let Some(prev) = out.last_mut() {
            let same_method = matches!(prev.status, 307 | 308);
            let follows = prev.redirect.as_deref() == Some(e.path.as_str())
                && if same_method {
                    e.method == prev.method
                } else {
                    e.method == "GET"
                };
            if follows {
                prev.offers
                    .retain(|(_, rule)| !matches!(rule, Rule::Header(h) if h.eq_ignore_ascii_case("location")));
                prev.offers.extend(e.offers);
                prev.status = e.status;
                prev.took_ms = (e.started_ms + e.took_ms - prev.started_ms).max(prev.took_ms);
                prev.redirect = e.redirect;
                prev.seqs.extend(e.seqs);
                hops += 1;
                continue;
            }
        }
        out.push(e);
    }
    (out, hops)
}

/// One recorded request to the recording's origin, with what its
/// response offers later requests.
fn entry(e: &Value, path: String, headers: Vec<(String, String)>) -> Entry {
    let mime = e
        .pointer("/response/content/mimeType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let asset = plan::looks_like_asset(&path)
        || ["text/css", "javascript", "image/", "font/"]
            .iter()
            .any(|m| mime.contains(m));
    Entry {
        method: e
            .pointer("/request/method")
            .and_then(Value::as_str)
            .unwrap_or("GET")
            .to_ascii_uppercase(),
        path,
        headers: headers
            .into_iter()
            .filter(|(n, _)| {
                !n.starts_with(':') && !DROPPED_HEADERS.contains(&n.to_ascii_lowercase().as_str())
            })
            .collect(),
        body: e
            .pointer("/request/postData/text")
            .and_then(Value::as_str)
            .filter(|b| !b.is_empty())
            .map(str::to_string),
        status: e
            .pointer("/response/status")
            .and_then(Value::as_u64)
            .unwrap_or(0) as u16,
        started_ms: e
            .get("startedDateTime")
            .and_then(Value::as_str)
            .and_then(|t| jiff::Timestamp::from_str(t).ok())
            .map_or(0.0, |t| t.as_millisecond() as f64),
        took_ms: e
            .get("time")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
            .max(0.0),
        asset,
        offers: offers(e, &mime),
        redirect: None,
        seqs: Vec::new(),
    }
}

struct Context {
    origin: String,
    name: String,
    user_agent: Option<String>,
    other_hosts: BTreeMap<String, usize>,
    assets: usize,
    no_assets: bool,
    /// Redirect hops merged into the requests that caused them.
    hops: usize,
}

/// `https://host:port/path?q` as (`https://host:port`, `/path?q`).
fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let scheme_len = url.len() - rest.len();
    let path_at = rest.find('/').unwrap_or(rest.len());
    let path = rest[path_at..].split('#').next().unwrap_or_default();
    Some((
        url[..scheme_len + path_at].to_string(),
        if path.is_empty() {
            "/".into()
        } else {
            path.to_string()
        },
    ))
}

/// `[{name, value}]` as pairs.
fn pairs(list: Option<&Value>) -> Vec<(String, String)> {
    list.and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|h| {
                    Some((
                        h.get("name")?.as_str()?.to_string(),
                        h.get("value")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The values a response offers a later request: JSON leaves, a few
/// headers, hidden form fields.
fn offers(entry: &Value, mime: &str) -> Vec<(String, Rule)> {
    let mut out = Vec::new();
    for (name, value) in pairs(entry.pointer("/response/headers")) {
        let lower = name.to_ascii_lowercase();
        if lower == "location" || lower.contains("token") || lower.contains("csrf") {
            out.push((value, Rule::Header(name)));
        }
    }
    let Some(body) = entry
        .pointer("/response/content/text")
        .and_then(Value::as_str)
    else {
        return out;
    };
    if mime.contains("json") {
        if let Ok(json) = serde_json::from_str::<Value>(body) {
            json_leaves(&json, "$", &mut out);
        }
    } else if mime.contains("html") {
        // Hidden inputs: <input type="hidden" name="csrf" value="...">.
        let input = regex::Regex::new(
            r#"<input[^>]*\bname\s*=\s*["']([^"']+)["'][^>]*\bvalue\s*=\s*["']([^"']*)["']"#,
        );
        if let Ok(input) = input {
            for c in input.captures_iter(body) {
                out.push((c[2].to_string(), Rule::Input(c[1].to_string())));
            }
        }
    }
    out
}

fn json_leaves(v: &Value, path: &str, out: &mut Vec<(String, Rule)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let simple = k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                let p = if simple {
                    format!("{path}.{k}")
                } else {
                    format!("{path}[{}]", quote(k).replace('"', "'"))
                };
                json_leaves(v, &p, out);
            }
        }
        Value::Array(list) => {
            for (i, v) in list.iter().enumerate().take(20) {
                json_leaves(v, &format!("{path}[{i}]"), out);
            }
        }
        Value::String(s) => out.push((s.clone(), Rule::Json(path.to_string()))),
        Value::Number(n) => out.push((n.to_string(), Rule::Json(path.to_string()))),
        _ => {}
    }
}

/// A string as a YAML scalar: JSON's double-quoted form, which YAML reads
/// as is.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A variable name for a rule: the last name in its path, made safe.
fn var_name(rule: &Rule, taken: &BTreeMap<String, String>) -> String {
    let base = match rule {
        Rule::Json(p) => p
            .rsplit(['.', '['])
            .find(|s| s.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
            .unwrap_or("value")
            .to_string(),
        Rule::Header(h) | Rule::Input(h) => h.clone(),
        Rule::Link(parent) => parent
            .rsplit('/')
            .find(|s| !s.is_empty())
            .unwrap_or("link")
            .trim_end_matches('s')
            .to_string(),
    };
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let base = if base.is_empty() {
        "value".to_string()
    } else {
        base
    };
    let mut name = base.clone();
    let mut n = 2;
    while taken.values().any(|v| *v == name) {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}

/// A value replaced by a variable in the text of a later request.
struct Correlation {
    /// The step whose response offered it.
    from: usize,
    /// The value as the requests wrote it.
    value: String,
    var: String,
    rule: Rule,
    /// The requests wrote it percent- or form-encoded (the recorder found
    /// it so): outside a path, its template escapes it the same way.
    encoded: bool,
}

/// Finds the values later requests send back. A value counts when it is
/// long enough to be no accident and no earlier request already sent it
/// (then it came from elsewhere: the page's URL, a constant).
fn correlate(entries: &[Entry]) -> Vec<Correlation> {
    let mut found: Vec<Correlation> = Vec::new();
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for (j, e) in entries.iter().enumerate() {
        let sent = request_text(e);
        for (i, earlier) in entries[..j].iter().enumerate() {
            for (value, rule) in &earlier.offers {
                if value.len() < MIN_VALUE
                    || !sent.contains(value.as_str())
                    || found.iter().any(|c| c.value == *value)
                    || entries[..=i]
                        .iter()
                        .any(|x| request_text(x).contains(value.as_str()))
                {
                    continue;
                }
                let var = var_name(rule, &vars);
                vars.insert(value.clone(), var.clone());
                found.push(Correlation {
                    from: i,
                    value: value.clone(),
                    var,
                    rule: rule.clone(),
                    encoded: false,
                });
            }
        }
    }
    // Longer values first, so that a value containing another is replaced whole.
    found.sort_by_key(|c| std::cmp::Reverse(c.value.len()));
    found
}

fn request_text(e: &Entry) -> String {
    let mut s = e.path.clone();
    for (n, v) in &e.headers {
        let _ = write!(s, "\n{n}: {v}");
    }
    if let Some(b) = &e.body {
        s.push('\n');
        s.push_str(b);
    }
    s
}

/// `text` with correlated values replaced by their variables (only those
/// extracted by an earlier step), and the variables used.
///
/// In a path, a template's value is percent-encoded already; elsewhere
/// (`raw`: a body, a header) it goes as it is, so a value that was
/// recorded escaped (`ab%2Bc` for `ab+c`, [`Correlation::encoded`]) is
/// written escaped the same way:
/// `{{ form(v) }}` when the text has a `+` (a form's space), else
/// `{{ url(v) }}`.
fn templated(
    text: &str,
    step: usize,
    correlations: &[Correlation],
    raw: bool,
) -> (String, Vec<usize>) {
    let mut out = text.to_string();
    let mut used = Vec::new();
    for (k, c) in correlations.iter().enumerate() {
        if c.from < step && out.contains(c.value.as_str()) {
            let template = match (raw && c.encoded, c.value.contains('+')) {
                (true, true) => format!("{{{{ form({}) }}}}", c.var),
                (true, false) => format!("{{{{ url({}) }}}}", c.var),
                (false, _) => format!("{{{{ {} }}}}", c.var),
            };
            out = out.replace(c.value.as_str(), &template);
            used.push(k);
        }
    }
    (out, used)
}

/// Whether `text` holds a `%XX` escape.
fn percent_encoded(text: &str) -> bool {
    text.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

/// One flow to write: its name, its requests, and the values that flow
/// between them.
struct Flow {
    name: String,
    entries: Vec<Entry>,
    correlations: Vec<Correlation>,
}

fn write(entries: Vec<Entry>, cx: &Context) -> String {
    let correlations = correlate(&entries);
    let header = format!(
        "# Imported by `throng import har`: {} requests to {}.\n",
        entries.len(),
        cx.origin
    );
    write_flows(
        &header,
        &[Flow {
            name: "recorded".into(),
            entries,
            correlations,
        }],
        cx,
    )
}

fn write_flows(header: &str, flows: &[Flow], cx: &Context) -> String {
    let mut y = String::from(header);
    if cx.no_assets && cx.assets > 0 {
        let _ = writeln!(y, "# {} static assets left out (--no-assets).", cx.assets);
    }
    if cx.hops > 0 {
        let _ = writeln!(
            y,
            "# {} redirect hop(s) merged into the request that caused them: throng follows redirects.",
            cx.hops
        );
    }
    for (host, n) in &cx.other_hosts {
        let _ = writeln!(
            y,
            "# {n} request(s) to {host} left out: a scenario has one target."
        );
    }
    let _ = writeln!(
        y,
        "# Think times are the recorded gaps. Rules marked \"guessed\" carry a value\n# from a response into a later request: check them before relying on them.\n# `throng validate FILE` shows what will run."
    );
    let _ = writeln!(y, "name: {}", quote(&cx.name));
    let _ = writeln!(y, "target: {}", quote(&cx.origin));
    if let Some(ua) = &cx.user_agent {
        let _ = writeln!(y, "defaults:\n  headers:\n    User-Agent: {}", quote(ua));
    }
    let _ = writeln!(y, "load:\n  rate: 1\n  duration: 1m\nflows:");
    for f in flows {
        let _ = writeln!(y, "  - name: {}\n    steps:", quote(&f.name));
        for index in 0..f.entries.len() {
            y.push_str(&write_step(&f.entries, index, &f.correlations));
        }
    }
    y
}

/// Step `index` of the recording, with the guessed rules that carry
/// values into it and out of its response.
fn write_step(entries: &[Entry], index: usize, correlations: &[Correlation]) -> String {
    let mut y = String::new();
    let e = &entries[index];
    // A path is a path: a recorded value that was the whole of it (a
    // `Location` sent back as is) stays as recorded.
    let (path, mut used) = match templated(&e.path, index, correlations, false) {
        (path, used) if path.starts_with('/') => (path, used),
        _ => (e.path.clone(), Vec::new()),
    };
    let mut secret_vars: Vec<usize> = Vec::new();
    let _ = writeln!(
        y,
        "      - {}: {}",
        e.method.to_ascii_lowercase(),
        quote(&path)
    );
    let _ = writeln!(
        y,
        "        name: {}",
        quote(&format!(
            "{} {}",
            e.method,
            e.path.split('?').next().unwrap_or_default()
        ))
    );
    write_headers(&mut y, e, index, correlations, &mut used, &mut secret_vars);
    if let Some(body) = &e.body {
        let (b, u) = templated(body, index, correlations, true);
        used.extend(u);
        let _ = writeln!(y, "        body: {}", quote(&b));
    }
    used.sort_unstable();
    used.dedup();
    for k in used {
        let c = &correlations[k];
        // A value sent as a credential is not shown.
        let recorded = if secret_vars.contains(&k) {
            "recorded value not shown: it is a credential".to_string()
        } else {
            format!("recorded {}", quote(&c.value))
        };
        let _ = writeln!(
            y,
            "        # guessed: {{{{ {} }}}} is {} of step {}'s response ({recorded})",
            c.var,
            c.rule.describe(),
            c.from + 1,
        );
    }
    let gap = entries
        .get(index + 1)
        .map_or(0.0, |next| next.started_ms - (e.started_ms + e.took_ms));
    if gap >= 50.0 {
        let _ = writeln!(y, "        think: {}ms", gap.round());
    }
    // A revalidated 304 becomes a 200 without the browser's cache
    // headers; an error the recording saw is not what to check for.
    let status = match e.status {
        200..=299 | 304 => Some("2xx".to_string()),
        300..=399 => Some(e.status.to_string()),
        _ => None,
    };
    if let Some(status) = status {
        let _ = writeln!(y, "        checks:\n          - status: {}", quote(&status));
    }
    let extracts: Vec<&Correlation> = correlations.iter().filter(|c| c.from == index).collect();
    if !extracts.is_empty() {
        let _ = writeln!(y, "        extract:");
        for c in extracts {
            let _ = writeln!(y, "          {}: {}   # guessed", c.var, c.rule.yaml());
        }
    }
    y
}

/// A step's headers; a credential the recording sent is not copied, it
/// comes from the run's environment. Notes the correlations each uses.
fn write_headers(
    y: &mut String,
    e: &Entry,
    index: usize,
    correlations: &[Correlation],
    used: &mut Vec<usize>,
    secret_vars: &mut Vec<usize>,
) {
    if !e.headers.is_empty() {
        let _ = writeln!(y, "        headers:");
        for (n, v) in &e.headers {
            let (v, u) = templated(v, index, correlations, true);
            let secret = plan::is_sensitive_header(n);
            if secret {
                secret_vars.extend(u.iter().copied());
            }
            used.extend(u);
            if secret && !v.contains("{{") {
                // A credential of the recording's is not copied into
                // a file that will be shared: it comes from the
                // environment of the run.
                let var = format!(
                    "HAR_{}",
                    n.to_ascii_uppercase()
                        .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
                );
                let _ = writeln!(
                    y,
                    "          {}: \"{{{{ env.{var} }}}}\"   # set {var}: the recorded value is not copied",
                    quote(n)
                );
            } else {
                let _ = writeln!(y, "          {}: {}", quote(n), quote(&v));
            }
        }
    }
}

/// A request of a recording (`throng record`), for [`import_recording`].
#[derive(Debug, Clone, Default)]
pub struct RecordedRequest {
    /// The exchange's number in the recording.
    pub seq: u64,
    /// The method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers as recorded (masked values as `__masked_N__`).
    pub headers: Vec<(String, String)>,
    /// The body, when it was text.
    pub body: Option<String>,
    /// The recorded status.
    pub status: u16,
    /// When it came, ms, and how long it took.
    pub started_ms: f64,
    /// See `started_ms`.
    pub took_ms: f64,
    /// The response's `Location`, if it had one.
    pub location: Option<String>,
    /// Values it sent back that an earlier response gave: the text as
    /// recorded, the exchange that gave it, and how.
    pub uses: Vec<(String, u64, RecordedRule)>,
}

/// How a recorded value is taken from a response (the recorder's rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedRule {
    /// A JSONPath of the body.
    Json(String),
    /// A header.
    Header(String),
    /// A form field's value.
    Input(String),
    /// The last segment of a link under this parent path.
    Link(String),
    /// The last segment of the `Location` (throng follows redirects
    /// itself: not carried).
    Location,
}

/// A session of a recording, to become one flow.
#[derive(Debug, Clone, Default)]
pub struct RecordedSession {
    /// The flow's name.
    pub name: String,
    /// Its requests in the order they came.
    pub requests: Vec<RecordedRequest>,
}

/// The scenario file of a recording's sessions (`throng import
/// recording`): one flow per session, as a HAR's (think times, redirects
/// merged, assets kept or left out), the values that flowed as the
/// recorder saw them (extracts and variables, marked "guessed"), and
/// each masked value read from the environment (`{{ env.THRONG_MASKED_N }}`).
/// `notes` are the file's first comment lines.
pub fn import_recording(
    origin: &str,
    sessions: Vec<RecordedSession>,
    opts: &HarOptions,
    notes: &[String],
) -> Result<String, HarError> {
    let mut flows = Vec::new();
    let mut assets = 0;
    let mut hops = 0;
    let mut user_agent = None;
    for session in sessions {
        let correlated: Vec<String> = session
            .requests
            .iter()
            .flat_map(|r| r.uses.iter().map(|u| u.0.clone()))
            .collect();
        let mut entries = Vec::new();
        for r in &session.requests {
            if user_agent.is_none() {
                user_agent = r
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("user-agent"))
                    .map(|(_, v)| v.clone());
            }
            let env = |text: &str| from_env(text, &correlated);
            let redirect = r.location.as_deref().and_then(|l| {
                if l.starts_with('/') {
                    Some(l.to_string())
                } else {
                    split_url(l).filter(|(o, _)| o == origin).map(|(_, p)| p)
                }
            });
            entries.push(Entry {
                method: r.method.to_ascii_uppercase(),
                path: env(&r.path),
                headers: r
                    .headers
                    .iter()
                    .filter(|(n, _)| !DROPPED_HEADERS.contains(&n.to_ascii_lowercase().as_str()))
                    .map(|(n, v)| (n.clone(), env(v)))
                    .collect(),
                body: r.body.as_deref().filter(|b| !b.is_empty()).map(env),
                status: r.status,
                started_ms: r.started_ms,
                took_ms: r.took_ms,
                asset: plan::looks_like_asset(&r.path),
                offers: Vec::new(),
                redirect,
                seqs: vec![r.seq],
            });
        }
        let (mut entries, merged) = merge_redirects(entries);
        hops += merged;
        let index_of =
            |seq: u64, entries: &[Entry]| entries.iter().position(|e| e.seqs.contains(&seq));
        let mut correlations: Vec<Correlation> = Vec::new();
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        for r in &session.requests {
            let Some(to) = index_of(r.seq, &entries) else {
                continue;
            };
            for (text, from, rule) in &r.uses {
                let rule = match rule {
                    RecordedRule::Json(p) => Rule::Json(p.clone()),
                    RecordedRule::Header(h) => Rule::Header(h.clone()),
                    RecordedRule::Input(n) => Rule::Input(n.clone()),
                    RecordedRule::Link(p) => Rule::Link(p.clone()),
                    RecordedRule::Location => continue,
                };
                let Some(from) = index_of(*from, &entries).filter(|&i| i < to) else {
                    continue;
                };
                if correlations.iter().any(|c| c.value == *text) {
                    continue;
                }
                let var = var_name(&rule, &vars);
                vars.insert(text.clone(), var.clone());
                correlations.push(Correlation {
                    from,
                    value: text.clone(),
                    var,
                    rule,
                    encoded: percent_encoded(text),
                });
            }
        }
        correlations.sort_by_key(|c| std::cmp::Reverse(c.value.len()));
        assets += entries.iter().filter(|e| e.asset).count();
        if opts.no_assets {
            // Steps move up as assets leave; a value an asset gave stays
            // as recorded.
            let mut new_index = Vec::with_capacity(entries.len());
            let mut n = 0;
            for e in &entries {
                new_index.push((!e.asset).then_some(n));
                n += usize::from(!e.asset);
            }
            correlations.retain_mut(|c| match new_index[c.from] {
                Some(i) => {
                    c.from = i;
                    true
                }
                None => false,
            });
            entries.retain(|e| !e.asset);
        }
        if !entries.is_empty() {
            flows.push(Flow {
                name: session.name,
                entries,
                correlations,
            });
        }
    }
    if flows.is_empty() {
        return Err(HarError(
            "nothing to import: no requests were chosen (or all were static assets: import without --no-assets)"
                .into(),
        ));
    }
    let requests: usize = flows.iter().map(|f| f.entries.len()).sum();
    let mut header = format!(
        "# Imported by `throng import recording`: {requests} requests to {origin}, in {} flow(s).\n",
        flows.len()
    );
    for n in notes {
        header.push_str(&format!("# {n}\n"));
    }
    header.push_str(
        "# Masked values come from the environment: set THRONG_MASKED_N for each {{ env.THRONG_MASKED_N }}.\n",
    );
    let name = opts.name.clone().unwrap_or_else(|| "recorded".into());
    Ok(write_flows(
        &header,
        &flows,
        &Context {
            origin: origin.to_string(),
            name,
            user_agent,
            other_hosts: BTreeMap::new(),
            assets,
            no_assets: opts.no_assets,
            hops,
        },
    ))
}

/// `text` with each masked value (`__masked_N__`) read from the
/// environment instead, except those `keep` lists (values that flow from
/// a response, which a variable replaces).
fn from_env(text: &str, keep: &[String]) -> String {
    static MASKED: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"__masked_([0-9]+)__").ok());
    let Some(re) = MASKED.as_ref() else {
        return text.to_string();
    };
    re.replace_all(text, |c: &regex::Captures<'_>| {
        if keep.iter().any(|k| k == &c[0]) {
            c[0].to_string()
        } else {
            format!("{{{{ env.THRONG_MASKED_{} }}}}", &c[1])
        }
    })
    .into_owned()
}
