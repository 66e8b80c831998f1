//! The expiry protocol under load (feature `metrics`): 4 threads update
//! 100,000 keys for 20 seconds (`GRAPHYTE_STRESS_SECS` to change it), the
//! keys going idle, expiring (interval 1 s, `idle_timeout(1 s)`) and coming
//! back all the time, through the three ways a series is updated: a
//! `metrics::Counter` handle each thread keeps for good (so most updates
//! through it find its series retired at some point and move on), the
//! `metrics::counter!` macro (a lookup per call) and `count!` with a
//! non-literal name. Every key's total on the wire (as Carbon keeps it: the
//! last value per series and timestamp, summed over timestamps) must equal
//! what the threads counted they added, exactly.
#![cfg(feature = "metrics")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use graphyte::{CaptureTransport, Config};

const KEYS: usize = 100_000;
const THREADS: usize = 4;
/// Keys updated in one phase, and how long a phase lasts: a key is idle
/// until a later phase's window covers it again.
const WINDOW: usize = 5_000;
const PHASE: Duration = Duration::from_millis(400);

/// What the wire said, per series: totals of the timestamps before the
/// last one, and the last one's latest value (a later line with the same
/// timestamp replaces it, as in Carbon).
#[derive(Default)]
struct Wire {
    series: HashMap<String, (f64, i64, f64)>,
    lines: usize,
}

impl Wire {
    fn take(&mut self, capture: &CaptureTransport) {
        for line in capture.take_lines() {
            let mut fields = line.split(' ');
            let (Some(name), Some(value), Some(ts)) = (fields.next(), fields.next(), fields.next())
            else {
                panic!("malformed line {line:?}");
            };
            let value: f64 = value.parse().unwrap();
            let ts: i64 = ts.parse().unwrap();
            self.lines += 1;
            let entry = self.series.entry(name.to_owned()).or_insert((0.0, ts, 0.0));
            assert!(ts >= entry.1, "{name}: timestamp {ts} after {}", entry.1);
            if ts > entry.1 {
                entry.0 += entry.2;
                entry.1 = ts;
            }
            entry.2 = value;
        }
    }

    fn total(&self, name: &str) -> f64 {
        self.series
            .get(name)
            .map_or(0.0, |(before, _, last)| before + last)
    }
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn keys_expiring_and_coming_back_lose_no_update() {
    let secs: u64 = std::env::var("GRAPHYTE_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let capture = CaptureTransport::new();
    graphyte::metrics::install(
        Config::new("unused")
            .interval(Duration::from_secs(1))
            .idle_timeout(Duration::from_secs(1))
            .queue_size(1_000_000)
            .transport(capture.clone()),
    )
    .unwrap();
    // Label values and full names, made once.
    let labels: Arc<Vec<&'static str>> = Arc::new(
        (0..KEYS)
            .map(|i| &*Box::leak(format!("k{i}").into_boxed_str()))
            .collect(),
    );
    let names: Arc<Vec<String>> =
        Arc::new(labels.iter().map(|l| format!("stress;k={l}")).collect());

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (labels, names, stop) = (labels.clone(), names.clone(), stop.clone());
            thread::spawn(move || {
                let mut added = vec![0u64; KEYS];
                let mut handles: Vec<Option<metrics::Counter>> = (0..KEYS).map(|_| None).collect();
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64 + 1);
                let mut ops = [0u64; 3];
                while !stop.load(Ordering::Relaxed) {
                    let phase = (started.elapsed().as_millis() / PHASE.as_millis()) as usize;
                    let base = phase.wrapping_mul(37_813) % KEYS;
                    for _ in 0..256 {
                        let r = xorshift(&mut x);
                        let k = (base + (r as usize >> 8) % WINDOW) % KEYS;
                        let n = 1 + r % 3;
                        match (r >> 40) % 3 {
                            0 => handles[k]
                                .get_or_insert_with(
                                    || metrics::counter!("stress", "k" => labels[k]),
                                )
                                .increment(n),
                            1 => metrics::counter!("stress", "k" => labels[k]).increment(n),
                            _ => graphyte::count!(names[k].as_str(), n),
                        }
                        ops[((r >> 40) % 3) as usize] += 1;
                        added[k] += n;
                    }
                }
                (added, ops)
            })
        })
        .collect();

    let mut wire = Wire::default();
    let deadline = started + Duration::from_secs(secs);
    let mut peak_live = 0;
    let mut least_live = u64::MAX;
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
        wire.take(&capture);
        let live = graphyte::stats().unwrap().series;
        peak_live = peak_live.max(live);
        if started.elapsed() > Duration::from_secs(3) {
            least_live = least_live.min(live);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut added = vec![0u64; KEYS];
    let mut ops = [0u64; 3];
    for w in workers {
        let (a, o) = w.join().unwrap();
        for (sum, v) in added.iter_mut().zip(a) {
            *sum += v;
        }
        for (sum, v) in ops.iter_mut().zip(o) {
            *sum += v;
        }
    }
    let stats = graphyte::stats().unwrap();
    graphyte::shutdown().unwrap();
    wire.take(&capture);

    let mut wrong = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let got = wire.total(name);
        if got != added[i] as f64 {
            wrong.push((name.clone(), added[i], got));
        }
    }
    let total: u64 = added.iter().sum();
    let touched = added.iter().filter(|&&a| a > 0).count();
    println!(
        "{secs} s, {THREADS} threads: {} updates (handles kept {}, counter! {}, count! {}), total {total}, {touched} of {KEYS} keys used; {} lines; live series between {least_live} and {peak_live}; {} refused, {} dropped",
        ops.iter().sum::<u64>(),
        ops[0],
        ops[1],
        ops[2],
        wire.lines,
        stats.series_refused,
        stats.dropped
    );
    assert!(
        wrong.is_empty(),
        "{} of {KEYS} keys differ (name, added, on the wire), e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    assert_eq!(stats.series_refused, 0);
    assert_eq!(stats.dropped, 0);
    assert!(touched > KEYS / 2, "only {touched} keys were used");
    // Keys did expire and come back: far fewer live than used.
    assert!(
        (least_live as usize) < touched / 2,
        "live series never fell: {least_live} of {touched}"
    );
}
