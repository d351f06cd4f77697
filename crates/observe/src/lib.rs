//! What the target was doing during a run, beside the load: its own
//! metrics (scraped Prometheus text, `exposition`) and its process (read
//! from `/proc`, `process`), turned into per-bucket series aligned with
//! the run's timeline (`series`). No I/O: the binary fetches the text and
//! reads the files, on a thread of its own, and hands them here.
//!
//! Everything read here is input throng did not write: parsed within
//! bounds, never fatal for the run.

pub mod exposition;
pub mod process;
pub mod series;

pub use series::{Machine, Recorder, Series, SeriesKind, Server, Source, SourceKind, MACHINE};
