//! The capacity search: the highest load that holds every SLO.
//!
//! Exponential steps up from `start` (doubling) until a step fails or
//! `max` is reached (halving instead while nothing has held, down to a
//! sixteenth of `start`), then bisection between the last level that held and
//! the first that failed, until the bracket is narrower than `precision`
//! (relative). A borderline step (an SLO's actual within `BORDERLINE` of
//! its limit) is run once more, and holds only if both runs held. The
//! search is a pure state machine: the caller runs each step and reports
//! its verdict, so the logic is tested without a target.

/// A step whose closest SLO is within this share of its limit is repeated.
pub const BORDERLINE: f64 = 0.1;

/// What a step showed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepVerdict {
    /// Every SLO held.
    pub held: bool,
    /// Some SLO's actual was within [`BORDERLINE`] of its limit.
    pub borderline: bool,
}

/// The search's state.
#[derive(Debug, Clone)]
pub struct Search {
    max: f64,
    floor: f64,
    precision: f64,
    /// The highest level that held.
    pub held: Option<f64>,
    /// The lowest level that failed.
    pub failed: Option<f64>,
    next: Option<f64>,
    /// A borderline level waiting for its repeat.
    repeat: Option<f64>,
}

impl Search {
    /// A search from `start` up to at most `max`, stopping when the bracket
    /// is narrower than `precision` (e.g. 0.1 for 10%).
    pub fn new(start: f64, max: f64, precision: f64) -> Search {
        Search {
            max,
            floor: start / 16.0,
            precision: precision.max(0.001),
            held: None,
            failed: None,
            next: Some(start.min(max)),
            repeat: None,
        }
    }

    /// The level to run next, or `None` when the search is over.
    pub fn next(&self) -> Option<f64> {
        self.repeat.or(self.next)
    }

    /// How many more steps the search needs at most, when that is known:
    /// once a level held and a higher one failed, the bisection halves the
    /// bracket each step until it is within the precision (plus a repeat
    /// for each borderline step, which cannot be known ahead); while
    /// stepping down from a first failure, the halvings left to the floor.
    /// `None` while still climbing.
    pub fn steps_left(&self) -> Option<u32> {
        if self.next().is_none() {
            return Some(0);
        }
        let halvings = |ratio: f64| ratio.max(1.0).log2().ceil() as u32;
        match (self.held, self.failed) {
            (Some(h), Some(f)) => Some(halvings((f - h) / (h * self.precision)).max(1)),
            (None, Some(f)) => Some(halvings(f / self.floor).max(1)),
            (_, None) => None,
        }
    }

    /// Records the verdict of the step at [`Search::next`].
    pub fn record(&mut self, level: f64, verdict: StepVerdict) {
        let repeating = self.repeat.take().is_some();
        if verdict.held && verdict.borderline && !repeating {
            // Held, but only just: run it again before trusting it.
            self.repeat = Some(level);
            return;
        }
        if verdict.held {
            self.held = Some(self.held.map_or(level, |h| h.max(level)));
        } else {
            self.failed = Some(self.failed.map_or(level, |f| f.min(level)));
        }
        self.next = match (self.held, self.failed) {
            // Still climbing.
            (_, None) if level >= self.max => None,
            (_, None) => Some((level * 2.0).min(self.max)),
            // Nothing has held yet: step down, to a sixteenth of the start.
            (None, Some(f)) if f / 2.0 >= self.floor => Some(f / 2.0),
            (None, Some(_)) => None,
            (Some(h), Some(f)) => {
                if (f - h) / h <= self.precision {
                    None
                } else {
                    Some((h + f) / 2.0)
                }
            }
        };
    }
}
