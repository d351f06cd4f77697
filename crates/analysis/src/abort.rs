//! `--abort-if 'errors>50% for 10s'`: a safety valve that stops a test
//! once it is clearly hurting its target.
//!
//! The condition is a threshold expression (see [`Threshold`]) that
//! describes the harm, judged on each second of the run on its own
//! (requests that ended in that second): the rule fires once the condition
//! has held in every second for the whole stretch. A second with no
//! requests breaks the stretch for an error rule (there is nothing to
//! judge), and so does a second with no responses for a latency rule.
//! Counts (`errors>100`, `requests<10`) are per second.

use std::time::Duration;

use stats::{Interval, Stats};

use crate::Threshold;

/// A parsed `--abort-if` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AbortRule {
    /// As the user wrote it.
    pub text: String,
    condition: Threshold,
    /// How long the condition must hold.
    pub sustain: Duration,
}

impl AbortRule {
    /// Parses `CONDITION for DURATION`, e.g. `errors>50% for 10s` or
    /// `p99>2s for 30s`, reading the duration with `duration` (the plan's
    /// parser: this crate knows nothing of the command line's formats).
    pub fn parse(
        text: &str,
        duration: impl Fn(&str) -> Result<Duration, String>,
    ) -> Result<AbortRule, String> {
        let hint =
            "write it as CONDITION for DURATION, e.g. 'errors>50% for 10s' or 'p99>2s for 30s'";
        let Some((condition, sustain)) = text.rsplit_once(" for ") else {
            return Err(format!("--abort-if {text:?} says for how long: {hint}"));
        };
        let condition = Threshold::parse(condition.trim())
            .map_err(|e| format!("--abort-if {text:?}: {}; {hint}", e.why))?;
        if condition.endpoint.is_some() {
            return Err(format!(
                "--abort-if {text:?}: the rule is judged on the whole run, not one endpoint (drop the endpoint)"
            ));
        }
        let sustain =
            duration(sustain.trim()).map_err(|e| format!("--abort-if {text:?}: {e}; {hint}"))?;
        if sustain.is_zero() {
            return Err(format!(
                "--abort-if {text:?}: the duration must be above 0; {hint}"
            ));
        }
        Ok(AbortRule {
            text: text.to_string(),
            condition,
            sustain,
        })
    }

    /// A watch that judges this rule second by second.
    pub fn watch(&self) -> AbortWatch {
        AbortWatch {
            rule: self.clone(),
            since: None,
        }
    }
}

/// A rule being judged on a running test.
#[derive(Debug, Clone)]
pub struct AbortWatch {
    rule: AbortRule,
    /// When the current stretch of seconds in which the condition held
    /// began, from the run start.
    since: Option<Duration>,
}

impl AbortWatch {
    /// Judges the period `[end - len, end)` (from the run start), whose
    /// requests `period` holds. Returns why the run should stop once the
    /// condition has held for the rule's whole stretch.
    pub fn observe(&mut self, end: Duration, len: Duration, period: &Interval) -> Option<String> {
        let mut stats = Stats::new([]);
        stats.counts = period.counts;
        stats.latency = period.latency.clone();
        let verdict = self.rule.condition.evaluate(&stats, len);
        if !verdict.ok {
            self.since = None;
            return None;
        }
        let since = *self.since.get_or_insert(end.saturating_sub(len));
        (end.saturating_sub(since) >= self.rule.sustain).then(|| {
            format!(
                "--abort-if '{}' held from {:.0}s to {:.0}s ({} in the last second)",
                self.rule.text,
                since.as_secs_f64(),
                end.as_secs_f64(),
                verdict.actual_text
            )
        })
    }
}
