//! How graphyte's aggregation registry scales with the number of series
//! (issues 12 and 17): the per-call cost of `count!` with a name that is not
//! a literal and of the `metrics` facade's `counter!` with a dynamic label,
//! against a plain map and the Prometheus exporter's recorder; the heap each
//! series takes and gives back when it expires; the interval thread's work
//! per series.
//!
//! ```text
//! cargo bench -p graphyte-benches --bench series   # or ./scripts/bench for everything
//! ```
//!
//! The binary installs a counting global allocator (live bytes requested
//! and live blocks: the heap as the program asks for it, without the
//! allocator's own per-block overhead) and `graphyte::init`s the global
//! sender once: a `CaptureTransport`, an interval that does not tick during the run (the interval
//! thread never wakes during the run), `idle_timeout(1 s)` and
//! `max_series(3,000,000)`. Instead of the interval thread, the bench drains
//! the registry itself with `graphyte::__private::bench::drain(ts, ..)`,
//! with interval starts `ts` one second apart, so that a series updated
//! before one drain and not before the next is idle for the 1 s timeout at
//! the next and is removed. Measurements 1 and 2 each run in a fresh
//! process of their own (this binary re-run with `--child`, which prints a
//! `result k=v ...` line), so that each starts from an empty registry and
//! none inherits the tables or the freed heap of another; 3 and 4 run in
//! this process, whose registry grows with the baseline map.
//!
//! 1. **Memory.** Live heap before; N = 1 M new series; live heap after:
//!    the difference over N is the heap per series (its index entry, the
//!    counter, its name, the index's share of table growth). Then a drain
//!    sends the N lines, the next one finds them idle and removes them (0
//!    lines), and a third sends 0 lines; the live heap then is compared with
//!    the heap before they were created. Twice: `count!(name.as_str(), 1)`
//!    on names `bench.mem.s0000000` ... (18 bytes, formatted into one reused
//!    `String`, so the bench itself holds no memory per series), and
//!    `metrics::counter!("bench.fmem", "user" => id).increment(1)` through a
//!    `GraphyteRecorder` with ids `u0000000` ... (one short label: series
//!    names of 24 bytes; the key and its label value made per call, as a
//!    service does, and freed after it unless the recorder keeps them).
//! 2. **Drain.** 100 k and 1 M counters, each updated once per interval:
//!    the time of `bench::drain` per series, median of 11 intervals (the
//!    first included: it registers nothing, the names exist by then).
//! 3. **Per call, `count!`.** criterion, group `nonliteral_count`: `count!`
//!    with a non-literal name (`graphyte/N`) and the baseline
//!    (`baseline/N`), a `RwLock<HashMap<Box<str>, AtomicI64>>` with std's
//!    hasher, looked up under the read lock and added to, at N = 1, 1 k,
//!    100 k and 1 M series. Names: `bench.call.s0000000` ... (19 bytes), one
//!    `Vec<String>` shared by both, made once; at each N both maps hold
//!    exactly the first N names (registered before timing, so every call
//!    hits an existing series) and both benchmarks walk those N names in the
//!    same order, one per call, wrapping around: the same strings, the same
//!    access pattern, the same cache footprint of the names for both. The
//!    same map with graphyte's hasher, foldhash (`baseline_foldhash/N`), shows
//!    what bounds a lookup under a read lock, and `lock_floor` (the read lock
//!    taken and released and one `fetch_add`, no lookup) what bounds any.
//! 4. **Per call, the facade.** Group `facade_counter`:
//!    `metrics::counter!("bench.fcall", "user" => id).increment(1)` at the
//!    same N live label sets, ids walked in order, inside
//!    `metrics::with_local_recorder` with graphyte's recorder (`graphyte/N`),
//!    metrics-exporter-prometheus's (`prometheus/N`, built with its idle
//!    timeout on, an hour, so that it tracks each update's recency and
//!    nothing expires during the run) and the facade's `NoopRecorder`
//!    (`noop_recorder/N`: what the macro costs by itself, making the key and
//!    its labels; what bounds any recorder).
//!
//! After criterion, the registry is emptied the same way and the sender
//! is shut down. Every run asserts the memory targets (heap per series,
//! heap back after expiry) and that expired series send nothing; a full run
//! (`--bench`) also prints the figures and a verdict for every target and
//! writes the fragments `series-targets.md` and `series-figures.md` and the
//! chart `nonliteral-count.svg` (live series on x, ns per call on y, for
//! `count!`, the facade, the Prometheus recorder and the map) under
//! `target/bench-results/`. Under `cargo test` it is a smoke test: 10 k
//! series for memory and drain, N = 1, 1 k, 10 k, criterion runs each
//! benchmark once, every assertion holds, no speed verdicts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicIsize, Ordering::Relaxed};
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{BenchmarkId, Criterion};
use graphyte::__private::bench;
use graphyte::metrics::GraphyteRecorder;
use graphyte::{CaptureTransport, Config};
use graphyte_benches::chart::{self, Line};
use graphyte_benches::{criterion_dir, full_run, median_ns, results_dir, verdict, Fragment};
use metrics::Recorder;
use metrics_exporter_prometheus::PrometheusBuilder;
use metrics_util::MetricKindMask;

