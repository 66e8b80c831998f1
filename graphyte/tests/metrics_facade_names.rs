//! Labels reach carbon as distinct series: a `metrics` label named `name`
//! (common in Prometheus-style instrumentation: a queue's, a cache's, a
//! job's name) must not merge series in carbon.
//!
//! Carbon reserves the tag `name` for the path: `TaggedSeries.parse`
//! overwrites a `name=` tag with the metric's path and leaves it out of the
//! stored name, so `jobs.done;name=a` and `jobs.done;name=b` are both
//! stored as `jobs.done`, where each second keeps only the last value
//! written. The recorder therefore sends a `name` label as the tag `_name`
//! (documented in `graphyte::metrics`): every label value is its own series
//! in carbon, and every count arrives.
//!
//! Skips loudly without carbon; fails under ./scripts/test
//! (GRAPHYTE_REQUIRE_CARBON=1) if carbon is missing.
//! One test function: the global recorder can be installed once per process.
#![cfg(feature = "metrics")]

#[path = "../../tests/support/mod.rs"]
mod support;

use std::thread;
use std::time::{Duration, Instant};

use graphyte::Config;
use support::{whisper, CarbonServer};

/// Every whisper file carbon wrote, with the sum of its values.
fn stored(carbon: &CarbonServer) -> Vec<(String, f64)> {
    carbon
        .whisper_files()
        .into_iter()
        .map(|file| {
            let points =
                whisper::read_points(&carbon.whisper_dir().join(&file)).unwrap_or_default();
            (file.display().to_string(), points.iter().map(|p| p.1).sum())
        })
        .collect()
}

#[test]
fn a_label_named_name_keeps_its_series_apart_in_carbon() {
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    graphyte::metrics::install(
        Config::new("127.0.0.1")
            .port(carbon.port())
            .interval(Duration::from_secs(1)),
    )
    .unwrap();
    // Two series told apart by a label `name`, two by a label `kind`.
    metrics::counter!("jobs.done", "name" => "resize").increment(5);
    metrics::counter!("jobs.done", "name" => "upload").increment(7);
    metrics::counter!("jobs.failed", "kind" => "resize").increment(5);
    metrics::counter!("jobs.failed", "kind" => "upload").increment(7);
    graphyte::shutdown().unwrap();

    // Every count reaches carbon, in four series.
    let deadline = Instant::now() + Duration::from_secs(15);
    let files = loop {
        let files = stored(&carbon);
        let total: f64 = files.iter().map(|f| f.1).sum();
        if total == 24.0 || Instant::now() >= deadline {
            break files;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let total: f64 = files.iter().map(|f| f.1).sum();
    assert_eq!(total, 24.0, "counts lost in carbon: {files:?}");
    assert_eq!(files.len(), 4, "{files:?}");
}
