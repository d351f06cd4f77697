//! Number formatting shared by every text output.

/// Milliseconds for a table: `0.31ms`, `12.4ms`, `312.5ms`, `1.52s`.
pub fn fmt_ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}ms")
    } else if v < 1000.0 {
        format!("{v:.1}ms")
    } else {
        format!("{:.2}s", v / 1000.0)
    }
}

/// A load level (arrivals/s or users): whole numbers plainly, others to
/// one decimal.
pub fn fmt_level(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// A rate per second: `499.9/s`.
pub fn fmt_rate(v: f64) -> String {
    if v < 100.0 {
        format!("{v:.2}/s")
    } else {
        format!("{v:.1}/s")
    }
}

/// Counts by key, `"503: 2, 504: 1"`, each key after `prefix`.
pub(crate) fn fmt_counts(m: &std::collections::BTreeMap<String, u64>, prefix: &str) -> String {
    m.iter()
        .map(|(k, n)| format!("{prefix}{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
