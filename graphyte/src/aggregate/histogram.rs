//! A lock-free, log-bucketed histogram of durations in nanoseconds: what
//! `#[timed]`'s percentiles are computed from.
//!
//! Buckets are log-linear, as in HdrHistogram: below 128 ns every nanosecond
//! has its own bucket; above, each power of two `[2^e, 2^(e+1))` is split
//! into 128 equal buckets. A bucket is at most 1/128 of its lower bound wide,
//! so its midpoint is within 1/256 (0.4 %) of every value in it, and a
//! percentile read from the buckets is within 0.4 % of the exact one.
//!
//! Recording is one relaxed-load-then-`fetch_add` on the bucket; the 1 KiB
//! group of 128 buckets of a power of two is allocated the first time a value
//! of that magnitude is recorded (a handful of groups per timer in practice),
//! so no call after the first few allocates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Buckets per power of two, as a power of two.
const SUB_BITS: u32 = 7;
/// Buckets per group.
const SUB: usize = 1 << SUB_BITS;
/// Group 0 holds 0..128 exactly; group `g >= 1` holds `[2^(g+6), 2^(g+7))`.
const GROUPS: usize = 64 - SUB_BITS as usize + 1;

/// The 128 buckets of one power of two.
struct Group([AtomicU64; SUB]);

/// Per-bucket counts of recorded values.
pub(crate) struct Histogram {
    groups: [OnceLock<Box<Group>>; GROUPS],
}

/// Where `ns` is counted: (group, bucket in group).
#[inline]
fn locate(ns: u64) -> (usize, usize) {
    if ns < SUB as u64 {
        (0, ns as usize)
    } else {
        let e = 63 - ns.leading_zeros(); // >= SUB_BITS
        let group = (e - SUB_BITS + 1) as usize;
        let bucket = ((ns >> (e - SUB_BITS)) as usize) & (SUB - 1);
        (group, bucket)
    }
}

/// The flat index of a bucket; increases with the values it holds.
#[inline]
fn flat(group: usize, bucket: usize) -> u32 {
    (group * SUB + bucket) as u32
}

/// The value that stands for every value in bucket `index`: the exact value
/// in group 0, the midpoint of the bucket above.
pub(crate) fn representative(index: u32) -> f64 {
    let (group, bucket) = (index as usize / SUB, index as usize % SUB);
    if group == 0 {
        return bucket as f64;
    }
    let shift = group as u32 - 1; // e - SUB_BITS
    let lower = ((SUB + bucket) as u64) << shift;
    let width = 1u64 << shift;
    lower as f64 + (width - 1) as f64 / 2.0
}

/// The nearest rank of the `q`-quantile of `count` values, in `1..=count`.
pub(crate) fn rank(q: f64, count: u64) -> u64 {
    ((q * count as f64).ceil() as u64).clamp(1, count.max(1))
}

/// The value of the given `rank` (from 1) among the values in `buckets`
/// (flat index and count, sorted by index), as a bucket representative.
pub(crate) fn value_at_rank<'a>(
    buckets: impl IntoIterator<Item = (&'a u32, &'a u64)>,
    rank: u64,
) -> Option<f64> {
    let mut seen = 0;
    for (&index, &n) in buckets {
        seen += n;
        if seen >= rank {
            return Some(representative(index));
        }
    }
    None
}

impl Histogram {
    pub(crate) fn new() -> Histogram {
        Histogram {
            groups: [const { OnceLock::new() }; GROUPS],
        }
    }

    /// Counts one value. `Release`: whoever drains this count also sees what
    /// the caller wrote before (the timer's sum, min and max).
    #[inline]
    pub(crate) fn record(&self, ns: u64) {
        let (group, bucket) = locate(ns);
        let group =
            self.groups[group].get_or_init(|| Box::new(Group([const { AtomicU64::new(0) }; SUB])));
        group.0[bucket].fetch_add(1, Ordering::Release);
    }

