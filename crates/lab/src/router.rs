//! Several apps behind Host headers, each placed on an address (a slot)
//! by a small orchestrator (incidents I5 and I10).
//!
//! Requests find their app through two tables: host to slot, and slot to
//! the app placed there. A deploy restarts Fundfill on a new slot. Done
//! right, the new slot is taken and pointed at before the old one is
//! released. Under `--misroute` the restart releases the old slot first,
//! the orchestrator immediately places another app's pending instance on
//! the first free slot (that one), and only after the new instance has
//! booted is Fundfill's host pointed at its new slot. Meanwhile Fundfill's
//! visitors get the other app's site, with a 200: the more deploys, the
//! more of them.

use std::sync::Mutex;
use std::time::Duration;

/// The apps the lab hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum App {
    /// The crowdfunding site: every host but the other app's.
    Fundfill,
    /// Another customer's site, at `bounty.lab.test`.
    Bounty,
}

/// The other app's host name.
pub const BOUNTY_HOST: &str = "bounty.lab.test";

/// How long a restarted instance takes to boot.
pub const BOOT: Duration = Duration::from_millis(1);

struct Table {
    /// What runs on each slot.
    slots: Vec<Option<App>>,
    /// Fundfill's and Bounty's slots.
    host_slot: [usize; 2],
    /// Released slots, the most recently released last.
    free: Vec<usize>,
}

impl Table {
    fn take_free(&mut self) -> usize {
        self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        })
    }
}

/// The routing tables.
pub struct Router {
    misroute: bool,
    table: Mutex<Table>,
}

fn index(app: App) -> usize {
    match app {
        App::Fundfill => 0,
        App::Bounty => 1,
    }
}

impl Router {
    /// Fundfill on slot 0, Bounty on slot 1.
    pub fn new(misroute: bool) -> Router {
        Router {
            misroute,
            table: Mutex::new(Table {
                slots: vec![Some(App::Fundfill), Some(App::Bounty)],
                host_slot: [0, 1],
                free: Vec::new(),
            }),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The app a request for `host` reaches, and whether that is not the
    /// app the host names (a misrouted request).
    pub fn route(&self, host: &str) -> (App, bool) {
        let name = host.split(':').next().unwrap_or_default();
        let wanted = if name.eq_ignore_ascii_case(BOUNTY_HOST) {
            App::Bounty
        } else {
            App::Fundfill
        };
        let t = self.table();
        let app = t.slots[t.host_slot[index(wanted)]].unwrap_or(wanted);
        (app, app != wanted)
    }

    /// Restarts Fundfill on a new slot; see the module docs.
    pub async fn restart_fundfill(&self) {
        let stopped = self.stop_fundfill();
        tokio::time::sleep(BOOT).await;
        self.start_fundfill(stopped);
    }

    /// The first half of a restart: with `--misroute`, releases Fundfill's
    /// slot, which the orchestrator hands to the other app at once.
    /// Returns the released slot.
    pub(crate) fn stop_fundfill(&self) -> Option<usize> {
        let mut t = self.table();
        if !self.misroute {
            // Done right: the new instance's slot is taken and pointed at
            // before the old one is released.
            let new = t.take_free();
            t.slots[new] = Some(App::Fundfill);
            let old = std::mem::replace(&mut t.host_slot[0], new);
            t.slots[old] = None;
            t.free.push(old);
            return None;
        }
        let old = t.host_slot[0];
        t.slots[old] = None;
        t.free.push(old);
        // The orchestrator places Bounty's pending instance on the first
        // free slot: the one just released.
        let placed = t.take_free();
        t.slots[placed] = Some(App::Bounty);
        Some(old)
    }

    /// The second half: the booted instance gets a slot and the host is
    /// pointed at it; the stray instance on the old slot is evicted.
    pub(crate) fn start_fundfill(&self, stopped: Option<usize>) {
        let Some(old) = stopped else { return };
        let mut t = self.table();
        let new = t.take_free();
        t.slots[new] = Some(App::Fundfill);
        t.host_slot[0] = new;
        t.slots[old] = None;
        t.free.push(old);
    }
}
