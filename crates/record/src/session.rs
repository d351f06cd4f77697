//! Which session a request belongs to. Pure: the caller passes what it
//! saw and the time.
//!
//! With a session header (`--session-header`), its value is the session.
//! Otherwise cookies are: a request that sends back a cookie value a
//! response of session S set (or that a request of S sent) is in S; a
//! request with cookies none of which has been seen starts a session its
//! cookies then name; a request with no cookie belongs to its
//! connection's session (a client's first requests, before it has any).
//! Values are kept as keyed hashes, never as text, and forgotten after
//! [`IDLE`] without use, so memory follows the active clients.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::time::Duration;

/// A session idle for this long is forgotten; its client's next request
/// starts another.
pub const IDLE: Duration = Duration::from_secs(30 * 60);

/// What names a request's session.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The connection it came on (numbered by the recorder).
    pub connection: u64,
    /// The session header's value, if one was named and sent.
    pub header: Option<&'a str>,
    /// The request's cookie values.
    pub cookies: &'a [&'a str],
}

/// The sessions seen so far.
pub struct Sessions {
    hasher: std::hash::RandomState,
    /// A cookie value's or header value's hash: its session and last use.
    by_value: HashMap<u64, (u64, Duration)>,
    /// A connection's session (for requests without cookies).
    by_connection: HashMap<u64, (u64, Duration)>,
    /// Sessions some cookie names.
    named: HashSet<u64>,
    /// When each session was last seen; sessions the last sweep forgot.
    last: HashMap<u64, Duration>,
    forgotten: Vec<u64>,
    next: u64,
    swept: Duration,
}

impl Default for Sessions {
    fn default() -> Sessions {
        Sessions::new()
    }
}

impl Sessions {
    /// No sessions yet.
    pub fn new() -> Sessions {
        Sessions {
            hasher: std::hash::RandomState::new(),
            by_value: HashMap::new(),
            by_connection: HashMap::new(),
            named: HashSet::new(),
            last: HashMap::new(),
            forgotten: Vec::new(),
            next: 0,
            swept: Duration::ZERO,
        }
    }

    /// Sessions started so far.
    pub fn count(&self) -> u64 {
        self.next
    }

    fn fresh(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// The session of a request seen at `now`.
    pub fn of(&mut self, seen: Seen<'_>, now: Duration) -> u64 {
        self.sweep(now);
        if let Some(value) = seen.header {
            let key = self.hasher.hash_one(("header", value));
            return match self.by_value.get_mut(&key) {
                Some((session, last)) => {
                    *last = now;
                    *session
                }
                None => {
                    let session = self.fresh();
                    self.by_value.insert(key, (session, now));
                    session
                }
            };
        }
        let known = seen.cookies.iter().find_map(|c| {
            let key = self.hasher.hash_one(("cookie", c));
            self.by_value.get(&key).map(|&(s, _)| s)
        });
        let session = match (known, seen.cookies.is_empty()) {
            (Some(s), _) => s,
            (None, true) => match self.by_connection.get(&seen.connection) {
                Some(&(s, _)) => s,
                None => self.fresh(),
            },
            // Cookies set before the recording began: the connection's
            // session if it has one without cookies yet, else a new one.
            (None, false) => match self.by_connection.get(&seen.connection) {
                Some(&(s, _)) if !self.named.contains(&s) => s,
                _ => self.fresh(),
            },
        };
        self.by_connection.insert(seen.connection, (session, now));
        self.learn(session, seen.cookies, now);
        self.last.insert(session, now);
        session
    }

    /// Cookie values a response of `session` set, or its request sent:
    /// later requests sending them back are in it.
    pub fn learn(&mut self, session: u64, cookies: &[&str], now: Duration) {
        for c in cookies {
            if c.is_empty() {
                continue;
            }
            let key = self.hasher.hash_one(("cookie", c));
            self.by_value.insert(key, (session, now));
            self.named.insert(session);
        }
    }

    fn sweep(&mut self, now: Duration) {
        if now.saturating_sub(self.swept) < Duration::from_secs(60) {
            return;
        }
        self.swept = now;
        self.by_value
            .retain(|_, &mut (_, last)| now.saturating_sub(last) < IDLE);
        self.by_connection
            .retain(|_, &mut (_, last)| now.saturating_sub(last) < IDLE);
        self.named = self.by_value.values().map(|&(s, _)| s).collect();
        let forgotten = &mut self.forgotten;
        self.last.retain(|&s, &mut last| {
            let keep = now.saturating_sub(last) < IDLE;
            if !keep {
                forgotten.push(s);
            }
            keep
        });
    }

    /// Sessions forgotten since the last call (idle for [`IDLE`]): their
    /// other state can go too.
    pub fn take_forgotten(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.forgotten)
    }
}
