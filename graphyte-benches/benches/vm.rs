//! graphyte into a real store (issue 20): points per second VictoriaMetrics
//! stored, with graphyte as the client, against a raw sender of the same
//! preformatted lines into the same VictoriaMetrics, in the same run.
//! Target: graphyte ≥ 0.9 × raw (graphyte must not be what limits a store
//! that takes far more than carbon-cache's ~270 k points/s).
//!
//! ```text
//! GRAPHYTE_VM_BIN=/path/to/victoria-metrics cargo bench -p graphyte-benches --bench vm
//! ```
//!
//! One victoria-metrics (single node, `-graphiteListenAddr`), started by the
//! tests' harness (tests/support/child.rs and vm.rs). Each measurement sends
//! N points to series of its own, `bench.vm.rR.MODE.mK I TS` (1024 names,
//! distinct values, one second per point of a series), and lasts from the
//! first write until VictoriaMetrics' own counter of rows added to its
//! storage (`vm_rows_added_to_storage_total` on its `/metrics`) has grown by
//! N, polled every 5 ms after an `/internal/force_flush`. VictoriaMetrics
//! adds what it parsed to its storage in steps about a second apart (its
//! counters show it), so each measurement includes up to about 1 s of its
//! own latency, the same for every sender: hence 2,000,000 points per
//! measurement, and the verdict on ratios. The senders:
//!
//! - raw: the preformatted lines written on one `TcpStream` in 64 KiB chunks
//!   cut at line ends (the best a client can do);
//! - graphyte `send`: a `Sender` in interval mode (50 ms, default queue and
//!   batch), one producer calling `send_at` with the same names, values and
//!   timestamps, so the bytes are the same; a send refused with `QueueFull`
//!   is retried after 1 ms (the raw sender blocks in `write()` instead);
//! - graphyte `Metric`: the same through `Metric` handles made once per name
//!   (`sender.metric(name)`, then `metric.send_at(value, ts)`).
//!
//! Beside them, VictoriaMetrics' own ingestion figure here: 4 raw senders
//! at once (4 connections, N/4 points each), what the store takes when one
//! client is not the limit.
//!
//! Paired rounds (each one raw, one `send` and one `Metric` measurement back
//! to back, the order rotating); the verdict is on the median of the
//! per-round ratios to raw. At the end every point is read back through
//! `/api/v1/export` and counted: each series has exactly the values sent,
//! at the timestamps sent, and VictoriaMetrics' count of Graphite rows
//! (`vm_rows_inserted_total{type="graphite"}`) equals the points sent.
//!
//! For comparison, one raw and one graphyte measurement of the same kind
//! into one carbon-cache (the tests' `CarbonServer`), until its whisper
//! files hold every point.
//!
//! Under `cargo test` (no `--bench`) this is a smoke test: 20,000 points,
//! one round, every check and no verdict; without VictoriaMetrics it says
//! `*** SKIPPED` (and fails if `GRAPHYTE_REQUIRE_CARBON=1`, as
//! `./scripts/test` sets), the tests' skip rule.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use graphyte::{Config, Error, Metric, Sender};
use graphyte_benches::{commit, results_dir, utc_now, verdict, Fragment};

// The tests' support: the one harness for child servers, VictoriaMetrics
// and carbon-cache on it, and the skip rule.
#[path = "../../tests/support/mod.rs"]
mod support;

use support::vm::{self, VmServer};
use support::CarbonServer;

const NAMES: u64 = 1024;
const CHUNK: usize = 64 * 1024;
const INTERVAL: Duration = Duration::from_millis(50);
const PARALLEL: u64 = 4;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Raw,
    Send,
    Metric,
}

impl Mode {
    fn tag(self) -> &'static str {
        match self {
            Mode::Raw => "raw",
            Mode::Send => "send",
            Mode::Metric => "metric",
        }
    }
}

/// One measurement's series: `bench.vm.rROUND.MODE.mK`.
struct Batch {
    prefix: String,
    n: u64,
    /// Timestamp of each series' first point.
    ts0: u64,
}

impl Batch {
    fn names(&self) -> Vec<String> {
        (0..NAMES.min(self.n))
            .map(|k| format!("{}.m{k}", self.prefix))
            .collect()
    }