    /// Moves every non-zero count into `out` as (flat index, count), in
    /// index order, leaving the histogram empty. Returns the total count.
    /// Each count is swapped out atomically: a concurrent `record` lands
    /// either in this drain or in the next one, never in both or neither.
    pub(crate) fn drain(&self, out: &mut Vec<(u32, u64)>) -> u64 {
        let mut total = 0;
        for (g, group) in self.groups.iter().enumerate() {
            let Some(group) = group.get() else { continue };
            for (b, cell) in group.0.iter().enumerate() {
                if cell.load(Ordering::Relaxed) == 0 {
                    continue;
                }
                let n = cell.swap(0, Ordering::Acquire);
                if n > 0 {
                    out.push((flat(g, b), n));
                    total += n;
                }
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn drained(h: &Histogram) -> (BTreeMap<u32, u64>, u64) {
        let mut out = Vec::new();
        let total = h.drain(&mut out);
        (out.into_iter().collect(), total)
    }

    #[test]
    fn small_values_are_exact_and_indices_grow_with_values() {
        for ns in 0..256u64 {
            let (g, b) = locate(ns);
            assert_eq!(representative(flat(g, b)), ns as f64, "{ns}");
        }
        let mut values: Vec<u64> = (0..64)
            .flat_map(|shift| {
                let p = 1u64 << shift;
                [p - 1, p, p + p / 3, p + p / 2 + 1]
            })
            .chain([u64::MAX])
            .collect();
        values.sort_unstable();
        let indices: Vec<u32> = values
            .iter()
            .map(|&ns| {
                let (g, b) = locate(ns);
                assert!(g < GROUPS && b < SUB, "{ns}");
                flat(g, b)
            })
            .collect();
        assert!(indices.windows(2).all(|w| w[0] <= w[1]), "{indices:?}");
        assert_eq!(locate(u64::MAX), (GROUPS - 1, SUB - 1));
    }

    #[test]
    fn every_value_is_within_half_a_percent_of_its_bucket_representative() {
        let mut ns = 1u64;
        while ns < u64::MAX / 2 {
            for v in [ns, ns + ns / 7, ns * 2 - 1] {
                let (g, b) = locate(v);
                let r = representative(flat(g, b));
                let err = (r - v as f64).abs() / v as f64;
                assert!(err <= 1.0 / 256.0 + 1e-12, "{v}: {r} ({err})");
            }
            ns = ns * 3 + 1;
        }
    }

    #[test]
    fn percentiles_are_within_one_percent() {
        // A deterministic spread from 1 µs to ~1 s (xorshift).
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut values = Vec::new();
        let h = Histogram::new();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = 1_000 + (x % 1_000_000) * (x % 1_000 + 1);
            values.push(v);
            h.record(v);
        }
        values.sort_unstable();
        let (buckets, total) = drained(&h);
        assert_eq!(total, values.len() as u64);
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            let exact_rank = (q * values.len() as f64).ceil() as usize;
            let exact = values[exact_rank - 1] as f64;
            let estimate = value_at_rank(&buckets, rank(q, total)).unwrap();
            let err = (estimate - exact).abs() / exact;
            assert!(err < 0.01, "p{q}: exact {exact}, estimate {estimate}");
        }
    }

    #[test]
    fn drain_empties_and_counts_exactly_under_concurrency() {
        use std::sync::atomic::AtomicBool;
        let h = Histogram::new();
        let stop = AtomicBool::new(false);
        let drained_total = std::thread::scope(|s| {
            let drainer = s.spawn(|| {
                let (mut out, mut total) = (Vec::new(), 0);
                while !stop.load(Ordering::Relaxed) {
                    out.clear();
                    total += h.drain(&mut out);
                }
                total
            });
            let recorders: Vec<_> = (0..3u64)
                .map(|t| {
                    let h = &h;
                    s.spawn(move || {
                        for i in 0..50_000u64 {
                            h.record((i * 7 + t) % 5_000);
                        }
                    })
                })
                .collect();
            for r in recorders {
                r.join().unwrap();
            }
            stop.store(true, Ordering::Relaxed);
            drainer.join().unwrap()
        });
        let (_, rest) = drained(&h);
        assert_eq!(drained_total + rest, 150_000);
    }
}
