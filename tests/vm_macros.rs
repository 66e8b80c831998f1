//! The macros into VictoriaMetrics (issue 20): after `graphyte::init` in
//! interval mode, `count!` (literal, literal tagged, 200 run-time names),
//! `gauge!` (200 run-time tagged names) and `#[timed]` from two threads over
//! about 3 s. Read back through `/api/v1/export`: the counters and the
//! timer's count add up to exactly the calls, every gauge point is exactly
//! the value set, each timer field is there, and nothing else is stored.
//!
//! One test function: the global sender can be set once per process.
//! Skips loudly without VictoriaMetrics; fails under ./scripts/test.

mod support;

use std::collections::HashMap;
use std::thread;
use std::time::Duration;

use graphyte::{count, gauge, timed};
use support::unix_now;
use support::vm::VmServer;

const SHARDS: u64 = 200;
const THREADS: u64 = 2;
const ROUNDS: u64 = 30;
/// 30 rounds 100 ms apart: about 3 s of calls, 3 or more intervals of 1 s.
const PAUSE: Duration = Duration::from_millis(100);
const TIMER_FIELDS: [&str; 8] = ["count", "sum", "min", "max", "mean", "p50", "p90", "p99"];

#[timed("vm.macros.work")]
fn work(i: u64) -> u64 {
    std::hint::black_box(i + 1)
}

fn gauge_value(shard: u64) -> f64 {
    shard as f64 * 1.5 + 0.125
}

#[test]
fn macro_series_add_up_exactly_in_victoria_metrics() {
    let Some(vm) = VmServer::start_or_skip() else {
        return;
    };
    graphyte::init(vm.config().interval(Duration::from_secs(1))).unwrap();
    let started = unix_now();
    thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for round in 0..ROUNDS {
                    for shard in 0..SHARDS {
                        count!(format!("vm.macros.shard{shard}.hits"), 1);
                        if (shard + round) % 2 == t {
                            gauge!(
                                format!("vm.macros.load;shard=s{shard};host=h{}", shard % 5),
                                gauge_value(shard)
                            );
                        }
                    }
                    count!("vm.macros.requests", 2);
                    count!("vm.macros.tagged;env=test;zone=b", 1);
                    work(round);
                    thread::sleep(PAUSE);
                }
            });
        }
    });
    graphyte::shutdown().unwrap();
    let ended = unix_now();
    let stats = graphyte::stats().unwrap();
    assert_eq!(stats.dropped, 0, "{stats:?}");

    let calls = (THREADS * ROUNDS) as f64;
    let mut sums: HashMap<String, f64> = (0..SHARDS)
        .map(|shard| (format!("vm.macros.shard{shard}.hits"), calls))
        .collect();
    sums.insert("vm.macros.requests".into(), 2.0 * calls);
    sums.insert("vm.macros.tagged;env=test;zone=b".into(), calls);
    sums.insert("vm.macros.work.count".into(), calls);
    let gauges: HashMap<String, f64> = (0..SHARDS)
        .map(|shard| {
            (
                format!("vm.macros.load;host=h{};shard=s{shard}", shard % 5),
                gauge_value(shard),
            )
        })
        .collect();
    let fields: Vec<String> = TIMER_FIELDS[1..]
        .iter()
        .map(|f| format!("vm.macros.work.{f}"))
        .collect();
    let mut names: Vec<String> = sums.keys().chain(gauges.keys()).cloned().collect();
    names.extend(fields.iter().cloned());
    names.sort();

    let sum = |p: &[(u64, f64)]| p.iter().map(|x| x.1).sum::<f64>();
    let stored = vm.wait_for(
        "vm.macros",
        &names,
        Duration::from_secs(60),
        |name, p| match sums.get(name) {
            Some(total) => sum(p) == *total,
            None => !p.is_empty(),
        },
    );
    let mut problems = Vec::new();
    for name in &names {
        let points = &stored.points[name];
        for (ms, _) in points {
            let s = (ms / 1000) as u32;
            if ms % 1000 != 0 || !(started..=ended + 1).contains(&s) {
                problems.push(format!(
                    "{name}: point at {ms} ms, calls {started}..{ended}"
                ));
            }
        }
        if let Some(total) = sums.get(name) {
            if sum(points) != *total {
                problems.push(format!(
                    "{name}: sum {} != {total}: {points:?}",
                    sum(points)
                ));
            }
        } else if let Some(value) = gauges.get(name) {
            if points.is_empty() || points.iter().any(|p| p.1 != *value) {
                problems.push(format!("{name}: expected every point {value}: {points:?}"));
            }
        } else if points.is_empty() {
            problems.push(format!("{name}: no points"));
        }
    }
    let others = stored.others(&names);
    assert!(
        problems.is_empty() && others.is_empty(),
        "{} of {} series wrong, first ones:\n{}\nseries not expected: {:?}",
        problems.len(),
        names.len(),
        problems[..problems.len().min(10)].join("\n"),
        &others[..others.len().min(10)]
    );
    // Over 3 intervals at least: the counters came in several points.
    let requests = &stored.points["vm.macros.requests"];
    assert!(requests.len() >= 3, "{requests:?}");
    eprintln!(
        "[vm] macros: {} series stored exactly ({} points of vm.macros.requests)",
        names.len(),
        requests.len()
    );
}
