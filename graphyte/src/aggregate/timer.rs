//! Timers: what `#[timed]` records (count, sum, min, max and a histogram of
//! durations) and the per-interval summary sent as `NAME.count`, `NAME.sum`,
//! `NAME.min`, `NAME.max`, `NAME.mean`, `NAME.p50`, `NAME.p90`, `NAME.p99`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::histogram::{self, Histogram};
use crate::validate;

/// The suffixes of a timer's series, in the order they are sent.
pub(crate) const SUFFIXES: [&str; 8] = ["count", "sum", "min", "max", "mean", "p50", "p90", "p99"];

/// One timer series.
pub(crate) struct Timer {
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
    histogram: Histogram,
    /// Pinned (timers are only made for call sites).
    pub(crate) life: super::Life,
    name: Box<str>,
    /// `SUFFIXES` applied to `name`: the suffix goes on the path, before any
    /// inline tags (`db.query;env=prod` → `db.query.count;env=prod`).
    names: [Box<str>; 8],
    /// What the drains did with it; only the drain takes this lock.
    pub(super) drained: Mutex<TimerDrained>,
}

/// A timer's state between drains.
pub(crate) type TimerDrained = super::drain::SummaryDrained<Summary>;

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What a drain took from a timer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    pub(crate) count: u64,
    pub(crate) sum: u64,
    pub(crate) min: u64,
    pub(crate) max: u64,
}

impl Timer {
    pub(crate) fn new(name: Box<str>) -> Timer {
        let (path, tags) = validate::split_name(&name);
        let names = SUFFIXES.map(|suffix| match tags {
            Some(tags) => format!("{path}.{suffix};{tags}").into_boxed_str(),
            None => format!("{path}.{suffix}").into_boxed_str(),
        });
        Timer {
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
            histogram: Histogram::new(),
            life: super::Life::default(),
            name,
            names,
            drained: Mutex::default(),
        }
    }

    /// Whether a duration was recorded since the last take.
    pub(super) fn has_pending(&self) -> bool {
        self.min.load(Ordering::Relaxed) != u64::MAX
    }

    /// The timer's name (without suffixes).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The names of the eight series, in `SUFFIXES` order.
    pub(crate) fn names(&self) -> &[Box<str>; 8] {
        &self.names
    }

    /// Records one duration. The sum, min and max are written before the
    /// histogram count (with `Release`), so a drain that takes the count
    /// also takes them.
    #[inline]
    pub(crate) fn record(&self, ns: u64) {
        self.sum.fetch_add(ns, Ordering::Relaxed);
        if ns < self.min.load(Ordering::Relaxed) {
            self.min.fetch_min(ns, Ordering::Relaxed);
        }
        if ns > self.max.load(Ordering::Relaxed) {
            self.max.fetch_max(ns, Ordering::Relaxed);
        }
        self.histogram.record(ns);
    }

    /// Takes everything recorded since the last call; appends the histogram
    /// buckets to `buckets`.
    ///
    /// The count is exact: every record is counted in exactly one take. A
    /// record that races with the take may have its duration in this take's
    /// sum, min and max while its count goes to the next one; if this take
    /// counted nothing, those are put back, so totals over several intervals
    /// stay exact.
    pub(crate) fn take(&self, buckets: &mut Vec<(u32, u64)>) -> Taken {
        let count = self.histogram.drain(buckets);
        let sum = self.sum.swap(0, Ordering::Acquire);
        let min = self.min.swap(u64::MAX, Ordering::Acquire);
        let max = self.max.swap(0, Ordering::Acquire);
        if count == 0 {
            if sum > 0 || min != u64::MAX || max > 0 {
                self.sum.fetch_add(sum, Ordering::Relaxed);
                self.min.fetch_min(min, Ordering::Relaxed);
                self.max.fetch_max(max, Ordering::Relaxed);
            }
            return Taken::default();
        }
        Taken {
            count,
            sum,
            min,
            max,
        }
    }
}