    /// Point `i`: series `i % NAMES`, value `i`, one second per point of a
    /// series.
    fn ts(&self, i: u64) -> u64 {
        self.ts0 + i / NAMES
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (n, rounds) = if full { (2_000_000, 5) } else { (20_000, 1) };
    let Some(vm) = VmServer::start_or_skip() else {
        return;
    };
    let version = vm_version(&vm);
    println!(
        "graphyte into VictoriaMetrics: {} run, N = {n} points per measurement, {version} on 127.0.0.1:{} (Graphite) / :{} (HTTP)",
        if full { "full" } else { "smoke (cargo test)" },
        vm.port(),
        vm.http_port()
    );
    // A day back: far inside the retention, and rounds never share a second.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let ts0 = now - 86_400;
    // What it has stored: its rows buffered for storage are flushed first
    // (`/internal/force_flush`), or the count would lag by up to a second.
    let stored = || {
        vm.flush();
        vm.own_metric("vm_rows_added_to_storage_total") as u64
    };
    let mut batches = Vec::new();

    // Warm-up, one measurement's worth: the first millions of rows meet a
    // store with no background merges yet (a first raw round measured 2 x
    // the later ones), so timing starts once those are running.
    let warm = Batch {
        prefix: "bench.vm.warm".into(),
        n: if full { n } else { 10_000 },
        ts0,
    };
    raw_round(&vm, &warm, &stored);
    batches.push(warm);

    let mut rates: Vec<[f64; 3]> = Vec::new();
    for round in 0..rounds {
        let order = match round % 3 {
            0 => [Mode::Raw, Mode::Send, Mode::Metric],
            1 => [Mode::Send, Mode::Metric, Mode::Raw],
            _ => [Mode::Metric, Mode::Raw, Mode::Send],
        };
        let mut rate = [0.0; 3];
        for mode in order {
            let batch = Batch {
                prefix: format!("bench.vm.r{round}.{}", mode.tag()),
                n,
                ts0,
            };
            let r = match mode {
                Mode::Raw => raw_round(&vm, &batch, &stored),
                Mode::Send | Mode::Metric => graphyte_round(&vm, &batch, mode, &stored),
            };
            rate[mode as usize] = r;
            batches.push(batch);
        }
        println!(
            "round {}: raw {:>9.0} points/s, graphyte send {:>9.0} ({:.2} x), Metric {:>9.0} ({:.2} x)",
            round + 1,
            rate[0],
            rate[1],
            rate[1] / rate[0],
            rate[2],
            rate[2] / rate[0]
        );
        rates.push(rate);
    }

    // VictoriaMetrics' own figure: several raw clients at once.
    let parallel: Vec<Batch> = (0..PARALLEL)
        .map(|c| Batch {
            prefix: format!("bench.vm.parallel.c{c}"),
            n: n / PARALLEL,
            ts0,
        })
        .collect();
    let ceiling = parallel_round(&vm, &parallel, &stored);
    println!("VictoriaMetrics alone, {PARALLEL} raw connections: {ceiling:.0} points/s");
    batches.extend(parallel);

    // Every point, read back.
    let sent: u64 = batches.iter().map(|b| b.n).sum();
    let read_back = check_stored(&vm, &batches);
    let inserted = vm.own_metric("vm_rows_inserted_total{type=\"graphite\"}") as u64;
    assert_eq!(read_back, sent, "points read back through /api/v1/export");
    assert_eq!(
        inserted, sent,
        "vm_rows_inserted_total{{type=\"graphite\"}}"
    );
    let rss = vm.peak_rss_mib();
    println!("read back {read_back} points of {sent} sent, all exact; VictoriaMetrics peak RSS {rss} MiB");

    // carbon-cache, for comparison (README, "Backends"): the same lines,
    // raw and from graphyte, into one carbon-cache until its whisper files
    // hold every point.
    let carbon_n = if full { 200_000 } else { 5_000 };
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    // Within its retention (1 s points for an hour).
    let carbon_ts0 = now - 1800;
    let mut carbon_rates = [0.0; 2];
    for (slot, mode) in [Mode::Raw, Mode::Send].into_iter().enumerate() {
        let batch = Batch {
            prefix: format!("bench.carbon.{}", mode.tag()),
            n: carbon_n,
            ts0: carbon_ts0,
        };
        let until = || whisper_holds(&carbon, &batch);
        carbon_rates[slot] = match mode {
            Mode::Raw => timed_raw(carbon.port(), &batch, until),
            _ => timed_graphyte(carbon.port(), &batch, mode, until),
        };
    }
    println!(
        "carbon-cache: raw {:.0} points/s, graphyte send {:.0} points/s ({carbon_n} points each, until in whisper)",
        carbon_rates[0], carbon_rates[1]
    );

    let column = |i: usize| median(&rates.iter().map(|r| r[i]).collect::<Vec<_>>());
    let ratio = |i: usize| median(&rates.iter().map(|r| r[i] / r[0]).collect::<Vec<_>>());
    let (raw, send, metric) = (column(0), column(1), column(2));
    let (send_x, metric_x) = (ratio(1), ratio(2));
    let met = send_x >= 0.9 && metric_x >= 0.9;
    if full {
        println!(
            "target graphyte >= 0.9 x raw into VictoriaMetrics: {}",
            if met { "met" } else { "MISSED" }
        );
    }
    let mut fragment = Fragment::new("vm");
    fragment.line(format!(
        "`cargo bench -p graphyte-benches --bench vm`, {}, commit {}, {version}.",
        utc_now(),
        commit()
    ));
    fragment.line("");
    fragment.line("| points/s stored by VictoriaMetrics | raw preformatted lines | graphyte (interval `send`) | graphyte (`Metric` handles) |");
    fragment.line("|---|---|---|---|");
    fragment.line(format!(
        "| median of {rounds} rounds, {n} points each | {:.2} M | {:.2} M (**{send_x:.2} ×**) | {:.2} M (**{metric_x:.2} ×**) |",
        raw / 1e6,
        send / 1e6,
        metric / 1e6
    ));
    for (i, r) in rates.iter().enumerate() {
        fragment.line(format!(
            "| round {} | {:.2} M | {:.2} M ({:.2} ×) | {:.2} M ({:.2} ×) |",
            i + 1,
            r[0] / 1e6,
            r[1] / 1e6,
            r[1] / r[0],
            r[2] / 1e6,
            r[2] / r[0]
        ));
    }
    fragment.line(format!(
        "| VictoriaMetrics alone: {PARALLEL} raw connections at once, {n} points | {:.2} M | | |",
        ceiling / 1e6
    ));
    fragment.line(format!(
        "| carbon-cache 1.1.10 instead (one run, {carbon_n} points, until in its whisper files) | {:.2} M | {:.2} M ({:.2} ×) | |",
        carbon_rates[0] / 1e6,
        carbon_rates[1] / 1e6,
        carbon_rates[1] / carbon_rates[0]
    ));
    fragment.line("");
    fragment.line(format!(
        "Ratios are the median of the rounds' own ratios to raw. All {sent} points were read back through `/api/v1/export` with their values and timestamps, and VictoriaMetrics counted {inserted} Graphite rows; its peak RSS was {rss} MiB. Target graphyte ≥ 0.9 × raw into VictoriaMetrics: **{}**.",
        if full { verdict(met) } else { "- (smoke run)" }
    ));
    fragment.save(&results_dir(full));
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn vm_version(vm: &VmServer) -> String {
    // The Debian build reports no version of its own (`-version` prints an
    // empty line); the package it came from does.
    let package = vm::locate()
        .ok()
        .and_then(|bin| {
            let root = bin.parent()?.parent()?.parent()?;
            std::fs::read_to_string(root.join("PACKAGE")).ok()
        })
        .map(|p| p.trim().to_owned())
        .unwrap_or_default();
    let _ = vm;
    if package.is_empty() {
        "victoria-metrics".to_owned()
    } else {
        format!("victoria-metrics ({package})")
    }
}

/// Waits until VictoriaMetrics stored `target` rows; panics after 120 s.
fn wait_for(stored: &impl Fn() -> u64, target: u64) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = stored();
        if now >= target {
            assert_eq!(
                now, target,
                "VictoriaMetrics stored more rows than were sent"
            );
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "VictoriaMetrics stored {now} of {target} rows after 120 s"
        );
        // Each look costs it a flush and a /metrics page: not too often.
        thread::sleep(Duration::from_millis(5));
    }
}

