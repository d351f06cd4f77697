//! Live connections' numbers: a WebSocket endpoint's attempts, upgrades,
//! messages, round trips and closes, and its open connections over time.
//!
//! A live step is one sample on its endpoint (and in the totals), like a
//! request: due at the step's intended start, its latency the upgrade
//! time, its outcome the session's (an upgrade refused, a socket closed
//! abnormally or an `expect` that waited in vain is a failure of one of
//! the [`crate::ErrorKind`]s). What happens on the socket is counted
//! here, per endpoint.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::timeline::{add_rows, pair_rows};
use crate::Hist;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A time a live endpoint measures besides its upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveTime {
    /// A WebSocket message's round trip.
    RoundTrip,
    /// An event stream's time to its first event.
    FirstEvent,
    /// A gap between two events of a stream.
    Gap,
}

/// A close code for a connection that ended without a close frame
/// (RFC 6455 7.1.5: 1006, never sent on the wire).
pub const CLOSED_ABNORMALLY: u16 = 1006;

/// One live endpoint's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveStats {
    /// `ws`.
    pub protocol: String,
    /// Connections tried (every session that reached the step and was
    /// not refused for a missing value).
    pub attempted: u64,
    /// Upgraded to a WebSocket (101).
    pub opened: u64,
    /// Never reached the server: refused, failed to connect, TLS, timed
    /// out before an answer.
    pub refused: u64,
    /// Answered with another status than 101, by status (0: no valid
    /// HTTP answer).
    pub upgrade_failed: BTreeMap<u16, u64>,
    /// Upgrade time, from the step's intended start to the 101, of every
    /// connection opened.
    pub upgrade: Hist,
    /// Messages sent.
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Messages dropped from a full queue before an `expect` read them.
    pub dropped: u64,
    /// `expect`s that saw no matching message in time.
    pub expect_timeouts: u64,
    /// Round trips: from a `send`'s intended time to the message that
    /// answered it (the `expect` after it, or an `every`'s reply).
    pub round_trip: Hist,
    /// An event stream's time to its first event, from the step's
    /// intended start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_event: Option<Hist>,
    /// An event stream's gaps between consecutive events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gaps: Option<Hist>,
    /// An event stream's reconnections (each also an attempt).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reconnects: u64,
    /// Closes the server began or connections that dropped, by code
    /// ([`CLOSED_ABNORMALLY`] for none).
    pub closed_by_server: BTreeMap<u16, u64>,
    /// Sockets throng closed (a `close` action, the session's end or the
    /// run's).
    pub closed_by_client: u64,
    /// Per timeline bucket (of the time it happened, from the run's
    /// start): `[opened, closed]`; open connections at a bucket's end are
    /// the sums so far of opened minus closed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seconds: Vec<[u64; 2]>,
}

impl LiveStats {
    /// Empty numbers for a `protocol` endpoint.
    pub fn new(protocol: &str) -> LiveStats {
        LiveStats {
            protocol: protocol.to_string(),
            attempted: 0,
            opened: 0,
            refused: 0,
            upgrade_failed: BTreeMap::new(),
            upgrade: Hist::new(),
            sent: 0,
            received: 0,
            bytes_sent: 0,
            bytes_received: 0,
            dropped: 0,
            expect_timeouts: 0,
            round_trip: Hist::new(),
            first_event: None,
            gaps: None,
            reconnects: 0,
            closed_by_server: BTreeMap::new(),
            closed_by_client: 0,
            seconds: Vec::new(),
        }
    }

    /// Attempts that never opened: refused, or not upgraded.
    pub fn not_opened(&self) -> u64 {
        self.attempted.saturating_sub(self.opened)
    }

    /// The most connections open at once at the end of any bucket.
    pub fn peak_open(&self) -> u64 {
        let mut open: i64 = 0;
        let mut peak: i64 = 0;
        for [o, c] in &self.seconds {
            open += *o as i64 - *c as i64;
            peak = peak.max(open);
        }
        peak.max(0) as u64
    }

    /// Connections open at the end of each bucket.
    pub fn open_over_time(&self) -> Vec<u64> {
        let mut open: i64 = 0;
        self.seconds
            .iter()
            .map(|[o, c]| {
                open += *o as i64 - *c as i64;
                open.max(0) as u64
            })
            .collect()
    }

    /// Adds `other`'s numbers (buckets of the same length).
    pub fn merge(&mut self, other: &LiveStats) {
        self.attempted += other.attempted;
        self.opened += other.opened;
        self.refused += other.refused;
        for (k, n) in &other.upgrade_failed {
            *self.upgrade_failed.entry(*k).or_insert(0) += n;
        }
        self.upgrade.merge(&other.upgrade);
        self.sent += other.sent;
        self.received += other.received;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.dropped += other.dropped;
        self.expect_timeouts += other.expect_timeouts;
        self.round_trip.merge(&other.round_trip);
        for (ours, theirs) in [
            (&mut self.first_event, &other.first_event),
            (&mut self.gaps, &other.gaps),
        ] {
            if let Some(t) = theirs {
                ours.get_or_insert_with(Hist::new).merge(t);
            }
        }
        self.reconnects += other.reconnects;
        for (k, n) in &other.closed_by_server {
            *self.closed_by_server.entry(*k).or_insert(0) += n;
        }
        self.closed_by_client += other.closed_by_client;
        add_rows(&mut self.seconds, &other.seconds);
    }

