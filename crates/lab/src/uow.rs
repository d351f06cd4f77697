//! Units of work: the context in which a request's database changes are
//! collected and flushed together (incident I9).
//!
//! Two code paths open units of work: a write (a pledge, a profile
//! change), whose unit collects the change and flushes it when it closes,
//! and the session tracker, which records a user's last visit at most once
//! a second. Done right (`shared = false`), each gets a unit of its own.
//! Under `--race` both open theirs on one shared context: opening a unit
//! takes the context over, closing one releases it. Between opening and
//! closing its unit, a write lets the framework's before-commit hooks run
//! as a task of their own, the one moment other requests run meanwhile. If
//! one of them opens a unit then (the tracker, or another write), the
//! write finds its unit gone and the page shows "An error has occurred",
//! with a 200. With a few requests at a time there is rarely anything else
//! ready to run at that moment; under heavy concurrency there is nearly
//! always, and a growing share of pledges fail.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Where units of work are opened.
pub struct Context {
    shared: bool,
    current: Mutex<Option<u64>>,
    next: AtomicU64,
}

/// An open unit of work.
#[derive(Debug)]
#[must_use = "a unit of work must be closed"]
pub struct Unit {
    id: u64,
}

/// The unit was closed, or taken over, by another code path.
#[derive(Debug, PartialEq, Eq)]
pub struct Conflict;

impl Context {
    /// A context; `shared` is the `--race` bug.
    pub fn new(shared: bool) -> Context {
        Context {
            shared,
            current: Mutex::new(None),
            next: AtomicU64::new(1),
        }
    }

    /// Opens a unit of work.
    pub fn open(&self) -> Unit {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if self.shared {
            // The bug: the shared context is taken over, whoever had it.
            *self
                .current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(id);
        }
        Unit { id }
    }

    /// Closes a unit of work; fails if another code path closed or took
    /// over the shared context since it was opened.
    pub fn close(&self, unit: Unit) -> Result<(), Conflict> {
        if !self.shared {
            return Ok(());
        }
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *current == Some(unit.id) {
            *current = None;
            Ok(())
        } else {
            Err(Conflict)
        }
    }
}