fn write_raw(port: u16, batch: &Batch) {
    let names = batch.names();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut chunk = Vec::with_capacity(CHUNK + 128);
    for i in 0..batch.n {
        let name = &names[(i % NAMES) as usize];
        let _ = writeln!(chunk, "{name} {i} {}", batch.ts(i));
        if chunk.len() >= CHUNK - 128 {
            stream.write_all(&chunk).expect("write");
            chunk.clear();
        }
    }
    stream.write_all(&chunk).expect("write");
}

/// Raw lines into VictoriaMetrics: points/s until stored.
fn raw_round(vm: &VmServer, batch: &Batch, stored: &impl Fn() -> u64) -> f64 {
    let base = stored();
    timed_raw(vm.port(), batch, || wait_for(stored, base + batch.n))
}

/// Writes `batch` raw to `port`; points/s from the first write until
/// `until()` says it is stored.
fn timed_raw(port: u16, batch: &Batch, until: impl FnOnce() -> Instant) -> f64 {
    let start = Instant::now();
    write_raw(port, batch);
    let done = until();
    batch.n as f64 / (done - start).as_secs_f64()
}

fn parallel_round(vm: &VmServer, batches: &[Batch], stored: &impl Fn() -> u64) -> f64 {
    let base = stored();
    let n: u64 = batches.iter().map(|b| b.n).sum();
    let start = Instant::now();
    thread::scope(|s| {
        for batch in batches {
            s.spawn(|| write_raw(vm.port(), batch));
        }
    });
    let done = wait_for(stored, base + n);
    n as f64 / (done - start).as_secs_f64()
}

