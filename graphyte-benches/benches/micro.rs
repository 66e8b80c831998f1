//! Micro-benchmarks of graphyte's hot paths, single thread, with their
//! baselines and peers measured in the same run (issue 5).
//!
//! ```text
//! cargo bench -p graphyte-benches --bench micro           # or ./scripts/bench for everything
//! cargo bench -p graphyte-benches --bench micro -- peers  # a criterion filter (the ratio table then lists what ran)
//! ```
//!
//! What is measured, each as criterion's median time per call:
//!
//! * `before_init/{count,gauge}`: `count!`/`gauge!` with a literal name before
//!   `graphyte::init` (the macros then do nothing: one atomic load).
//! * `baseline/fetch_add`: `AtomicU64::fetch_add(1, Relaxed)` on a static.
//! * `baseline/timer_skeleton`: what a naive timer costs: two
//!   `std::time::Instant::now()` calls and two atomic adds (count and sum).
//! * `baseline/instant_now`: one `Instant::now()`, as context.
//! * `after_init/{count,gauge}`: the same macros after `init` in interval mode
//!   (aggregating: the series handle is resolved on the first call).
//! * `after_init/timed_empty_fn`: a call of an empty sync fn under
//!   `#[graphyte::timed]`, after `init` in interval mode.
//! * `peers/metrics_counter`: metrics-rs `counter!("x").increment(1)` with a
//!   minimal recorder installed (every counter is one `Arc<AtomicU64>`).
//! * `peers/cadence_count`: cadence `StatsdClient::count` with `NopMetricSink`.
//! * `format/format_into_{int,float}`: `LineFormat::format_into` of one
//!   `prefix.path value timestamp\n` line into a reused buffer.
//! * `handles/{sender_send,metric_send}`: one line `app.bench.handle.requests
//!   N TS` through `Sender::send("bench.handle.requests", n)` and through a
//!   `Metric` handle of the same name (`Metric::send(n)`), on a sender of its
//!   own in interval mode (the `no_tick()` interval, a transport that discards the
//!   bytes). Only the sends are timed: every 4,096 sends the clock stops and
//!   the queue is flushed (the interval thread writes it to the discarding
//!   transport), so no send ever meets a full queue.
//!
//! The global sender can be initialised once per process, and criterion runs
//! every benchmark of this binary in one process, so `main` runs the groups
//! in a fixed order: `before_init` first, then the rest, whose first
//! benchmark calls `init` (once). `before_init` also checks that no sender
//! exists, so a different order fails loudly instead of measuring the wrong
//! thing. `init` uses a `CaptureTransport` and the `no_tick()` interval: nothing
//! blocks, and the interval thread never wakes during the run.
//!
//! At the end, `graphyte::shutdown()` delivers the aggregates to the capture
//! transport and the run checks them: the `count!`, `gauge!` and `#[timed]`
//! calls measured after `init` must show up there (so what was measured is
//! the aggregating path, not a no-op).
//!
//! After criterion's own output, a bench run (`--bench`, as `cargo bench`
//! passes) prints the ratios the issues' targets name, read from the
//! estimates criterion wrote in this run (files older than the run are
//! ignored, so every figure is from this run), and writes them as the
//! fragments `micro-targets.md` and `micro-medians.md` under
//! `target/bench-results/` for BENCHMARKS.md. Under `cargo test` criterion
//! runs each benchmark once, as a smoke test, and no table is printed.

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Once, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use criterion::Criterion;
use graphyte::{CaptureTransport, Config, LineFormat, SendError, Sender, Timestamp, Transport};
use graphyte_benches::{criterion_dir, full_run, median_ns, results_dir, verdict, Fragment};

/// Target of `baseline/fetch_add`.
static FETCH_ADD: AtomicU64 = AtomicU64::new(0);
/// The two atomics of `baseline/timer_skeleton`.
static SKELETON_COUNT: AtomicU64 = AtomicU64::new(0);
static SKELETON_SUM: AtomicU64 = AtomicU64::new(0);

/// The empty function under `#[timed]`. Not inlined, like the skeleton, so
/// both include one call.
#[graphyte::timed("bench.timed")]
#[inline(never)]
fn timed_empty() {}

/// Two `Instant::now()` and two atomic adds: a timer written with std.
#[inline(never)]
fn timer_skeleton() {
    let start = Instant::now();
    let end = Instant::now();
    SKELETON_COUNT.fetch_add(1, Relaxed);
    SKELETON_SUM.fetch_add(end.duration_since(start).as_nanos() as u64, Relaxed);
}

