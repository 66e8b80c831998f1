//! graphyte as a `metrics` facade recorder (issue 13) against the
//! Prometheus exporter's recorder, in the same run.
//!
//! ```text
//! cargo bench -p graphyte-benches --bench facade   # or ./scripts/bench for everything
//! ```
//!
//! The binary `graphyte::init`s the global sender once, in interval mode (a
//! `CaptureTransport`, an interval that does not tick during the run (`no_tick()`): the interval thread never wakes
//! during the run), which is what makes graphyte's recorder aggregate. The
//! two recorders are a `graphyte::metrics::GraphyteRecorder` and
//! `metrics-exporter-prometheus`'s `PrometheusRecorder` from
//! `PrometheusBuilder::new().build_recorder()` (no HTTP listener, no upkeep
//! thread, default settings: histograms are **summaries**, kept as raw
//! samples in an `AtomicBucket` until upkeep or a scrape folds them into a
//! rolling quantile sketch). Neither is installed globally: the macro
//! benchmarks run inside `metrics::with_local_recorder`, so both go through
//! the same facade path (the thread-local recorder is looked up first).
//!
//! criterion group `facade`, median time per call:
//!
//! 1. `fetch_add`: `AtomicU64::fetch_add(1, Relaxed)` on a static, the
//!    baseline of the handle target;
//! 2. `handle_increment/{graphyte,prometheus}`: a `metrics::Counter`
//!    registered once with `Recorder::register_counter`, then
//!    `counter.increment(1)` per call (the handle behind `black_box`, so
//!    the call stays the dynamic dispatch a stored handle makes);
//! 3. `counter_macro/{graphyte,prometheus}`:
//!    `metrics::counter!("requests").increment(1)` per call: the macro
//!    registers on every call (graphyte: the key's Graphite name written
//!    into a buffer of the thread's and looked up in the registry;
//!    Prometheus: the key looked up in its registry; then a clone of the
//!    handle's `Arc`, the increment, the drop);
//! 4. `counter_macro_labels/{graphyte,prometheus}`: the same with the
//!    labels `"method" => "GET", "code" => "200"`;
//! 5. `histogram_record/{graphyte,prometheus}`: `histogram.record(v)` on a
//!    handle registered once, `v` walking 1,024 values from 0.05 to ~1,300
//!    (geometric, a latency-like spread; the same sequence for both). The
//!    Prometheus recorder keeps every sample until upkeep, so both are
//!    timed in batches of 4,096 calls with the clock stopped in between,
//!    where the Prometheus handle's `run_upkeep()` drains its buckets (as
//!    its upkeep thread would); graphyte needs nothing there.
//!
//! After criterion, graphyte is shut down (it delivers the interval in
//! progress to the capture transport) and the bench checks that graphyte's
//! lines and the Prometheus render show the measured calls. A full run
//! (`--bench`) prints the ratios and verdicts and writes the fragments
//! `facade-targets.md` and `facade-medians.md` under
//! `target/bench-results/`; under `cargo test` it is a smoke test
//! (criterion runs each benchmark once, the checks hold, no verdicts).

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use criterion::{Bencher, BenchmarkId, Criterion};
use graphyte::metrics::GraphyteRecorder;
use graphyte::{CaptureTransport, Config};
use graphyte_benches::{criterion_dir, full_run, median_ns, results_dir, verdict, Fragment};
use metrics::{Key, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Target of `facade/fetch_add`.
static FETCH_ADD: AtomicU64 = AtomicU64::new(0);

/// Histogram calls per timed batch (the Prometheus upkeep runs between).
const BATCH: u64 = 4096;

const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// Whether criterion was given a filter (a positional argument): then some
/// benchmarks did not run, and the checks that they did are skipped.
fn filtered() -> bool {
    std::env::args().skip(1).any(|a| !a.starts_with('-'))
}

/// The values recorded into the histograms: 0.05 × 1.01^i, i < 1024.
fn values() -> Vec<f64> {
    (0..1024).map(|i| 0.05 * 1.01f64.powi(i)).collect()
}

/// Times `iters` calls of `record(i)` in batches of [`BATCH`], running
/// `between` with the clock stopped after each batch.
fn batched(b: &mut Bencher<'_>, mut record: impl FnMut(u64), mut between: impl FnMut()) {
    b.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let n = (iters - done).min(BATCH);
            let start = Instant::now();
            for i in done..done + n {
                record(i);
            }
            total += start.elapsed();
            between();
            done += n;
        }
        total
    })
}

