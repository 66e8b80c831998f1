//! README: percentiles are "within 0.4 % of the exact nearest-rank value",
//! for `#[timed]` and for `metrics` histograms. Checked here against a
//! nearest-rank computation of this file's own (sort the values, take the
//! value of rank ⌈q·N⌉ counted from 1, in exact integer arithmetic), over
//! values spread across many orders of magnitude, zeros and negatives
//! included for histograms, and for several sample sizes.
//!
//! Through the public API: `#[timed]` reads a mock clock the test moves
//! (`graphyte::__private::mock_clock`, as tests/macros_interval.rs does),
//! histograms are recorded through the `metrics` facade, and the registry
//! is drained as the interval thread would at the end of an interval
//! (`graphyte::__private::bench::drain`, as metrics_recorder.rs does). One
//! test function: the global sender, clock and recorder are set once.
#![cfg(feature = "metrics")]

use std::collections::BTreeMap;
use std::time::Duration;

use graphyte::{CaptureTransport, Config};

/// `#[timed]`'s percentiles, in thousandths: p50, p90, p99.
const TIMED: &[u64] = &[500, 900, 990];
/// The histograms' percentiles configured here (`Config::percentiles`).
const HISTOGRAM: &[u64] = &[500, 900, 990, 999];
/// The README's bound.
const WITHIN: f64 = 0.004;

/// A deterministic pseudo-random sequence (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The exact nearest-rank value: the ⌈p/1000 · N⌉-th smallest (from 1).
fn nearest_rank(sorted: &[f64], per_mille: u64) -> f64 {
    let n = sorted.len() as u64;
    let rank = (per_mille * n).div_ceil(1000).clamp(1, n);
    sorted[(rank - 1) as usize]
}

fn suffix(per_mille: u64) -> String {
    match per_mille % 10 {
        0 => format!("p{}", per_mille / 10),
        d => format!("p{}_{d}", per_mille / 10),
    }
}

/// One drain, as `name -> value`.
fn drain(ts: u64) -> BTreeMap<String, f64> {
    let mut out = Vec::new();
    let n = graphyte::__private::bench::drain(ts, &mut out);
    let text = String::from_utf8(out).unwrap();
    let lines: BTreeMap<String, f64> = text
        .lines()
        .map(|line| {
            let mut parts = line.split(' ');
            let name = parts.next().unwrap().to_owned();
            (name, parts.next().unwrap().parse().unwrap())
        })
        .collect();
    assert_eq!(lines.len(), n, "{text}");
    lines
}

/// Checks `name`'s count, min, max and percentiles against `values`
/// (in the unit sent); returns the largest relative error of a percentile.
fn check(lines: &BTreeMap<String, f64>, name: &str, per_milles: &[u64], values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let get = |field: &str| -> f64 {
        let key = format!("{name}.{field}");
        *lines
            .get(&key)
            .unwrap_or_else(|| panic!("no {key} in {lines:#?}"))
    };
    assert_eq!(get("count"), values.len() as f64, "{name}");
    assert_eq!(get("min"), values[0], "{name}");
    assert_eq!(get("max"), values[values.len() - 1], "{name}");
    let mut worst: f64 = 0.0;
    for &per_mille in per_milles {
        let exact = nearest_rank(values, per_mille);
        let got = get(&suffix(per_mille));
        let error = if exact == 0.0 {
            assert_eq!(got, 0.0, "{name} p{per_mille}‰: exact 0");
            0.0
        } else {
            (got - exact).abs() / exact.abs()
        };
        assert!(
            error <= WITHIN,
            "{name} {}: {got}, the exact nearest-rank value is {exact} ({:.3} % off, over {} values)",
            suffix(per_mille),
            error * 100.0,
            values.len()
        );
        worst = worst.max(error);
    }
    worst
}

#[graphyte::timed("timed.work")]
fn work(clock: &graphyte::__private::MockClock, ns: u64) {
    clock.advance(Duration::from_nanos(ns));
}

#[test]
fn percentiles_are_within_0_4_percent_of_the_exact_nearest_rank_value() {
    let clock = graphyte::__private::mock_clock().expect("the clock is not set up yet");
    graphyte::metrics::install(
        Config::new("unused")
            // A day: the interval thread drains only at midnight UTC.
            .interval(Duration::from_secs(24 * 3600))
            .percentiles(&[0.5, 0.9, 0.99, 0.999])
            .transport(CaptureTransport::new()),
    )
    .unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut worst: f64 = 0.0;
    // Sizes where q·N is and is not a whole number, and a small one.
    for (round, n) in [10_000usize, 10_007, 1_000, 37].into_iter().enumerate() {
        // #[timed]: durations from 1 ns to about 17 s, log-uniform; sent in ms.
        let mut timed = Vec::with_capacity(n);
        for _ in 0..n {
            let ns = 2f64.powf(rng.unit() * 34.0) as u64;
            work(&clock, ns);
            timed.push(ns as f64 / 1e6);
        }
        // A histogram: magnitudes from 1e-6 to 1e9, both signs, some zeros.
        let histogram = metrics::histogram!("facade.values");
        let mut recorded = Vec::with_capacity(n);
        for _ in 0..n {
            let magnitude = 10f64.powf(rng.unit() * 15.0 - 6.0);
            let v = match rng.next() % 10 {
                0 => 0.0,
                1..=3 => -magnitude,
                _ => magnitude,
            };
            histogram.record(v);
            recorded.push(v);
        }
        let lines = drain(1_700_000_000 + round as u64 * 86_400);
        worst = worst.max(check(&lines, "timed.work", TIMED, &mut timed));
        worst = worst.max(check(&lines, "facade.values", HISTOGRAM, &mut recorded));
    }
    println!("largest error of a percentile: {:.4} %", worst * 100.0);
}
