//! Distributions: what a `metrics` histogram records (any finite `f64`,
//! zero and negatives included, in the unit recorded) and the per-interval
//! summary sent as `NAME.count`, `NAME.sum`, `NAME.min`, `NAME.max`,
//! `NAME.mean` and the configured percentiles (`NAME.p50`, ...).
//!
//! Values are counted in log-linear buckets by sign, binary exponent and
//! the top 7 bits of the mantissa: each bucket is at most 1/128 of its
//! lower bound wide, so its midpoint is within 0.4 % of every value in it,
//! and a percentile read from the buckets is within 0.4 % of the exact
//! nearest-rank value (for magnitudes between 2^-64 and 2^64; beyond, the
//! edge buckets are used, and percentiles stay within the exact min and
//! max). Nothing is allocated for the buckets until a value other than zero
//! is recorded: then the table of a sign's and power of two's groups (4 KiB),
//! and a group's 128 buckets (1 KiB) the first time a value of its sign and
//! magnitude is recorded. Recording is a few atomic operations, without
//! locks or allocation after that.

// Fed by the `metrics` recorder only.
#![cfg_attr(not(feature = "metrics"), allow(dead_code))]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use super::histogram::rank;
use crate::validate;

const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
/// Binary exponents kept apart: -64..64.
const EXPONENTS: usize = 128;
const MIN_EXPONENT: i32 = -64;
/// The flat index of zero: below it the negative buckets (larger magnitude
/// first), above it the positive ones.
const ZERO: u32 = (EXPONENTS * SUB) as u32;

/// The 128 buckets of one sign and power of two.
struct Group([AtomicU64; SUB]);

/// The groups of every sign and power of two, each made on first use.
type Groups = [OnceLock<Box<Group>>; 2 * EXPONENTS];

/// A quantile to send, and the suffix of its series (`0.99` → `p99`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Quantile {
    pub(crate) q: f64,
    pub(crate) suffix: Box<str>,
}

impl Quantile {
    /// `q` in `(0, 1]`, named `p` and its percentage with `_` for the
    /// decimal point: 0.5 → `p50`, 0.999 → `p99_9`, 1 → `p100`.
    pub(crate) fn new(q: f64) -> Option<Quantile> {
        if !(q > 0.0 && q <= 1.0) {
            return None;
        }
        let percent = format!("{}", (q * 100_000.0).round() / 1000.0);
        Some(Quantile {
            q,
            suffix: format!("p{}", percent.replace('.', "_")).into(),
        })
    }
}

/// One distribution series.
pub(crate) struct Distribution {
    /// Sum of the values, as `f64` bits.
    sum: AtomicU64,
    /// Least and greatest value, as order-preserving keys (see [`key`]).
    min: AtomicU64,
    max: AtomicU64,
    zeros: AtomicU64,
    /// Made when the first value other than zero is recorded.
    groups: OnceLock<Box<Groups>>,
    /// Set by every record (after its value), cleared by the drain's take.
    touched: AtomicBool,
    /// Pinned, retired (see [`Life`](super::Life)).
    pub(crate) life: super::Life,
    name: Box<str>,
    /// The names of its series, made at the first drain: `count`, `sum`,
    /// `min`, `max`, `mean`, then one per quantile.
    names: OnceLock<Box<[Box<str>]>>,
    /// What the drains did with it; only the drain takes this lock.
    pub(super) drained: Mutex<DistributionDrained>,
}

impl std::fmt::Debug for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distribution")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A distribution's state between drains.
pub(crate) type DistributionDrained = super::drain::SummaryDrained<Summary>;

