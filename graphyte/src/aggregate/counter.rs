//! Counters: `count!` adds to one atomic; every interval takes the sum by
//! swapping it with zero, so no increment is lost or counted twice.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};

use crate::value::Value;

/// What [`count!`](crate::count) accepts as its delta: every primitive
/// integer type.
///
/// In interval mode deltas are summed as `i64` (wrapping), so a `u64`,
/// `usize`, `u128` or `i128` delta beyond `i64`'s range is clamped to it.
/// In synchronous mode the delta is sent as given.
#[diagnostic::on_unimplemented(
    message = "`count!` takes an integer delta, not `{Self}`",
    label = "not an integer",
    note = "use `gauge!` for a value that goes up and down, such as a float"
)]
pub trait CountDelta: Value {
    /// The delta as an `i64`, clamped to its range.
    #[doc(hidden)]
    fn to_i64(self) -> i64;
}

macro_rules! lossless {
    ($($t:ty)*) => {$(
        impl CountDelta for $t {
            #[inline]
            fn to_i64(self) -> i64 {
                i64::from(self)
            }
        }
    )*};
}
lossless!(i8 i16 i32 i64 u8 u16 u32);

macro_rules! clamped {
    ($($t:ty)*) => {$(
        impl CountDelta for $t {
            #[inline]
            fn to_i64(self) -> i64 {
                match i64::try_from(self) {
                    Ok(v) => v,
                    Err(_) if self > 0 => i64::MAX,
                    Err(_) => i64::MIN,
                }
            }
        }
    )*};
}
clamped!(u64 usize u128 i128 isize);

/// [`Counter::absolute`]'s "never set".
const NO_ABSOLUTE: u64 = u64::MAX;

/// One counter series: the sum of the deltas since the last drain.
#[derive(Debug)]
pub(crate) struct Counter {
    sum: AtomicI64,
    /// The latest absolute value (`metrics`' `Counter::absolute`), if it
    /// was ever set; [`NO_ABSOLUTE`] otherwise.
    absolute: AtomicU64,
    /// Set by every `set_absolute`, cleared by the drain.
    absolute_touched: AtomicBool,
    /// Pinned, retired (see [`Life`](super::Life)).
    pub(crate) life: super::Life,
    name: Box<str>,
    /// The tag of the `metrics` key it is filed under, 0 if none (see
    /// [`keys`](super::keys)).
    pub(super) key: AtomicU32,
    /// What the drains did with it; only the drain uses it.
    pub(super) drained: DrainedCell,
}

impl Counter {
    pub(crate) fn new(name: Box<str>) -> Counter {
        Counter {
            sum: AtomicI64::new(0),
            absolute: AtomicU64::new(NO_ABSOLUTE),
            absolute_touched: AtomicBool::new(false),
            life: super::Life::default(),
            name,
            key: AtomicU32::new(0),
            drained: DrainedCell::default(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Adds `delta` (wrapping).
    #[inline]
    pub(crate) fn add(&self, delta: i64) {
        self.sum.fetch_add(delta, Ordering::Relaxed);
    }

    /// Adds `delta` as a `metrics` handle does: step U1 of the expiry
    /// protocol (see [`Life`](super::Life)), `SeqCst` (on x86 the same
    /// instruction as a relaxed add).
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn add_tracked(&self, delta: i64) {
        self.sum.fetch_add(delta, Ordering::SeqCst);
    }

    /// Plain reads of both cache lines a drain touches (see
    /// [`Series::warm`](super::Series::warm)).
    #[inline]
    pub(super) fn warm(&self) -> u64 {
        self.sum.load(Ordering::Relaxed) as u64 ^ self.drained.warm()
    }

    /// Takes the sum since the last take.
    pub(crate) fn take(&self) -> i64 {
        self.sum.swap(0, Ordering::SeqCst)
    }

    /// Sets the counter's absolute value (a cumulative total kept
    /// elsewhere): from then on the drains send the latest one each
    /// interval instead of sums. `u64::MAX` is kept as `u64::MAX - 1`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn set_absolute(&self, value: u64) {
        self.absolute
            .store(value.min(NO_ABSOLUTE - 1), Ordering::Relaxed);
        self.absolute_touched.store(true, Ordering::SeqCst);
    }

    /// The latest absolute value, if one was ever set, and whether it was
    /// set since the last call.
    pub(super) fn take_absolute(&self) -> Option<(u64, bool)> {
        let value = self.absolute.load(Ordering::Relaxed);
        (value != NO_ABSOLUTE)
            .then(|| (value, self.absolute_touched.swap(false, Ordering::Relaxed)))
    }

    /// Whether anything was added (or set) since the last take (step D2
    /// of the expiry protocol: `SeqCst`).
    pub(super) fn has_pending(&self) -> bool {
        self.sum.load(Ordering::SeqCst) != 0 || self.absolute_touched.load(Ordering::SeqCst)
    }

    /// The latest absolute value, if one was ever set (what a handle of a
    /// retired counter hands on).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn absolute(&self) -> Option<u64> {
        let value = self.absolute.load(Ordering::Relaxed);
        (value != NO_ABSOLUTE).then_some(value)
    }
}

/// A counter's state between drains.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CounterDrained {
    /// The timestamp of the last line sent, and the total sent with it.
    pub(super) ts: Option<i64>,
    pub(super) total: i64,
    /// The start of the last interval with a non-zero sum.
    pub(super) active: Option<i64>,
}

