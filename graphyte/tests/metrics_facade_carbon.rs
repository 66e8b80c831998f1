//! The `metrics` facade against a real carbon-cache: a library that only
//! uses the `metrics` macros (tests/metrics_facade_common) is called from 4
//! threads over several 1 s intervals, with graphyte installed as the
//! recorder (`graphyte::metrics::install`). Read back from carbon's whisper
//! files (tagged series under the name carbon derives from the labels) by
//! the driver shared with the VictoriaMetrics test
//! (`metrics_facade_common::drive_and_check`): counter sums equal to the
//! calls, histogram `.count` and `.sum` exact, gauges at the last value set.
//!
//! Skips loudly without carbon; fails under ./scripts/test
//! (GRAPHYTE_REQUIRE_CARBON=1) if carbon is missing.
//! One test function: the global recorder can be installed once per process.
#![cfg(feature = "metrics")]

#[path = "../../tests/support/mod.rs"]
mod support;

mod metrics_facade_common;

use std::thread;
use std::time::{Duration, Instant};

use graphyte::Config;
use metrics_facade_common::*;
use support::{unix_now, CarbonServer};

impl Store for CarbonServer {
    fn wait_until(&self, metric: &str, timeout: Duration, done: Done<'_>) -> Vec<(u32, f64)> {
        let deadline = Instant::now() + timeout;
        loop {
            let points = self.read_points(metric);
            if done(&points) || Instant::now() >= deadline {
                return points;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn a_library_using_only_the_facade_adds_up_in_whisper() {
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    graphyte::metrics::install(
        Config::new("127.0.0.1")
            .port(carbon.port())
            .prefix(PREFIX)
            .tag(HOST_TAG.0, HOST_TAG.1)
            .interval(Duration::from_secs(1)),
    )
    .unwrap();

    drive_and_check(&carbon, unix_now);

    // Nothing carbon refused.
    let rejected = carbon.listener_log();
    assert!(!rejected.contains("invalid line"), "{rejected}");
}