// ---------------------------------------------------------------------------
// The counting allocator

/// Bytes requested and not yet freed.
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
/// Blocks allocated and not yet freed.
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded to `System` unchanged; only counts are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Relaxed);
            LIVE_BLOCKS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Relaxed);
            LIVE_BLOCKS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live heap now: (bytes, blocks).
fn heap() -> (i64, i64) {
    (
        LIVE_BYTES.load(Relaxed) as i64,
        LIVE_BLOCKS.load(Relaxed) as i64,
    )
}

// ---------------------------------------------------------------------------

struct Plan {
    full: bool,
    /// Series of the memory measurement.
    memory: usize,
    /// Counters of the drain measurements, and how many intervals.
    drain: Vec<usize>,
    drain_rounds: usize,
    /// Series counts of the per-call measurement, ascending.
    sizes: Vec<usize>,
}

/// The global sender of every process of this bench.
fn init() {
    graphyte::init(
        Config::new("unused")
            .interval(graphyte_benches::no_tick())
            .idle_timeout(Duration::from_secs(1))
            .max_series(3_000_000)
            .transport(CaptureTransport::new()),
    )
    .expect("graphyte::init");
}

/// Interval starts handed to the drains: from now, one second apart.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Runs this binary with `--child ARGS` and returns its `result ...` line.
fn child(args: &[&str]) -> String {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .arg("--child")
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child {args:?} failed: {}\n{stdout}",
        out.status
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("result "))
        .unwrap_or_else(|| panic!("child {args:?} said {stdout:?}"))
        .to_owned()
}

/// The `k=v` fields of a child's result line.
fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

/// A child process: `--child memory N` or `--child drain N ROUNDS`.
fn run_child(args: &[String]) {
    init();
    let mut ts = now_secs();
    let arg = |i: usize| -> usize { args[i].parse().expect("a number") };
    match args[0].as_str() {
        "memory" => println!("result {}", memory(arg(1), &mut ts).fields()),
        "facade-memory" => println!("result {}", facade_memory(arg(1), &mut ts).fields()),
        "drain" => println!("result {}", drain_work(arg(1), arg(2), &mut ts).fields()),
        other => panic!("unknown child {other:?}"),
    }
    graphyte::shutdown().expect("shutdown");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        run_child(&args[i + 1..]);
        return;
    }
    let full = full_run();
    let plan = if full {
        Plan {
            full,
            memory: 1_000_000,
            drain: vec![100_000, 1_000_000],
            drain_rounds: 11,
            sizes: vec![1, 1_000, 100_000, 1_000_000],
        }
    } else {
        Plan {
            full,
            memory: 10_000,
            drain: vec![10_000],
            drain_rounds: 2,
            sizes: vec![1, 1_000, 10_000],
        }
    };
    let started = SystemTime::now();
    // Memory and drain each in a fresh process of their own (this binary,
    // re-run): each starts from an empty registry, and neither leaves its
    // tables or its freed heap to the other or to the per-call benchmarks.
    let memory = Memory::parse(&child(&["memory", &plan.memory.to_string()]));
    println!("memory, non-literal count!: {}", memory.describe());
    let facade_memory = Memory::parse(&child(&["facade-memory", &plan.memory.to_string()]));
    println!("memory, facade counter!: {}", facade_memory.describe());
    let drains: Vec<Drain> = plan
        .drain
        .iter()
        .map(|n| {
            let drain = Drain::parse(&child(&[
                "drain",
                &n.to_string(),
                &plan.drain_rounds.to_string(),
            ]));
            println!("drain: {}", drain.describe());
            drain
        })
        .collect();

    init();
    let dir = criterion_dir();
    let mut c = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();
    per_call(&mut c, &plan);
    facade_per_call(&mut c, &plan);
    c.final_summary();

    // Empty the registry (one drain sends, the next removes) and stop.
    let mut ts = now_secs();
    let mut out = Vec::new();
    bench::drain(ts, &mut out);
    ts += 1;
    assert_eq!(bench::drain(ts, &mut out), 0);
    assert_eq!(bench::series(), (0, 0), "every series expired");
    graphyte::shutdown().expect("shutdown");

    let get = |id: String| median_ns(&dir, &id, started);
    let lock_floor = get("nonliteral_count/lock_floor".to_owned());
    let calls: Vec<Call> = plan
        .sizes
        .iter()
        .map(|&n| Call {
            series: n,
            ours: get(format!("nonliteral_count/graphyte/{n}")),
            baseline: get(format!("nonliteral_count/baseline/{n}")),
            fast_map: get(format!("nonliteral_count/baseline_foldhash/{n}")),
            facade: get(format!("facade_counter/graphyte/{n}")),
            prometheus: get(format!("facade_counter/prometheus/{n}")),
            floor: get(format!("facade_counter/noop_recorder/{n}")),
            lock_floor,
        })
        .collect();
    let memories = [memory, facade_memory];
    check(&memories);
    report(&plan, &memories, &drains, &calls);
}