/// `f64` to a `u64` that orders as the values do (for min and max).
fn key(v: f64) -> u64 {
    let bits = v.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

fn from_key(k: u64) -> f64 {
    if k >> 63 == 1 {
        f64::from_bits(k & !(1 << 63))
    } else {
        f64::from_bits(!k)
    }
}

const NO_MIN: u64 = u64::MAX;
const NO_MAX: u64 = 0;

/// The flat index of `v` (finite, not zero): increases with the values.
fn index(v: f64) -> u32 {
    let bits = v.abs().to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1023;
    let (group, sub) = if exponent < MIN_EXPONENT {
        (0, 0)
    } else if exponent >= MIN_EXPONENT + EXPONENTS as i32 {
        (EXPONENTS - 1, SUB - 1)
    } else {
        (
            (exponent - MIN_EXPONENT) as usize,
            ((bits >> (52 - SUB_BITS)) as usize) & (SUB - 1),
        )
    };
    let magnitude = (group * SUB + sub) as u32;
    if v > 0.0 {
        ZERO + 1 + magnitude
    } else {
        ZERO - 1 - magnitude
    }
}

/// The value that stands for every value in bucket `index`: the midpoint.
fn representative(index: u32) -> f64 {
    if index == ZERO {
        return 0.0;
    }
    let (negative, magnitude) = if index > ZERO {
        (false, index - ZERO - 1)
    } else {
        (true, ZERO - 1 - index)
    };
    let (group, sub) = (magnitude as usize / SUB, magnitude as usize % SUB);
    let exponent = group as i32 + MIN_EXPONENT;
    let scale = 2f64.powi(exponent);
    let value = scale * (1.0 + (sub as f64 + 0.5) / SUB as f64);
    if negative {
        -value
    } else {
        value
    }
}

impl Distribution {
    pub(crate) fn new(name: Box<str>) -> Distribution {
        Distribution {
            sum: AtomicU64::new(0f64.to_bits()),
            min: AtomicU64::new(NO_MIN),
            max: AtomicU64::new(NO_MAX),
            zeros: AtomicU64::new(0),
            groups: OnceLock::new(),
            touched: AtomicBool::new(false),
            life: super::Life::default(),
            name,
            names: OnceLock::new(),
            drained: Mutex::default(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The names of its series for `quantiles`, made once: the suffix goes
    /// on the path, before any inline tags.
    pub(crate) fn names(&self, quantiles: &[Quantile]) -> &[Box<str>] {
        self.names.get_or_init(|| {
            let (path, tags) = validate::split_name(&self.name);
            ["count", "sum", "min", "max", "mean"]
                .into_iter()
                .chain(quantiles.iter().map(|q| &*q.suffix))
                .map(|suffix| match tags {
                    Some(tags) => format!("{path}.{suffix};{tags}").into_boxed_str(),
                    None => format!("{path}.{suffix}").into_boxed_str(),
                })
                .collect()
        })
    }

    /// Records one finite value (callers check).
    #[inline]
    pub(crate) fn record(&self, v: f64) {
        debug_assert!(v.is_finite());
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
        let k = key(v);
        if k < self.min.load(Ordering::Relaxed) {
            self.min.fetch_min(k, Ordering::Relaxed);
        }
        if k > self.max.load(Ordering::Relaxed) {
            self.max.fetch_max(k, Ordering::Relaxed);
        }
        if v == 0.0 {
            self.zeros.fetch_add(1, Ordering::Release);
        } else {
            self.count_in(index(v), 1);
        }
        // Step U1 of the expiry protocol (see `Life`).
        self.touched.store(true, Ordering::SeqCst);
    }

    /// Adds `n` to the bucket of flat index `index` (not zero's).
    fn count_in(&self, index: u32, n: u64) {
        let (group, sub) = if index > ZERO {
            let m = (index - ZERO - 1) as usize;
            (EXPONENTS + m / SUB, m % SUB)
        } else {
            let m = (ZERO - 1 - index) as usize;
            (m / SUB, m % SUB)
        };
        let groups = self
            .groups
            .get_or_init(|| Box::new([const { OnceLock::new() }; 2 * EXPONENTS]));
        let group =
            groups[group].get_or_init(|| Box::new(Group([const { AtomicU64::new(0) }; SUB])));
        group.0[sub].fetch_add(n, Ordering::Release);
    }

    /// Adds what a take of another distribution returned (the values a
    /// `metrics` handle recorded into a retired series): step U2's move.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn absorb(&self, taken: Taken, buckets: &[(u32, u64)]) {
        if taken.count == 0 {
            return;
        }
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + taken.sum).to_bits())
            });
        if let Some(min) = taken.min {
            self.min.fetch_min(key(min), Ordering::Relaxed);
        }
        if let Some(max) = taken.max {
            self.max.fetch_max(key(max), Ordering::Relaxed);
        }
        for &(index, n) in buckets {
            if index == ZERO {
                self.zeros.fetch_add(n, Ordering::Release);
            } else {
                self.count_in(index, n);
            }
        }
        self.touched.store(true, Ordering::SeqCst);
    }

    /// Whether a value was recorded since the last take (step D2 of the
    /// expiry protocol: `SeqCst`).
    pub(super) fn has_pending(&self) -> bool {
        self.touched.load(Ordering::SeqCst)
    }

    /// Takes everything recorded since the last call; appends the buckets
    /// to `buckets` (flat index, count). The count is exact; as for timers,
    /// a racing record's value may go into this take's sum, min and max
    /// while it is counted in the next one (put back if this one counted
    /// nothing).
    pub(crate) fn take(&self, buckets: &mut Vec<(u32, u64)>) -> Taken {
        self.touched.swap(false, Ordering::SeqCst);
        let mut count = 0;
        let zeros = self.zeros.swap(0, Ordering::Acquire);
        if zeros > 0 {
            buckets.push((ZERO, zeros));
            count += zeros;
        }
        let groups = self.groups.get().map_or(&[][..], |groups| &groups[..]);
        for (g, group) in groups.iter().enumerate() {
            let Some(group) = group.get() else { continue };
            for (s, cell) in group.0.iter().enumerate() {
                if cell.load(Ordering::Relaxed) == 0 {
                    continue;
                }
                let n = cell.swap(0, Ordering::Acquire);
                if n == 0 {
                    continue;
                }
                let index = if g >= EXPONENTS {
                    ZERO + 1 + ((g - EXPONENTS) * SUB + s) as u32
                } else {
                    ZERO - 1 - (g * SUB + s) as u32
                };
                buckets.push((index, n));
                count += n;
            }
        }
        let sum = f64::from_bits(self.sum.swap(0f64.to_bits(), Ordering::Acquire));
        let min = self.min.swap(NO_MIN, Ordering::Acquire);
        let max = self.max.swap(NO_MAX, Ordering::Acquire);
        if count == 0 {
            if min != NO_MIN {
                let _ = self
                    .sum
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                        Some((f64::from_bits(bits) + sum).to_bits())
                    });
                self.min.fetch_min(min, Ordering::Relaxed);
                self.max.fetch_max(max, Ordering::Relaxed);
            }
            return Taken::default();
        }
        Taken {
            count,
            sum,
            min: (min != NO_MIN).then(|| from_key(min)),
            max: (max != NO_MAX).then(|| from_key(max)),
        }
    }
}

