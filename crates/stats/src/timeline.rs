//! The timeline's buckets, and what keeps a long run's timeline small.
//!
//! Each bucket holds the requests due within [`Stats::bucket_s`] seconds
//! (1 to begin with). Two things bound its memory:
//! - a bucket's latency histogram is packed into its serialized form once
//!   the run is [`OPEN_BUCKETS`] buckets past it, when responses for it
//!   have (nearly always) all come in: a few hundred bytes instead of the
//!   several KB of a live 2-digit histogram. A late response unpacks it
//!   again, and it is packed on the next sweep;
//! - a run that outgrows [`MAX_BUCKETS`] buckets merges neighbours
//!   pairwise and doubles the bucket length, with the per-endpoint and
//!   retry rows, so lengths are always `2^k` seconds and two recorders'
//!   timelines merge exactly by coarsening the finer one first. A run keeps
//!   1-second resolution for its first hour, 2 s up to two hours, and so on.
//!
//! [`Stats::bucket_s`]: crate::Stats::bucket_s

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Hist;

/// The most buckets a timeline keeps; one more doubles their length.
pub const MAX_BUCKETS: usize = 3600;

/// How many buckets behind the newest one a bucket's histogram stays
/// unpacked.
pub const OPEN_BUCKETS: usize = 60;

/// The latency of one timeline bucket: a histogram while requests may
/// still land in it, its serialized bytes after (a few hundred bytes
/// instead of several KB: at 1,000 requests a second the timeline then
/// grows by about 300 bytes a second, where it grew by 4-6 KB).
#[derive(Debug, Clone)]
pub enum BucketLatency {
    /// Recording (boxed, so that a packed bucket is small).
    Open(Box<Hist>),
    /// HDR V2 bytes with deflate, decoded when read.
    Packed(Box<[u8]>),
}

impl Default for BucketLatency {
    fn default() -> Self {
        BucketLatency::Open(Box::new(Hist::coarse()))
    }
}

impl BucketLatency {
    /// The histogram, decoded when packed. Bytes this type packed itself
    /// always decode; were they ever not to, the bucket reads as empty.
    pub fn hist(&self) -> Cow<'_, Hist> {
        match self {
            BucketLatency::Open(h) => Cow::Borrowed(&**h),
            BucketLatency::Packed(bytes) => {
                Cow::Owned(Hist::from_bytes(bytes).unwrap_or_else(|_| Hist::coarse()))
            }
        }
    }

    /// The histogram to record into, unpacked first when needed.
    pub fn open(&mut self) -> &mut Hist {
        if let BucketLatency::Packed(_) = self {
            *self = BucketLatency::Open(Box::new(self.hist().into_owned()));
        }
        match self {
            BucketLatency::Open(h) => h,
            // Just unpacked above.
            BucketLatency::Packed(_) => unreachable!("unpacked above"),
        }
    }

    /// Packs the histogram; stays open when it could not be serialized.
    pub fn pack(&mut self) {
        if let BucketLatency::Open(h) = self {
            if let Some(bytes) = h.to_bytes() {
                *self = BucketLatency::Packed(bytes);
            }
        }
    }

    /// Whether it is packed.
    pub fn is_packed(&self) -> bool {
        matches!(self, BucketLatency::Packed(_))
    }

    /// Adds `other`'s values; the result is packed when both were.
    pub fn merge(&mut self, other: &BucketLatency) {
        let packed = self.is_packed() && other.is_packed();
        self.open().merge(&other.hist());
        if packed {
            self.pack();
        }
    }

    /// How many values it holds.
    pub fn count(&self) -> u64 {
        self.hist().count()
    }
}

impl PartialEq for BucketLatency {
    fn eq(&self, other: &Self) -> bool {
        self.hist() == other.hist()
    }
}

impl Serialize for BucketLatency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.hist().serialize(s)
    }
}

impl<'de> Deserialize<'de> for BucketLatency {
    /// Read back packed: a file's timeline is read, not recorded into.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut l = BucketLatency::Open(Box::new(Hist::deserialize(d)?));
        l.pack();
        Ok(l)
    }
}

/// Adds rows pairwise: `[a, b, c]` becomes `[a + b, c]`.
pub(crate) fn pair_rows<const N: usize>(rows: &mut Vec<[u64; N]>) {
    let paired = rows
        .chunks(2)
        .map(|pair| {
            let mut sum = pair[0];
            if let Some(second) = pair.get(1) {
                for (a, b) in sum.iter_mut().zip(second) {
                    *a += b;
                }
            }
            sum
        })
        .collect();
    *rows = paired;
}

/// Adds `theirs` into `ours` row by row, growing `ours` as needed.
pub(crate) fn add_rows<const N: usize>(ours: &mut Vec<[u64; N]>, theirs: &[[u64; N]]) {
    if ours.len() < theirs.len() {
        ours.resize(theirs.len(), [0; N]);
    }
    for (o, t) in ours.iter_mut().zip(theirs) {
        for (a, b) in o.iter_mut().zip(t) {
            *a += b;
        }
    }
}