/// graphyte into VictoriaMetrics: points/s until stored.
fn graphyte_round(vm: &VmServer, batch: &Batch, mode: Mode, stored: &impl Fn() -> u64) -> f64 {
    let base = stored();
    timed_graphyte(vm.port(), batch, mode, || wait_for(stored, base + batch.n))
}

/// Sends `batch` through an interval `Sender` to `port` (`send_at`, or
/// `Metric` handles); points/s from the first send until `until()` says it
/// is stored.
fn timed_graphyte(port: u16, batch: &Batch, mode: Mode, until: impl FnOnce() -> Instant) -> f64 {
    let sender = Sender::new(
        Config::new("127.0.0.1")
            .port(port)
            .interval(INTERVAL)
            .timeout(Duration::from_secs(60)),
    )
    .expect("sender");
    let names = batch.names();
    let metrics: Vec<Metric> = if mode == Mode::Metric {
        names
            .iter()
            .map(|name| sender.metric(name).expect("metric"))
            .collect()
    } else {
        Vec::new()
    };
    let start = Instant::now();
    let mut retries = 0u64;
    for i in 0..batch.n {
        let k = (i % NAMES) as usize;
        let ts = batch.ts(i);
        loop {
            let result = match mode {
                Mode::Metric => metrics[k].send_at(i, ts),
                _ => sender.send_at(&names[k], i, ts),
            };
            match result {
                Ok(()) => break,
                Err(Error::QueueFull { .. }) => {
                    // Wait instead of spinning: on 2 cores a spinning
                    // producer takes CPU from the store it is measuring.
                    retries += 1;
                    thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("send failed: {e}"),
            }
        }
    }
    let done = until();
    sender.stop().expect("stop");
    let stats = sender.stats();
    // A refused send counts as dropped, and was retried until accepted.
    assert_eq!((stats.sent, stats.dropped), (batch.n, retries), "{stats:?}");
    if retries > 0 {
        println!("  ({retries} sends refused with QueueFull and retried)");
    }
    batch.n as f64 / (done - start).as_secs_f64()
}

/// Reads every batch back through `/api/v1/export`: each series holds
/// exactly the points sent to it. Returns how many points it read.
fn check_stored(vm: &VmServer, batches: &[Batch]) -> u64 {
    vm.flush();
    let mut total = 0;
    for batch in batches {
        let series = vm.export(&format!("{}[.]m[0-9]+", batch.prefix.replace('.', "[.]")));
        assert_eq!(
            series.len() as u64,
            NAMES.min(batch.n),
            "{}: series stored",
            batch.prefix
        );
        for s in &series {
            let name = &s.labels["__name__"];
            let k: u64 = name.rsplit(".m").next().unwrap().parse().unwrap();
            let expected: Vec<(u64, f64)> = (k..batch.n)
                .step_by(NAMES as usize)
                .map(|i| (batch.ts(i) * 1000, i as f64))
                .collect();
            assert_eq!(s.points, expected, "{name}");
            total += s.points.len() as u64;
        }
    }
    total
}

/// Waits until carbon's whisper files hold every point of `batch`; panics
/// after 300 s.
fn whisper_holds(carbon: &CarbonServer, batch: &Batch) -> Instant {
    let names = batch.names();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        // A file carbon is still creating may not parse yet: count it as 0.
        let stored: u64 = names
            .iter()
            .map(|name| {
                support::whisper::read_points(&carbon.whisper_path(name))
                    .map_or(0, |p| p.len() as u64)
            })
            .sum();
        if stored >= batch.n {
            assert_eq!(stored, batch.n, "carbon stored more points than were sent");
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "carbon stored {stored} of {} points after 300 s",
            batch.n
        );
        thread::sleep(Duration::from_millis(50));
    }
}
