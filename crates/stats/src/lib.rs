//! Measurements: what one request yields ([`Sample`]), how a worker records
//! it ([`Recorder`]), and the mergeable totals of a run ([`Stats`]).
//!
//! Each worker owns a [`Recorder`]; nothing is shared per request. At the end
//! (and for merges of whole runs) recorders merge exactly, histogram by
//! histogram. Times arrive as offsets and durations, never as clock
//! readings: this crate knows nothing about tokio, sockets or wall time, so
//! its numbers can be tested with made-up samples.

mod cache;
mod error_kind;
mod hist;
mod live;
mod recorder;
mod retries;
pub mod timeline;
mod windows;

#[cfg(test)]
mod tests;

pub use cache::{CacheObs, CacheStats, Policy, LONG_MAX_AGE_S};
pub use error_kind::{ErrorCounts, ErrorKind};
pub use hist::{Hist, HistError, Summary};
pub use live::{LiveCounts, LiveSession, LiveStats, LiveTime, CLOSED_ABNORMALLY};
pub use recorder::{
    load_band, Bucket, CheckMeta, CheckStats, ClientWork, Counts, EndpointStats, Interval, Outcome,
    Phases, Recorder, ReplayDiff, Sample, Stats, LOAD_BANDS,
};
pub use retries::{RetryCause, RetryCounts, RetryStats, SECOND_COLUMNS};
pub use timeline::{BucketLatency, MAX_BUCKETS, OPEN_BUCKETS};
pub use windows::{Window, Windows, FIRST_WINDOW_MS, MAX_WINDOWS};
