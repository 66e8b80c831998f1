//! Whether a series is pinned (a literal call site holds it, so it is never
//! removed) or retired (removed from the registry because it was idle), and
//! the protocol that lets a drain free an idle series while `metrics`
//! handles to it still exist, without losing an update made through one.
//!
//! # The protocol
//! A handle's update is two steps, both `SeqCst`:
//! * **U1** apply the update to the series (an atomic write that the
//!   series' `has_pending` reads: the counter's sum, the gauge's or
//!   distribution's `touched` flag);
//! * **U2** load `retired`; if it is set, take what the series holds
//!   (the counter's sum, the distribution's buckets) and move it into the
//!   live series of the same name, which the registry finds or makes.
//!
//! A drain removes an idle series under its shard's write lock, so no
//! lookup can find it meanwhile, in three steps, all `SeqCst`:
//! * **D1** set `retired`;
//! * **D2** read `has_pending`;
//! * **D3** if something is pending, clear `retired` and keep the series
//!   (it was updated after the drain looked at it: the next drain sends
//!   it); otherwise remove it from the index. The series is freed when the
//!   last handle to it goes.
//!
//! Why nothing is lost: all six steps are in one total order. If U1 comes
//! before D2, D2 sees it and the series is kept with the update in it. If
//! U1 comes after D2, then D1 came before U2 too, and U2 sees `retired`
//! (unless D3 cleared it, in which case the series is kept and still holds
//! the update), so the updater moves the update itself. A mover that finds
//! the same series still in the index (D3 kept it) moves nothing. Movers
//! take with atomic swaps, so two of them never move the same value.
//!
//! `tests::protocol` checks every interleaving of these steps for two
//! updaters and a drain; `tests/expiry_stress.rs` runs the real thing.

use std::sync::atomic::{AtomicU8, Ordering};

const PINNED: u8 = 1;
const RETIRED: u8 = 2;

/// A series' pinned and retired flags.
#[derive(Debug, Default)]
pub(crate) struct Life(AtomicU8);

impl Life {
    /// Marks it held by a literal call site: never removed.
    pub(crate) fn pin(&self) {
        if self.0.load(Ordering::Relaxed) & PINNED == 0 {
            self.0.fetch_or(PINNED, Ordering::Relaxed);
        }
    }

    pub(crate) fn pinned(&self) -> bool {
        self.0.load(Ordering::Relaxed) & PINNED != 0
    }

    /// D1.
    pub(crate) fn retire(&self) {
        self.0.fetch_or(RETIRED, Ordering::SeqCst);
    }

    /// D3, when the series is kept.
    pub(crate) fn keep(&self) {
        self.0.fetch_and(!RETIRED, Ordering::SeqCst);
    }

    /// U2: whether the drain removed (or is removing) it.
    #[inline]
    pub(crate) fn retired(&self) -> bool {
        self.0.load(Ordering::SeqCst) & RETIRED != 0
    }
}
