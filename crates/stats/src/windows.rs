//! One endpoint's requests over time, in a bounded number of windows: what
//! `throng compare` resamples.
//!
//! Requests that wait in the same queue are not independent, so a
//! comparison resamples whole windows of time rather than single
//! requests. Windows start [`FIRST_WINDOW_MS`] long; when a run outgrows
//! [`MAX_WINDOWS`] of them, neighbours merge pairwise and the length
//! doubles. Lengths are therefore always `FIRST_WINDOW_MS × 2^k`, and two
//! recorders' windows merge exactly by coarsening the finer one first. A
//! run of any length keeps between 32 and 64 windows (fewer when it is
//! shorter than 8 s), so the file stays small and the bootstrap has enough
//! of them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Hist;

/// The starting window length.
pub const FIRST_WINDOW_MS: u64 = 250;

/// The most windows kept; one more halves the count.
pub const MAX_WINDOWS: usize = 64;

/// The requests of one endpoint due within one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Requests sent that ended (ok or failed).
    pub requests: u64,
    /// Of those, failed ones (any error kind, check failures included).
    pub failed: u64,
    /// Latency from the intended send time of those with a response, 2
    /// significant digits.
    pub latency: Hist,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            requests: 0,
            failed: 0,
            latency: Hist::coarse(),
        }
    }
}

impl Window {
    fn merge(&mut self, other: &Window) {
        self.requests += other.requests;
        self.failed += other.failed;
        self.latency.merge(&other.latency);
    }
}

/// An endpoint's windows, by due time from the run start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Windows {
    /// Each window's length in milliseconds.
    pub ms: u64,
    /// Window `i` holds requests due in `[i × ms, (i + 1) × ms)`.
    pub list: Vec<Window>,
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            ms: FIRST_WINDOW_MS,
            list: Vec::new(),
        }
    }
}

impl Windows {
    /// Records one request due at `due`; `latency` is `None` when it got no
    /// response.
    pub fn record(&mut self, due: Duration, failed: bool, latency: Option<Duration>) {
        let due_ms = u64::try_from(due.as_millis()).unwrap_or(u64::MAX);
        let mut i = due_ms / self.ms;
        while i >= MAX_WINDOWS as u64 {
            self.double();
            i = due_ms / self.ms;
        }
        let i = i as usize;
        if self.list.len() <= i {
            self.list.resize_with(i + 1, Window::default);
        }
        let w = &mut self.list[i];
        w.requests += 1;
        w.failed += u64::from(failed);
        if let Some(l) = latency {
            w.latency.record(l);
        }
    }

    /// Merges neighbours pairwise, doubling the length.
    fn double(&mut self) {
        let old = std::mem::take(&mut self.list);
        let mut it = old.into_iter();
        while let Some(mut a) = it.next() {
            if let Some(b) = it.next() {
                a.merge(&b);
            }
            self.list.push(a);
        }
        self.ms = self.ms.saturating_mul(2);
    }

    /// Adds `other`'s requests window by window, at the longer of the two
    /// lengths.
    pub fn merge(&mut self, other: &Windows) {
        while self.ms < other.ms {
            self.double();
        }
        let coarsened;
        let theirs = if other.ms < self.ms {
            let mut t = other.clone();
            while t.ms < self.ms {
                t.double();
            }
            coarsened = t;
            &coarsened
        } else {
            other
        };
        if self.list.len() < theirs.list.len() {
            self.list.resize_with(theirs.list.len(), Window::default);
        }
        for (o, t) in self.list.iter_mut().zip(&theirs.list) {
            o.merge(t);
        }
        while self.list.len() > MAX_WINDOWS {
            self.double();
        }
    }
}
