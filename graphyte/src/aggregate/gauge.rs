//! Gauges: `gauge!` stores the latest value in one atomic; every interval
//! sends whatever value is there.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bits meaning "never set". A NaN, which `gauge!` never stores.
const UNSET: u64 = 0x7ff8_0000_dead_beef;

/// One gauge series: the latest value, as `f64` bits.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Gauge {
    bits: AtomicU64,
    name: Box<str>,
}

impl Gauge {
    pub(crate) fn new(name: Box<str>) -> Gauge {
        Gauge {
            bits: AtomicU64::new(UNSET),
            name,
        }
    }

    /// The full name (path and inline tags).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Stores a finite value. One atomic store.
    #[inline]
    pub(crate) fn set(&self, value: f64) {
        debug_assert!(value.is_finite());
        self.bits.store(value.to_bits(), Ordering::Relaxed);
    }

    /// The latest value, if one was ever set.
    pub(crate) fn get(&self) -> Option<f64> {
        let bits = self.bits.load(Ordering::Relaxed);
        (bits != UNSET).then(|| f64::from_bits(bits))
    }
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
