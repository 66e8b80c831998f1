//! Shared by `metrics_facade_listener.rs`, `metrics_facade_carbon.rs` and
//! `metrics_facade_vm.rs`: a library that knows only the `metrics` facade,
//! the driver that calls it from several threads over several intervals,
//! what everything it recorded must add up to, and the one check of a store
//! ([`drive_and_check`]) the carbon and VictoriaMetrics tests share.

// Each test file uses part of it.
#![allow(dead_code)]

use std::thread;
use std::time::Duration;

/// A library as any crate on crates.io would write it: it knows nothing of
/// graphyte, only the `metrics` macros.
pub mod some_library {
    /// The routes it serves.
    pub const ROUTES: [&str; 2] = ["users", "orders"];

    /// Handles request number `n` of `worker`: counts it (with labels given
    /// out of Carbon's order), the bytes it wrote, records its latency and
    /// the worker's last request, and the requests in flight.
    pub fn handle_request(worker: usize, n: u64) {
        let route = ROUTES[(n % 2) as usize];
        let in_flight = metrics::gauge!("lib.in_flight");
        in_flight.increment(1.0);
        metrics::counter!("lib.requests", "route" => route, "code-class" => "2xx", "code" => "200")
            .increment(1);
        metrics::counter!("lib.bytes_written").increment(bytes(n));
        metrics::histogram!("lib.latency_ms", "route" => route).record(latency_ms(n));
        metrics::gauge!("lib.worker.last_request", "worker" => worker.to_string())
            .set(last_request_value(worker, n));
        in_flight.decrement(1.0);
    }

    /// Bytes written for request `n`.
    pub fn bytes(n: u64) -> u64 {
        100 + n % 7
    }

    /// Latency of request `n`: multiples of 0.25 from 0 to 3.75, so every
    /// sum is exact in f64.
    pub fn latency_ms(n: u64) -> f64 {
        (n % 16) as f64 * 0.25
    }

    /// The value of the worker's `last_request` gauge after request `n`.
    pub fn last_request_value(worker: usize, n: u64) -> f64 {
        (worker as u64 * 1_000_000 + n) as f64
    }
}

pub const THREADS: usize = 4;
/// Rounds of calls per thread, `PAUSE` apart: about 3.5 s, so at least 3
/// intervals of 1 s.
pub const ROUNDS: u64 = 35;
pub const PER_ROUND: u64 = 200;
pub const PAUSE: Duration = Duration::from_millis(100);
/// Requests per thread (numbered 0..REQUESTS).
pub const REQUESTS: u64 = ROUNDS * PER_ROUND;

pub const PREFIX: &str = "svc";
/// The sender's default tag, merged with the labels.
pub const HOST_TAG: (&str, &str) = ("host", "test-1");

/// Calls `some_library::handle_request` from `THREADS` threads; returns the
/// Unix seconds when it started and ended.
pub fn drive(now: impl Fn() -> u32) -> (u32, u32) {
    let started = now();
    thread::scope(|s| {
        for worker in 0..THREADS {
            s.spawn(move || {
                for round in 0..ROUNDS {
                    for i in 0..PER_ROUND {
                        some_library::handle_request(worker, round * PER_ROUND + i);
                    }
                    thread::sleep(PAUSE);
                }
            });
        }
    });
    (started, now())
}

/// A series' name as graphyte sends it: Carbon's canonical tag order
/// (sorted as `;k=v` strings: `code-class` before `code`), the default tag
/// among the labels.
pub fn requests_series(route: &str) -> String {
    format!("{PREFIX}.lib.requests;code-class=2xx;code=200;host=test-1;route={route}")
}

pub fn bytes_series() -> String {
    format!("{PREFIX}.lib.bytes_written;host=test-1")
}

pub fn in_flight_series() -> String {
    format!("{PREFIX}.lib.in_flight;host=test-1")
}

pub fn last_request_series(worker: usize) -> String {
    format!("{PREFIX}.lib.worker.last_request;host=test-1;worker={worker}")
}

/// `field` of the latency histogram of `route` (`count`, `sum`, `p50`, ...).
pub fn latency_series(route: &str, field: &str) -> String {
    format!("{PREFIX}.lib.latency_ms.{field};host=test-1;route={route}")
}

/// The histogram fields sent for an interval with values (`.count` alone
/// for one without).
pub const LATENCY_FIELDS: [&str; 8] = ["count", "sum", "min", "max", "mean", "p50", "p90", "p99"];

