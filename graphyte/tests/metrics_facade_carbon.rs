//! The `metrics` facade against a real carbon-cache: a library that only
//! uses the `metrics` macros (tests/metrics_facade_common) is called from 4
//! threads over several 1 s intervals, with graphyte installed as the
//! recorder (`graphyte::metrics::install`). Read back from carbon's whisper
//! files (tagged series under the name carbon derives from the labels):
//! counter sums equal to the calls, histogram `.count` and `.sum` exact,
//! gauges at the last value set.
//!
//! Skips loudly without carbon; fails under ./scripts/test
//! (GRAPHYTE_REQUIRE_CARBON=1) if carbon is missing.
//! One test function: the global recorder can be installed once per process.
#![cfg(feature = "metrics")]

#[path = "../../tests/support/mod.rs"]
mod support;

mod metrics_facade_common;

use std::thread;
use std::time::{Duration, Instant};

use graphyte::Config;
use metrics_facade_common::*;
use support::{unix_now, CarbonServer};

/// The points carbon stored for `metric` once `done` holds for them (or
/// what it had when `timeout` ran out).
fn wait_until(
    carbon: &CarbonServer,
    metric: &str,
    timeout: Duration,
    done: impl Fn(&[(u32, f64)]) -> bool,
) -> Vec<(u32, f64)> {
    let deadline = Instant::now() + timeout;
    loop {
        let points = carbon.read_points(metric);
        if done(&points) || Instant::now() >= deadline {
            return points;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn sum(points: &[(u32, f64)]) -> f64 {
    points.iter().map(|p| p.1).sum()
}

/// The value of the latest point.
fn last(points: &[(u32, f64)]) -> Option<f64> {
    points.iter().max_by_key(|p| p.0).map(|p| p.1)
}

#[test]
fn a_library_using_only_the_facade_adds_up_in_whisper() {
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    graphyte::metrics::install(
        Config::new("127.0.0.1")
            .port(carbon.port())
            .prefix(PREFIX)
            .tag(HOST_TAG.0, HOST_TAG.1)
            .interval(Duration::from_secs(1)),
    )
    .unwrap();

    let (started, ended) = drive(unix_now);
    assert!(ended - started >= 3, "the calls took {} s", ended - started);
    // Sends the interval in progress.
    graphyte::shutdown().unwrap();

    let expected = expected();
    let timeout = Duration::from_secs(30);
    let in_run = |metric: &str, points: &[(u32, f64)]| {
        for (ts, _) in points {
            assert!(
                (started - 1..=ended + 1).contains(ts),
                "{metric}: point at {ts}, calls from {started} to {ended}: {points:?}"
            );
        }
    };

    // Counters: what whisper holds adds up to the calls, over 3 intervals.
    for &(route, n) in &expected.requests {
        let metric = requests_series(route);
        let points = wait_until(&carbon, &metric, timeout, |p| sum(p) == n as f64);
        assert_eq!(sum(&points), n as f64, "{metric}: {points:?}");
        let busy = points.iter().filter(|p| p.1 > 0.0).count();
        assert!(busy >= 3, "{metric}: not over 3 intervals: {points:?}");
        in_run(&metric, &points);
    }
    let metric = bytes_series();
    let points = wait_until(&carbon, &metric, timeout, |p| {
        sum(p) == expected.bytes as f64
    });
    assert_eq!(sum(&points), expected.bytes as f64, "{metric}: {points:?}");

    // Histograms: count and sum exact over all intervals; min and max of
    // each interval within the values recorded.
    for &(route, n, total) in &expected.latency {
        let metric = latency_series(route, "count");
        let counts = wait_until(&carbon, &metric, timeout, |p| sum(p) == n as f64);
        assert_eq!(sum(&counts), n as f64, "{metric}: {counts:?}");
        in_run(&metric, &counts);
        let metric = latency_series(route, "sum");
        let sums = wait_until(&carbon, &metric, timeout, |p| sum(p) == total);
        assert_eq!(sum(&sums), total, "{metric}: {sums:?}");
        let busy = counts.iter().filter(|p| p.1 > 0.0).count();
        for field in ["min", "max", "mean", "p50", "p90", "p99"] {
            let metric = latency_series(route, field);
            let points = wait_until(&carbon, &metric, timeout, |p| p.len() >= busy);
            assert_eq!(
                points.len(),
                busy,
                "{metric}: {points:?} for counts {counts:?}"
            );
            assert!(
                points.iter().all(|p| (0.0..=3.75).contains(&p.1)),
                "{metric}: {points:?}"
            );
        }
    }

    // Gauges: the latest point is the last value set.
    for &(w, v) in &expected.last_request {
        let metric = last_request_series(w);
        let points = wait_until(&carbon, &metric, timeout, |p| last(p) == Some(v));
        assert_eq!(last(&points), Some(v), "{metric}: {points:?}");
        in_run(&metric, &points);
    }
    let metric = in_flight_series();
    let points = wait_until(&carbon, &metric, timeout, |p| {
        p.len() >= 3 && last(p) == Some(0.0)
    });
    assert_eq!(last(&points), Some(0.0), "{metric}: {points:?}");
    assert!(
        points.iter().all(|p| (0.0..=THREADS as f64).contains(&p.1)),
        "{metric}: {points:?}"
    );

    // Nothing carbon refused.
    let rejected = carbon.listener_log();
    assert!(!rejected.contains("invalid line"), "{rejected}");
}
