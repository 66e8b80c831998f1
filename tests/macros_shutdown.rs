//! `graphyte::shutdown` in interval mode loses nothing the macros counted:
//! the interval thread sends the interval in progress as it stops, calls
//! made while it is still delivering are sent after it, merged into the
//! same interval's totals (Carbon keeps the last value per time bucket), and
//! calls after shutdown are synchronous, one line each.
//! One test function: the global sender can be set once per process.

use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use graphyte::{count, gauge, timed, Config, SendError, Transport};

/// Captures lines; its first write blocks until released, to hold the
/// interval thread inside its last delivery.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<GateState>, Condvar)>);

#[derive(Default)]
struct GateState {
    lines: Vec<String>,
    writing: bool,
    open: bool,
}

impl Gate {
    fn lines(&self) -> Vec<String> {
        self.0 .0.lock().unwrap().lines.clone()
    }

    fn wait_until_writing(&self) {
        let (state, cond) = &*self.0;
        let mut st = state.lock().unwrap();
        while !st.writing {
            st = cond.wait(st).unwrap();
        }
    }

    fn open(&self) {
        let (state, cond) = &*self.0;
        state.lock().unwrap().open = true;
        cond.notify_all();
    }
}

impl Transport for Gate {
    fn send(&mut self, lines: &[u8], _deadline: Instant) -> Result<(), SendError> {
        let (state, cond) = &*self.0;
        let mut st = state.lock().unwrap();
        st.writing = true;
        cond.notify_all();
        while !st.open {
            st = cond.wait(st).unwrap();
        }
        let text = String::from_utf8(lines.to_vec()).unwrap();
        st.lines.extend(text.lines().map(str::to_owned));
        Ok(())
    }

    fn address(&self) -> String {
        "gate".to_owned()
    }
}

#[timed("shutdown.work")]
fn work() {}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn shutdown_delivers_every_aggregate_then_goes_synchronous() {
    let gate = Gate::default();
    // An interval no test run reaches: only shutdown makes the thread report.
    let interval = Duration::from_secs(24 * 3600);
    graphyte::init(
        Config::new("unused")
            .interval(interval)
            .transport(gate.clone()),
    )
    .unwrap();
    let day_start = now() / 86_400 * 86_400;

    count!("shutdown.requests", 5);
    gauge!("shutdown.depth", 1.5);
    gauge!("shutdown.steady", 3);
    work();

    let stopping = thread::spawn(graphyte::shutdown);
    // The interval thread has made its last report and is writing it...
    gate.wait_until_writing();
    // ...while these calls still aggregate.
    count!("shutdown.requests", 3);
    gauge!("shutdown.depth", 2.5);
    work();
    work();
    gate.open();
    stopping.join().unwrap().unwrap();

    // Synchronous now: one line per call.
    count!("shutdown.requests", 1);
    gauge!("shutdown.steady", 4);
    work();

    let lines = gate.lines();
    let values: Vec<(&str, &str, u64)> = lines
        .iter()
        .map(|l| {
            let p: Vec<&str> = l.split(' ').collect();
            (p[0], p[1], p[2].parse().unwrap())
        })
        .collect();
    let aggregated: Vec<(&str, &str)> = values
        .iter()
        .filter(|v| v.2 == day_start)
        .filter(|v| !v.0.starts_with("shutdown.work.") || v.0.ends_with(".count"))
        .map(|v| (v.0, v.1))
        .collect();
    // Within one report the series come in the registry's order (by shard,
    // not by name): compare each report as a set.
    fn sorted<'a>(lines: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut lines = lines.to_vec();
        lines.sort();
        lines
    }
    assert_eq!(aggregated.len(), 7, "{lines:#?}");
    // The interval thread's last report...
    assert_eq!(
        sorted(&aggregated[..4]),
        [
            ("shutdown.depth", "1.5"),
            ("shutdown.requests", "5"),
            ("shutdown.steady", "3"),
            ("shutdown.work.count", "1"),
        ],
        "{lines:#?}"
    );
    // ...then what came in while it was delivering, as the interval's
    // totals; the unchanged gauge is not repeated.
    assert_eq!(
        sorted(&aggregated[4..]),
        [
            ("shutdown.depth", "2.5"),
            ("shutdown.requests", "8"),
            ("shutdown.work.count", "3"),
        ],
        "{lines:#?}"
    );
    // Each timer report has all eight series.
    assert_eq!(
        values
            .iter()
            .filter(|v| v.0.starts_with("shutdown.work."))
            .count(),
        16,
        "{lines:#?}"
    );
    // And the synchronous lines, timestamped now.
    let sync: Vec<(&str, &str)> = values
        .iter()
        .filter(|v| v.2 != day_start)
        .map(|v| (v.0, if v.0 == "shutdown.work" { "ms" } else { v.1 }))
        .collect();
    assert_eq!(
        sync,
        [
            ("shutdown.requests", "1"),
            ("shutdown.steady", "4"),
            ("shutdown.work", "ms")
        ],
        "{lines:#?}"
    );
    // A second shutdown has nothing left to send.
    graphyte::shutdown().unwrap();
    assert_eq!(gate.lines().len(), lines.len());
}
