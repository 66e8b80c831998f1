//! The macros against a real carbon-cache: 4 threads call `count!` and a
//! `#[timed]` function a known number of times over at least 3 intervals;
//! what carbon stored in its whisper files adds up to exactly the number of
//! calls. (Carbon keeps one value per series and second, the last written:
//! this only holds because every interval is sent as one sum with its own
//! timestamp.)
//!
//! Skips loudly without carbon; fails under ./scripts/test
//! (GRAPHYTE_REQUIRE_CARBON=1) if carbon is missing.
//! One test function: the global sender can be set once per process.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use graphyte::{count, timed, Config};
use support::{unix_now, CarbonServer};

const THREADS: u64 = 4;
const ROUNDS: u64 = 40;
const CALLS_PER_ROUND: u64 = 250;
/// 40 rounds 100 ms apart: about 4 s of calls, so at least 3 intervals of 1 s.
const PAUSE: Duration = Duration::from_millis(100);

#[timed("macros.carbon.work")]
fn work(i: u64) -> u64 {
    std::hint::black_box(i * 2)
}

/// Sum of the values carbon stored for `metric`, once it reaches `expected`
/// (or what it had when `timeout` ran out).
fn wait_for_sum(
    carbon: &CarbonServer,
    metric: &str,
    expected: f64,
    timeout: Duration,
) -> Vec<(u32, f64)> {
    let deadline = Instant::now() + timeout;
    loop {
        let points = carbon.read_points(metric);
        let sum: f64 = points.iter().map(|p| p.1).sum();
        if sum == expected || Instant::now() >= deadline {
            return points;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn counts_and_timings_in_whisper_add_up_to_the_calls() {
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    graphyte::init(
        Config::new("127.0.0.1")
            .port(carbon.port())
            .interval(Duration::from_secs(1)),
    )
    .unwrap();

    let started = unix_now();
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for round in 0..ROUNDS {
                    for i in 0..CALLS_PER_ROUND {
                        count!("macros.carbon.requests", 1);
                        work(round * CALLS_PER_ROUND + i);
                    }
                    thread::sleep(PAUSE);
                }
            });
        }
    });
    let ended = unix_now();
    assert!(ended - started >= 3, "the calls took {} s", ended - started);
    // Sends the interval in progress, and waits until carbon has it all.
    graphyte::shutdown().unwrap();

    let calls = (THREADS * ROUNDS * CALLS_PER_ROUND) as f64;
    for metric in ["macros.carbon.requests", "macros.carbon.work.count"] {
        let points = wait_for_sum(&carbon, metric, calls, Duration::from_secs(30));
        let sum: f64 = points.iter().map(|p| p.1).sum();
        assert_eq!(sum, calls, "{metric}: {points:?}");
        let busy: Vec<_> = points.iter().filter(|p| p.1 > 0.0).collect();
        assert!(
            busy.len() >= 3,
            "{metric}: not over 3 intervals: {points:?}"
        );
        for (ts, _) in &points {
            assert!(
                (started - 1..=ended + 1).contains(ts),
                "{metric}: point at {ts}, calls from {started} to {ended}: {points:?}"
            );
        }
    }
    // The durations made it too: a max for each second with calls.
    let counts = carbon.read_points("macros.carbon.work.count");
    let busy: Vec<u32> = counts.iter().filter(|p| p.1 > 0.0).map(|p| p.0).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let maxes = carbon.read_points("macros.carbon.work.max");
        let missing: Vec<&u32> = busy
            .iter()
            .filter(|ts| !maxes.iter().any(|(t, max)| t == *ts && *max > 0.0))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no max at {missing:?}: counts {counts:?}, maxes {maxes:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}