    /// Halves the rows' resolution (see [`crate::Stats::coarsen`]).
    pub(crate) fn coarsen(&mut self) {
        pair_rows(&mut self.seconds);
    }

    fn row(&mut self, bucket: usize) -> &mut [u64; 2] {
        if self.seconds.len() <= bucket {
            self.seconds.resize(bucket + 1, [0; 2]);
        }
        &mut self.seconds[bucket]
    }
}

/// Live connections' numbers for the live view: since the last report,
/// or since the start once added up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveCounts {
    /// Connections upgraded.
    pub opened: u64,
    /// Connections that were open and ended.
    pub closed: u64,
    /// Messages sent (counted when their connection ends).
    pub sent: u64,
    /// Messages received (counted when their connection ends).
    pub received: u64,
}

impl LiveCounts {
    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &LiveCounts) {
        self.opened += other.opened;
        self.closed += other.closed;
        self.sent += other.sent;
        self.received += other.received;
    }

    /// Connections open now (opened and not yet ended).
    pub fn open(&self) -> u64 {
        self.opened.saturating_sub(self.closed)
    }
}

/// What a worker saw of one live connection, recorded when it ends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveSession {
    /// It never reached the server.
    pub refused: bool,
    /// The status of an upgrade that was refused (0: no valid answer).
    pub upgrade_failed: Option<u16>,
    /// It was upgraded (recorded then, with
    /// [`crate::Stats::record_live_open`]).
    pub opened: bool,
    /// When (from the run's start) it closed, if it opened.
    pub closed_at: Option<Duration>,
    /// The server's close code ([`CLOSED_ABNORMALLY`] for a drop), when
    /// the server ended it; `None` when throng closed it.
    pub server_close: Option<u16>,
    /// Messages and payload bytes sent.
    pub sent: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Messages received.
    pub received: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Messages dropped from the full queue.
    pub dropped: u64,
    /// It was a stream's reconnection.
    pub reconnect: bool,
    /// `expect`s that timed out.
    pub expect_timeouts: u64,
}

impl crate::Stats {
    /// The live numbers of `endpoint`, made on first use.
    pub fn live_mut(&mut self, endpoint: usize, protocol: &str) -> Option<&mut LiveStats> {
        let ep = self.endpoints.get_mut(endpoint)?;
        Some(
            ep.live
                .get_or_insert_with(|| Box::new(LiveStats::new(protocol))),
        )
    }

    /// Records a live connection upgraded in `upgrade`, at `at` from the
    /// run's start.
    pub fn record_live_open(
        &mut self,
        endpoint: usize,
        protocol: &str,
        upgrade: Duration,
        at: Duration,
    ) {
        let bucket = self.bucket_of(at);
        if let Some(live) = self.live_mut(endpoint, protocol) {
            live.opened += 1;
            live.upgrade.record(upgrade);
            live.row(bucket)[0] += 1;
        }
    }

    /// Records a live connection's counts when it ends (its sample is
    /// recorded as any request's, with [`crate::Stats::record`]; its
    /// upgrade, when it opened, with [`crate::Stats::record_live_open`]).
    pub fn record_live(&mut self, endpoint: usize, protocol: &str, s: &LiveSession) {
        let closed_bucket = match (s.opened, s.closed_at) {
            (true, Some(at)) => Some(self.bucket_of(at)),
            _ => None,
        };
        let Some(live) = self.live_mut(endpoint, protocol) else {
            return;
        };
        live.attempted += 1;
        live.refused += u64::from(s.refused);
        if let Some(status) = s.upgrade_failed {
            *live.upgrade_failed.entry(status).or_insert(0) += 1;
        }
        if let Some(b) = closed_bucket {
            live.row(b)[1] += 1;
            match s.server_close {
                Some(code) => *live.closed_by_server.entry(code).or_insert(0) += 1,
                None => live.closed_by_client += 1,
            }
        }
        live.sent += s.sent;
        live.bytes_sent += s.bytes_sent;
        live.received += s.received;
        live.bytes_received += s.bytes_received;
        live.dropped += s.dropped;
        live.expect_timeouts += s.expect_timeouts;
        live.reconnects += u64::from(s.reconnect);
    }

    /// Records one of `endpoint`'s times: a round trip, a time to the
    /// first event, a gap.
    pub fn record_live_time(
        &mut self,
        endpoint: usize,
        protocol: &str,
        what: LiveTime,
        d: Duration,
    ) {
        if let Some(live) = self.live_mut(endpoint, protocol) {
            match what {
                LiveTime::RoundTrip => live.round_trip.record(d),
                LiveTime::FirstEvent => live.first_event.get_or_insert_with(Hist::new).record(d),
                LiveTime::Gap => live.gaps.get_or_insert_with(Hist::new).record(d),
            }
        }
    }
}