/// A timer's totals for one interval, merged over the drains that share
/// its timestamp.
#[derive(Debug)]
pub(crate) struct Summary {
    pub(crate) count: u64,
    pub(crate) sum: u64,
    /// `u64::MAX` until a value is merged.
    pub(crate) min: u64,
    pub(crate) max: u64,
    buckets: BTreeMap<u32, u64>,
}

impl Default for Summary {
    fn default() -> Summary {
        Summary {
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
            buckets: BTreeMap::new(),
        }
    }
}

/// A summary's values in milliseconds, in `SUFFIXES` order after the count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Millis {
    pub(crate) sum: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
}

const NS_PER_MS: f64 = 1e6;

impl super::drain::IntervalSummary for Summary {
    type Taken = Taken;

    fn count(taken: &Taken) -> u64 {
        taken.count
    }

    fn merge(&mut self, taken: Taken, buckets: &[(u32, u64)]) {
        Summary::merge(self, taken, buckets)
    }
}

impl Summary {
    /// Adds what one take returned.
    pub(crate) fn merge(&mut self, taken: Taken, buckets: &[(u32, u64)]) {
        if taken.count == 0 {
            return;
        }
        self.count += taken.count;
        self.sum = self.sum.saturating_add(taken.sum);
        self.min = self.min.min(taken.min);
        self.max = self.max.max(taken.max);
        for &(index, n) in buckets {
            *self.buckets.entry(index).or_insert(0) += n;
        }
    }

