//! The `metrics` facade into VictoriaMetrics (issue 20): the same library
//! that only uses the `metrics` macros (tests/metrics_facade_common), called
//! from 4 threads over several 1 s intervals with graphyte installed as the
//! recorder, checked by the same driver as the carbon test
//! (`metrics_facade_common::drive_and_check`) on what `/api/v1/export`
//! returns: counter sums equal to the calls, histogram `.count` and `.sum`
//! exact, gauges at the last value set, every point at a whole second; and
//! nothing stored under the prefix but the series the driver checked.
//!
//! Skips loudly without VictoriaMetrics; fails under ./scripts/test.
//! One test function: the global recorder can be installed once per process.
#![cfg(feature = "metrics")]

#[path = "../../tests/support/mod.rs"]
mod support;

mod metrics_facade_common;

use std::time::Duration;

use metrics_facade_common::*;
use support::unix_now;
use support::vm::VmServer;

struct Vm(VmServer);

impl Store for Vm {
    fn wait_until(&self, metric: &str, timeout: Duration, done: Done<'_>) -> Vec<(u32, f64)> {
        let seconds = |points: &[(u64, f64)]| -> Vec<(u32, f64)> {
            points
                .iter()
                .map(|&(ms, v)| {
                    assert_eq!(ms % 1000, 0, "{metric}: a point at {ms} ms");
                    ((ms / 1000) as u32, v)
                })
                .collect()
        };
        let names = [metric.to_owned()];
        let stored = self
            .0
            .wait_for(PREFIX, &names, timeout, |_, p| done(&seconds(p)));
        seconds(&stored.points[metric])
    }
}

#[test]
fn a_library_using_only_the_facade_adds_up_in_victoria_metrics() {
    let Some(vm) = VmServer::start_or_skip() else {
        return;
    };
    graphyte::metrics::install(
        vm.config()
            .prefix(PREFIX)
            .tag(HOST_TAG.0, HOST_TAG.1)
            .interval(Duration::from_secs(1)),
    )
    .unwrap();
    let vm = Vm(vm);

    let checked = drive_and_check(&vm, unix_now);

    // Nothing else under the prefix: every series the library made was
    // checked above.
    vm.0.flush();
    let all = vm.0.export_prefix(PREFIX);
    let checked: Vec<_> = checked.iter().map(|n| support::vm::labels_of(n)).collect();
    let others: Vec<_> = all.keys().filter(|l| !checked.contains(l)).collect();
    assert!(others.is_empty(), "series not checked: {others:?}");
    assert_eq!(all.len(), checked.len());
}