// ---------------------------------------------------------------------------
// 1. Memory

struct Memory {
    series: usize,
    name_len: usize,
    /// Live heap (bytes, blocks) before, after creating, after expiry.
    before: (i64, i64),
    created: (i64, i64),
    expired: (i64, i64),
    /// Lines of the drain that sent them, the one that expired them, the next.
    sent: usize,
    expiring: usize,
    after: usize,
    create_ns: f64,
    expire_drain_ms: f64,
}

impl Memory {
    fn fields(&self) -> String {
        format!(
            "series={} name_len={} before_bytes={} before_blocks={} created_bytes={} created_blocks={} expired_bytes={} expired_blocks={} sent={} expiring={} after={} create_ns={} expire_drain_ms={}",
            self.series,
            self.name_len,
            self.before.0,
            self.before.1,
            self.created.0,
            self.created.1,
            self.expired.0,
            self.expired.1,
            self.sent,
            self.expiring,
            self.after,
            self.create_ns,
            self.expire_drain_ms
        )
    }

    fn parse(line: &str) -> Memory {
        let f = fields(line);
        let int = |k: &str| -> i64 { f[k].parse().expect("integer") };
        let float = |k: &str| -> f64 { f[k].parse().expect("number") };
        Memory {
            series: int("series") as usize,
            name_len: int("name_len") as usize,
            before: (int("before_bytes"), int("before_blocks")),
            created: (int("created_bytes"), int("created_blocks")),
            expired: (int("expired_bytes"), int("expired_blocks")),
            sent: int("sent") as usize,
            expiring: int("expiring") as usize,
            after: int("after") as usize,
            create_ns: float("create_ns"),
            expire_drain_ms: float("expire_drain_ms"),
        }
    }

    fn per_series(&self) -> f64 {
        (self.created.0 - self.before.0) as f64 / self.series as f64
    }
    fn blocks_per_series(&self) -> f64 {
        (self.created.1 - self.before.1) as f64 / self.series as f64
    }
    /// Heap after expiry relative to before, e.g. 0.03 for +3 %.
    fn returned(&self) -> f64 {
        (self.expired.0 - self.before.0) as f64 / self.before.0 as f64
    }
    /// Of the heap the series took, the share still held after expiry.
    fn kept(&self) -> f64 {
        (self.expired.0 - self.before.0) as f64 / (self.created.0 - self.before.0) as f64
    }
    fn describe(&self) -> String {
        format!(
            "{} series ({}-byte names): live heap {} B / {} blocks before, {} B / {} blocks with them ({:.1} B, {:.2} blocks per series; {:.0} ns per first use), {} B / {} blocks after they expired ({:+.1} % of before; {:.1} % of what they took is still held); drains: {} lines, then {} (expiring, {:.1} ms), then {}",
            self.series,
            self.name_len,
            self.before.0,
            self.before.1,
            self.created.0,
            self.created.1,
            self.per_series(),
            self.blocks_per_series(),
            self.create_ns,
            self.expired.0,
            self.expired.1,
            self.returned() * 100.0,
            self.kept() * 100.0,
            self.sent,
            self.expiring,
            self.expire_drain_ms,
            self.after
        )
    }
}