    /// The values to send, if anything was recorded. Percentiles are
    /// nearest-rank, read from the histogram (within 0.4 %) and kept within
    /// the exact min and max; the first and last ranks are the exact min and
    /// max (so with fewer than 100 values p99 is the max).
    pub(crate) fn millis(&self) -> Option<Millis> {
        if self.count == 0 {
            return None;
        }
        // A min or max lost to a race with the drain: use the buckets' bounds.
        let first = self
            .buckets
            .keys()
            .next()
            .map(|&i| histogram::representative(i));
        let last = self
            .buckets
            .keys()
            .next_back()
            .map(|&i| histogram::representative(i));
        let min = if self.min == u64::MAX {
            first.unwrap_or(0.0)
        } else {
            self.min as f64
        };
        let max = if self.max == 0 && self.min == u64::MAX {
            last.unwrap_or(0.0)
        } else {
            self.max as f64
        };
        let max = max.max(min);
        let quantile = |q: f64| {
            // The first and last ranks are the exact min and max.
            let rank = histogram::rank(q, self.count);
            if rank == self.count {
                max
            } else if rank == 1 {
                min
            } else {
                histogram::value_at_rank(&self.buckets, rank)
                    .unwrap_or(max)
                    .clamp(min, max)
            }
        };
        Some(Millis {
            sum: self.sum as f64 / NS_PER_MS,
            min: min / NS_PER_MS,
            max: max / NS_PER_MS,
            mean: self.sum as f64 / self.count as f64 / NS_PER_MS,
            p50: quantile(0.5) / NS_PER_MS,
            p90: quantile(0.9) / NS_PER_MS,
            p99: quantile(0.99) / NS_PER_MS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn take(timer: &Timer) -> Summary {
        let mut buckets = Vec::new();
        let taken = timer.take(&mut buckets);
        let mut summary = Summary::default();
        summary.merge(taken, &buckets);
        summary
    }

    #[test]
    fn suffixes_go_on_the_path_before_inline_tags() {
        let t = Timer::new("db.query;env=prod;host=a".into());
        assert_eq!(&*t.names()[0], "db.query.count;env=prod;host=a");
        assert_eq!(&*t.names()[7], "db.query.p99;env=prod;host=a");
        let t = Timer::new("app.fetch".into());
        assert_eq!(
            t.names().iter().map(|n| &**n).collect::<Vec<_>>(),
            [
                "app.fetch.count",
                "app.fetch.sum",
                "app.fetch.min",
                "app.fetch.max",
                "app.fetch.mean",
                "app.fetch.p50",
                "app.fetch.p90",
                "app.fetch.p99"
            ]
        );
        assert_eq!(&*t.name, "app.fetch");
    }

    #[test]
    fn summary_is_exact_for_count_sum_min_max() {
        let t = Timer::new("t".into());
        for ms in [3, 1, 4, 1, 5, 9, 2, 6] {
            t.record(ms * MS);
        }
        let m = take(&t).millis().unwrap();
        assert_eq!((m.sum, m.min, m.max, m.mean), (31.0, 1.0, 9.0, 3.875));
        // Nearest rank of 1 1 2 3 4 5 6 9: p50 = 3, p90 = p99 = 9.
        assert!((m.p50 - 3.0).abs() / 3.0 <= 0.004, "{m:?}");
        assert_eq!((m.p90, m.p99), (9.0, 9.0));
        // Everything was taken.
        assert_eq!(take(&t).millis(), None);
    }

    #[test]
    fn one_value_gives_exact_percentiles() {
        let t = Timer::new("t".into());
        t.record(1_234_567);
        let m = take(&t).millis().unwrap();
        assert_eq!(
            (m.min, m.p50, m.p90, m.p99, m.max),
            (1.234567, 1.234567, 1.234567, 1.234567, 1.234567)
        );
    }

    #[test]
    fn summaries_merge() {
        let t = Timer::new("t".into());
        let mut summary = Summary::default();
        let mut buckets = Vec::new();
        t.record(2 * MS);
        summary.merge(t.take(&mut buckets), &buckets);
        buckets.clear();
        t.record(8 * MS);
        t.record(5 * MS);
        summary.merge(t.take(&mut buckets), &buckets);
        let m = summary.millis().unwrap();
        assert_eq!(summary.count, 3);
        assert_eq!((m.sum, m.min, m.max, m.mean), (15.0, 2.0, 8.0, 5.0));
        assert!((m.p50 - 5.0).abs() / 5.0 <= 0.004, "{m:?}");
    }

    #[test]
    fn a_take_that_counted_nothing_keeps_the_durations_for_the_next() {
        let t = Timer::new("t".into());
        // As if a record had written its sum, min and max but not yet its count.
        t.sum.fetch_add(7 * MS, Ordering::Relaxed);
        t.min.fetch_min(7 * MS, Ordering::Relaxed);
        t.max.fetch_max(7 * MS, Ordering::Relaxed);
        assert_eq!(take(&t).count, 0);
        t.histogram.record(7 * MS);
        let m = take(&t).millis().unwrap();
        assert_eq!((m.sum, m.min, m.max), (7.0, 7.0, 7.0));
    }

    #[test]
    fn concurrent_records_are_counted_exactly_once() {
        let t = Timer::new("t".into());
        let mut summary = Summary::default();
        std::thread::scope(|s| {
            let recorders: Vec<_> = (1..=4u64)
                .map(|k| {
                    let t = &t;
                    s.spawn(move || {
                        for i in 0..20_000u64 {
                            t.record(k * 1000 + i % 3);
                        }
                    })
                })
                .collect();
            let mut buckets = Vec::new();
            while !recorders.iter().all(|r| r.is_finished()) {
                buckets.clear();
                let taken = t.take(&mut buckets);
                summary.merge(taken, &buckets);
            }
        });
        let mut buckets = Vec::new();
        let taken = t.take(&mut buckets);
        summary.merge(taken, &buckets);
        assert_eq!(summary.count, 80_000);
        let expected_sum: u64 = (1..=4u64)
            .map(|k| (0..20_000u64).map(|i| k * 1000 + i % 3).sum::<u64>())
            .sum();
        assert_eq!(summary.sum, expected_sum);
        assert_eq!((summary.min, summary.max), (1000, 4002));
    }
}
