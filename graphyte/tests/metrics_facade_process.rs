//! A crate no one here wrote, feeding the recorder: `metrics-process`'s
//! `Collector` records the Prometheus process metrics through the `metrics`
//! facade (CPU seconds as a counter's `absolute`, the rest as gauges), and
//! graphyte, installed as the recorder, sends them to a real carbon-cache.
//! Read back from whisper, every series is there with sane values, and the
//! ones this test moves (open fds, threads, CPU time) show it.
//!
//! Skips loudly without carbon; fails under ./scripts/test
//! (GRAPHYTE_REQUIRE_CARBON=1) if carbon is missing.
//! One test function: the global recorder can be installed once per process.
#![cfg(all(feature = "metrics", target_os = "linux"))]

#[path = "../../tests/support/mod.rs"]
mod support;

use std::fs::File;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use graphyte::Config;
use support::{unix_now, CarbonServer};

const GIB: f64 = (1u64 << 30) as f64;
/// Files this test holds open while the collector runs.
const EXTRA_FDS: usize = 10;
/// Threads this test keeps parked while the collector runs.
const EXTRA_THREADS: usize = 3;

/// The series `metrics-process` 2.4 records on Linux, under prefix `mp`:
/// its names need no replacement (`[a-z_]` only), so they are sent as they
/// are.
const SERIES: [&str; 8] = [
    "mp.process_cpu_seconds_total",
    "mp.process_open_fds",
    "mp.process_max_fds",
    "mp.process_virtual_memory_bytes",
    "mp.process_virtual_memory_max_bytes",
    "mp.process_resident_memory_bytes",
    "mp.process_start_time_seconds",
    "mp.process_threads",
];

/// Uses the CPU until this process has used at least `seconds` of it (as
/// `metrics-process` reads it), or `timeout` passed.
fn burn_cpu(seconds: f64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut x = 0u64;
    while metrics_process::collector::collect()
        .cpu_seconds_total
        .unwrap_or(0.0)
        < seconds
        && Instant::now() < deadline
    {
        for i in 0..1_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
}

#[test]
fn metrics_process_series_arrive_in_carbon_with_sane_values() {
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    graphyte::metrics::install(
        Config::new("127.0.0.1")
            .port(carbon.port())
            .prefix("mp")
            .interval(Duration::from_secs(1)),
    )
    .unwrap();

    // Something for the collector to see: open files and parked threads.
    let files: Vec<File> = (0..EXTRA_FDS)
        .map(|_| File::open("/dev/null").unwrap())
        .collect();
    let (stop, stopped) = mpsc::channel::<()>();
    let stopped = std::sync::Arc::new(std::sync::Mutex::new(stopped));
    let parked: Vec<_> = (0..EXTRA_THREADS)
        .map(|_| {
            let stopped = std::sync::Arc::clone(&stopped);
            thread::spawn(move || {
                let _ = stopped.lock().unwrap().recv();
            })
        })
        .collect();
    // At least one whole CPU second (the crate sends whole seconds).
    burn_cpu(1.0, Duration::from_secs(20));

    let collector = metrics_process::Collector::default();
    collector.describe(); // accepted and ignored: Graphite keeps no units
    let direct = metrics_process::collector::collect();
    // The first collection sets every gauge: from the second it ends in,
    // every interval has a point (a slow collection on a loaded machine
    // may end a second after it began).
    collector.collect();
    let started = unix_now();
    for _ in 0..14 {
        thread::sleep(Duration::from_millis(250));
        collector.collect();
    }
    let ended = unix_now();
    assert!(ended - started >= 3, "collected for {} s", ended - started);
    graphyte::shutdown().unwrap();
    drop(stop);
    for thread in parked {
        thread.join().unwrap();
    }
    drop(files);

    let timeout = Duration::from_secs(30);
    let mut latest = std::collections::BTreeMap::new();
    // A point for every second with collections (gauges are sent every
    // interval once set), the last from shutdown's flush.
    let seconds = (ended - started + 1) as usize;
    for metric in SERIES {
        let points = carbon.wait_for_points(metric, seconds, timeout);
        for (ts, _) in &points {
            assert!(
                (started - 1..=ended + 1).contains(ts),
                "{metric}: point at {ts}, collected from {started} to {ended}: {points:?}"
            );
        }
        assert!(
            points.iter().all(|p| p.1.is_finite() && p.1 >= 0.0),
            "{metric}: {points:?}"
        );
        eprintln!("{metric}: {points:?}");
        latest.insert(metric, points.last().unwrap().1);
    }
    let value = |metric: &str| latest[metric];

    // CPU seconds: a cumulative total (the crate records it with
    // `counter.absolute`, whole seconds), never decreasing, at least the
    // second burnt, at most what the cores could give since the start.
    let cpu = carbon.read_points("mp.process_cpu_seconds_total");
    assert!(cpu.windows(2).all(|w| w[0].1 <= w[1].1), "{cpu:?}");
    assert!(cpu.iter().all(|p| p.1.fract() == 0.0), "{cpu:?}");
    let cores = thread::available_parallelism().map_or(64, |n| n.get()) as f64;
    let start = value("mp.process_start_time_seconds");
    let cpu_now = value("mp.process_cpu_seconds_total");
    assert!(
        (1.0..=(f64::from(ended) - start + 1.0) * cores).contains(&cpu_now),
        "cpu {cpu_now} s for a process started at {start}, now {ended}"
    );
    // Start time: this process, started within the last hour.
    assert!(
        (f64::from(started) - 3600.0..=f64::from(started)).contains(&start),
        "start {start}, now {started}"
    );
    // Memory: resident above zero and under 64 GiB, virtual at least that.
    let resident = value("mp.process_resident_memory_bytes");
    let virt = value("mp.process_virtual_memory_bytes");
    assert!(
        resident > 0.0 && resident < 64.0 * GIB,
        "resident {resident}"
    );
    assert!(virt >= resident, "virtual {virt}, resident {resident}");
    let resident_direct = direct.resident_memory_bytes.unwrap() as f64;
    assert!(
        resident / resident_direct < 4.0 && resident_direct / resident < 4.0,
        "resident {resident} in carbon, {resident_direct} read directly"
    );
    // 0 is the crate's "unlimited".
    let max_virt = value("mp.process_virtual_memory_max_bytes");
    assert!(
        max_virt == 0.0 || max_virt >= virt,
        "max {max_virt}, virtual {virt}"
    );
    // Open fds: stdio, the files held open, carbon's socket; under the limit.
    let fds = value("mp.process_open_fds");
    let max_fds = value("mp.process_max_fds");
    assert!(fds >= (3 + EXTRA_FDS) as f64, "open fds {fds}");
    assert!(
        max_fds == 0.0 || max_fds >= fds,
        "max fds {max_fds}, open {fds}"
    );
    // Threads: this one, the parked ones, graphyte's interval thread.
    let threads = value("mp.process_threads");
    assert!(
        threads >= (2 + EXTRA_THREADS) as f64 && threads < 10_000.0,
        "threads {threads}"
    );
}
