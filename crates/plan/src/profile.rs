//! A level over time (arrival rate or user count), as linear stages.
//!
//! `0:10s,500:30s,500:1m,0:10s` reads as k6's stages do: each pair ramps
//! linearly from the previous level (the first from 0) to TARGET over
//! DURATION. So that example is 10 s of nothing, a 30 s ramp to 500, a
//! minute held at 500 and a 10 s ramp down.

use std::time::Duration;

use crate::{parse_duration, PlanError};

/// One linear ramp: to `target` over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    /// The level at the end of the stage.
    pub target: f64,
    /// How long the ramp takes.
    pub duration: Duration,
}

/// A piecewise-linear level over time, starting at `start`.
///
/// A profile with `open_end` holds its last level forever after the stages;
/// such runs end by request count or by the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    start: f64,
    stages: Vec<Stage>,
    open_end: bool,
}

impl Profile {
    /// A constant level, for `duration` or (with `None`) until stopped.
    pub fn constant(level: f64, duration: Option<Duration>) -> Profile {
        match duration {
            Some(duration) => Profile {
                start: level,
                stages: vec![Stage {
                    target: level,
                    duration,
                }],
                open_end: false,
            },
            None => Profile {
                start: level,
                stages: Vec::new(),
                open_end: true,
            },
        }
    }

    /// Ramps from 0 through the given stages.
    pub fn stages(stages: Vec<Stage>) -> Profile {
        Profile {
            start: 0.0,
            stages,
            open_end: false,
        }
    }

    /// The stages, in order.
    pub fn stage_list(&self) -> &[Stage] {
        &self.stages
    }

    /// The total length, or `None` when the profile holds forever.
    pub fn duration(&self) -> Option<Duration> {
        if self.open_end {
            None
        } else {
            Some(self.stages.iter().map(|s| s.duration).sum())
        }
    }

    /// The highest level the profile reaches.
    pub fn peak(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| s.target)
            .fold(self.start, f64::max)
    }

    /// The level at `t` after the start; 0 after the end.
    pub fn value_at(&self, t: Duration) -> f64 {
        let mut from = self.start;
        let mut begin = Duration::ZERO;
        for stage in &self.stages {
            let end = begin + stage.duration;
            if t < end {
                let frac = (t - begin).as_secs_f64() / stage.duration.as_secs_f64();
                return from + (stage.target - from) * frac;
            }
            from = stage.target;
            begin = end;
        }
        if self.open_end {
            from
        } else {
            0.0
        }
    }

    /// The integral of the level from 0 to `t`: for a rate, how many
    /// arrivals are due by `t`.
    pub fn cumulative(&self, t: Duration) -> f64 {
        let mut total = 0.0;
        let mut from = self.start;
        let mut begin = Duration::ZERO;
        for stage in &self.stages {
            let len = stage.duration.as_secs_f64();
            let end = begin + stage.duration;
            if t < end {
                let tau = (t - begin).as_secs_f64();
                let slope = (stage.target - from) / len;
                return total + from * tau + slope * tau * tau / 2.0;
            }
            total += (from + stage.target) / 2.0 * len;
            from = stage.target;
            begin = end;
        }
        if self.open_end {
            total + from * (t - begin).as_secs_f64()
        } else {
            total
        }
    }

    /// The first time at which [`cumulative`](Self::cumulative) reaches `x`,
    /// or `None` if it never does. This turns "the k-th arrival" into "when".
    pub fn inverse_cumulative(&self, x: f64) -> Option<Duration> {
        let mut remaining = x;
        let mut from = self.start;
        let mut begin = 0.0f64;
        for stage in &self.stages {
            let len = stage.duration.as_secs_f64();
            let area = (from + stage.target) / 2.0 * len;
            if remaining <= area && area > 0.0 {
                let slope = (stage.target - from) / len;
                // Solve from*tau + slope*tau^2/2 = remaining for tau, in the
                // form that stays accurate when slope is near zero.
                let disc = (from * from + 2.0 * slope * remaining).max(0.0);
                let denom = from + disc.sqrt();
                let tau = if denom > 0.0 {
                    (2.0 * remaining / denom).min(len)
                } else {
                    0.0
                };
                return Some(Duration::from_secs_f64(begin + tau));
            }
            remaining -= area;
            from = stage.target;
            begin += len;
        }
        if self.open_end && from > 0.0 {
            return Some(Duration::from_secs_f64(begin + remaining / from));
        }
        None
    }

    /// The same shape with every level multiplied by `factor` (a share of the load).
    pub fn scaled(&self, factor: f64) -> Profile {
        Profile {
            start: self.start * factor,
            stages: self
                .stages
                .iter()
                .map(|s| Stage {
                    target: s.target * factor,
                    duration: s.duration,
                })
                .collect(),
            open_end: self.open_end,
        }
    }
}

/// Parses `TARGET:DURATION[,TARGET:DURATION...]`, e.g. `0:10s,500:30s,0:10s`.
pub fn parse_stages(input: &str) -> Result<Profile, PlanError> {
    let err = |why: String| PlanError::Stages {
        input: input.to_string(),
        why,
    };
    let mut stages = Vec::new();
    for (i, part) in input.split(',').enumerate() {
        let part = part.trim();
        let Some((target, duration)) = part.split_once(':') else {
            return Err(err(format!("stage {} ({part:?}) has no ':'", i + 1)));
        };
        let target: f64 = target
            .trim()
            .parse()
            .map_err(|_| err(format!("stage {}: {target:?} is not a number", i + 1)))?;
        if !target.is_finite() || target < 0.0 {
            return Err(err(format!(
                "stage {}: the target must be 0 or more",
                i + 1
            )));
        }
        let duration =
            parse_duration(duration).map_err(|e| err(format!("stage {}: {e}", i + 1)))?;
        if duration.is_zero() {
            return Err(err(format!(
                "stage {}: the duration must be more than 0",
                i + 1
            )));
        }
        stages.push(Stage { target, duration });
    }
    Ok(Profile::stages(stages))
}
