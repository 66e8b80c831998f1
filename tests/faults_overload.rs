//! Fault test, overload: two threads send as fast as they can for 2 s into
//! a sender with a small queue (1,000 lines), against a loopback listener.
//! It proves there is no deadlock (the whole run is under a watchdog) and no
//! panic, that every send either is queued or returns `QueueFull` without
//! blocking for long, and that the accounting is exact: after `stop()`, the
//! lines the listener received are exactly the sends that returned `Ok`, in
//! each thread's order, and sent = delivered + `stats().dropped`.
//!
//! Run with `--nocapture` to see the figures (`[faults] ...` line).

mod support;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use graphyte::{Config, Error, Sender};
use support::faults::{self, Figures, Numbered, SendTimes};
use support::LineListener;

const THREADS: u64 = 2;
const QUEUE: usize = 1_000;

/// What one sending thread saw.
struct Outcome {
    accepted: Vec<u64>,
    full: u64,
    times: SendTimes,
}

/// Sends line numbers `first, first + THREADS, ...` as fast as it can for
/// `duration`.
fn hammer(s: &Sender, lines: &Numbered, first: u64, duration: Duration) -> Outcome {
    let mut out = Outcome {
        accepted: Vec::new(),
        full: 0,
        times: SendTimes::new(),
    };
    let until = Instant::now() + duration;
    let mut i = first;
    while Instant::now() < until {
        match out.times.time(|| lines.send(s, i)) {
            Ok(()) => out.accepted.push(i),
            Err(Error::QueueFull { capacity, .. }) => {
                assert_eq!(capacity, QUEUE);
                out.full += 1;
            }
            Err(e) => panic!("send {i}: {e}"),
        }
        i += THREADS;
    }
    out
}

#[test]
fn two_threads_flooding_a_small_queue() {
    let _serial = faults::serial();
    let listener = LineListener::start();
    // The worker writes whenever the queue is half full; the interval only
    // sets the bound on a send's duration, generous for a loaded machine.
    let interval = Duration::from_secs(1);
    let s = Sender::new(
        Config::new("127.0.0.1")
            .port(listener.port())
            .prefix("faults.overload")
            .interval(interval)
            .queue_size(QUEUE)
            .timeout(Duration::from_secs(5)),
    )
    .unwrap();
    let lines = Numbered::new("faults.overload", 100_000_000);
    let (outcomes, stop_result, stats) = {
        let (s, lines) = (s.clone(), lines.clone());
        faults::within(
            "two threads flooding, then stop",
            Duration::from_secs(60),
            move || {
                let start = Arc::new(Barrier::new(THREADS as usize));
                let threads: Vec<_> = (0..THREADS)
                    .map(|t| {
                        let (s, lines, start) = (s.clone(), lines.clone(), Arc::clone(&start));
                        thread::spawn(move || {
                            start.wait();
                            hammer(&s, &lines, t, Duration::from_secs(2))
                        })
                    })
                    .collect();
                let outcomes: Vec<Outcome> = threads
                    .into_iter()
                    .map(|t| t.join().expect("a sending thread panicked"))
                    .collect();
                let stop_result = s.stop();
                (outcomes, stop_result, s.stats())
            },
        )
    };
    stop_result.expect("stop delivers everything queued");

    let sent: u64 = outcomes
        .iter()
        .map(|o| o.accepted.len() as u64 + o.full)
        .sum();
    let full: u64 = outcomes.iter().map(|o| o.full).sum();
    let accepted: u64 = outcomes.iter().map(|o| o.accepted.len() as u64).sum();
    assert_eq!(
        stats.dropped, full,
        "every QueueFull is counted, nothing else"
    );
    assert_eq!(stats.sent, accepted);
    assert_eq!(stats.queued, 0);

    // What arrived, per sending thread, in arrival order: exactly that
    // thread's accepted sends, in the order it made them.
    listener.wait_for_line_count(accepted as usize, Duration::from_secs(30));
    let mut received = Vec::with_capacity(accepted as usize);
    listener.with_received(|connections| {
        for data in connections {
            lines.parse_bytes(data, &mut received);
        }
    });
    let delivered = received.len() as u64;
    for (t, outcome) in outcomes.iter().enumerate() {
        let mine: Vec<u64> = received
            .iter()
            .copied()
            .filter(|i| i % THREADS == t as u64)
            .collect();
        if mine != outcome.accepted {
            let mut sorted = mine.clone();
            sorted.sort_unstable();
            faults::assert_same_lines(&sorted, &outcome.accepted, "thread's lines");
            panic!("thread {t}'s lines arrived out of order");
        }
    }
    drop(received);

    let mut times = SendTimes::new();
    for o in &outcomes {
        times.merge(&o.times);
    }
    times.assert_max_below(interval / 2, "send under overload");
    faults::report(
        "overload, 2 threads, queue_size 1000",
        sent,
        delivered,
        stats.dropped,
        &format!(
            "{:.1}% dropped; {} failed writes; {}",
            100.0 * stats.dropped as f64 / sent as f64,
            stats.send_errors,
            times.summary()
        ),
    );
    Figures::new("overload")
        .us(
            "overload.send_p99",
            times.p99(),
            "p99 of the sends of two threads flooding a 1,000-line queue for 2 s",
        )
        .us("overload.send_max", times.max(), "slowest of those sends")
        .count("overload.sent", sent, "lines the two threads sent")
        .count(
            "overload.delivered",
            delivered,
            "lines the listener received",
        )
        .count(
            "overload.dropped",
            stats.dropped,
            "lines graphyte counted as dropped (each a QueueFull)",
        )
        .write();
}
