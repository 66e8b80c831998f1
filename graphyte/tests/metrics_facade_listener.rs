//! The `metrics` facade end to end, on the wire: a library that only uses
//! the `metrics` macros (tests/metrics_facade_common) is called from 4
//! threads over several 1 s intervals, with graphyte installed as the
//! recorder (`graphyte::metrics::install`) sending to a loopback listener.
//! What arrived: exactly the series expected, each name with its labels and
//! the default tag in Carbon's canonical order; no series twice for one
//! timestamp; counter sums and histogram counts and sums exact over all
//! intervals and threads; gauges ending at their last value.
//! One test function: the global recorder can be installed once per process.
#![cfg(feature = "metrics")]

#[path = "../../tests/support/mod.rs"]
mod support;

mod metrics_facade_common;

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use graphyte::Config;
use metrics_facade_common::*;
use support::{unix_now, LineListener};

/// Every line received, as (series, value, timestamp); panics on a line
/// that is not `NAME VALUE TIMESTAMP`.
fn parse(received: &str) -> Vec<(String, f64, u32)> {
    received
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 3, "not a Carbon line: {line:?}");
            let value = fields[1]
                .parse()
                .unwrap_or_else(|e| panic!("{line:?}: {e}"));
            let ts = fields[2]
                .parse()
                .unwrap_or_else(|e| panic!("{line:?}: {e}"));
            (fields[0].to_owned(), value, ts)
        })
        .collect()
}

/// Points per series, by timestamp; panics if a series came twice for one
/// timestamp (Carbon would keep only the last of them).
fn by_series(lines: &[(String, f64, u32)]) -> BTreeMap<String, BTreeMap<u32, f64>> {
    let mut series: BTreeMap<String, BTreeMap<u32, f64>> = BTreeMap::new();
    for (name, value, ts) in lines {
        if let Some(before) = series.entry(name.clone()).or_default().insert(*ts, *value) {
            panic!("{name} sent twice for {ts}: {before} and {value}");
        }
    }
    series
}

fn sum(points: Option<&BTreeMap<u32, f64>>) -> f64 {
    points.map_or(0.0, |p| p.values().sum())
}

fn last(points: Option<&BTreeMap<u32, f64>>) -> Option<f64> {
    points.and_then(|p| p.values().next_back().copied())
}

#[test]
fn a_library_using_only_the_facade_reaches_the_wire_exactly() {
    let listener = LineListener::start();
    graphyte::metrics::install(
        Config::new("127.0.0.1")
            .port(listener.port())
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
    // Everything was written before shutdown returned; the listener may
    // still be reading it.
    let complete = |series: &BTreeMap<String, BTreeMap<u32, f64>>| {
        expected
            .requests
            .iter()
            .all(|&(route, n)| sum(series.get(&requests_series(route))) == n as f64)
            && sum(series.get(&bytes_series())) == expected.bytes as f64
            && expected
                .latency
                .iter()
                .all(|&(route, n, _)| sum(series.get(&latency_series(route, "count"))) == n as f64)
            && expected
                .last_request
                .iter()
                .all(|&(w, v)| last(series.get(&last_request_series(w))) == Some(v))
            && last(series.get(&in_flight_series())) == Some(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let series = loop {
        let series = by_series(&parse(&listener.received()));
        if complete(&series) || Instant::now() >= deadline {
            break series;
        }
        thread::sleep(Duration::from_millis(50));
    };

    // Exactly these series, names as Carbon stores them (tags sorted as
    // `;k=v` strings, default tag merged in).
    let mut names = BTreeSet::new();
    for route in some_library::ROUTES {
        names.insert(requests_series(route));
        for field in LATENCY_FIELDS {
            names.insert(latency_series(route, field));
        }
    }
    names.insert(bytes_series());
    names.insert(in_flight_series());
    for w in 0..THREADS {
        names.insert(last_request_series(w));
    }
    let got: BTreeSet<String> = series.keys().cloned().collect();
    assert_eq!(got, names);
    assert_eq!(
        requests_series("users"),
        "svc.lib.requests;code-class=2xx;code=200;host=test-1;route=users"
    );

    // Counters: the sums over every interval and thread are the calls.
    for &(route, n) in &expected.requests {
        let name = requests_series(route);
        let points = &series[&name];
        assert_eq!(sum(Some(points)), n as f64, "{name}: {points:?}");
        let busy = points.values().filter(|v| **v > 0.0).count();
        assert!(busy >= 3, "{name}: not over 3 intervals: {points:?}");
    }
    let bytes = &series[&bytes_series()];
    assert_eq!(sum(Some(bytes)), expected.bytes as f64, "{bytes:?}");
    // Every series is sent once per interval at the interval's start:
    // within the run, one point a second at most (checked by `by_series`).
    for (name, points) in &series {
        for ts in points.keys() {
            assert!(
                (started - 1..=ended + 1).contains(ts),
                "{name}: point at {ts}, calls from {started} to {ended}: {points:?}"
            );
        }
    }

    // Histograms: count and sum exact; each interval's fields consistent.
    for &(route, n, total) in &expected.latency {
        let counts = &series[&latency_series(route, "count")];
        let sums = &series[&latency_series(route, "sum")];
        assert_eq!(sum(Some(counts)), n as f64, "{route}: {counts:?}");
        assert_eq!(sum(Some(sums)), total, "{route}: {sums:?}");
        for (ts, count) in counts {
            let field = |f: &str| series[&latency_series(route, f)].get(ts).copied();
            if *count == 0.0 {
                assert_eq!(field("sum"), None, "{route} at {ts}: no values, no sum");
                continue;
            }
            let (min, max) = (field("min").unwrap(), field("max").unwrap());
            let (sum, mean) = (field("sum").unwrap(), field("mean").unwrap());
            assert!(0.0 <= min && min <= max && max <= 3.75, "{route} at {ts}");
            assert!((mean * count - sum).abs() <= 1e-9 * sum, "{route} at {ts}");
            // Which calls fell in which interval is not known here, but a
            // nearest-rank percentile is one of the values recorded: each p
            // must be within README's 0.4 % of a latency the route records
            // (graphyte/tests/percentiles.rs checks the exact rank).
            let recorded: Vec<f64> = (0..16)
                .filter(|n| some_library::ROUTES[(n % 2) as usize] == route)
                .map(some_library::latency_ms)
                .collect();
            for p in ["p50", "p90", "p99"] {
                let v = field(p).unwrap();
                assert!(min <= v && v <= max, "{route} at {ts}: {p} {v}");
                assert!(
                    recorded.iter().any(|&l| (v - l).abs() <= 0.004 * l),
                    "{route} at {ts}: {p} {v} is not within 0.4 % of a recorded value {recorded:?}"
                );
            }
        }
    }

    // Gauges: the last value set; in flight between 0 and the threads.
    for &(w, v) in &expected.last_request {
        let name = last_request_series(w);
        assert_eq!(
            last(series.get(&name)),
            Some(v),
            "{name}: {:?}",
            series[&name]
        );
    }
    let in_flight = &series[&in_flight_series()];
    assert_eq!(last(Some(in_flight)), Some(0.0), "{in_flight:?}");
    assert!(
        in_flight
            .values()
            .all(|v| (0.0..=THREADS as f64).contains(v) && v.fract() == 0.0),
        "{in_flight:?}"
    );
}
