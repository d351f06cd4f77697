//! A latency histogram in microseconds, and its percentile summary.

use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::serialization::{
    Deserializer as HdrDeserializer, Serializer as _, V2DeflateSerializer,
};
use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest value the full-precision histograms track: one hour, in µs.
const MAX_US: u64 = 3_600_000_000;

/// An HDR histogram of durations, recorded in microseconds.
///
/// `Hist::new()` keeps 3 significant digits from 1 µs to an hour (fixed
/// size, about 190 KB); `Hist::coarse()` keeps 2 digits and grows only as
/// far as the values recorded, for the many per-second buckets.
#[derive(Clone, Debug, PartialEq)]
pub struct Hist(Histogram<u64>);

/// A histogram could not be decoded from a results file.
#[derive(Debug, thiserror::Error)]
pub enum HistError {
    /// The text is not base64.
    #[error("histogram is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The bytes are not an HDR V2 histogram.
    #[error("histogram could not be decoded: {0:?}")]
    Decode(hdrhistogram::serialization::DeserializeError),
    /// The header asks for more than any histogram throng writes (a
    /// damaged or hostile file), which the decoder would allocate first.
    #[error("histogram header out of bounds: {0}")]
    Bounds(String),
}

impl Default for Hist {
    fn default() -> Self {
        Hist::new()
    }
}

impl Hist {
    /// 3 significant digits, 1 µs to 1 hour.
    pub fn new() -> Hist {
        // The bounds are constants that hdrhistogram accepts, so this
        // cannot fail; a failure would be a programming error.
        #[allow(clippy::expect_used)]
        Hist(Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds"))
    }

    /// 2 significant digits, growing as needed.
    pub fn coarse() -> Hist {
        #[allow(clippy::expect_used)]
        Hist(Histogram::new(2).expect("valid histogram precision"))
    }

    /// Records one duration. A coarse histogram grows to hold it; a
    /// full-range one clamps values beyond an hour.
    #[inline]
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        // Not `saturating_record` alone: hdrhistogram 7.5 clamps there even
        // when the histogram could auto-resize, which would pin every value
        // of a coarse histogram to its initial top of 2 µs.
        if self.0.record(us).is_err() {
            self.0.saturating_record(us);
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Hist) {
        // Adding fails only when a value does not fit; the full-range
        // histograms hold every value a coarse one can, and auto-resizing
        // ones grow, so fall back to value-by-value clamping just in case.
        if self.0.add(&other.0).is_err() {
            for v in other.0.iter_recorded() {
                let _ = self
                    .0
                    .record_n(v.value_iterated_to().min(self.0.high()), v.count_at_value());
            }
        }
    }

    /// Every distinct recorded value (µs, at the histogram's precision)
    /// with its count: the sparse form, for adding many small histograms
    /// quickly.
    pub fn recorded(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// How many values were recorded above `d` (at the histogram's
    /// precision: a value counts when its bucket lies above `d`).
    pub fn count_above(&self, d: Duration) -> u64 {
        let us = d.as_micros() as u64;
        self.recorded()
            .filter(|(v, _)| *v > us)
            .map(|(_, n)| n)
            .sum()
    }

    /// The value at quantile `q` (0..=1), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    /// min, mean, p50, p90, p95, p99, p99.9 and max, in milliseconds.
    pub fn summary(&self) -> Summary {
        let h = &self.0;
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            min: h.min() as f64 / 1000.0,
            mean: h.mean() / 1000.0,
            p50: self.quantile_ms(0.50),
            p90: self.quantile_ms(0.90),
            p95: self.quantile_ms(0.95),
            p99: self.quantile_ms(0.99),
            p999: self.quantile_ms(0.999),
            max: h.max() as f64 / 1000.0,
        }
    }

    /// The underlying HDR histogram (values in µs).
    pub fn inner(&self) -> &Histogram<u64> {
        &self.0
    }

    /// HDR V2 with deflate, as base64: the interchange form in results files.
    pub fn to_base64(&self) -> String {
        let mut bytes = Vec::new();
        // Serializing into a Vec cannot fail for I/O reasons; an error here
        // would mean an internally inconsistent histogram.
        if V2DeflateSerializer::new()
            .serialize(&self.0, &mut bytes)
            .is_err()
        {
            bytes.clear();
        }
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Reads the form written by [`to_base64`](Self::to_base64).
    pub fn from_base64(text: &str) -> Result<Hist, HistError> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text)?;
        Hist::from_bytes(&bytes)
    }

