//! The target's own metrics, as a Prometheus server would read them: the
//! text exposition format (0.0.4) and OpenMetrics' text, parsed. The
//! caller fetches the text (with its timeout and size cap).
//!
//! Written by hand. The crates for it were weighed: `prometheus-parse`
//! (regex-based, last released 2023, with an open bug on `=` inside label
//! values) and `openmetrics-parser` (the OpenMetrics grammar, but
//! LGPL-3.0, which this project's licence does not take). A scrape is
//! input throng did not write: a bad line is counted and skipped, never
//! fatal, and nothing is kept per line beyond its sample. Fuzzed by
//! `crates/fuzzing`.

/// What a metric family is, from its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (a rate is what is read of it).
    Counter,
    /// A value now.
    Gauge,
    /// Buckets (`_bucket{le=...}`), `_sum` and `_count`.
    Histogram,
    /// Quantiles, `_sum` and `_count`.
    Summary,
    /// No `# TYPE` line, or one this parser does not know.
    Untyped,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (`http_requests_total`, `latency_bucket`).
    pub name: String,
    /// Its labels, in the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    /// Its value (`+Inf`, `-Inf` and `NaN` included).
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if it has one.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A scrape, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// The samples, in the order written.
    pub samples: Vec<Sample>,
    /// Each family's kind, by family name, from `# TYPE` lines.
    pub kinds: Vec<(String, Kind)>,
    /// Lines that were neither a sample, a comment nor blank: skipped.
    pub bad_lines: usize,
    /// The first of them: its line number (from 1) and what was wrong.
    pub first_bad: Option<(usize, &'static str)>,
}

impl Exposition {
    /// The kind of the family a sample named `name` belongs to: its own,
    /// or for `_bucket`, `_sum`, `_count`, `_total` and `_created` the
    /// family's it is part of.
    pub fn kind_of(&self, name: &str) -> Kind {
        let family = |n: &str| self.kinds.iter().find(|(f, _)| f == n).map(|(_, k)| *k);
        if let Some(k) = family(name) {
            return k;
        }
        ["_bucket", "_sum", "_count", "_total", "_created"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).and_then(family))
            .unwrap_or(Kind::Untyped)
    }
}

/// Parses `text`. Never fails: bad lines are counted in the result.
pub fn parse(text: &str) -> Exposition {
    let mut out = Exposition::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let result = match line.strip_prefix('#') {
            Some(comment) => comment_line(comment.trim_start(), &mut out),
            None => sample_line(line).map(|s| out.samples.push(s)),
        };
        if let Err(why) = result {
            out.bad_lines += 1;
            out.first_bad.get_or_insert((i + 1, why));
        }
    }
    out
}

/// `# TYPE name kind`, `# HELP ...`, `# EOF` or any other comment.
fn comment_line(comment: &str, out: &mut Exposition) -> Result<(), &'static str> {
    let Some(rest) = comment.strip_prefix("TYPE") else {
        return Ok(());
    };
    let mut words = rest.split_whitespace();
    let (Some(name), Some(kind)) = (words.next(), words.next()) else {
        return Err("a TYPE line needs a name and a type");
    };
    if !valid_name(name) {
        return Err("a TYPE line names no valid metric");
    }
    let kind = match kind {
        "counter" => Kind::Counter,
        "gauge" => Kind::Gauge,
        "histogram" | "gaugehistogram" => Kind::Histogram,
        "summary" => Kind::Summary,
        _ => Kind::Untyped,
    };
    match out.kinds.iter_mut().find(|(n, _)| n == name) {
        Some(entry) => entry.1 = kind,
        None => out.kinds.push((name.to_string(), kind)),
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `name{label="value",...} value [timestamp] [# exemplar]`.
fn sample_line(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .ok_or("a sample needs a value")?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err("not a metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(inner)?;
        labels = parsed;
        rest = after;
    }
    let mut words = rest.split_whitespace();
    let value = words.next().ok_or("a sample needs a value")?;
    let value = parse_value(value).ok_or("a sample's value is not a number")?;
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// A sample's labels: names and unescaped values.
type Labels = Vec<(String, String)>;

/// The labels up to the closing brace, and what follows it.
fn label_set(mut s: &str) -> Result<(Labels, &str), &'static str> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("a label needs =")?;
        let name = s[..eq].trim();
        if !valid_name(name) || name.contains(':') {
            return Err("not a label name");
        }
        s = s[eq + 1..].trim_start();
        let body = s.strip_prefix('"').ok_or("a label value is quoted")?;
        let (value, after) = quoted(body)?;
        labels.push((name.to_string(), value));
        s = after.trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

/// A quoted value's text (escapes `\\`, `\"`, `\n` undone) and what
/// follows its closing quote.
fn quoted(s: &str) -> Result<(String, &str), &'static str> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, other)) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("a label value is not closed")
}

/// A sample value: a float, `+Inf`, `-Inf` or `NaN`.
fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests;
