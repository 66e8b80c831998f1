//! graphyte as the recorder of the `metrics` facade: code that records with
//! `metrics::counter!`, `gauge!` and `histogram!` (your own, or any crate
//! you depend on) sends to Graphite.
//!
//! ```text
//! cargo run --features metrics --example metrics_facade
//! ```
//!
//! No server is needed: it sends to a `CaptureTransport` and prints the
//! lines Carbon would receive, interval by interval. To send to a real
//! Carbon, drop the `.transport(...)` line and give the server's host.

use std::time::Duration;

use graphyte::{CaptureTransport, Config};

/// Code that knows nothing of graphyte: only the `metrics` facade.
fn handle_request(method: &'static str, status: u16, latency_ms: f64) {
    metrics::counter!("http.requests", "method" => method, "status" => status.to_string())
        .increment(1);
    metrics::histogram!("http.latency_ms", "method" => method).record(latency_ms);
}

fn main() -> Result<(), graphyte::Error> {
    let capture = CaptureTransport::new();
    graphyte::metrics::install(
        Config::new("graphite.example.com")
            .prefix("myapp")
            .tag("host", "web-1") // on every line, merged with the labels
            .interval(Duration::from_secs(1))
            .percentiles(&[0.5, 0.99]) // default: p50, p90, p99
            .transport(capture.clone()),
    )?;

    // A handle: register once, then each update is a few atomic operations.
    let queue_depth = metrics::gauge!("queue.depth");
    queue_depth.set(3.0);

    for (method, status, latency_ms) in [
        ("GET", 200, 1.5),
        ("GET", 200, 2.25),
        ("POST", 201, 8.0),
        ("GET", 404, 0.5),
    ] {
        handle_request(method, status, latency_ms);
    }
    queue_depth.increment(2.0);
    // A label value with a space and a name with a slash: replaced by `_`,
    // never an error (and logged once).
    metrics::counter!("cache/hits", "region" => "eu west").increment(7);

    // The interval thread sends every second: counters their sum, gauges
    // their latest value, histograms count, sum, min, max, mean and the
    // percentiles (within 1 % of the exact value), all stamped with the
    // interval's start.
    while capture.lines().is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    print("first interval", &capture.take_lines());

    // Next interval: counters that saw no calls send 0, gauges their value
    // again, histograms without values only `.count 0`.
    handle_request("GET", 200, 4.0);
    queue_depth.decrement(5.0);

    // Sends the interval in progress and stops: no metric is lost at exit.
    graphyte::shutdown()?;
    print("at shutdown", &capture.take_lines());
    Ok(())
}

fn print(what: &str, lines: &[String]) {
    println!("--- {what}: {} lines", lines.len());
    let mut lines = lines.to_vec();
    lines.sort();
    for line in lines {
        println!("{line}");
    }
}