/// What the calls add up to, computed from the library's functions.
pub struct Expected {
    /// Requests per route, over all threads.
    pub requests: Vec<(&'static str, u64)>,
    pub bytes: u64,
    /// Per route: number of latencies recorded and their sum.
    pub latency: Vec<(&'static str, u64, f64)>,
    /// Per worker: the last value of its gauge.
    pub last_request: Vec<(usize, f64)>,
}

pub fn expected() -> Expected {
    use some_library::*;
    let mut requests = vec![(ROUTES[0], 0), (ROUTES[1], 0)];
    let mut latency = vec![(ROUTES[0], 0, 0.0), (ROUTES[1], 0, 0.0)];
    let mut bytes_total = 0;
    for n in 0..REQUESTS {
        let r = (n % 2) as usize;
        requests[r].1 += THREADS as u64;
        latency[r].1 += THREADS as u64;
        latency[r].2 += THREADS as f64 * latency_ms(n);
        bytes_total += THREADS as u64 * bytes(n);
    }
    Expected {
        requests,
        bytes: bytes_total,
        latency,
        last_request: (0..THREADS)
            .map(|w| (w, last_request_value(w, REQUESTS - 1)))
            .collect(),
    }
}

/// When a series' points are complete.
pub type Done<'a> = &'a dyn Fn(&[(u32, f64)]) -> bool;

/// A store the facade's series can be read back from (carbon's whisper
/// files, VictoriaMetrics' export): the points (Unix seconds, value) of a
/// Graphite series.
pub trait Store {
    /// The points of `metric` once `done` holds for them, or what there
    /// was when `timeout` ran out.
    fn wait_until(&self, metric: &str, timeout: Duration, done: Done<'_>) -> Vec<(u32, f64)>;
}

pub fn sum(points: &[(u32, f64)]) -> f64 {
    points.iter().map(|p| p.1).sum()
}

/// The value of the latest point.
pub fn last(points: &[(u32, f64)]) -> Option<f64> {
    points.iter().max_by_key(|p| p.0).map(|p| p.1)
}

/// The one driver of the facade tests against a store: with the recorder
/// installed (prefix [`PREFIX`], tag [`HOST_TAG`], 1 s interval), calls the
/// library ([`drive`]), shuts graphyte down (sending the interval in
/// progress) and checks what `store` holds: counter sums equal to the
/// calls, over 3 intervals; histogram `.count` and `.sum` exact over all
/// intervals, the other fields once per interval with values and within
/// the values recorded; gauges at the last value set; every point within
/// the run. Returns every series name it checked.
pub fn drive_and_check(store: &dyn Store, now: impl Fn() -> u32) -> Vec<String> {
    let (started, ended) = drive(&now);
    assert!(ended - started >= 3, "the calls took {} s", ended - started);
    graphyte::shutdown().unwrap();

    let expected = expected();
    let timeout = Duration::from_secs(30);
    let mut checked = Vec::new();
    let in_run = |metric: &str, points: &[(u32, f64)]| {
        for (ts, _) in points {
            assert!(
                (started - 1..=ended + 1).contains(ts),
                "{metric}: point at {ts}, calls from {started} to {ended}: {points:?}"
            );
        }
    };

    // Counters: what the store holds adds up to the calls, over 3 intervals.
    for &(route, n) in &expected.requests {
        let metric = requests_series(route);
        let points = store.wait_until(&metric, timeout, &|p| sum(p) == n as f64);
        assert_eq!(sum(&points), n as f64, "{metric}: {points:?}");
        let busy = points.iter().filter(|p| p.1 > 0.0).count();
        assert!(busy >= 3, "{metric}: not over 3 intervals: {points:?}");
        in_run(&metric, &points);
        checked.push(metric);
    }
    let metric = bytes_series();
    let points = store.wait_until(&metric, timeout, &|p| sum(p) == expected.bytes as f64);
    assert_eq!(sum(&points), expected.bytes as f64, "{metric}: {points:?}");
    checked.push(metric);

    // Histograms: count and sum exact over all intervals; min and max of
    // each interval within the values recorded.
    for &(route, n, total) in &expected.latency {
        let metric = latency_series(route, "count");
        let counts = store.wait_until(&metric, timeout, &|p| sum(p) == n as f64);
        assert_eq!(sum(&counts), n as f64, "{metric}: {counts:?}");
        in_run(&metric, &counts);
        checked.push(metric);
        let metric = latency_series(route, "sum");
        let sums = store.wait_until(&metric, timeout, &|p| sum(p) == total);
        assert_eq!(sum(&sums), total, "{metric}: {sums:?}");
        checked.push(metric);
        let busy = counts.iter().filter(|p| p.1 > 0.0).count();
        for field in ["min", "max", "mean", "p50", "p90", "p99"] {
            let metric = latency_series(route, field);
            let points = store.wait_until(&metric, timeout, &|p| p.len() >= busy);
            assert_eq!(
                points.len(),
                busy,
                "{metric}: {points:?} for counts {counts:?}"
            );
            assert!(
                points.iter().all(|p| (0.0..=3.75).contains(&p.1)),
                "{metric}: {points:?}"
            );
            checked.push(metric);
        }
    }

    // Gauges: the latest point is the last value set.
    for &(w, v) in &expected.last_request {
        let metric = last_request_series(w);
        let points = store.wait_until(&metric, timeout, &|p| last(p) == Some(v));
        assert_eq!(last(&points), Some(v), "{metric}: {points:?}");
        in_run(&metric, &points);
        checked.push(metric);
    }
    let metric = in_flight_series();
    let points = store.wait_until(&metric, timeout, &|p| p.len() >= 3 && last(p) == Some(0.0));
    assert_eq!(last(&points), Some(0.0), "{metric}: {points:?}");
    assert!(
        points.iter().all(|p| (0.0..=THREADS as f64).contains(&p.1)),
        "{metric}: {points:?}"
    );
    checked.push(metric);
    checked
}
