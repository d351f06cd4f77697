//! The fund listing: pages of funds to browse, each linked by an id that
//! changes every time the lab starts (`/funds/f3a9...`), so a scenario
//! cannot hard-code one and must take it from the listing, as a visitor
//! clicks what the page shows. Numeric ids (`/funds/17`) still work.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::db::FUNDS;

/// Funds on one page of the listing.
pub const PER_PAGE: i64 = 20;

/// The listing's ids for this start, and which funds were opened by them.
pub struct Listing {
    salt: u64,
    viewed: Mutex<HashSet<i64>>,
}

impl Listing {
    /// Ids for this start: `seed` and the start time mixed.
    pub fn new(seed: u64) -> Listing {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let salt =
            (now ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xa076_1d64_78bd_642f);
        Listing {
            salt: salt | 1 << 40,
            viewed: Mutex::new(HashSet::new()),
        }
    }

    /// Fund `id`'s id in the listing.
    pub fn slug(&self, id: i64) -> String {
        format!("f{:x}", (id as u64) ^ self.salt)
    }

    /// The fund a listing id names, if it is one of this start's.
    pub fn fund_of(&self, slug: &str) -> Option<i64> {
        let hex = slug.strip_prefix('f')?;
        let id = (u64::from_str_radix(hex, 16).ok()? ^ self.salt) as i64;
        (1..=FUNDS).contains(&id).then_some(id)
    }

    /// Notes that fund `id` was opened from the listing; true the first time.
    pub fn opened(&self, id: i64) -> bool {
        self.viewed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id)
    }

    /// The listing's pages.
    pub fn pages() -> i64 {
        (FUNDS + PER_PAGE - 1) / PER_PAGE
    }
}

/// The page number a query asks for (`page=N`, from 0), if in range.
pub fn page_of(query: &str) -> Option<i64> {
    let page = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("page="))
        .map_or(Some(0), |v| v.parse::<i64>().ok())?;
    (0..Listing::pages()).contains(&page).then_some(page)
}