fn memory(n: usize, ts: &mut u64) -> Memory {
    let mut out = Vec::new();
    // Once through every path (register, drain, expire) before measuring,
    // so that nothing the registry sets up on first use is counted.
    graphyte::count!("bench.mem.warm", 1);
    graphyte::count!(String::from("bench.mem.warm2").as_str(), 1);
    bench::drain(*ts, &mut out);
    bench::drain(*ts + 1, &mut out);
    *ts += 2;
    assert_eq!(
        bench::series().0,
        1,
        "only the literal call site's series stays"
    );
    drop(out);

    let mut name = String::with_capacity(64);
    let before = heap();
    let start = Instant::now();
    for i in 0..n {
        name.clear();
        write!(name, "bench.mem.s{i:07}").expect("format");
        graphyte::count!(name.as_str(), 1);
    }
    let create_ns = start.elapsed().as_nanos() as f64 / n as f64;
    let created = heap();
    assert_eq!(bench::series(), (1 + n as u64, 0), "every name registered");

    let mut out = Vec::new();
    let sent = bench::drain(*ts, &mut out);
    // The literal site's counter saw no update: it sends nothing once idle.
    assert_eq!(sent, n, "one line per new series");
    drop(out);
    let mut out = Vec::new();
    let start = Instant::now();
    let expiring = bench::drain(*ts + 1, &mut out);
    let expire_drain_ms = start.elapsed().as_secs_f64() * 1e3;
    let after = bench::drain(*ts + 2, &mut out);
    *ts += 3;
    assert_eq!(bench::series().0, 1, "the non-literal series are removed");
    drop(out);
    let expired = heap();
    Memory {
        series: n,
        name_len: name.len(),
        before,
        created,
        expired,
        sent,
        expiring,
        after,
        create_ns,
        expire_drain_ms,
    }
}

/// The heap of `metrics::counter!("bench.fmem", "user" => ID).increment(1)`
/// for `n` new ids (`u0000000` ...: one short label, names of 24 bytes)
/// through a `GraphyteRecorder`, and what is left after they expire. The
/// key and its label value are made per call, as a service does; they are
/// freed after the call unless the recorder keeps them.
fn facade_memory(n: usize, ts: &mut u64) -> Memory {
    let recorder = graphyte::metrics::GraphyteRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        let mut out = Vec::new();
        metrics::counter!("bench.fmem", "user" => "warm").increment(1);
        bench::drain(*ts, &mut out);
        bench::drain(*ts + 1, &mut out);
        *ts += 2;
        drop(out);
        let live_before = bench::series().0;

        let before = heap();
        let start = Instant::now();
        for i in 0..n {
            metrics::counter!("bench.fmem", "user" => format!("u{i:07}")).increment(1);
        }
        let create_ns = start.elapsed().as_nanos() as f64 / n as f64;
        let created = heap();
        assert_eq!(
            bench::series().0,
            live_before + n as u64,
            "every label set registered"
        );

        let mut out = Vec::new();
        let sent = bench::drain(*ts, &mut out);
        drop(out);
        let mut out = Vec::new();
        let start = Instant::now();
        let expiring = bench::drain(*ts + 1, &mut out);
        let expire_drain_ms = start.elapsed().as_secs_f64() * 1e3;
        let after = bench::drain(*ts + 2, &mut out);
        *ts += 3;
        drop(out);
        let expired = heap();
        Memory {
            series: n,
            name_len: "bench.fmem;user=u0000000".len(),
            before,
            created,
            expired,
            sent,
            expiring,
            after,
            create_ns,
            expire_drain_ms,
        }
    })
}

// ---------------------------------------------------------------------------
// 2. The interval thread's work

struct Drain {
    series: usize,
    /// ns per series, per interval.
    rounds: Vec<f64>,
    /// ns per line of formatting the same lines with `LineFormat` alone
    /// (median of the same number of rounds): what bounds the drain.
    format: Vec<f64>,
}

impl Drain {
    fn fields(&self) -> String {
        let join = |v: &[f64]| v.iter().map(f64::to_string).collect::<Vec<_>>().join(",");
        format!(
            "series={} rounds={} format={}",
            self.series,
            join(&self.rounds),
            join(&self.format)
        )
    }

    fn parse(line: &str) -> Drain {
        let f = fields(line);
        let list = |k: &str| -> Vec<f64> {
            f[k].split(',')
                .map(|r| r.parse().expect("number"))
                .collect()
        };
        Drain {
            series: f["series"].parse().expect("integer"),
            rounds: list("rounds"),
            format: list("format"),
        }
    }

