//! The interval queue's per-producer buffers: each thread sends into a slot
//! of its own, and everything the queue promised before still holds — the
//! bound over all threads, refusals counted exactly, each thread's lines in
//! its order, nothing left behind by a thread that exits.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use graphyte::{CaptureTransport, Config, Error, Sender};

const TS: u64 = 1_700_000_000;

/// A sender whose interval never comes: only `flush` and `stop` write.
fn sender(capture: &CaptureTransport) -> Config {
    Config::new("unused")
        .interval(Duration::from_secs(3600))
        .timeout(Duration::from_secs(5))
        .transport(capture.clone())
}

/// Checks that every thread's lines (`t<thread> <seq> <ts>`) arrived once
/// each and in the order sent, and returns how many arrived per thread.
fn per_thread_in_order(lines: &[String]) -> HashMap<String, u64> {
    let mut next: HashMap<String, u64> = HashMap::new();
    for line in lines {
        let mut fields = line.split(' ');
        let (name, seq) = (fields.next().unwrap(), fields.next().unwrap());
        let seq: u64 = seq.parse().unwrap();
        let expected = next.entry(name.to_owned()).or_insert(0);
        assert_eq!(
            seq, *expected,
            "{name}: line {seq} arrived where {expected} was due"
        );
        *expected += 1;
    }
    next
}

#[test]
fn many_short_lived_threads_lose_nothing_and_keep_their_order() {
    let capture = CaptureTransport::new();
    let s = Sender::new(sender(&capture)).unwrap();
    const THREADS: u64 = 2_000;
    const EACH: u64 = 25;
    // In waves of 8 threads at a time, so slots are handed from exited
    // threads to new ones, with lines still in them.
    for wave in 0..THREADS / 8 {
        std::thread::scope(|scope| {
            for t in 0..8 {
                let s = &s;
                scope.spawn(move || {
                    let name = format!("t{}", wave * 8 + t);
                    for seq in 0..EACH {
                        s.send_at(&name, seq, TS).unwrap();
                    }
                });
            }
        });
    }
    assert_eq!(s.stats().queued, THREADS * EACH);
    s.flush().unwrap();
    let got = per_thread_in_order(&capture.lines());
    assert_eq!(got.len() as u64, THREADS);
    assert!(
        got.values().all(|&n| n == EACH),
        "every thread's lines arrived"
    );
    assert_eq!(s.stats().sent, THREADS * EACH);
    assert_eq!(s.stats().queued, 0);
}

#[test]
fn a_thread_that_exits_with_lines_buffered_leaves_them_to_be_delivered() {
    let capture = CaptureTransport::new();
    let s = Sender::new(sender(&capture)).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for seq in 0..1000 {
                s.send_at("gone", seq, TS).unwrap();
            }
        });
    });
    // Its thread is gone; its lines are still queued, and a new thread
    // that takes its slot sends behind them.
    assert_eq!(s.stats().queued, 1000);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for seq in 0..10 {
                s.send_at("next", seq, TS).unwrap();
            }
        });
    });
    s.stop().unwrap();
    let lines = capture.lines();
    let got = per_thread_in_order(&lines);
    assert_eq!((got["gone"], got["next"]), (1000, 10));
    assert_eq!(s.stats().sent, 1010);
}

#[test]
fn the_bound_reached_from_several_threads_at_once_counts_every_line_exactly() {
    const QUEUE: u64 = 1_000;
    const THREADS: u64 = 4;
    const EACH: u64 = 20_000;
    let capture = CaptureTransport::new();
    // The server is down: nothing leaves the queue until it comes back.
    capture.fail_with(Some(io::ErrorKind::ConnectionRefused));
    let s = Sender::new(sender(&capture).queue_size(QUEUE as usize)).unwrap();
    let accepted: Vec<u64> = std::thread::scope(|scope| {
        let producers: Vec<_> = (0..THREADS)
            .map(|t| {
                let s = &s;
                scope.spawn(move || {
                    let name = format!("t{t}");
                    let mut seq = 0;
                    for _ in 0..EACH {
                        match s.send_at(&name, seq, TS) {
                            Ok(()) => seq += 1,
                            Err(Error::QueueFull { capacity, .. }) => {
                                assert_eq!(capacity, QUEUE as usize)
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                    seq
                })
            })
            .collect();
        producers.into_iter().map(|p| p.join().unwrap()).collect()
    });
    let stats = s.stats();
    let kept: u64 = accepted.iter().sum();
    assert!(kept <= QUEUE, "{kept} lines kept in a queue of {QUEUE}");
    assert_eq!(stats.queued, kept);
    assert_eq!(
        stats.dropped,
        THREADS * EACH - kept,
        "every refusal counted"
    );
    // The threads are gone and gave their unspent room back: one more
    // thread fills the queue exactly to its bound.
    let mut topped = 0;
    while s.send_at("top", topped, TS).is_ok() {
        topped += 1;
    }
    assert_eq!(
        kept + topped,
        QUEUE,
        "the bound, exactly: {accepted:?} + {topped}"
    );
    assert_eq!(s.stats().queued, QUEUE);
    capture.fail_with(None);
    s.stop().unwrap();
    let got = per_thread_in_order(&capture.lines());
    for (t, n) in accepted.iter().enumerate() {
        assert_eq!(got.get(&format!("t{t}")).copied().unwrap_or(0), *n);
    }
    assert_eq!(s.stats().sent, QUEUE);
    assert_eq!(s.stats().dropped, THREADS * EACH - kept + 1);
}

#[test]
fn a_queue_bytes_bound_refuses_what_would_pass_it() {
    let capture = CaptureTransport::new();
    capture.fail_with(Some(io::ErrorKind::ConnectionRefused));
    // 64 KiB of lines of 1 KiB (1,013 bytes of name): 64 fit, not 65.
    let s = Sender::new(sender(&capture).queue_bytes(64 << 10)).unwrap();
    let name = "n".repeat(1024 - " 1 1700000000\n".len());
    let mut kept = 0;
    let refused = loop {
        match s.send_at(&name, 1, TS) {
            Ok(()) => kept += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(kept, 64);
    assert_eq!(
        refused.to_string(),
        "graphyte queue is full (it holds at most 250000 lines and 65536 bytes); the metric was dropped"
    );
    assert!(
        s.send_at("short", 1, TS).is_err(),
        "no room for even a short line"
    );
    capture.fail_with(None);
    s.stop().unwrap();
    assert_eq!(s.stats().sent, 64);
    assert_eq!(s.stats().dropped, 2);
}
