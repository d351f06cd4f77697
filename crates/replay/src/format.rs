//! Reading one access-log line: nginx/Apache `combined` and `common`, and
//! JSON lines with configurable field names.
//!
//! The two text formats are scanned by hand rather than with a regex:
//! they have five fixed fields, and a scan is several times faster on
//! multi-gigabyte logs.

use std::str::FromStr;

/// Which log format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormat {
    /// `IP - USER [TIME] "METHOD PATH PROTO" STATUS SIZE "REFERER" "AGENT"`.
    Combined,
    /// The same without referer and agent.
    Common,
    /// One JSON object per line, with these field names.
    Json(JsonFields),
}

/// The field names of a JSON-lines log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonFields {
    /// The request time: RFC 3339 text, or a number of seconds (or
    /// milliseconds, when over 10^11) since 1970.
    pub time: String,
    /// The method (default `GET` when absent).
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The client address.
    pub ip: String,
    /// The user agent.
    pub user_agent: String,
    /// A field that names the session (a session cookie, a user id), if any.
    pub session: Option<String>,
}

impl Default for JsonFields {
    fn default() -> JsonFields {
        JsonFields {
            time: "time".into(),
            method: "method".into(),
            path: "path".into(),
            ip: "ip".into(),
            user_agent: "user_agent".into(),
            session: None,
        }
    }
}

impl JsonFields {
    /// Reads `time=ts,path=uri,...` overrides of the default names.
    pub fn parse(text: &str) -> Result<JsonFields, String> {
        let mut f = JsonFields::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, name)) = part.split_once('=') else {
                return Err(format!("{part:?} is not KEY=FIELD (e.g. time=ts)"));
            };
            let name = name.trim().to_string();
            match key.trim() {
                "time" => f.time = name,
                "method" => f.method = name,
                "path" => f.path = name,
                "ip" => f.ip = name,
                "user_agent" => f.user_agent = name,
                "session" => f.session = Some(name),
                other => {
                    return Err(format!(
                        "unknown key {other:?} (the keys are time, method, path, ip, user_agent, session)"
                    ))
                }
            }
        }
        Ok(f)
    }
}

/// What one log line says.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// When the request arrived, in microseconds since 1970.
    pub time_us: i64,
    /// Whether the time has sub-second precision; if not, the requests of
    /// one second are spread evenly across it.
    pub precise: bool,
    /// The method.
    pub method: http::Method,
    /// Path and query, starting with `/`.
    pub path: String,
    /// The client address.
    pub ip: String,
    /// The user agent, if the log has it.
    pub user_agent: Option<String>,
    /// A session field, if the log has one.
    pub session: Option<String>,
    /// A recording's headers, body and flows (`None` for a log line).
    pub recorded: Option<plan::Recorded>,
}

/// Parses one line; the error says what is wrong with it.
pub fn parse_line(format: &LogFormat, line: &str) -> Result<Record, String> {
    match format {
        LogFormat::Combined => text_line(line, true),
        LogFormat::Common => text_line(line, false),
        LogFormat::Json(fields) => json_line(line, fields),
    }
}

/// The text between the next pair of `open`/`close` after `from`, and
/// where it ends.
fn delimited(line: &str, from: usize, open: char, close: char) -> Option<(&str, usize)> {
    let start = from + line.get(from..)?.find(open)? + 1;
    let len = if close == '"' {
        // Quoted fields may contain \" escapes.
        let bytes = line.as_bytes();
        let mut i = start;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        if i >= bytes.len() {
            return None;
        }
        i - start
    } else {
        line.get(start..)?.find(close)?
    };
    Some((line.get(start..start + len)?, start + len + 1))
}

fn text_line(line: &str, combined: bool) -> Result<Record, String> {
    let ip = line
        .split_whitespace()
        .next()
        .ok_or("the line is empty")?
        .to_string();
    let (time, after_time) = delimited(line, 0, '[', ']').ok_or("no [time] field")?;
    let time_us = jiff::fmt::strtime::parse("%d/%b/%Y:%H:%M:%S %z", time)
        .and_then(|t| t.to_timestamp())
        .map_err(|_| format!("the time {time:?} is not like 10/Oct/2000:13:55:36 -0700"))?
        .as_microsecond();
    let (request, after_request) =
        delimited(line, after_time, '"', '"').ok_or("no \"METHOD PATH PROTOCOL\" field")?;
    let mut parts = request.split(' ');
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(format!(
            "the request {request:?} is not METHOD PATH PROTOCOL"
        ));
    };
    let method =
        http::Method::from_str(method).map_err(|_| format!("{method:?} is not a method"))?;
    let path = absolute_path(path)?;
    let user_agent = if combined {
        let (_referer, after_referer) = delimited(line, after_request, '"', '"')
            .ok_or("no \"referer\" field (is it the common format?)")?;
        let (agent, _) =
            delimited(line, after_referer, '"', '"').ok_or("no \"user agent\" field")?;
        Some(agent.replace("\\\"", "\""))
    } else {
        None
    };
    Ok(Record {
        time_us,
        precise: false,
        method,
        path,
        ip,
        user_agent,
        session: None,
        recorded: None,
    })
}

/// The path a log recorded, which proxies may log as an absolute URL.
fn absolute_path(path: &str) -> Result<String, String> {
    if path.starts_with('/') {
        return Ok(path.to_string());
    }
    if let Some(rest) = path
        .strip_prefix("http://")
        .or_else(|| path.strip_prefix("https://"))
    {
        return Ok(rest
            .find('/')
            .map_or("/".to_string(), |i| rest[i..].to_string()));
    }
    Err(format!("the path {path:?} does not start with /"))
}

fn json_line(line: &str, f: &JsonFields) -> Result<Record, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let text = |name: &str| value.get(name).and_then(|v| v.as_str());
    let (time_us, precise) = match value.get(&f.time) {
        Some(serde_json::Value::String(s)) => {
            let ts = jiff::Timestamp::from_str(s).map_err(|_| {
                format!("the time {s:?} is not RFC 3339 (2026-11-24T09:00:00.123Z)")
            })?;
            (
                ts.as_microsecond(),
                ts.subsec_nanosecond() != 0 || s.contains('.'),
            )
        }
        Some(serde_json::Value::Number(n)) => {
            let x = n.as_f64().ok_or("the time is not a number")?;
            // Seconds, or milliseconds for numbers too large to be seconds.
            let secs = if x > 1e11 { x / 1000.0 } else { x };
            // Within jiff's years (-9999 to 9999), as a text time is.
            if secs.is_nan() || secs.abs() >= 253_402_300_800.0 {
                return Err(format!(
                    "the time {x} is out of range (seconds or milliseconds since 1970)"
                ));
            }
            ((secs * 1e6).round() as i64, x.fract() != 0.0 || x > 1e11)
        }
        _ => return Err(format!("no {:?} field with the time", f.time)),
    };
    let path = absolute_path(
        text(&f.path).ok_or_else(|| format!("no {:?} field with the path", f.path))?,
    )?;
    let method = match text(&f.method) {
        Some(m) => http::Method::from_str(m).map_err(|_| format!("{m:?} is not a method"))?,
        None => http::Method::GET,
    };
    Ok(Record {
        time_us,
        precise,
        method,
        path,
        ip: text(&f.ip).unwrap_or_default().to_string(),
        user_agent: text(&f.user_agent).map(str::to_string),
        session: f
            .session
            .as_deref()
            .and_then(|s| value.get(s))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)),
        recorded: None,
    })
}
