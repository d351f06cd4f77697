//! Execution segments: one run's load split between machines.
//!
//! `--segment K/N` makes a process run segment `K` (from 0) of `N`. Every
//! split the engine makes between its own workers (arrival schedules,
//! user counts, feeder rows, session numbers) is made between the
//! segments first: segment `K` takes every `N`-th arrival from the `K`-th
//! on, and its workers split that among themselves. So the union of all
//! segments is exactly the whole run, whatever number of workers each
//! machine uses, and no two segments share a `unique` row or a user
//! number.

use crate::share;

/// One segment of a run split `count` ways: `index` from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Which segment, from 0.
    pub index: usize,
    /// How many segments the whole run has.
    pub count: usize,
}

impl Default for Segment {
    /// The whole run.
    fn default() -> Segment {
        Segment { index: 0, count: 1 }
    }
}

impl Segment {
    /// Reads `K/N`, as `--segment` takes it.
    pub fn parse(text: &str) -> Result<Segment, String> {
        let hint = "write K/N: segment K (from 0) of N, e.g. 0/4 to 3/4 for four machines \
                    (a Kubernetes Indexed Job's completion index is K)";
        let (k, n) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a segment: {hint}"))?;
        let parse = |s: &str| s.trim().parse::<usize>().ok();
        let (Some(index), Some(count)) = (parse(k), parse(n)) else {
            return Err(format!("{text:?} is not a segment: {hint}"));
        };
        if count == 0 {
            return Err(format!("segment {text}: N must be at least 1"));
        }
        if index >= count {
            return Err(format!(
                "segment {text} does not exist: K runs from 0 to {} when N is {count} \
                 (segments count from 0, as a Kubernetes Indexed Job's completion index does)",
                count - 1
            ));
        }
        Ok(Segment { index, count })
    }

    /// Whether this is the whole run (no `--segment`).
    pub fn is_whole(&self) -> bool {
        self.count <= 1
    }

    /// Where local worker `worker` of `workers` stands among all the
    /// run's workers, as (index, count): the stride and offset it uses for
    /// arrival schedules, feeder rows and session numbers. Segment `K` of
    /// `N` holds the indices `K, K + N, K + 2N, ...`, so it takes exactly
    /// every `N`-th item from the `K`-th, split between its own workers.
    pub fn worker(&self, worker: usize, workers: usize) -> (usize, usize) {
        let n = self.count.max(1);
        (self.index + n * worker, n * workers.max(1))
    }

    /// Local worker `worker`'s part of `total` (users, a request bound):
    /// the segment's share of the whole, then the worker's of that.
    pub fn share(&self, total: u64, worker: usize, workers: usize) -> u64 {
        share(share(total, self.count, self.index), workers, worker)
    }

    /// `3/8`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.index, self.count)
    }
}