fn before_init(c: &mut Criterion) {
    assert!(
        graphyte::sender().is_none(),
        "before_init must run before anything calls graphyte::init (see main)"
    );
    let mut g = c.benchmark_group("before_init");
    g.bench_function("count", |b| {
        b.iter(|| graphyte::count!("bench.before.count", 1))
    });
    g.bench_function("gauge", |b| {
        b.iter(|| graphyte::gauge!("bench.before.gauge", black_box(42u64)))
    });
    g.finish();
    assert!(graphyte::sender().is_none());
}

fn baselines(c: &mut Criterion) {
    let mut g = c.benchmark_group("baseline");
    g.bench_function("fetch_add", |b| {
        b.iter(|| {
            FETCH_ADD.fetch_add(1, Relaxed);
        })
    });
    g.bench_function("timer_skeleton", |b| b.iter(timer_skeleton));
    g.bench_function("instant_now", |b| b.iter(Instant::now));
    g.finish();
}

/// Where the global sender's lines go: kept to check, at the end, that the
/// after-init benchmarks really aggregated.
static CAPTURE: OnceLock<CaptureTransport> = OnceLock::new();

/// `init` in interval mode, once per process: nothing is sent anywhere (a
/// capture transport) and the interval thread sleeps through the run.
fn init_interval_mode() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let capture = CAPTURE.get_or_init(CaptureTransport::new).clone();
        graphyte::init(
            Config::new("capture.invalid")
                .interval(graphyte_benches::no_tick())
                .transport(capture),
        )
        .expect("graphyte::init");
    });
    assert!(graphyte::sender().and_then(|s| s.interval()).is_some());
}

/// Shuts the global sender down (it delivers the interval in progress) and
/// checks that the measured calls were aggregated: the counter's sum and the
/// timer's count are the calls criterion made.
fn check_aggregated() {
    let Some(capture) = CAPTURE.get() else {
        return; // after_init was filtered out
    };
    graphyte::shutdown().expect("shutdown");
    if filtered() {
        return;
    }
    let lines = capture.lines();
    let value = |name: &str| -> Option<u64> {
        lines.iter().find_map(|l| {
            let mut fields = l.split(' ');
            (fields.next()? == name).then(|| fields.next()?.parse().ok())?
        })
    };
    for name in ["bench.after.count", "bench.timed.count"] {
        let n = value(name).unwrap_or_else(|| panic!("no {name} line in {lines:?}"));
        assert!(n > 0, "{name} is {n}: the calls were not aggregated");
    }
    assert!(
        value("bench.after.gauge").is_some(),
        "no gauge line in {lines:?}"
    );
}

fn after_init(c: &mut Criterion) {
    init_interval_mode();
    let mut g = c.benchmark_group("after_init");
    g.bench_function("count", |b| {
        b.iter(|| graphyte::count!("bench.after.count", 1))
    });
    g.bench_function("gauge", |b| {
        b.iter(|| graphyte::gauge!("bench.after.gauge", black_box(42u64)))
    });
    g.bench_function("timed_empty_fn", |b| b.iter(timed_empty));
    g.finish();
}

/// The smallest useful metrics-rs recorder: every counter is the same
/// `Arc<AtomicU64>`; gauges and histograms are no-ops.
struct MinimalRecorder {
    counter: Arc<AtomicU64>,
}

impl metrics::Recorder for MinimalRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(Arc::clone(&self.counter))
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

fn peers(c: &mut Criterion) {
    let counter = Arc::new(AtomicU64::new(0));
    // Fails only if a recorder is installed already (a second call of this fn).
    let _ = metrics::set_global_recorder(MinimalRecorder {
        counter: Arc::clone(&counter),
    });
    let client = cadence::StatsdClient::from_sink("bench", cadence::NopMetricSink);
    let mut g = c.benchmark_group("peers");
    g.bench_function("metrics_counter", |b| {
        b.iter(|| metrics::counter!("x").increment(1))
    });
    g.bench_function("cadence_count", |b| {
        use cadence::Counted;
        b.iter(|| client.count("x", 1))
    });
    g.finish();
    assert!(
        filtered() || counter.load(Relaxed) > 0,
        "the metrics-rs recorder was not used"
    );
}

/// Whether criterion was given a filter (a positional argument): then some
/// benchmarks did not run, and the checks that they did are skipped.
fn filtered() -> bool {
    std::env::args().skip(1).any(|a| !a.starts_with('-'))
}

