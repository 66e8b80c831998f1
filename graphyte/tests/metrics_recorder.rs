//! The `metrics` facade recorder (feature `metrics`): names and labels,
//! each semantic, sharing series with graphyte's macros, and synchronous
//! sends after shutdown. The registry is drained directly (as the interval
//! thread would) so that every interval's lines are known exactly.
//! One test function: the global sender and recorder are set once.
#![cfg(feature = "metrics")]

use std::time::Duration;

use graphyte::{CaptureTransport, Config};

/// The lines of one drain of the interval that started at `ts`, sorted.
fn drain(ts: u64) -> Vec<String> {
    let mut out = Vec::new();
    let n = graphyte::__private::bench::drain(ts, &mut out);
    let mut lines: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), n);
    lines.sort();
    lines
}

fn value_of(lines: &[String], name: &str) -> f64 {
    let line = lines
        .iter()
        .find(|l| l.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in {lines:#?}"));
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn the_recorder_end_to_end() {
    let capture = CaptureTransport::new();
    // Before install: the facade's default no-op recorder, nothing recorded.
    metrics::counter!("before.install").increment(1);
    graphyte::metrics::install(
        Config::new("unused")
            .interval(Duration::from_secs(3600))
            .percentiles(&[0.5, 0.999])
            .transport(capture.clone()),
    )
    .unwrap();
    assert!(matches!(
        graphyte::metrics::install("unused"),
        Err(graphyte::Error::InvalidConfig(why)) if why.contains("recorder is installed already")
    ));

    // Counters: sums per interval, 0 when idle; labels in Carbon's order.
    let requests = metrics::counter!("http.requests", "method" => "GET", "code" => "200");
    for _ in 0..5 {
        requests.increment(2);
    }
    metrics::counter!("http.requests", "code" => "200", "method" => "GET").increment(1);
    // The same series as graphyte's own macro.
    metrics::counter!("shared.hits").increment(10);
    graphyte::count!("shared.hits", 5);
    // A cumulative total.
    let cpu = metrics::counter!("process.cpu_seconds_total");
    cpu.absolute(40);
    cpu.absolute(42);
    // Gauges.
    let depth = metrics::gauge!("queue.depth");
    depth.set(10.0);
    depth.increment(2.5);
    depth.decrement(0.5);
    metrics::gauge!("temperature", "room" => "").set(-3.25);
    // Histograms: any finite value; NaN dropped.
    let latency = metrics::histogram!("latency");
    for v in [0.0, -2.0, 1.5, 4.0, 1000.0] {
        latency.record(v);
    }
    latency.record(f64::NAN);
    // Names Graphite cannot store are replaced.
    metrics::counter!("weird name/with;stuff", "bad key!" => "a b").increment(3);

    let lines = drain(100);
    assert_eq!(value_of(&lines, "http.requests;code=200;method=GET"), 11.0);
    assert_eq!(value_of(&lines, "shared.hits"), 15.0);
    assert_eq!(value_of(&lines, "process.cpu_seconds_total"), 42.0);
    assert_eq!(value_of(&lines, "queue.depth"), 12.0);
    assert_eq!(
        value_of(&lines, "temperature"),
        -3.25,
        "empty label left out"
    );
    assert_eq!(value_of(&lines, "latency.count"), 5.0, "NaN not counted");
    assert_eq!(value_of(&lines, "latency.sum"), 1003.5);
    assert_eq!(value_of(&lines, "latency.min"), -2.0);
    assert_eq!(value_of(&lines, "latency.max"), 1000.0);
    assert_eq!(value_of(&lines, "latency.mean"), 200.7);
    // Nearest rank: the 3rd of -2 0 1.5 4 1000, within README's 0.4 %.
    let p50 = value_of(&lines, "latency.p50");
    assert!((p50 - 1.5).abs() / 1.5 <= 0.004, "{p50}");
    assert_eq!(
        value_of(&lines, "latency.p99_9"),
        1000.0,
        "the top rank is the max"
    );
    assert_eq!(value_of(&lines, "weird_name_with_stuff;bad_key_=a_b"), 3.0);
    assert!(
        !lines.iter().any(|l| l.starts_with("before.install")),
        "{lines:#?}"
    );
    for line in &lines {
        assert_eq!(line.split(' ').count(), 3, "{line:?}");
        assert!(line.ends_with(" 100"), "{line:?}");
    }

    // The next interval: counters 0, gauges and totals repeated, a
    // histogram only its zero count.
    let lines = drain(110);
    assert_eq!(value_of(&lines, "http.requests;code=200;method=GET"), 0.0);
    assert_eq!(value_of(&lines, "process.cpu_seconds_total"), 42.0);
    assert_eq!(value_of(&lines, "queue.depth"), 12.0);
    assert_eq!(value_of(&lines, "latency.count"), 0.0);
    assert!(!lines.iter().any(|l| l.starts_with("latency.sum")));

    // A handle keeps working: atomics on the same series.
    requests.increment(7);
    assert_eq!(
        value_of(&drain(120), "http.requests;code=200;method=GET"),
        7.0
    );

    // After shutdown: one line per call, synchronously.
    graphyte::shutdown().unwrap();
    capture.take_lines();
    requests.increment(4);
    depth.set(1.0);
    latency.record(0.25);
    let lines = capture.take_lines();
    let names_values: Vec<String> = lines
        .iter()
        .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
        .collect();
    assert_eq!(
        names_values,
        [
            "http.requests;code=200;method=GET 4",
            "queue.depth 1.0",
            "latency 0.25"
        ]
    );
}