    fn median(&self) -> f64 {
        median(&self.rounds)
    }
    fn format_median(&self) -> f64 {
        median(&self.format)
    }
    fn describe(&self) -> String {
        format!(
            "{} counters updated once per interval: median {:.1} ns per series per drain, of which {:.1} ns is the line format's alone (`LineFormat::format_into` of the same lines) (rounds: {})",
            self.series,
            self.median(),
            self.format_median(),
            self.rounds
                .iter()
                .map(|r| format!("{r:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

fn drain_work(n: usize, drain_rounds: usize, ts: &mut u64) -> Drain {
    let names: Vec<String> = (0..n).map(|i| format!("bench.drain.s{i:07}")).collect();
    for name in &names {
        graphyte::count!(name.as_str(), 1);
    }
    let live = bench::series().0;
    let mut out = Vec::new();
    let mut rounds = Vec::new();
    for round in 0..drain_rounds {
        if round > 0 {
            for name in &names {
                graphyte::count!(name.as_str(), 1);
            }
        }
        out.clear();
        let start = Instant::now();
        let lines = bench::drain(*ts, &mut out);
        let elapsed = start.elapsed();
        *ts += 1;
        assert_eq!(lines, n, "one line per counter");
        let text = std::str::from_utf8(&out).expect("utf-8");
        let expected = format!("bench.drain.s0000000 1 {}\n", *ts - 1);
        assert!(text.contains(&expected), "no {expected:?} in the drain");
        rounds.push(elapsed.as_nanos() as f64 / n as f64);
    }
    assert_eq!(live, bench::series().0);
    // The same lines formatted alone, as the drain formats them.
    let format = graphyte::LineFormat::default();
    let mut format_rounds = Vec::new();
    for _ in 0..drain_rounds {
        out.clear();
        let start = Instant::now();
        for name in &names {
            format
                .format_into(&mut out, name, &[], 1i64, graphyte::Timestamp::from(*ts))
                .expect("a valid line");
        }
        format_rounds.push(start.elapsed().as_nanos() as f64 / n as f64);
    }
    // Not updated since the last drain: idle for the timeout now, removed.
    assert_eq!(bench::drain(*ts, &mut out), 0);
    *ts += 1;
    assert_eq!(bench::series().0, live - n as u64);
    Drain {
        series: n,
        rounds,
        format: format_rounds,
    }
}

// ---------------------------------------------------------------------------
// 3. Per call, against the baseline map

fn per_call(c: &mut Criterion, plan: &Plan) {
    let max = *plan.sizes.last().expect("sizes");
    let names: Vec<String> = (0..max).map(|i| format!("bench.call.s{i:07}")).collect();
    let baseline: RwLock<HashMap<Box<str>, AtomicI64>> = RwLock::new(HashMap::new());
    let fast: RwLock<HashMap<Box<str>, AtomicI64, foldhash::fast::RandomState>> =
        RwLock::new(HashMap::default());
    let already = bench::series().0;
    let mut g = c.benchmark_group("nonliteral_count");
    // The floor of any lookup under a read lock: the baseline's lock taken
    // and released and one `fetch_add`, with no lookup at all.
    let floor_lock = RwLock::new(AtomicI64::new(0));
    g.bench_function("lock_floor", |b| {
        b.iter(|| {
            black_box(&floor_lock)
                .read()
                .expect("floor lock")
                .fetch_add(1, Relaxed);
        })
    });
    for &n in &plan.sizes {
        let names = &names[..n];
        // The smaller sizes' names are a prefix: both hold exactly n now.
        for name in names {
            graphyte::count!(name.as_str(), 1);
        }
        {
            let mut map = baseline.write().expect("baseline lock");
            let mut fast = fast.write().expect("baseline lock");
            for name in names {
                if !map.contains_key(name.as_str()) {
                    map.insert(name.as_str().into(), AtomicI64::new(0));
                    fast.insert(name.as_str().into(), AtomicI64::new(0));
                }
            }
            assert_eq!((map.len(), fast.len()), (n, n));
        }
        assert_eq!(bench::series(), (already + n as u64, 0));
        g.bench_function(BenchmarkId::new("graphyte", n), |b| {
            let mut i = 0;
            b.iter(|| {
                let name = names[i].as_str();
                i += 1;
                if i == names.len() {
                    i = 0;
                }
                graphyte::count!(black_box(name), 1);
            })
        });
        g.bench_function(BenchmarkId::new("baseline", n), |b| {
            let mut i = 0;
            b.iter(|| {
                let name = names[i].as_str();
                i += 1;
                if i == names.len() {
                    i = 0;
                }
                baseline
                    .read()
                    .expect("baseline lock")
                    .get(black_box(name))
                    .expect("registered")
                    .fetch_add(1, Relaxed);
            })
        });
        g.bench_function(BenchmarkId::new("baseline_foldhash", n), |b| {
            let mut i = 0;
            b.iter(|| {
                let name = names[i].as_str();
                i += 1;
                if i == names.len() {
                    i = 0;
                }
                fast.read()
                    .expect("baseline lock")
                    .get(black_box(name))
                    .expect("registered")
                    .fetch_add(1, Relaxed);
            })
        });
    }
    g.finish();
    let calls: i64 = baseline
        .read()
        .expect("baseline lock")
        .values()
        .map(|v| v.load(Relaxed))
        .sum();
    assert!(calls > 0, "the baseline was not measured");
}

/// Measurement 4, the facade: `metrics::counter!("bench.fcall", "user" =>
/// id).increment(1)` at N live label sets, through graphyte's recorder, the
/// Prometheus exporter's (idle timeout on, an hour: nothing expires during
/// the run, but it tracks every update's recency) and the facade's no-op
/// recorder (what the macro itself costs: the key with its labels). Each
/// inside `metrics::with_local_recorder`, ids walked in order, as for 3.
fn facade_per_call(c: &mut Criterion, plan: &Plan) {
    let max = *plan.sizes.last().expect("sizes");
    let ids: Vec<&'static str> = (0..max)
        .map(|i| &*Box::leak(format!("u{i:07}").into_boxed_str()))
        .collect();
    let graphyte = GraphyteRecorder::new();
    let prometheus = PrometheusBuilder::new()
        .idle_timeout(MetricKindMask::ALL, Some(Duration::from_secs(3600)))
        .build_recorder();
    let scrape = prometheus.handle();
    let noop = metrics::NoopRecorder;
    let recorders: [(&str, &dyn Recorder); 3] = [
        ("graphyte", &graphyte),
        ("prometheus", &prometheus),
        ("noop_recorder", &noop),
    ];
    let already = bench::series().0;
    let mut g = c.benchmark_group("facade_counter");
    for &n in &plan.sizes {
        let ids = &ids[..n];
        for (_, recorder) in &recorders[..2] {
            metrics::with_local_recorder(*recorder, || {
                for id in ids {
                    metrics::counter!("bench.fcall", "user" => *id).increment(1);
                }
            });
        }
        assert_eq!(
            bench::series().0,
            already + n as u64,
            "every label set live"
        );
        for (name, recorder) in recorders {
            g.bench_function(BenchmarkId::new(name, n), |b| {
                metrics::with_local_recorder(recorder, || {
                    let mut i = 0;
                    b.iter(|| {
                        let id = ids[i];
                        i += 1;
                        if i == ids.len() {
                            i = 0;
                        }
                        metrics::counter!("bench.fcall", "user" => black_box(id)).increment(1);
                    })
                })
            });
        }
    }
    g.finish();
    let text = scrape.render();
    assert!(
        text.contains("bench_fcall{user=\"u0000000\"}"),
        "the Prometheus recorder did not record"
    );
}

// ---------------------------------------------------------------------------
// Report

struct Call {
    series: usize,
    /// Non-literal `count!`, and the `RwLock<HashMap>` baseline.
    ours: Option<f64>,
    baseline: Option<f64>,
    /// The baseline with graphyte's hasher (foldhash).
    fast_map: Option<f64>,
    /// Facade `counter!` with a dynamic label: graphyte's recorder, the
    /// Prometheus recorder with its idle timeout, and a recorder that does
    /// nothing (the facade's own cost: the key and its labels).
    facade: Option<f64>,
    prometheus: Option<f64>,
    floor: Option<f64>,
    /// An uncontended read lock taken and released and one `fetch_add`: the
    /// floor of any lookup under a read lock.
    lock_floor: Option<f64>,
}

impl Call {
    fn ratio(&self) -> Option<f64> {
        ratio(self.ours, self.baseline)
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).map(|(a, b)| a / b)
}

// Targets of the memory measurements.
const BYTES: f64 = 175.0;
const FACADE_BYTES: f64 = 200.0;
const RETURNED: f64 = 0.10;

/// The memory targets hold: a smoke run (under `cargo test`) fails if not,
/// a full run reports them as verdicts.
fn memory_verdicts(memories: &[Memory; 2]) -> [(String, bool); 4] {
    let [nonliteral, facade] = memories;
    [
        (
            format!(
                "non-literal count!: {:.1} bytes per series (target <= {BYTES})",
                nonliteral.per_series()
            ),
            nonliteral.per_series() <= BYTES,
        ),
        (
            format!(
                "facade counter!: {:.1} bytes per series (target <= {FACADE_BYTES})",
                facade.per_series()
            ),
            facade.per_series() <= FACADE_BYTES,
        ),
        (
            format!(
                "non-literal count!: heap {:+.1} % of before after expiry (target within {:.0} %)",
                nonliteral.returned() * 100.0,
                RETURNED * 100.0
            ),
            nonliteral.returned() <= RETURNED,
        ),
        (
            format!(
                "facade counter!: heap {:+.1} % of before after expiry (target within {:.0} %)",
                facade.returned() * 100.0,
                RETURNED * 100.0
            ),
            facade.returned() <= RETURNED,
        ),
    ]
}

/// What must hold in every run: the heap verdicts, and no line from an
/// expired series.
fn check(memories: &[Memory; 2]) {
    for (what, met) in memory_verdicts(memories) {
        assert!(met, "{what}");
    }
    for memory in memories {
        assert_eq!(memory.sent, memory.series, "one line per new series");
        assert_eq!(
            (memory.expiring, memory.after),
            (0, 0),
            "expired series send nothing"
        );
    }
}

fn report(plan: &Plan, memories: &[Memory; 2], drains: &[Drain], calls: &[Call]) {
    const RATIO: f64 = 0.6;
    const PEER_RATIO: f64 = 0.5;
    const DRAIN_NS: f64 = 60.0;
    let show = |met: bool| if plan.full { verdict(met) } else { "-" };
    println!("\n== graphyte series: figures from this run ==");
    if !plan.full {
        println!("(smoke run under cargo test: debug build, small N; memory verdicts asserted, no speed verdicts)");
    }
    let ns = |v: Option<f64>| v.map_or("not measured".to_owned(), |v| format!("{v:.1} ns"));
    let [memory, facade_memory] = memories;

    let mut targets = Fragment::new("series-targets");
    targets.line("| target | this run | verdict |");
    targets.line("|---|---|---|");
    // What bounds a missed facade target: the facade's own cost per call
    // (the macro makes a `Key` with a `Vec` of labels, then calls the
    // recorder), measured with a recorder that does nothing. When that fits
    // in the target, what the target leaves graphyte's recorder against
    // what it takes (graphyte's cost minus the facade's).
    let floor_note = |call: &Call, base: Option<f64>, target: f64| -> String {
        let (Some(floor), Some(base)) = (call.floor, base) else {
            return String::new();
        };
        let r = floor / base;
        if r > target {
            return format!(
                "; bound: the facade's own cost with a recorder that does nothing is {floor:.1} ns = {r:.2} × alone"
            );
        }
        let alone =
            format!("; the facade alone (recorder doing nothing): {floor:.1} ns = {r:.2} ×");
        match call.facade {
            Some(ours) if ours > target * base => format!(
                "{alone}, so the target leaves graphyte's recorder {:.1} ns; it takes {:.1} ns",
                target * base - floor,
                ours - floor
            ),
            _ => alone,
        }
    };
    // One verdict cell: "ours vs base = ratio", with a note on what bounds it.
    let cell = |ours: Option<f64>, base: Option<f64>, target: f64, note: &dyn Fn(f64) -> String| {
        match ratio(ours, base) {
            Some(r) => (
                format!("{} vs {} = **{r:.2} ×**{}", ns(ours), ns(base), note(r)),
                show(r <= target),
            ),
            None => ("not measured".to_owned(), "-"),
        }
    };
    for call in calls {
        let (text, met) = cell(call.ours, call.baseline, RATIO, &|r| {
            let Some(f) = ratio(call.fast_map, call.baseline).filter(|_| r > RATIO) else {
                return String::new();
            };
            let lock = ratio(call.lock_floor, call.baseline).map_or(String::new(), |l| {
                format!(
                    "; a read lock and a `fetch_add` with no lookup (the floor of any read-locked lookup): {} = {l:.2} ×",
                    ns(call.lock_floor)
                )
            });
            format!(
                "; bound: the same read-locked map with graphyte's hasher (foldhash) costs {} = {f:.2} ×{lock}",
                ns(call.fast_map)
            )
        });
        targets.line(format!(
            "| non-literal `count!`, {} series: ≤ {RATIO} × `RwLock<HashMap>` lookup-and-add | {text} | {met} |",
            chart::human(call.series as f64)
        ));
    }
    for call in calls {
        let (text, met) = cell(call.facade, call.baseline, RATIO, &|_| {
            floor_note(call, call.baseline, RATIO)
        });
        targets.line(format!(
            "| facade `counter!(\"name\", \"user\" => id).increment(1)`, {} series: ≤ {RATIO} × `RwLock<HashMap>` lookup-and-add | {text} | {met} |",
            chart::human(call.series as f64)
        ));
    }
    for call in calls {
        let (text, met) = cell(call.facade, call.prometheus, PEER_RATIO, &|_| {
            floor_note(call, call.prometheus, PEER_RATIO)
        });
        targets.line(format!(
            "| facade `counter!` with a dynamic label, {} series: ≤ {PEER_RATIO} × metrics-exporter-prometheus's recorder (idle timeout on) | {text} | {met} |",
            chart::human(call.series as f64)
        ));
    }
    for (m, bytes, what) in [
        (memory, BYTES, "non-literal `count!` series"),
        (
            facade_memory,
            FACADE_BYTES,
            "facade series with one short label",
        ),
    ] {
        targets.line(format!(
            "| heap per live {what} ≤ {bytes:.0} bytes ({} series, {}-byte names) | **{:.1} bytes** ({:.2} heap blocks) per series | {} |",
            chart::human(m.series as f64),
            m.name_len,
            m.per_series(),
            m.blocks_per_series(),
            show(m.per_series() <= bytes)
        ));
    }
    for (m, what) in [
        (memory, "non-literal `count!` series"),
        (facade_memory, "facade label sets"),
    ] {
        targets.line(format!(
            "| after {} {what} expire, live heap within {:.0} % of before | {} before, {} with them, {} after: **{:+.1} %** ({:.1} % of what they took is still held) | {} |",
            chart::human(m.series as f64),
            RETURNED * 100.0,
            bytes(m.before.0),
            bytes(m.created.0),
            bytes(m.expired.0),
            m.returned() * 100.0,
            m.kept() * 100.0,
            show(m.returned() <= RETURNED)
        ));
        targets.line(format!(
            "| {} expired {what}: 0 lines per drain | {} lines at the drain that expired them, {} at the next | {} |",
            chart::human(m.series as f64),
            m.expiring,
            m.after,
            show(m.expiring == 0 && m.after == 0)
        ));
    }
    for drain in drains {
        targets.line(format!(
            "| interval thread's drain, {} active counters: ≤ {DRAIN_NS:.0} ns per series per interval | **{:.1} ns** (median of {} intervals; formatting the same lines alone: {:.1} ns) | {} |",
            chart::human(drain.series as f64),
            drain.median(),
            drain.rounds.len(),
            drain.format_median(),
            show(drain.median() <= DRAIN_NS)
        ));
    }

    let mut figures = Fragment::new("series-figures");
    figures.line("| series | non-literal `count!` | facade `counter!` (graphyte) | facade `counter!` (Prometheus recorder, idle timeout) | facade `counter!` (recorder doing nothing) | `RwLock<HashMap<Box<str>, AtomicI64>>` | the same map with foldhash | `count!` / map | facade / map | facade / Prometheus |");
    figures.line("|---|---|---|---|---|---|---|---|---|---|");
    let x = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{r:.2} ×"));
    for call in calls {
        figures.line(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            chart::human(call.series as f64),
            ns(call.ours),
            ns(call.facade),
            ns(call.prometheus),
            ns(call.floor),
            ns(call.baseline),
            ns(call.fast_map),
            x(call.ratio()),
            x(ratio(call.facade, call.baseline)),
            x(ratio(call.facade, call.prometheus)),
        ));
    }
    figures.line("");
    figures.line(format!(
        "Memory, non-literal `count!`: {}.",
        memory.describe()
    ));
    figures.line("");
    figures.line(format!(
        "Memory, facade `counter!(\"bench.fmem\", \"user\" => id)`: {}.",
        facade_memory.describe()
    ));
    for drain in drains {
        figures.line("");
        figures.line(format!("Drain: {}.", drain.describe()));
    }

    let dir = results_dir(plan.full);
    targets.save(&dir);
    figures.save(&dir);
    let points = |f: fn(&Call) -> Option<f64>| -> Vec<(f64, f64)> {
        calls
            .iter()
            .filter_map(|c| Some((c.series as f64, f(c)?)))
            .collect()
    };
    let lines = [
        Line {
            label: "graphyte count!(name.as_str(), 1)",
            color: chart::OURS,
            points: points(|c| c.ours),
        },
        Line {
            label: "graphyte recorder: metrics::counter!(name, \"user\" => id)",
            color: chart::OURS_2,
            points: points(|c| c.facade),
        },
        Line {
            label: "metrics-exporter-prometheus recorder (idle timeout on)",
            color: chart::LIMIT,
            points: points(|c| c.prometheus),
        },
        Line {
            label: "RwLock<HashMap<Box<str>, AtomicI64>> (std hasher)",
            color: chart::BASELINE,
            points: points(|c| c.baseline),
        },
    ];
    if lines.iter().all(|l| !l.points.is_empty()) {
        let charts = dir.join("charts");
        std::fs::create_dir_all(&charts).expect("charts dir");
        let path = charts.join("nonliteral-count.svg");
        chart::log_log(
            &path,
            "Per call against live series: count!, the facade, peers",
            "live series (log)",
            "ns per call (log)",
            &lines,
        )
        .expect("draw the chart");
        println!("chart: {}", path.display());
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `3.2 KiB`, `41.0 MiB`.
fn bytes(n: i64) -> String {
    let n = n as f64;
    if n.abs() >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB", n / 1024.0)
    }
}
