//! The macros with a global sender in interval mode (1 s): they aggregate,
//! and every interval sends one line per series, timestamped with the
//! interval's start. Values are checked exactly: counter sums, the gauge's
//! latest value, and the timers' count, sum, min and max (the timed
//! functions advance a mock clock by known amounts).
//!
//! The tests run in parallel on this process's one global sender, each with
//! metric names of its own; only `timer_values_are_exact` moves the clock.

use std::collections::BTreeMap;
use std::panic::catch_unwind;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use graphyte::__private::MockClock;
use graphyte::{count, gauge, timed, CaptureTransport, Config};

const INTERVAL: Duration = Duration::from_secs(1);
/// Long enough for several intervals on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(20);

struct Setup {
    capture: CaptureTransport,
    clock: MockClock,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let clock = graphyte::__private::mock_clock().expect("the clock is not set up yet");
        let capture = CaptureTransport::new();
        graphyte::init(
            Config::new("unused")
                .interval(INTERVAL)
                .transport(capture.clone()),
        )
        .unwrap();
        Setup { capture, clock }
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What Carbon would keep: per series, the last value sent per timestamp.
/// Also checks that no series was sent twice with one timestamp.
#[derive(Debug)]
struct Series(BTreeMap<String, BTreeMap<u64, f64>>);

impl Series {
    fn of(lines: &[String], prefix: &str) -> Series {
        let mut series: BTreeMap<String, BTreeMap<u64, f64>> = BTreeMap::new();
        for line in lines.iter().filter(|l| l.starts_with(prefix)) {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts.len(), 3, "{line:?}");
            let (value, ts) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
            let previous = series
                .entry(parts[0].to_owned())
                .or_default()
                .insert(ts, value);
            assert!(
                previous.is_none(),
                "two lines for one time bucket: {line:?} in {lines:#?}"
            );
        }
        Series(series)
    }

    fn points(&self, name: &str) -> Vec<(u64, f64)> {
        self.0
            .get(name)
            .map(|points| points.iter().map(|(&t, &v)| (t, v)).collect())
            .unwrap_or_default()
    }

    fn sum(&self, name: &str) -> f64 {
        self.points(name).iter().map(|p| p.1).sum()
    }
}

/// Waits until the series of lines starting with `prefix` satisfy `done`.
fn wait_for(prefix: &str, done: impl Fn(&Series) -> bool) -> Series {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let lines = setup().capture.lines();
        let series = Series::of(&lines, prefix);
        if done(&series) {
            return series;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {prefix}: {series:#?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn counter_sums_are_exact_across_threads_and_intervals() {
    setup();
    let started = now();
    // 4 threads, 8 rounds 200 ms apart: the calls span at least one interval boundary.
    thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                let name = format!("counter.dynamic;thread={t}");
                for _ in 0..8 {
                    for _ in 0..1000 {
                        count!("counter.requests", 1);
                        count!(name, 2u8);
                    }
                    thread::sleep(Duration::from_millis(200));
                }
            });
        }
    });
    let ended = now();
    // Done when every call is in and an idle interval followed (a 0).
    let series = wait_for("counter.", |s| {
        let points = s.points("counter.requests");
        s.sum("counter.requests") == 32_000.0 && points.last().is_some_and(|p| p.1 == 0.0)
    });
    let points = series.points("counter.requests");
    assert!(points.len() >= 3, "{points:?}");
    for (ts, _) in &points {
        assert!(*ts >= started - 1, "{points:?}");
    }
    let busy: Vec<_> = points.iter().filter(|p| p.1 > 0.0).collect();
    assert!(busy.len() >= 2, "the calls spanned a boundary: {points:?}");
    assert!(busy.iter().all(|p| p.0 <= ended), "{points:?}");
    // The dynamic names: one series per thread, each exact.
    let series = wait_for("counter.dynamic", |s| {
        (0..4).all(|t| s.sum(&format!("counter.dynamic;thread={t}")) == 16_000.0)
    });
    assert_eq!(series.0.len(), 4, "{series:#?}");
}

fn set_depth_elsewhere(v: u32) {
    gauge!("gauge.depth", v);
}

#[test]
fn gauges_send_their_latest_value_every_interval() {
    setup();
    gauge!("gauge.depth", 5);
    gauge!("gauge.depth", 7.0);
    gauge!("gauge.ratio", 0.25);
    // The value is repeated every interval.
    let series = wait_for("gauge.", |s| {
        s.points("gauge.depth")
            .iter()
            .filter(|p| p.1 == 7.0)
            .count()
            >= 2
    });
    assert!(series.points("gauge.ratio").iter().all(|p| p.1 == 0.25));
    // Another call site with the same name sets the same series.
    set_depth_elsewhere(9);
    let series = wait_for("gauge.", |s| {
        s.points("gauge.depth")
            .iter()
            .filter(|p| p.1 == 9.0)
            .count()
            >= 2
    });
    let values: Vec<f64> = series.points("gauge.depth").iter().map(|p| p.1).collect();
    // A tick may have fallen between the first two calls: 5 then at most once.
    let first_seven = values.iter().position(|&v| v == 7.0).unwrap();
    assert!(
        values[..first_seven].iter().all(|&v| v == 5.0),
        "{values:?}"
    );
    let first_nine = values.iter().position(|&v| v == 9.0).unwrap();
    assert!(
        values[first_seven..first_nine].iter().all(|&v| v == 7.0),
        "{values:?}"
    );
    assert!(values[first_nine..].iter().all(|&v| v == 9.0), "{values:?}");
}