struct Recorders {
    graphyte: GraphyteRecorder,
    prometheus: PrometheusRecorder,
    scrape: PrometheusHandle,
}

fn bench(c: &mut Criterion, r: &Recorders) {
    let mut g = c.benchmark_group("facade");
    g.bench_function("fetch_add", |b| {
        b.iter(|| {
            FETCH_ADD.fetch_add(1, Relaxed);
        })
    });

    // 1. A handle registered once.
    let key = Key::from_static_name("handle.requests");
    let graphyte_counter = r.graphyte.register_counter(&key, &METADATA);
    let prometheus_counter = r.prometheus.register_counter(&key, &METADATA);
    g.bench_function(BenchmarkId::new("handle_increment", "graphyte"), |b| {
        b.iter(|| black_box(&graphyte_counter).increment(1))
    });
    g.bench_function(BenchmarkId::new("handle_increment", "prometheus"), |b| {
        b.iter(|| black_box(&prometheus_counter).increment(1))
    });

    // 2. The macro, which registers on every call.
    let recorders: [(&str, &dyn Recorder); 2] =
        [("graphyte", &r.graphyte), ("prometheus", &r.prometheus)];
    for (name, recorder) in recorders {
        g.bench_function(BenchmarkId::new("counter_macro", name), |b| {
            metrics::with_local_recorder(recorder, || {
                b.iter(|| metrics::counter!("requests").increment(1))
            })
        });
    }
    for (name, recorder) in recorders {
        g.bench_function(BenchmarkId::new("counter_macro_labels", name), |b| {
            metrics::with_local_recorder(recorder, || {
                b.iter(|| {
                    metrics::counter!("requests", "method" => "GET", "code" => "200").increment(1)
                })
            })
        });
    }

    // 3. Histogram record on a handle registered once.
    let values = values();
    let key = Key::from_static_name("latency");
    let graphyte_histogram = r.graphyte.register_histogram(&key, &METADATA);
    let prometheus_histogram = r.prometheus.register_histogram(&key, &METADATA);
    g.bench_function(BenchmarkId::new("histogram_record", "graphyte"), |b| {
        batched(
            b,
            |i| black_box(&graphyte_histogram).record(values[(i & 1023) as usize]),
            || {},
        )
    });
    g.bench_function(BenchmarkId::new("histogram_record", "prometheus"), |b| {
        batched(
            b,
            |i| black_box(&prometheus_histogram).record(values[(i & 1023) as usize]),
            || r.scrape.run_upkeep(),
        )
    });
    g.finish();
}

/// The value of the first line of `lines` whose first field is `name`.
fn line_value(lines: &[String], name: &str) -> Option<f64> {
    lines.iter().find_map(|l| {
        let mut fields = l.split(' ');
        (fields.next()? == name).then(|| fields.next()?.parse().ok())?
    })
}

/// Both recorders saw the measured calls: graphyte's aggregates arrive at
/// the capture transport at shutdown; the Prometheus render shows them.
fn check(capture: &CaptureTransport, scrape: &PrometheusHandle) {
    graphyte::shutdown().expect("shutdown");
    if filtered() {
        return;
    }
    let lines = capture.lines();
    for name in [
        "handle.requests",
        "requests",
        "requests;code=200;method=GET",
        "latency.count",
    ] {
        let v = line_value(&lines, name).unwrap_or_else(|| panic!("no {name} line in {lines:?}"));
        assert!(v > 0.0, "{name} is {v}: the calls were not aggregated");
    }
    for name in ["latency.p50", "latency.p99", "latency.min", "latency.max"] {
        let v = line_value(&lines, name).unwrap_or_else(|| panic!("no {name} line in {lines:?}"));
        assert!(
            (0.05..1400.0).contains(&v),
            "{name} is {v}, outside the values recorded"
        );
    }

    scrape.run_upkeep();
    let text = scrape.render();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} line in the Prometheus render:\n{text}"))
    };
    for prefix in [
        "handle_requests ",
        "requests ",
        "requests{",
        "latency_count ",
    ] {
        let v = value(prefix);
        assert!(v > 0.0, "Prometheus {prefix:?} is {v}");
    }
    assert!(
        text.contains("latency{quantile=\"0.5\"}"),
        "the Prometheus recorder's histograms are not summaries:\n{text}"
    );
}