/// Where a [`CounterDrained`] is kept: plain atomics, read and written only
/// by the drain (the drains of a registry take turns, under its scratch
/// lock), so no lock of its own. `i64::MIN` stands for `None` (timestamps
/// are Unix seconds).
#[derive(Debug)]
pub(crate) struct DrainedCell {
    ts: AtomicI64,
    total: AtomicI64,
    active: AtomicI64,
}

const NONE: i64 = i64::MIN;

impl Default for DrainedCell {
    fn default() -> DrainedCell {
        DrainedCell {
            ts: AtomicI64::new(NONE),
            total: AtomicI64::new(0),
            active: AtomicI64::new(NONE),
        }
    }
}

fn get(cell: &AtomicI64) -> Option<i64> {
    let v = cell.load(Ordering::Relaxed);
    (v != NONE).then_some(v)
}

impl DrainedCell {
    /// A plain read of it (see [`Counter::warm`]).
    #[inline]
    fn warm(&self) -> u64 {
        self.active.load(Ordering::Relaxed) as u64
    }

    /// The state, to change; written back when the returned guard goes.
    pub(super) fn edit(&self) -> DrainedEdit<'_> {
        DrainedEdit {
            cell: self,
            state: CounterDrained {
                ts: get(&self.ts),
                total: self.total.load(Ordering::Relaxed),
                active: get(&self.active),
            },
        }
    }
}

/// A [`CounterDrained`] being changed by the drain.
pub(super) struct DrainedEdit<'a> {
    cell: &'a DrainedCell,
    state: CounterDrained,
}

impl std::ops::Deref for DrainedEdit<'_> {
    type Target = CounterDrained;
    fn deref(&self) -> &CounterDrained {
        &self.state
    }
}

impl std::ops::DerefMut for DrainedEdit<'_> {
    fn deref_mut(&mut self) -> &mut CounterDrained {
        &mut self.state
    }
}

impl Drop for DrainedEdit<'_> {
    fn drop(&mut self) {
        let s = self.state;
        self.cell.ts.store(s.ts.unwrap_or(NONE), Ordering::Relaxed);
        self.cell.total.store(s.total, Ordering::Relaxed);
        self.cell
            .active
            .store(s.active.unwrap_or(NONE), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_convert_and_clamp() {
        assert_eq!(5u8.to_i64(), 5);
        assert_eq!((-5i32).to_i64(), -5);
        assert_eq!(u64::MAX.to_i64(), i64::MAX);
        assert_eq!(u128::MAX.to_i64(), i64::MAX);
        assert_eq!(i128::MIN.to_i64(), i64::MIN);
        assert_eq!(usize::MAX.to_i64(), i64::MAX);
        assert_eq!((-3isize).to_i64(), -3);
    }

    #[test]
    fn a_counter_fits_a_cache_line() {
        // What every counter series costs besides its name and index entry.
        assert!(
            std::mem::size_of::<Counter>() <= 64,
            "{}",
            std::mem::size_of::<Counter>()
        );
    }

    #[test]
    fn concurrent_adds_are_taken_exactly_once() {
        let counter = Counter::new("c".into());
        let taken = std::thread::scope(|s| {
            let adders: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        for _ in 0..100_000 {
                            counter.add(1);
                        }
                    })
                })
                .collect();
            let mut taken = 0;
            while !adders.iter().all(|a| a.is_finished()) {
                taken += counter.take();
            }
            taken
        });
        assert_eq!(taken + counter.take(), 400_000);
    }
}