fn formatting(c: &mut Criterion) {
    let format = LineFormat::new("system.bench", &[] as &[(&str, &str)]).expect("valid prefix");
    let ts = Timestamp::from(1_700_000_000u32);
    let mut buf = Vec::with_capacity(256);
    let mut g = c.benchmark_group("format");
    let mut n = 0u64;
    g.bench_function("format_into_int", |b| {
        b.iter(|| {
            buf.clear();
            n = n.wrapping_add(1);
            format
                .format_into(&mut buf, black_box("app.requests.total"), &[], n, ts)
                .expect("valid line");
            black_box(buf.len())
        })
    });
    let mut x = 0.5f64;
    g.bench_function("format_into_float", |b| {
        b.iter(|| {
            buf.clear();
            x += 1.25;
            format
                .format_into(&mut buf, black_box("app.latency.mean"), &[], x, ts)
                .expect("valid line");
            black_box(buf.len())
        })
    });
    // A sender with default tags (`Config::tag`) and none on the call.
    let tagged =
        LineFormat::new("system.bench", &[("host", "web-1"), ("env", "prod")]).expect("valid tags");
    g.bench_function("format_into_int_default_tags", |b| {
        b.iter(|| {
            buf.clear();
            n = n.wrapping_add(1);
            tagged
                .format_into(&mut buf, black_box("app.requests.total"), &[], n, ts)
                .expect("valid line");
            black_box(buf.len())
        })
    });
    g.finish();
}

/// A transport that discards what it is given.
struct Discard;

impl Transport for Discard {
    fn send(&mut self, _: &[u8], _: Instant) -> Result<(), SendError> {
        Ok(())
    }
    fn address(&self) -> String {
        "discard".into()
    }
}

/// Sends per timed stretch; the queue is flushed between stretches.
const STRETCH: u64 = 4096;

/// `iters` calls of `send(n)`, timed in stretches of [`STRETCH`] with the
/// queue flushed (untimed) between them.
fn timed_sends(sender: &Sender, iters: u64, n: &mut u64, send: impl Fn(u64)) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let k = left.min(STRETCH);
        let start = Instant::now();
        for _ in 0..k {
            send(black_box(*n));
            *n += 1;
        }
        total += start.elapsed();
        sender.flush().expect("flush");
        left -= k;
    }
    total
}

fn handles(c: &mut Criterion) {
    let sender = Sender::new(
        Config::new("unused")
            .prefix("app")
            .interval(graphyte_benches::no_tick())
            .transport(Discard),
    )
    .expect("sender");
    let metric = sender.metric("bench.handle.requests").expect("metric");
    let mut n = 0u64;
    let mut g = c.benchmark_group("handles");
    g.bench_function("sender_send", |b| {
        b.iter_custom(|iters| {
            timed_sends(&sender, iters, &mut n, |v| {
                sender
                    .send(black_box("bench.handle.requests"), v)
                    .expect("send")
            })
        })
    });
    g.bench_function("metric_send", |b| {
        b.iter_custom(|iters| {
            timed_sends(&sender, iters, &mut n, |v| metric.send(v).expect("send"))
        })
    });
    g.finish();
    sender.stop().expect("stop");
    let stats = sender.stats();
    assert_eq!(stats.sent, n, "every send was delivered");
    assert_eq!(stats.dropped, 0);
}

fn main() {
    let started = SystemTime::now();
    let output = criterion_dir();
    let mut c = Criterion::default()
        .output_directory(&output)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .sample_size(60)
        .configure_from_args();
    // The order matters: nothing may call `graphyte::init` before `before_init`.
    before_init(&mut c);
    baselines(&mut c);
    after_init(&mut c);
    peers(&mut c);
    formatting(&mut c);
    handles(&mut c);
    c.final_summary();
    check_aggregated();
    if full_run() {
        report(&output, started);
    }
}

