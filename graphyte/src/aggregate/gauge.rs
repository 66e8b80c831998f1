//! Gauges: `gauge!` stores the latest value in one atomic; every interval
//! sends whatever value is there.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Bits meaning "never set". A NaN, which `gauge!` never stores.
const UNSET: u64 = 0x7ff8_0000_dead_beef;

/// One gauge series: the latest value, as `f64` bits.
#[derive(Debug)]
pub(crate) struct Gauge {
    bits: AtomicU64,
    /// Set by every `set`, cleared by the drain: a gauge set to the same
    /// value every interval is still in use.
    touched: AtomicBool,
    /// Pinned, retired (see [`Life`](super::Life)).
    pub(crate) life: super::Life,
    name: Box<str>,
    /// What the drains did with it; only the drain takes this lock.
    pub(super) drained: Mutex<GaugeDrained>,
}

impl Gauge {
    pub(crate) fn new(name: Box<str>) -> Gauge {
        Gauge {
            bits: AtomicU64::new(UNSET),
            touched: AtomicBool::new(false),
            life: super::Life::default(),
            name,
            drained: Mutex::default(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Stores the latest value (finite: callers check).
    #[inline]
    pub(crate) fn set(&self, value: f64) {
        debug_assert!(value.is_finite());
        self.bits.store(value.to_bits(), Ordering::Relaxed);
        // Step U1 of the expiry protocol (see `Life`).
        self.touched.store(true, Ordering::SeqCst);
    }

    /// Adds `delta` to the value (a value never set counts as 0).
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn add(&self, delta: f64) {
        let _ = self
            .bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let value = if bits == UNSET {
                    0.0
                } else {
                    f64::from_bits(bits)
                };
                let sum = value + delta;
                // An overflow to infinity keeps the last finite value.
                sum.is_finite().then(|| sum.to_bits())
            });
        self.touched.store(true, Ordering::SeqCst);
    }

    /// The latest value, if one was ever set.
    pub(crate) fn get(&self) -> Option<f64> {
        let bits = self.bits.load(Ordering::Relaxed);
        (bits != UNSET).then(|| f64::from_bits(bits))
    }

    /// Whether it was set since the last call (and clears that).
    pub(super) fn take_touched(&self) -> bool {
        self.touched.swap(false, Ordering::SeqCst)
    }

    /// Whether it was set since the last [`take_touched`](Gauge::take_touched).
    pub(super) fn has_pending(&self) -> bool {
        self.touched.load(Ordering::SeqCst)
    }
}

/// A gauge's state between drains.
#[derive(Debug, Default)]
pub(crate) struct GaugeDrained {
    /// The bits of the value sent last, if any.
    pub(super) sent: Option<u64>,
    /// The start of the last interval in which it was set.
    pub(super) active: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_value() {
        let g = Gauge::new("g".into());
        assert_eq!(g.get(), None);
        g.set(1.5);
        g.set(-0.0);
        assert_eq!(g.get().map(f64::to_bits), Some((-0.0f64).to_bits()));
        g.set(42.0);
        assert_eq!(g.get(), Some(42.0));
        assert_eq!(g.name(), "g");
    }
}