/// What a drain took from a distribution.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Taken {
    pub(crate) count: u64,
    pub(crate) sum: f64,
    pub(crate) min: Option<f64>,
    pub(crate) max: Option<f64>,
}

/// A distribution's totals for one interval, merged over the drains that
/// share its timestamp.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub(crate) count: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    buckets: BTreeMap<u32, u64>,
}

/// A summary's values: sum, min, max, mean, then one per quantile.
pub(crate) struct Values {
    pub(crate) fixed: [f64; 4],
    pub(crate) quantiles: Vec<f64>,
}

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
        self.sum += taken.sum;
        self.min = match (self.min, taken.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, taken.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for &(index, n) in buckets {
            *self.buckets.entry(index).or_insert(0) += n;
        }
    }

    /// The values to send, if anything was recorded. Percentiles are
    /// nearest-rank, read from the buckets and kept within the exact min
    /// and max; the first and last ranks are the exact min and max.
    pub(crate) fn values(&self, quantiles: &[Quantile]) -> Option<Values> {
        if self.count == 0 {
            return None;
        }
        let bound = |first: bool| {
            let bucket = if first {
                self.buckets.keys().next()
            } else {
                self.buckets.keys().next_back()
            };
            bucket.map_or(0.0, |&i| representative(i))
        };
        let min = self.min.unwrap_or_else(|| bound(true));
        let max = self.max.unwrap_or_else(|| bound(false)).max(min);
        let at_rank = |rank: u64| {
            if rank == self.count {
                return max;
            }
            if rank == 1 {
                return min;
            }
            let mut seen = 0;
            for (&index, &n) in &self.buckets {
                seen += n;
                if seen >= rank {
                    return representative(index).clamp(min, max);
                }
            }
            max
        };
        Some(Values {
            fixed: [self.sum, min, max, self.sum / self.count as f64],
            quantiles: quantiles
                .iter()
                .map(|q| at_rank(rank(q.q, self.count)))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantiles() -> Vec<Quantile> {
        [0.5, 0.9, 0.99].map(|q| Quantile::new(q).unwrap()).to_vec()
    }

    fn summarize(d: &Distribution) -> Summary {
        let mut buckets = Vec::new();
        let taken = d.take(&mut buckets);
        let mut summary = Summary::default();
        summary.merge(taken, &buckets);
        summary
    }

    #[test]
    fn buckets_are_allocated_on_the_first_value_other_than_zero() {
        // What the README states: a 4 KiB table, then 1 KiB per group.
        assert_eq!(std::mem::size_of::<Groups>(), 4096);
        assert_eq!(std::mem::size_of::<Group>(), 1024);
        let d = Distribution::new("d".into());
        d.record(0.0);
        assert!(d.groups.get().is_none(), "zeros need no buckets");
        d.record(1.5);
        d.record(1.25);
        let groups = d.groups.get().expect("made by the first value");
        assert_eq!(groups.iter().filter(|g| g.get().is_some()).count(), 1);
        d.record(-3.0);
        assert_eq!(groups.iter().filter(|g| g.get().is_some()).count(), 2);
        assert_eq!(summarize(&d).count, 4);
    }

    #[test]
    fn quantile_suffixes() {
        let names: Vec<String> = [0.5, 0.9, 0.99, 0.999, 1.0, 0.25]
            .map(|q| Quantile::new(q).unwrap().suffix.into_string())
            .to_vec();
        assert_eq!(names, ["p50", "p90", "p99", "p99_9", "p100", "p25"]);
        assert!(Quantile::new(0.0).is_none());
        assert!(Quantile::new(1.5).is_none());
        assert!(Quantile::new(f64::NAN).is_none());
    }

    #[test]
    fn keys_order_like_the_values() {
        let values = [
            f64::MIN,
            -1e300,
            -2.0,
            -1.0,
            -0.5,
            -1e-300,
            0.0,
            1e-300,
            0.5,
            1.0,
            3.0,
            f64::MAX,
        ];
        for pair in values.windows(2) {
            assert!(key(pair[0]) < key(pair[1]), "{pair:?}");
            assert_eq!(from_key(key(pair[0])), pair[0]);
        }
        for pair in values.windows(2).filter(|p| p[0] != 0.0 && p[1] != 0.0) {
            assert!(index(pair[0]) <= index(pair[1]), "{pair:?}");
        }
    }

    #[test]
    fn every_value_is_within_half_a_percent_of_its_bucket() {
        let mut v = 1e-15;
        while v < 1e15 {
            for value in [v, -v] {
                let r = representative(index(value));
                assert!(((r - value) / value).abs() <= 1.0 / 256.0, "{value} -> {r}");
            }
            v *= 1.37;
        }
    }

    #[test]
    fn count_sum_min_max_are_exact_and_percentiles_within_0_4_percent() {
        let d = Distribution::new("d".into());
        let mut values: Vec<f64> = (0..1000).map(|i| (i as f64 - 300.0) * 0.731).collect();
        for &v in &values {
            d.record(v);
        }
        let s = summarize(&d);
        assert_eq!(s.count, 1000);
        let v = s.values(&quantiles()).unwrap();
        let sum: f64 = values.iter().sum();
        assert!((v.fixed[0] - sum).abs() < 1e-6, "{} {sum}", v.fixed[0]);
        values.sort_by(f64::total_cmp);
        assert_eq!(v.fixed[1], values[0]);
        assert_eq!(v.fixed[2], values[999]);
        // Nearest rank, computed here: the ⌈q·1000⌉-th value.
        for (per_mille, got) in [500, 900, 990].iter().zip(&v.quantiles) {
            let exact = values[per_mille - 1];
            let q = *per_mille as f64 / 1000.0;
            assert!(
                ((got - exact) / exact).abs() <= 0.004,
                "q{q}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn zeros_and_a_single_value() {
        let d = Distribution::new("d".into());
        d.record(0.0);
        d.record(0.0);
        let v = summarize(&d).values(&quantiles()).unwrap();
        assert_eq!(v.fixed, [0.0, 0.0, 0.0, 0.0]);
        assert_eq!(v.quantiles, [0.0, 0.0, 0.0]);
        d.record(-42.5);
        let v = summarize(&d).values(&quantiles()).unwrap();
        assert_eq!(v.fixed, [-42.5, -42.5, -42.5, -42.5]);
        assert_eq!(v.quantiles, [-42.5, -42.5, -42.5]);
        assert!(summarize(&d).values(&quantiles()).is_none());
    }

    #[test]
    fn names_put_suffixes_before_tags() {
        let d = Distribution::new("rt;env=prod".into());
        let names: Vec<&str> = d.names(&quantiles()).iter().map(|n| &**n).collect();
        assert_eq!(
            names,
            [
                "rt.count;env=prod",
                "rt.sum;env=prod",
                "rt.min;env=prod",
                "rt.max;env=prod",
                "rt.mean;env=prod",
                "rt.p50;env=prod",
                "rt.p90;env=prod",
                "rt.p99;env=prod"
            ]
        );
    }
}