fn report(dir: &Path, since: SystemTime) {
    let get = |id: &str| median_ns(dir, id, since);
    if get("baseline/fetch_add").is_none() && get("baseline/timer_skeleton").is_none() {
        println!("(baselines not measured in this run: no ratio table)");
        return;
    }
    let ns = |v: Option<f64>| v.map_or("not run".to_owned(), |v| format!("{v:.2} ns"));
    println!(
        "\n== graphyte micro-benchmarks: medians from this run ({}) ==",
        dir.display()
    );
    let mut medians = Fragment::new("micro-medians");
    medians.line("| benchmark | what | median |");
    medians.line("|---|---|---|");
    for (id, what) in [
        ("baseline/fetch_add", "`AtomicU64::fetch_add(1, Relaxed)`"),
        (
            "baseline/timer_skeleton",
            "timer skeleton (2 × `Instant::now()` + 2 atomic adds)",
        ),
        ("baseline/instant_now", "`Instant::now()`"),
        ("before_init/count", "`count!` before init"),
        ("before_init/gauge", "`gauge!` before init"),
        ("after_init/count", "`count!` after init (interval mode)"),
        ("after_init/gauge", "`gauge!` after init"),
        (
            "after_init/timed_empty_fn",
            "`#[timed]` empty fn after init",
        ),
        (
            "peers/metrics_counter",
            "metrics-rs `counter!(\"x\").increment(1)`, minimal recorder",
        ),
        ("peers/cadence_count", "cadence `count`, `NopMetricSink`"),
        (
            "format/format_into_int",
            "`LineFormat::format_into`, integer value",
        ),
        (
            "format/format_into_float",
            "`LineFormat::format_into`, float value",
        ),
        (
            "format/format_into_int_default_tags",
            "`LineFormat::format_into`, integer value, two default tags",
        ),
        (
            "handles/sender_send",
            "`Sender::send(name, n)`, interval mode, caller only",
        ),
        (
            "handles/metric_send",
            "`Metric::send(n)` of the same name, interval mode, caller only",
        ),
    ] {
        medians.line(format!("| `{id}` | {what} | {} |", ns(get(id))));
    }

    let fetch_add = get("baseline/fetch_add");
    let skeleton = get("baseline/timer_skeleton");
    let sender_send = get("handles/sender_send");
    println!();
    let mut targets = Fragment::new("micro-targets");
    targets.line("| figure | measured | ratio | target | verdict |");
    targets.line("|---|---|---|---|---|");
    // (figure, benchmark, baseline, baseline's name, target ratio if any)
    type Row<'a> = (&'a str, &'a str, Option<f64>, &'a str, Option<f64>);
    let rows: [Row<'_>; 8] = [
        (
            "`count!` after init, literal name",
            "after_init/count",
            fetch_add,
            "`fetch_add`",
            Some(1.5),
        ),
        (
            "`gauge!` after init, literal name",
            "after_init/gauge",
            fetch_add,
            "`fetch_add`",
            Some(1.5),
        ),
        (
            "`count!` before init",
            "before_init/count",
            fetch_add,
            "`fetch_add`",
            Some(1.0),
        ),
        (
            "`gauge!` before init",
            "before_init/gauge",
            fetch_add,
            "`fetch_add`",
            Some(1.0),
        ),
        (
            "`#[timed]` empty fn",
            "after_init/timed_empty_fn",
            skeleton,
            "timer skeleton",
            Some(0.6),
        ),
        (
            "`Metric::send` on the caller, interval mode",
            "handles/metric_send",
            sender_send,
            "`Sender::send` of the same line",
            Some(0.5),
        ),
        (
            "metrics-rs `counter!` (peer)",
            "peers/metrics_counter",
            fetch_add,
            "`fetch_add`",
            None,
        ),
        (
            "cadence `count` (peer)",
            "peers/cadence_count",
            fetch_add,
            "`fetch_add`",
            None,
        ),
    ];
    for (figure, id, base, base_name, target) in rows {
        let value = get(id);
        let ratio = value.zip(base).map(|(v, b)| v / b);
        let ratio_text = ratio.map_or("-".to_owned(), |r| format!("**{r:.2} ×** {base_name}"));
        let (target_text, verdict) = match (target, ratio) {
            (Some(t), Some(r)) => (format!("≤ {t} × {base_name}"), verdict(r <= t)),
            (Some(t), None) => (format!("≤ {t} × {base_name}"), "not run"),
            (None, _) => ("context".to_owned(), "-"),
        };
        targets.line(format!(
            "| {figure} | {} | {ratio_text} | {target_text} | {verdict} |",
            ns(value)
        ));
    }
    let after = get("after_init/count");
    for (peer, id) in [
        (
            "metrics-rs `counter!(\"x\").increment(1)`",
            "peers/metrics_counter",
        ),
        ("cadence `count`", "peers/cadence_count"),
    ] {
        if let (Some(ours), Some(theirs)) = (after, get(id)) {
            targets.line("");
            targets.line(format!(
                "{peer} costs {:.1} × graphyte's `count!` after init.",
                theirs / ours
            ));
        }
    }
    let out = results_dir(true);
    medians.save(&out);
    targets.save(&out);
}