fn main() {
    let started = SystemTime::now();
    let full = full_run();
    let load_start = load_average();
    let capture = CaptureTransport::new();
    graphyte::init(
        Config::new("unused")
            .interval(graphyte_benches::no_tick())
            .transport(capture.clone()),
    )
    .expect("graphyte::init");
    let prometheus = PrometheusBuilder::new().build_recorder();
    let recorders = Recorders {
        graphyte: GraphyteRecorder::new(),
        scrape: prometheus.handle(),
        prometheus,
    };
    let dir = criterion_dir();
    let mut c = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();
    bench(&mut c, &recorders);
    c.final_summary();
    check(&capture, &recorders.scrape);
    if full {
        report(&dir, started, &load_start);
    } else {
        println!("(smoke run under cargo test: each benchmark once, no verdicts)");
    }
}

/// `/proc/loadavg`'s three load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn report(dir: &Path, since: SystemTime, load_start: &str) {
    let get = |id: &str| median_ns(dir, &format!("facade/{id}"), since);
    let ns = |v: Option<f64>| v.map_or("not measured".to_owned(), |v| format!("{v:.2} ns"));

    let mut medians = Fragment::new("facade-medians");
    medians.line("| benchmark | what | graphyte | Prometheus recorder |");
    medians.line("|---|---|---|---|");
    medians.line(format!(
        "| `fetch_add` | `AtomicU64::fetch_add(1, Relaxed)` (baseline) | {} | |",
        ns(get("fetch_add"))
    ));
    for (id, what) in [
        (
            "handle_increment",
            "`counter.increment(1)` on a handle registered once",
        ),
        (
            "counter_macro",
            "`metrics::counter!(\"requests\").increment(1)`",
        ),
        (
            "counter_macro_labels",
            "`metrics::counter!(\"requests\", \"method\" => \"GET\", \"code\" => \"200\").increment(1)`",
        ),
        (
            "histogram_record",
            "`histogram.record(v)` on a handle registered once",
        ),
    ] {
        medians.line(format!(
            "| `{id}` | {what} | {} | {} |",
            ns(get(&format!("{id}/graphyte"))),
            ns(get(&format!("{id}/prometheus")))
        ));
    }

    let mut targets = Fragment::new("facade-targets");
    targets.line("| target | graphyte | baseline | ratio | verdict |");
    targets.line("|---|---|---|---|---|");
    let prom = "Prometheus recorder";
    // (figure, ours, baseline, baseline's name, target ratio)
    let rows = [
        (
            "handle `increment(1)` ≤ 1.5 × `fetch_add`",
            "handle_increment/graphyte",
            "fetch_add",
            "`fetch_add`",
            1.5,
        ),
        (
            "`counter!(\"requests\").increment(1)` ≤ 1.0 × Prometheus",
            "counter_macro/graphyte",
            "counter_macro/prometheus",
            prom,
            1.0,
        ),
        (
            "`counter!` with two labels ≤ 1.0 × Prometheus",
            "counter_macro_labels/graphyte",
            "counter_macro_labels/prometheus",
            prom,
            1.0,
        ),
        (
            "histogram `record(v)` ≤ 1.0 × Prometheus (its default: summary)",
            "histogram_record/graphyte",
            "histogram_record/prometheus",
            prom,
            1.0,
        ),
    ];
    for (figure, ours, base, base_name, target) in rows {
        let (ours, base) = (get(ours), get(base));
        let (ratio, met) = match ours.zip(base) {
            Some((o, b)) => (format!("**{:.2} ×**", o / b), verdict(o / b <= target)),
            None => ("-".to_owned(), "not run"),
        };
        targets.line(format!(
            "| {figure} | {} | {} ({base_name}) | {ratio} | {met} |",
            ns(ours),
            ns(base)
        ));
    }
    targets.line("");
    targets.line(format!(
        "Load average at the start of the facade bench: {load_start}; at its end: {}.",
        load_average()
    ));

    let out = results_dir(true);
    medians.save(&out);
    targets.save(&out);
}
