//! The expiry protocol into a real carbon-cache (feature `metrics`): 4
//! threads update 400 keys for 12 seconds, each key idle for seconds at a
//! time, so that it expires (interval 1 s, `idle_timeout(1 s)`) and comes
//! back, through handles kept for good, `metrics::counter!` and non-literal
//! `count!`. Read back from carbon's whisper files: every key's points add
//! up to what the threads added, exactly.
//!
//! Skips loudly without carbon; fails under ./scripts/test
//! (GRAPHYTE_REQUIRE_CARBON=1) if carbon is missing.
#![cfg(feature = "metrics")]

#[path = "../../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use graphyte::Config;
use support::CarbonServer;

const KEYS: usize = 400;
const THREADS: usize = 4;
const WINDOW: usize = 50;
const PHASE: Duration = Duration::from_millis(1200);
const RUN: Duration = Duration::from_secs(12);

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn expiring_keys_add_up_in_whisper() {
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    graphyte::metrics::install(
        Config::new("127.0.0.1")
            .port(carbon.port())
            .prefix("expiry")
            .interval(Duration::from_secs(1))
            .idle_timeout(Duration::from_secs(1)),
    )
    .unwrap();
    let labels: Arc<Vec<&'static str>> = Arc::new(
        (0..KEYS)
            .map(|i| &*Box::leak(format!("k{i}").into_boxed_str()))
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (labels, stop) = (labels.clone(), stop.clone());
            thread::spawn(move || {
                let mut added = vec![0u64; KEYS];
                let mut handles: Vec<Option<metrics::Counter>> = (0..KEYS).map(|_| None).collect();
                let mut x = 0x2545_f491_4f6c_dd1du64 ^ (t as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    let phase = (started.elapsed().as_millis() / PHASE.as_millis()) as usize;
                    let base = phase.wrapping_mul(97) % KEYS;
                    let r = xorshift(&mut x);
                    let k = (base + (r as usize >> 8) % WINDOW) % KEYS;
                    let n = 1 + r % 3;
                    match (r >> 40) % 3 {
                        0 => handles[k]
                            .get_or_insert_with(|| metrics::counter!("stress", "k" => labels[k]))
                            .increment(n),
                        1 => metrics::counter!("stress", "k" => labels[k]).increment(n),
                        _ => graphyte::count!(format!("stress;k={}", labels[k]).as_str(), n),
                    }
                    added[k] += n;
                    if r % 64 == 0 {
                        thread::sleep(Duration::from_micros(200));
                    }
                }
                added
            })
        })
        .collect();
    thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    let mut added = vec![0u64; KEYS];
    for w in workers {
        for (sum, v) in added.iter_mut().zip(w.join().unwrap()) {
            *sum += v;
        }
    }
    let stats = graphyte::stats().unwrap();
    graphyte::shutdown().unwrap();
    assert_eq!((stats.series_refused, stats.dropped), (0, 0));

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut wrong = Vec::new();
    for (k, &expected) in added.iter().enumerate() {
        if expected == 0 {
            continue;
        }
        let metric = format!("expiry.stress;k={}", labels[k]);
        let got = loop {
            let points = carbon.read_points(&metric);
            let sum: f64 = points.iter().map(|p| p.1).sum();
            if sum == expected as f64 || Instant::now() >= deadline {
                break sum;
            }
            thread::sleep(Duration::from_millis(200));
        };
        if got != expected as f64 {
            wrong.push((metric, expected, got));
        }
    }
    let used = added.iter().filter(|&&a| a > 0).count();
    println!(
        "{used} keys used, {} added in all; {} keys differ",
        added.iter().sum::<u64>(),
        wrong.len()
    );
    assert!(used > KEYS / 2, "only {used} keys used");
    assert!(wrong.is_empty(), "(metric, added, in whisper): {wrong:?}");
}