#[timed("timer.work")]
fn work(ms: u64) -> Result<u64, String> {
    setup().clock.advance(Duration::from_millis(ms));
    if ms == 5 {
        Err("five".to_owned())?;
    }
    if ms == 20 {
        panic!("twenty");
    }
    Ok(ms)
}

const SUFFIXES: [&str; 8] = ["count", "sum", "min", "max", "mean", "p50", "p90", "p99"];

#[test]
fn timer_values_are_exact() {
    setup();
    for ms in 1..=10 {
        assert_eq!(work(ms).is_ok(), ms != 5);
    }
    assert!(work(5).is_err());
    assert!(catch_unwind(|| work(20)).is_err());
    // 12 calls of 1..=10, 5 and 20 ms, maybe over two intervals.
    let series = wait_for("timer.work.", |s| s.sum("timer.work.count") == 12.0);
    assert_eq!(series.sum("timer.work.sum"), 80.0, "{series:#?}");
    let busy: Vec<u64> = series
        .points("timer.work.count")
        .iter()
        .filter(|p| p.1 > 0.0)
        .map(|p| p.0)
        .collect();
    let at = |suffix: &str, ts: u64| {
        let name = format!("timer.work.{suffix}");
        series.0[&name][&ts]
    };
    let min = busy
        .iter()
        .map(|&ts| at("min", ts))
        .fold(f64::MAX, f64::min);
    let max = busy.iter().map(|&ts| at("max", ts)).fold(0.0, f64::max);
    assert_eq!((min, max), (1.0, 20.0), "{series:#?}");
    for &ts in &busy {
        let (count, sum) = (at("count", ts), at("sum", ts));
        assert_eq!(at("mean", ts), sum / count, "{series:#?}");
        let (lo, p50, p90, p99, hi) = (
            at("min", ts),
            at("p50", ts),
            at("p90", ts),
            at("p99", ts),
            at("max", ts),
        );
        assert!(
            lo <= p50 && p50 <= p90 && p90 <= p99 && p99 <= hi,
            "{series:#?}"
        );
    }
    if busy.len() == 1 {
        // All 12 in one interval: nearest-rank p50 is the 6th of
        // 1 2 3 4 5 5 6 7 8 9 10 20, p90 the 11th, p99 the max.
        let ts = busy[0];
        assert!((at("p50", ts) - 5.0).abs() / 5.0 <= 0.004, "{series:#?}");
        assert!((at("p90", ts) - 10.0).abs() / 10.0 <= 0.004, "{series:#?}");
        assert_eq!(at("p99", ts), 20.0, "{series:#?}");
    }
    // Then an idle interval: only `count 0`, no made-up durations.
    let series = wait_for("timer.work.", |s| {
        s.points("timer.work.count")
            .last()
            .is_some_and(|p| p.1 == 0.0)
    });
    let (idle, _) = *series.points("timer.work.count").last().unwrap();
    for suffix in &SUFFIXES[1..] {
        let name = format!("timer.work.{suffix}");
        assert!(!series.0[&name].contains_key(&idle), "{series:#?}");
    }
}

#[timed("tagged.query;env=prod")]
fn tagged_query() {}

#[test]
fn inline_tags_stay_after_the_timer_suffixes() {
    setup();
    tagged_query();
    tagged_query();
    count!("tagged.hits;env=prod;host=a", 2);
    let series = wait_for("tagged.", |s| {
        s.sum("tagged.query.count;env=prod") == 2.0 && s.sum("tagged.hits;env=prod;host=a") == 2.0
    });
    let names: Vec<&String> = series
        .0
        .keys()
        .filter(|name| name.starts_with("tagged.query"))
        .collect();
    let expected: Vec<String> = {
        let mut v: Vec<String> = SUFFIXES
            .iter()
            .map(|suffix| format!("tagged.query.{suffix};env=prod"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names, expected.iter().collect::<Vec<_>>());
}

#[test]
fn plain_sends_pass_through_unaggregated() {
    setup();
    graphyte::send("plain.sent", 1).unwrap();
    graphyte::send("plain.sent", 1).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let lines = setup().capture.lines();
        let sent: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("plain.sent "))
            .collect();
        if sent.len() == 2 {
            assert!(
                sent.iter().all(|l| l.starts_with("plain.sent 1 ")),
                "{sent:?}"
            );
            break;
        }
        assert!(sent.len() < 2 && Instant::now() < deadline, "{sent:?}");
        thread::sleep(Duration::from_millis(20));
    }
}