    /// HDR V2 with deflate, for the timeline's settled buckets (see
    /// `crate::timeline`): about 150 bytes for a second of 1,000
    /// responses, against 330 without deflate and several KB unpacked;
    /// deflating once a second costs a few µs.
    pub(crate) fn to_bytes(&self) -> Option<Box<[u8]>> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut bytes)
            .ok()?;
        Some(bytes.into_boxed_slice())
    }

    /// Reads HDR V2, deflated or not. A coarse histogram comes back able
    /// to grow again, as it was recorded: the decoder fixes the range at
    /// what the file says, and adding a larger value to it would otherwise
    /// clamp that value.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Hist, HistError> {
        let inflated;
        let mut plain = match word(bytes, 0) {
            Some(V2_DEFLATE) => {
                inflated = inflate(bytes)?;
                &inflated[..]
            }
            _ => bytes,
        };
        check_header(plain)?;
        let mut h: Histogram<u64> = HdrDeserializer::new()
            .deserialize(&mut plain)
            .map_err(HistError::Decode)?;
        if h.sigfig() < 3 {
            h.auto(true);
        }
        Ok(Hist(h))
    }
}

/// HDR V2's cookies (8-byte counts), plain and deflated.
const V2: u32 = 0x1c84_9313;
const V2_DEFLATE: u32 = 0x1c84_9314;
/// A V2 header's size: cookie, payload length, normalizing offset,
/// digits, lowest and highest values, integer-to-double ratio.
const V2_HEADER: usize = 40;
/// The most a stored histogram inflates to. One of 3 digits over every
/// u64 has ~56,000 counts, at most 9 bytes each: ~500 KB.
const MAX_INFLATED: u64 = 1 << 20;

/// The big-endian u32 at `at`, as V2's header fields are written.
fn word(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The plain V2 inside a deflated one, read at most [`MAX_INFLATED`]
/// bytes far.
fn inflate(bytes: &[u8]) -> Result<Vec<u8>, HistError> {
    use std::io::Read as _;
    let stream = bytes.get(8..).unwrap_or_default();
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(stream)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .map_err(|e| HistError::Bounds(format!("deflated payload: {e}")))?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(HistError::Bounds(format!(
            "inflates past {MAX_INFLATED} bytes"
        )));
    }
    Ok(out)
}

/// Refuses, before the decoder allocates for it, a plain V2 header whose
/// payload is longer than the bytes that follow it, or whose precision is
/// above the 3 digits throng records with (5 over a wide range is tens of
/// megabytes of counts, each summary a walk over all of them).
fn check_header(bytes: &[u8]) -> Result<(), HistError> {
    if word(bytes, 0) != Some(V2) || bytes.len() < V2_HEADER {
        return Ok(()); // the decoder says what is wrong
    }
    let (Some(payload), Some(digits)) = (word(bytes, 4), word(bytes, 12)) else {
        return Ok(());
    };
    let payload = payload as usize;
    let has = bytes.len() - V2_HEADER;
    if payload > has {
        return Err(HistError::Bounds(format!(
            "a payload of {payload} bytes, where {has} follow"
        )));
    }
    if digits > 3 {
        return Err(HistError::Bounds(format!(
            "{digits} significant digits (throng records 3 at most)"
        )));
    }
    Ok(())
}

impl Serialize for Hist {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Hist::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// Percentiles of a histogram, in milliseconds. All zero when empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Smallest value.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest value.
    pub max: f64,
}
