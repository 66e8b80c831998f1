//! `init` racing itself: exactly one call wins, and the losers never build a
//! sender: no interval thread is started for them, and their transports are
//! never connected nor closed (before `init` was serialised, a loser built a
//! whole sender, started its thread, then stopped it again). One test
//! function: the global sender can be set once per process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use graphyte::{CaptureTransport, Config, Error, SendError, Transport};

/// A capture that counts how often it was connected and closed.
#[derive(Clone, Default)]
struct Counting {
    capture: CaptureTransport,
    connects: Arc<AtomicUsize>,
    closes: Arc<AtomicUsize>,
}

impl Transport for Counting {
    fn send(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), SendError> {
        self.capture.send(bytes, deadline)
    }
    fn address(&self) -> String {
        "counting".into()
    }
    fn connect(&mut self, _deadline: Instant) -> std::io::Result<()> {
        self.connects.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn close(&mut self) {
        self.closes.fetch_add(1, Ordering::Relaxed);
    }
}

/// The threads of this process named `graphyte` (the interval threads).
/// A new thread names itself, so this waits up to 5 s for `expected`.
fn interval_threads(expected: usize) -> usize {
    let count = || {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim_end() == "graphyte")
            .count()
    };
    let started = Instant::now();
    loop {
        let n = count();
        if n == expected || started.elapsed() > Duration::from_secs(5) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn racing_inits_build_one_sender() {
    const RACERS: usize = 8;
    assert_eq!(interval_threads(0), 0);
    let transport = Counting::default();
    let barrier = Barrier::new(RACERS);
    let results: Vec<Result<(), Error>> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..RACERS)
            .map(|_| {
                let (transport, barrier) = (transport.clone(), &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    graphyte::init(
                        Config::new("unused")
                            .interval(Duration::from_secs(3600))
                            .transport(transport),
                    )
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(Error::AlreadyInitialized))));
    assert_eq!(
        transport.closes.load(Ordering::Relaxed),
        0,
        "a losing init built a sender and stopped it"
    );
    assert_eq!(interval_threads(1), 1);

    graphyte::count!("race.count", 3);
    graphyte::shutdown().unwrap();
    assert_eq!(interval_threads(0), 0);
    assert_eq!(transport.connects.load(Ordering::Relaxed), 1);
    assert_eq!(
        transport.closes.load(Ordering::Relaxed),
        1,
        "closed once, at shutdown"
    );
    let lines = transport.capture.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("race.count 3 "), "{lines:?}");
}
