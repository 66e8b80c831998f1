//! Stopping the global sender directly (`graphyte::sender().unwrap().stop()`)
//! does what `graphyte::shutdown()` does for the macros: the interval in
//! progress is sent, and later calls are synchronous, one line each.
//! One test function: the global sender can be set once per process.

use std::time::Duration;

use graphyte::{count, gauge, CaptureTransport, Config};

#[test]
fn a_direct_stop_sends_the_interval_in_progress_and_makes_the_macros_synchronous() {
    let capture = CaptureTransport::new();
    graphyte::init(
        Config::new("unused")
            .prefix("direct")
            .interval(Duration::from_secs(3600))
            .transport(capture.clone()),
    )
    .unwrap();
    count!("stop.requests", 2);
    count!("stop.requests", 3);
    gauge!("stop.depth", 7);
    assert!(
        capture.lines().is_empty(),
        "aggregated until the interval ends"
    );

    graphyte::sender().unwrap().stop().unwrap();
    let lines = capture.take_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("direct.stop.requests 5 ")),
        "the interval's sum: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("direct.stop.depth 7 ")),
        "the gauge: {lines:?}"
    );

    // Now synchronous: one line per call, at once.
    count!("stop.requests", 4);
    let after = capture.take_lines();
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(after[0].starts_with("direct.stop.requests 4 "), "{after:?}");
}
