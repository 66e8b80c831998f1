//! The macros through carbon-c-relay to two carbon-caches (issue 14):
//! after `graphyte::init` in interval mode, `count!` (literal, literal
//! tagged, and 300 run-time names), `gauge!` (300 run-time tagged names) and
//! `#[timed]` from two threads over about 3 s. Every series the macros make
//! lands in exactly one of the two caches, and what that cache stored adds up
//! to exactly the calls (counters, timer counts) or holds exactly the value
//! set (gauges).
//!
//! One test function: the global sender can be set once per process.
//! Skips loudly without carbon or the relay; fails under ./scripts/test.

mod support;

use std::thread;
use std::time::Duration;

use graphyte::{count, gauge, timed};
use support::relay::Topology;

const SHARDS: u64 = 300;
const THREADS: u64 = 2;
const ROUNDS: u64 = 30;
/// 30 rounds 100 ms apart: about 3 s of calls, 3 or more intervals of 1 s.
const PAUSE: Duration = Duration::from_millis(100);

#[timed("relay.macros.work")]
fn work(i: u64) -> u64 {
    std::hint::black_box(i + 1)
}

fn gauge_value(shard: u64) -> f64 {
    shard as f64 * 1.5 + 0.125
}

#[test]
fn macro_series_land_in_exactly_one_cache_with_exact_totals() {
    let Some(topology) = Topology::start_or_skip() else {
        return;
    };
    graphyte::init(topology.config().interval(Duration::from_secs(1))).unwrap();

    thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for round in 0..ROUNDS {
                    for shard in 0..SHARDS {
                        count!(format!("relay.macros.shard{shard}.hits"), 1);
                        if (shard + round) % 3 == t {
                            gauge!(
                                format!("relay.macros.load;shard=s{shard};host=h{}", shard % 5),
                                gauge_value(shard)
                            );
                        }
                    }
                    count!("relay.macros.requests", 2);
                    count!("relay.macros.tagged;env=test;zone=b", 1);
                    work(round);
                    thread::sleep(PAUSE);
                }
            });
        }
    });
    graphyte::shutdown().unwrap();
    let stats = graphyte::stats().unwrap();
    assert_eq!(stats.dropped, 0, "{stats:?}");

    let calls = (THREADS * ROUNDS) as f64;
    // series -> what its points must add up to (None: every point == value).
    let mut sums: Vec<(String, f64)> = (0..SHARDS)
        .map(|shard| (format!("relay.macros.shard{shard}.hits"), calls))
        .collect();
    sums.push(("relay.macros.requests".into(), 2.0 * calls));
    sums.push(("relay.macros.tagged;env=test;zone=b".into(), calls));
    sums.push(("relay.macros.work.count".into(), calls));
    let gauges: Vec<(String, f64)> = (0..SHARDS)
        .map(|shard| {
            (
                format!("relay.macros.load;host=h{};shard=s{shard}", shard % 5),
                gauge_value(shard),
            )
        })
        .collect();

    let names: Vec<String> = sums.iter().chain(&gauges).map(|(n, _)| n.clone()).collect();
    let target: std::collections::HashMap<&str, f64> =
        sums.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    // Ready once one cache's points add up (counters) or exist (gauges).
    let found = topology.wait_for(&names, Duration::from_secs(60), |[a, b]| {
        !a.is_empty() || !b.is_empty()
    });
    // Counters: wait until the sums are complete, too.
    for (name, total) in &sums {
        topology.wait_for(std::slice::from_ref(name), Duration::from_secs(30), |p| {
            p.iter()
                .any(|pts| pts.iter().map(|x| x.1).sum::<f64>() == *total)
        });
    }
    thread::sleep(Duration::from_millis(2500));

    let mut per_cache =
        topology.check_each_in_one_cache("macros", &names, &found, |name, points| {
            if let Some(total) = target.get(name) {
                let sum: f64 = points.iter().map(|p| p.1).sum();
                (sum != *total).then(|| format!("{name}: sum {sum} != {total}: {points:?}"))
            } else {
                let value = gauges.iter().find(|(n, _)| n == name).unwrap().1;
                (points.is_empty() || points.iter().any(|p| p.1 != value))
                    .then(|| format!("{name}: expected every point {value}: {points:?}"))
            }
        });
    // The timer's other series (.sum, .max, ...) went the same way: each in
    // one cache only.
    let stats: Vec<String> = ["sum", "min", "max", "mean", "p50", "p90", "p99"]
        .iter()
        .map(|stat| format!("relay.macros.work.{stat}"))
        .collect();
    let timer = topology.check_each_in_one_cache("timer", &stats, &found, |_, _| None);
    per_cache[0] += timer[0];
    per_cache[1] += timer[1];
    topology.assert_nothing_else("macros", per_cache);
    eprintln!(
        "[relay] macros: {} series: cache 0 got {}, cache 1 got {}, none in both or neither",
        per_cache[0] + per_cache[1],
        per_cache[0],
        per_cache[1]
    );
    assert!(per_cache.iter().all(|&n| n > 0), "{per_cache:?}");
}
