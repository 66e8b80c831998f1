//! Series over their life against a real carbon-cache: `Metric` handles
//! land exactly, and a series whose name is not a literal sends its sum,
//! then zeros until the idle timeout, then nothing (Graphite shows no
//! points), is freed, and comes back with its next update. Read back from
//! whisper.
//!
//! Fails under ./scripts/test (GRAPHYTE_REQUIRE_CARBON=1) if carbon is
//! missing. One test function: the global sender can be set once per process.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use graphyte::Config;
use support::{unix_now, CarbonServer};

const SERIES: u64 = 20;

/// The points carbon stored for `metric`, once `done` holds for them (or
/// what it had after 30 s).
fn points_when(
    carbon: &CarbonServer,
    metric: &str,
    done: impl Fn(&[(u32, f64)]) -> bool,
) -> Vec<(u32, f64)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let points = carbon.read_points(metric);
        if done(&points) || Instant::now() >= deadline {
            return points;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Sleeps until just after the next whole second.
fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    thread::sleep(
        Duration::from_nanos(1_000_000_000 - u64::from(now.subsec_nanos()))
            + Duration::from_millis(20),
    );
}

#[test]
fn handles_and_expiring_series_in_whisper() {
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    graphyte::init(
        Config::new("127.0.0.1")
            .port(carbon.port())
            .interval(Duration::from_secs(1))
            .idle_timeout(Duration::from_secs(2)),
    )
    .unwrap();

    // Handles: explicit timestamps in the past hour, values exact.
    let base = unix_now() - 900;
    let handle = graphyte::metric("series.handle").unwrap();
    let tagged = graphyte::sender()
        .unwrap()
        .metric_tagged("series.handle_tagged", &[("env", "test")])
        .unwrap();
    for i in 0..50u32 {
        handle.send_at(i, base + i).unwrap();
        tagged.send_at(f64::from(i) / 4.0, base + i).unwrap();
    }

    // One update per series, early in one second.
    next_second();
    let first = unix_now();
    for n in 0..SERIES {
        graphyte::count!(format!("series.dyn.{n}").as_str(), n + 1);
    }
    assert_eq!(unix_now(), first, "the updates crossed a second");
    assert_eq!(graphyte::stats().unwrap().series, SERIES);
    // Sum at `first`, a zero at `first + 1`, idle from `first + 2`: freed.
    while unix_now() < first + 4 {
        thread::sleep(Duration::from_millis(50));
    }
    let stats = graphyte::stats().unwrap();
    assert_eq!(stats.series, 0, "the idle series were freed");
    // Series 0 comes back.
    next_second();
    let again = unix_now();
    graphyte::count!(format!("series.dyn.{}", 0).as_str(), 100);
    assert_eq!(graphyte::stats().unwrap().series, 1);
    while unix_now() < again + 2 {
        thread::sleep(Duration::from_millis(50));
    }
    graphyte::shutdown().unwrap();

    let expected_handle: Vec<(u32, f64)> = (0..50).map(|i| (base + i, f64::from(i))).collect();
    let got = points_when(&carbon, "series.handle", |p| p == expected_handle);
    assert_eq!(got, expected_handle);
    let expected_tagged: Vec<(u32, f64)> =
        (0..50).map(|i| (base + i, f64::from(i) / 4.0)).collect();
    let got = points_when(&carbon, "series.handle_tagged;env=test", |p| {
        p == expected_tagged
    });
    assert_eq!(got, expected_tagged);

    for n in 1..SERIES {
        let metric = format!("series.dyn.{n}");
        let expected = vec![(first, (n + 1) as f64), (first + 1, 0.0)];
        let got = points_when(&carbon, &metric, |p| p == expected);
        assert_eq!(got, expected, "{metric}");
    }
    let expected = vec![
        (first, 1.0),
        (first + 1, 0.0),
        (again, 100.0),
        (again + 1, 0.0),
    ];
    // The shutdown may send the interval in progress, `again + 2`, if the
    // series had not expired by then: with a 2 s idle timeout it has.
    let got = points_when(&carbon, "series.dyn.0", |p| p == expected);
    assert_eq!(got, expected, "series.dyn.0");
}
