//! Fault tests, server down at start: making a sender never needs the
//! server; a synchronous send to a server that is down returns the error
//! within the timeout (at once for a closed port, after the timeout for a
//! host that does not answer, at once again during the connect backoff) and
//! works once the server is up; in interval mode, sends made while the
//! server is down are queued up to `queue_size` (the excess is dropped and
//! counted), never block the caller, and all reach a real carbon-cache once
//! it starts: sent = delivered + counted drops.
//!
//! Run with `--nocapture` to see the figures (`[faults] ...` lines).

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use graphyte::{Config, Error, Sender};
use support::faults::{self, Blackhole, Numbered, SendTimes};
use support::{CarbonServer, LineListener};

const TS: u64 = 1_700_000_000;

#[test]
fn sync_sends_to_a_closed_port_fail_at_once_then_work_when_the_server_starts() {
    let port = faults::closed_port();
    let timeout = Duration::from_secs(1);
    let s = Sender::new(Config::new("127.0.0.1").port(port).timeout(timeout))
        .expect("a sender does not need the server");
    let mut times = SendTimes::new();
    let mut refused = HashSet::new();
    for i in 0..200u64 {
        match times.time(|| s.send_at("down", i, TS)) {
            Err(Error::Io { addr, .. }) => {
                assert_eq!(addr, format!("127.0.0.1:{port}"));
                refused.insert(i);
            }
            other => panic!("send {i} to a closed port: {other:?}"),
        }
    }
    times.assert_max_below(timeout, "sync send to a closed port");
    let down = times.summary();
    assert_eq!(s.stats().sent, 0);
    assert_eq!(s.stats().send_errors, 200);

    // The server starts: after the connect backoff (100 ms after one failed
    // attempt) sends succeed again.
    let listener = LineListener::start_on(port);
    let up_at = Instant::now();
    let mut i = 200u64;
    let mut accepted = Vec::new();
    while accepted.len() < 100 {
        assert!(
            up_at.elapsed() < Duration::from_secs(3),
            "sends still fail 3 s after the server started"
        );
        match s.send_at("down", i, TS) {
            Ok(()) => accepted.push(i),
            Err(Error::Io { .. }) => {
                assert!(accepted.is_empty(), "a send failed after one worked");
                refused.insert(i);
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
        i += 1;
    }
    let recovered_after = up_at.elapsed();
    let lines = listener.wait_for_lines(accepted.len(), Duration::from_secs(5));
    let delivered: Vec<u64> = lines
        .iter()
        .map(|l| {
            l.strip_prefix("down ")
                .and_then(|l| l.strip_suffix(" 1700000000"))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {l:?}"))
        })
        .collect();
    assert_eq!(
        delivered, accepted,
        "exactly the accepted sends arrived, in order"
    );
    assert!(delivered.iter().all(|i| !refused.contains(i)));
    faults::report_sync(
        "sync, closed port",
        i,
        delivered.len() as u64,
        refused.len() as u64,
        &format!(
            "while down {down}; first send accepted {} ms after the server started",
            recovered_after.as_millis()
        ),
    );
}

#[test]
fn sync_send_to_a_host_that_does_not_answer_fails_within_the_timeout() {
    let blackhole = match Blackhole::start() {
        Ok(blackhole) => blackhole,
        Err(why) => {
            eprintln!("*** SKIPPED: cannot make a server that never answers: {why} ***");
            return;
        }
    };
    let timeout = Duration::from_millis(500);
    let s = Sender::new(
        Config::new("127.0.0.1")
            .port(blackhole.port())
            .timeout(timeout),
    )
    .expect("a sender does not need the server");
    let started = Instant::now();
    let first = s.send_at("m", 1, TS);
    let first_took = started.elapsed();
    assert!(matches!(first, Err(Error::Io { .. })), "{first:?}");
    assert!(
        first_took >= timeout.mul_f64(0.8) && first_took < timeout + Duration::from_secs(1),
        "the connect should time out after about {timeout:?}, took {first_took:?}"
    );
    // During the backoff that follows, a send fails without trying again.
    let started = Instant::now();
    assert!(s.send_at("m", 2, TS).is_err());
    let second_took = started.elapsed();
    assert!(
        second_took < Duration::from_millis(100),
        "a send during the backoff took {second_took:?}"
    );
    eprintln!(
        "[faults] sync, host not answering: first send failed after {} ms (timeout {} ms), \
         the next one (backoff) after {} µs",
        first_took.as_millis(),
        timeout.as_millis(),
        second_took.as_micros()
    );
}

/// The README pattern with `graphyte::init`, while carbon is down: the only
/// test in this file that uses the global sender.
#[test]
fn interval_sends_while_carbon_is_down_are_kept_and_delivered_when_it_starts() {
    let Some(mut carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    carbon.stop_process();
    const QUEUE: u64 = 5_000;
    const SENT: u64 = 6_000;
    let interval = Duration::from_secs(1);
    graphyte::init(
        Config::new("127.0.0.1")
            .port(carbon.port())
            .prefix("faults.down")
            .interval(interval)
            .queue_size(QUEUE as usize)
            .timeout(Duration::from_secs(2)),
    )
    .expect("init does not need the server");
    let lines = Numbered::new("faults.down", SENT);
    let mut times = SendTimes::new();
    let mut full = 0;
    for i in 0..SENT {
        match times.time(|| graphyte::send_at(&lines.name(i), i, lines.ts(i))) {
            Ok(()) => assert!(i < QUEUE, "line {i} queued beyond the bound"),
            Err(Error::QueueFull { capacity }) => {
                assert_eq!(capacity, QUEUE as usize);
                assert!(i >= QUEUE, "line {i} refused below the bound");
                full += 1;
            }
            Err(e) => panic!("send {i}: {e}"),
        }
    }
    times.assert_max_below(interval / 2, "interval send while the server is down");
    // The worker tries (and fails) to write for a while; nothing changes.
    std::thread::sleep(Duration::from_millis(1500));
    let stats = graphyte::stats().unwrap();
    assert_eq!((stats.queued, stats.dropped, stats.sent), (QUEUE, full, 0));
    assert!(
        stats.send_errors > 0,
        "the worker tried to write: {stats:?}"
    );

    carbon.restart();
    let up_at = Instant::now();
    let deadline = up_at + Duration::from_secs(20);
    while graphyte::stats().unwrap().sent < QUEUE {
        assert!(
            Instant::now() < deadline,
            "not delivered 20 s after carbon started: {:?}",
            graphyte::stats()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let delivered_after = up_at.elapsed();
    graphyte::shutdown().expect("everything was delivered");
    let stats = graphyte::stats().unwrap();
    assert_eq!((stats.sent, stats.dropped, stats.queued), (QUEUE, full, 0));

    let kept: Vec<u64> = (0..QUEUE).collect();
    let on_disk = lines.wait_on_disk(&carbon, &kept, Duration::from_secs(10));
    assert_eq!(on_disk, kept, "carbon has exactly the lines graphyte kept");
    faults::report(
        "interval, carbon down at init",
        SENT,
        on_disk.len() as u64,
        stats.dropped,
        &format!(
            "queue_size {QUEUE}; {} write attempts failed while down; all written {} ms after \
             carbon listened again; {}",
            stats.send_errors,
            delivered_after.as_millis(),
            times.summary()
        ),
    );
}
