//! Facade series at real cardinality (feature `metrics`): idle label sets
//! expire and are freed (a `Weak` of the series no longer upgrades), an
//! update through a handle kept across the expiry is never lost, expired
//! series free their place under `max_series`, a literal call site refused
//! while the bound was full registers once there is room, and keys that
//! clean up to one Graphite name are one series.
//!
//! The registry is drained directly (as the interval thread would) with
//! interval starts one second apart and `idle_timeout(1 s)`: a series
//! updated before one drain and not before the next is removed at the
//! next. One test function: the global sender and recorder are set once.
#![cfg(feature = "metrics")]

use std::collections::BTreeMap;
use std::time::Duration;

use graphyte::__private::bench;
use graphyte::{CaptureTransport, Config};

/// The `max_series` of this test, as in the report this test comes from.
const MAX_SERIES: usize = 150_000;

/// The lines of one drain of the interval that started at `ts`, by name.
fn drain(ts: u64) -> BTreeMap<String, f64> {
    let mut out = Vec::new();
    let n = bench::drain(ts, &mut out);
    let text = String::from_utf8(out).unwrap();
    let lines: BTreeMap<String, f64> = text
        .lines()
        .map(|l| {
            let mut fields = l.split(' ');
            let name = fields.next().unwrap().to_owned();
            (name, fields.next().unwrap().parse().unwrap())
        })
        .collect();
    assert_eq!(lines.len(), n, "one line per series");
    lines
}

/// Drains until every series not updated since is removed: two drains (the
/// first sends what is pending, the second finds them idle).
fn expire_all(ts: &mut u64) {
    drain(*ts);
    drain(*ts + 1);
    *ts += 2;
}

fn crowd(prefix: &str, n: usize) {
    for i in 0..n {
        metrics::counter!("crowd.requests", "user" => format!("{prefix}{i}")).increment(1);
    }
}

#[test]
fn facade_series_expire_are_freed_and_lose_no_update() {
    graphyte::metrics::install(
        Config::new("unused")
            .interval(Duration::from_secs(3600))
            .idle_timeout(Duration::from_secs(1))
            .max_series(MAX_SERIES)
            .transport(CaptureTransport::new()),
    )
    .unwrap();
    let mut ts = 1_000_000;

    // 1. A crowd after an expired crowd is never refused.
    crowd("a", 120_000);
    assert_eq!(bench::series(), (120_000, 0));
    let first = drain(ts);
    assert_eq!(first.len(), 120_000);
    assert_eq!(first["crowd.requests;user=a119999"], 1.0);
    assert!(drain(ts + 1).is_empty(), "idle: nothing sent");
    ts += 2;
    assert_eq!(bench::series(), (0, 0), "the idle crowd is removed");
    crowd("b", 100_000);
    let (live, refused) = bench::series();
    println!("crowd after crowd: {refused} of 100000 new label sets refused, {live} live");
    assert_eq!((live, refused), (100_000, 0));
    let second = drain(ts);
    assert_eq!(second.len(), 100_000);
    assert!(second.values().all(|&v| v == 1.0));
    assert!(!second.contains_key("crowd.requests;user=a0"));
    drain(ts + 1);
    ts += 2;
    assert_eq!(bench::series(), (0, 0));

    // 2. A series no one holds is freed when it expires: a `Weak` of it no
    // longer upgrades.
    metrics::counter!("freed", "user" => "u1").increment(3);
    let watch = bench::watch("freed;user=u1").expect("registered");
    assert_eq!(watch.holders(), 1, "only the registry holds it");
    assert_eq!(drain(ts)["freed;user=u1"], 3.0);
    drain(ts + 1);
    ts += 2;
    assert!(!watch.alive(), "the removed series was dropped");
    assert!(bench::watch("freed;user=u1").is_none());

    // 3. A handle kept across the expiry: the registry lets go of the
    // series (only the handle holds it), and the handle's next update
    // lands in a new live series of the same name and is sent.
    let held = metrics::counter!("held", "user" => "u2");
    held.increment(2);
    let old = bench::watch("held;user=u2").unwrap();
    assert_eq!(old.holders(), 2, "the registry and the handle");
    assert_eq!(drain(ts)["held;user=u2"], 2.0);
    assert!(drain(ts + 1).is_empty());
    ts += 2;
    assert_eq!(old.holders(), 1, "the registry let go; the handle holds it");
    assert!(bench::watch("held;user=u2").is_none());
    held.increment(5);
    held.increment(1);
    let new = bench::watch("held;user=u2").expect("the update made a live series");
    assert!(!new.same(&old));
    assert_eq!(drain(ts)["held;user=u2"], 6.0, "no update lost");
    drop(held);
    assert!(!old.alive(), "the retired series went with its last handle");

    // Gauges and histograms kept across the expiry too: a gauge goes on
    // from its latest value, a histogram's values are counted.
    let gauge = metrics::gauge!("depth", "queue" => "q1");
    gauge.set(10.0);
    let histogram = metrics::histogram!("latency", "route" => "r1");
    histogram.record(4.0);
    let lines = drain(ts + 1);
    assert_eq!(lines["depth;queue=q1"], 10.0);
    assert_eq!(lines["latency.count;route=r1"], 1.0);
    drain(ts + 2);
    drain(ts + 3);
    ts += 4;
    assert!(bench::watch("depth;queue=q1").is_none(), "gauge expired");
    assert!(
        bench::watch("latency;route=r1").is_none(),
        "histogram expired"
    );
    gauge.increment(2.5);
    histogram.record(7.0);
    histogram.record(9.0);
    let lines = drain(ts);
    assert_eq!(lines["depth;queue=q1"], 12.5);
    assert_eq!(lines["latency.count;route=r1"], 2.0);
    assert_eq!(lines["latency.sum;route=r1"], 16.0);
    assert_eq!(lines["latency.max;route=r1"], 9.0);
    drop((gauge, histogram));
    expire_all(&mut ts);
    ts += 1;
    assert_eq!(bench::series().0, 0);

    // 4. Keys that clean up to one Graphite name are one series, counted
    // once against the bound.
    metrics::counter!("same", "a" => "1", "b" => "2").increment(1);
    metrics::counter!("same", "b" => "2", "a" => "1").increment(1);
    metrics::counter!("same", "b" => "2", "a" => "1", "c" => "").increment(1);
    assert_eq!(bench::series().0, 1);
    assert_eq!(drain(ts)["same;a=1;b=2"], 3.0);
    drain(ts + 1);
    ts += 2;

    // 5. A literal call site refused while the bound was full registers
    // once expiry made room.
    crowd("c", MAX_SERIES);
    assert_eq!(bench::series(), (MAX_SERIES as u64, 0));
    graphyte::count!("literal.after.full", 1);
    assert_eq!(bench::series(), (MAX_SERIES as u64, 1), "refused, counted");
    expire_all(&mut ts);
    assert_eq!(bench::series().0, 0);
    graphyte::count!("literal.after.full", 2);
    assert_eq!(drain(ts)["literal.after.full"], 2.0);
    assert_eq!(bench::series(), (1, 1));

    graphyte::shutdown().unwrap();
}
