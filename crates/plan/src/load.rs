//! The load options shared by the command line and scenario files, and
//! how they become a [`Model`].
//!
//! Both sources fill a [`LoadSpec`]; the command line's overrides the
//! file's ([`LoadSpec::overridden_by`]), then [`LoadSpec::build`] checks the
//! combination and builds the model.

use std::time::Duration;

use crate::{Arrivals, Model, PlanError, Profile};

/// Which model, when stated explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Arrivals at a rate.
    Open,
    /// Virtual users.
    Closed,
}

/// The open model's in-flight cap when none is given is sized as the run
/// goes, by Little's law: 4 times the arrival rate times the mean time a
/// session holds its sender, over the last 100 ms; at least 32 per
/// worker, and at most this many in all. So a fast target is not sent a
/// connection per arrival that came during a pause of a few milliseconds,
/// and a slow one still gets the sessions its latency needs. A replay's
/// cap, when none is given, is this.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1000;
/// How long an open-model arrival that finds the in-flight cap reached
/// waits for a sender to finish before it is counted as dropped. Its wait
/// is lag: its latency still runs from its due time.
pub const QUEUE_WAIT: Duration = Duration::from_millis(1);
/// The default length of a run bounded by nothing else.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// The default number of users when no level is given.
pub const DEFAULT_VUS: f64 = 10.0;

/// Load options as given; every field optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadSpec {
    /// Explicit model (needed to ramp users with stages).
    pub model: Option<ModelKind>,
    /// Open model: arrivals per second.
    pub rate: Option<f64>,
    /// Closed model: users.
    pub vus: Option<f64>,
    /// How long a constant level lasts.
    pub duration: Option<Duration>,
    /// A ramp, instead of a constant level and duration.
    pub stages: Option<Profile>,
    /// Request bound.
    pub requests: Option<u64>,
    /// Closed model: pause after each iteration.
    pub think: Option<Duration>,
    /// Open model: spread of arrivals.
    pub arrivals: Option<Arrivals>,
    /// Open model: in-flight cap.
    pub max_in_flight: Option<usize>,
}

impl LoadSpec {
    /// `self` with what `o` sets replacing it. A level given in `o` (rate,
    /// users, stages or model) replaces the whole level of `self`, so that
    /// `--rate 50` on the command line turns a file's users into a rate.
    pub fn overridden_by(mut self, o: LoadSpec) -> LoadSpec {
        if o.rate.is_some() || o.vus.is_some() || o.stages.is_some() || o.model.is_some() {
            self.rate = None;
            self.vus = None;
            self.stages = None;
            self.model = None;
        }
        if o.stages.is_some() {
            self.duration = None;
        }
        if o.duration.is_some() {
            self.stages = None;
        }
        LoadSpec {
            model: o.model.or(self.model),
            rate: o.rate.or(self.rate),
            vus: o.vus.or(self.vus),
            duration: o.duration.or(self.duration),
            stages: o.stages.or(self.stages),
            requests: o.requests.or(self.requests),
            think: o.think.or(self.think),
            arrivals: o.arrivals.or(self.arrivals),
            max_in_flight: o.max_in_flight.or(self.max_in_flight),
        }
    }

    /// Builds the model; also returns the constant level (rate or users)
    /// when there are no stages.
    pub fn build(&self) -> Result<(Model, Option<f64>), PlanError> {
        let bad = |m: &str| Err(PlanError::Invalid(m.to_string()));
        let kind = match (self.model, self.rate, self.vus) {
            (_, Some(_), Some(_)) => {
                return bad("give either a rate (open model: arrivals per second) or vus (closed model: users), not both")
            }
            (Some(ModelKind::Closed), Some(_), _) => return bad("a rate is for the open model; give vus for the closed model"),
            (Some(ModelKind::Open), _, Some(_)) => return bad("vus are for the closed model; give a rate for the open model"),
            (Some(m), _, _) => m,
            (None, _, Some(_)) => ModelKind::Closed,
            (None, Some(_), _) => ModelKind::Open,
            (None, None, None) if self.stages.is_some() => ModelKind::Open,
            (None, None, None) => ModelKind::Closed,
        };
        if self.duration.is_some_and(|d| d.is_zero()) {
            return bad("the duration must be more than 0");
        }
        let (profile, level) = match &self.stages {
            Some(stages) => {
                if self.rate.is_some() || self.vus.is_some() {
                    return bad("stages set the level over time: drop the rate or vus (use the closed model to ramp users)");
                }
                if self.duration.is_some() {
                    return bad("stages set the duration: drop the duration");
                }
                (stages.clone(), None)
            }
            None => {
                let level = match kind {
                    ModelKind::Open => self.rate.unwrap_or(0.0),
                    ModelKind::Closed => self.vus.unwrap_or(DEFAULT_VUS),
                };
                if !level.is_finite() || level <= 0.0 {
                    return bad(match kind {
                        ModelKind::Open => "the rate must be more than 0",
                        ModelKind::Closed => "vus must be at least 1",
                    });
                }
                let bound = match (self.duration, self.requests) {
                    (Some(d), _) => Some(d),
                    (None, Some(_)) => None,
                    (None, None) => Some(DEFAULT_DURATION),
                };
                (Profile::constant(level, bound), Some(level))
            }
        };
        let model = match kind {
            ModelKind::Open => {
                if self.think.is_some() {
                    return bad("think time between iterations applies to the closed model (vus); the open model sends on schedule");
                }
                Model::Open {
                    rate: profile,
                    arrivals: self.arrivals.unwrap_or(Arrivals::Uniform),
                    max_in_flight: self.max_in_flight,
                }
            }
            ModelKind::Closed => Model::Closed {
                vus: profile,
                think: self.think.unwrap_or(Duration::ZERO),
            },
        };
        Ok((model, level))
    }
}
