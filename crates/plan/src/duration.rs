//! Durations as users write them: `250ms`, `30s`, `1.5s`, `2m`, `1h30m`.
//!
//! Written by hand because the common crates either reject fractions
//! (`1.5s`) or accept forms (`1 minute 3 secs`) we would then have to
//! document; this grammar is small and its errors name the fix.

use std::time::Duration;

use crate::PlanError;

/// Parses a duration: one or more `NUMBER UNIT` parts, units `us`, `ms`,
/// `s`, `m`, `h`. A bare `0` is allowed.
pub fn parse_duration(input: &str) -> Result<Duration, PlanError> {
    let err = |why| PlanError::Duration {
        input: input.to_string(),
        why,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err("expected a number"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| err("the number is malformed"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(err("a unit is missing")),
            _ => return Err(err("unknown unit")),
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    if !total.is_finite() || total > 1e9 {
        return Err(err("it is too long"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration compactly for people: `850us`, `12.3ms`, `4.20s`, `2m30s`.
pub fn format_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0}us")
    } else if us < 10_000.0 {
        format!("{:.2}ms", us / 1e3)
    } else if us < 1_000_000.0 {
        format!("{:.1}ms", us / 1e3)
    } else if us < 60e6 {
        format!("{:.2}s", us / 1e6)
    } else {
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        if h > 0 {
            format!("{h}h{m:02}m{s:02}s")
        } else {
            format!("{m}m{s:02}s")
        }
    }
}

/// Reads `10%` as 0.1: a finite percentage of 0 or more; `None` for
/// anything else (a bare number included, so callers decide whether a
/// fraction such as `0.1` is allowed).
pub fn parse_percent(text: &str) -> Option<f64> {
    text.trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<f64>().ok())
        .filter(|p| p.is_finite() && *p >= 0.0)
        .map(|p| p / 100.0)
}

/// A size: bytes, or a number with B, KB, MB, GB (units of 1000) or KiB,
/// MiB, GiB (units of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| "write a size such as 8MiB, 500KB or 1048576".to_string())?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "{other:?} is not a unit: use B, KB, MB, GB, KiB, MiB or GiB"
            ))
        }
    };
    Ok((n * scale as f64).round() as u64)
}
