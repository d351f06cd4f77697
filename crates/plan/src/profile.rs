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

/// A sine between `low` and `high` with `period`, for `duration`, as
/// `SINE_PIECES` ramps per period after a jump to `low`; returns the
/// level it ends at.
fn sine(
    stages: &mut Vec<Stage>,
    (low, high): (f64, f64),
    period: Duration,
    duration: Duration,
) -> Result<f64, &'static str> {
    let level_ok = |x: f64| x.is_finite() && x >= 0.0;
    if !level_ok(low) || !level_ok(high) || high < low {
        return Err("a sine needs 0 <= low <= high (write low: 20, high: 200)");
    }
    if period.is_zero() {
        return Err("the sine's period must be more than 0");
    }
    let piece = period / SINE_PIECES;
    let pieces = duration.as_secs_f64() / piece.as_secs_f64();
    if pieces > 100_000.0 {
        return Err("the sine runs for more than 2,000 periods; use a longer period");
    }
    let at = |t: Duration| {
        let phase = t.as_secs_f64() / period.as_secs_f64();
        low + (high - low) * (1.0 - (std::f64::consts::TAU * phase).cos()) / 2.0
    };
    stages.push(Stage {
        target: low,
        duration: Duration::ZERO,
    });
    let mut t = Duration::ZERO;
    while t < duration {
        let len = piece.min(duration - t);
        t += len;
        stages.push(Stage {
            target: at(t),
            duration: len,
        });
    }
    Ok(at(duration))
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

/// A level during a spike: a multiple of the level before it (`10x`) or
/// an absolute level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpikeLevel {
    /// This many times the level before the spike.
    Times(f64),
    /// This level, whatever came before.
    Absolute(f64),
}

/// One piece of a load shape, as scenario files write them. Each starts
/// from the level the previous one ended at (the first from 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// A linear ramp to `target` over `duration`.
    Ramp {
        /// The level at the end.
        target: f64,
        /// How long the ramp takes.
        duration: Duration,
    },
    /// A jump to `target`, held for `duration`.
    Step {
        /// The level held.
        target: f64,
        /// How long it is held.
        duration: Duration,
    },
    /// A jump to `level` for `duration`, then straight back to the level
    /// before it: a flash crowd.
    Spike {
        /// The level during the spike.
        level: SpikeLevel,
        /// How long the spike lasts.
        duration: Duration,
    },
    /// A sine wave between `low` and `high` with this `period`, starting
    /// at `low` (night) and peaking half a period later: a daily cycle.
    Sine {
        /// The trough.
        low: f64,
        /// The crest.
        high: f64,
        /// One full cycle, e.g. 24 h.
        period: Duration,
        /// How long the wave runs.
        duration: Duration,
    },
}

/// Linear pieces per sine period: the largest gap to the true curve is
/// (high - low) x (1 - cos(pi/48)) / 2, under 0.06% of the swing.
const SINE_PIECES: u32 = 48;

impl Profile {
    /// Builds a profile from shapes. Steps and spikes become zero-length
    /// ramps (a jump) and holds; a sine becomes linear pieces.
    pub fn from_shapes(shapes: &[Shape]) -> Result<Profile, PlanError> {
        let invalid = |i: usize, why: &str| PlanError::Invalid(format!("stage {}: {why}", i + 1));
        let mut stages = Vec::new();
        let mut level = 0.0f64;
        let jump = |stages: &mut Vec<Stage>, to: f64| {
            stages.push(Stage {
                target: to,
                duration: Duration::ZERO,
            })
        };
        for (i, shape) in shapes.iter().enumerate() {
            let duration = match *shape {
                Shape::Ramp { duration, .. }
                | Shape::Step { duration, .. }
                | Shape::Spike { duration, .. }
                | Shape::Sine { duration, .. } => duration,
            };
            if duration.is_zero() {
                return Err(invalid(i, "the duration must be more than 0"));
            }
            let level_ok = |x: f64| x.is_finite() && x >= 0.0;
            match *shape {
                Shape::Ramp { target, duration } => {
                    if !level_ok(target) {
                        return Err(invalid(i, "the target must be 0 or more"));
                    }
                    stages.push(Stage { target, duration });
                    level = target;
                }
                Shape::Step { target, duration } => {
                    if !level_ok(target) {
                        return Err(invalid(i, "the step's level must be 0 or more"));
                    }
                    jump(&mut stages, target);
                    stages.push(Stage { target, duration });
                    level = target;
                }
                Shape::Spike {
                    level: to,
                    duration,
                } => {
                    let to = match to {
                        SpikeLevel::Times(k) if level_ok(k) && level > 0.0 => level * k,
                        SpikeLevel::Times(_) if level <= 0.0 => {
                            return Err(invalid(
                                i,
                                "a spike by a factor needs a level before it (ramp or step up first, or give the spike's level as a number)",
                            ))
                        }
                        SpikeLevel::Absolute(x) if level_ok(x) => x,
                        _ => return Err(invalid(i, "the spike's level must be 0 or more")),
                    };
                    jump(&mut stages, to);
                    stages.push(Stage {
                        target: to,
                        duration,
                    });
                    jump(&mut stages, level);
                }
                Shape::Sine {
                    low,
                    high,
                    period,
                    duration,
                } => {
                    level = sine(&mut stages, (low, high), period, duration)
                        .map_err(|why| invalid(i, why))?;
                }
            }
        }
        // Zero-length ramps to the level already held change nothing.
        let mut prev = 0.0;
        stages.retain(|s| {
            let keep = !(s.duration.is_zero() && s.target == prev);
            prev = s.target;
            keep
        });
        Ok(Profile::stages(stages))
    }

    /// A text picture of the profile, `width` columns by `height` rows,
    /// with the peak and the length on the axes: what `throng validate`
    /// shows and the documentation's pictures.
    pub fn sketch(&self, width: usize, height: usize) -> String {
        let (width, height) = (width.max(2), height.max(2));
        let total = self.duration().unwrap_or(Duration::from_secs(60));
        let peak = self.peak().max(f64::MIN_POSITIVE);
        // The highest level within each column, so short spikes show.
        let columns: Vec<usize> = (0..width)
            .map(|c| {
                let from = total.mul_f64(c as f64 / width as f64);
                let to = total.mul_f64((c + 1) as f64 / width as f64);
                let mut top = self
                    .value_at(from)
                    .max(self.value_at(to.saturating_sub(Duration::from_nanos(1))));
                let mut edge = Duration::ZERO;
                for s in &self.stages {
                    edge += s.duration;
                    if edge > from && edge < to {
                        top = top.max(s.target);
                    }
                }
                (top / peak * height as f64).round() as usize
            })
            .collect();
        let label = format_level(peak);
        let pad = label.len();
        let mut out = String::new();
        for row in (1..=height).rev() {
            let axis = if row == height { label.as_str() } else { "" };
            out.push_str(&format!("{axis:>pad$} |"));
            for &h in &columns {
                out.push(if h >= row { '#' } else { ' ' });
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
        }
        out.push_str(&format!("{:>pad$} +{}\n", 0, "-".repeat(width)));
        let end = crate::format_duration(total);
        out.push_str(&format!(
            "{:pad$}  0s{end:>w$}\n",
            "",
            w = width.saturating_sub(2)
        ));
        out
    }
}

/// A level for axis labels: whole numbers plainly, others to 1 decimal.
fn format_level(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}
