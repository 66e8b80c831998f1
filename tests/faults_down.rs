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
use support::faults::{self, Blackhole, Figures, Numbered, SendTimes};
use support::{CarbonServer, LineListener};

const TS: u64 = 1_700_000_000;

#[test]
fn sync_sends_to_a_closed_port_fail_at_once_then_work_when_the_server_starts() {
    let _serial = faults::serial();
    // Bound but not listening: refused at once, and no other test can take
    // the port before this one listens on it.
    let reserved = faults::closed_port();
    let port = reserved.port();
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
    let down_times = times.clone();
    assert_eq!(s.stats().sent, 0);
    assert_eq!(s.stats().send_errors, 200);

    // The server starts: after the connect backoff (100 ms after one failed
    // attempt) sends succeed again.
    let listener = LineListener::start_reserved(reserved);
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
    let stats = s.stats();
    assert_eq!(
        (stats.sent, stats.send_errors),
        (delivered.len() as u64, refused.len() as u64),
        "graphyte's counts match what arrived and what the application saw refused"
    );
    Figures::new("down sync closed port")
        .us(
            "down.closed.send_max",
            down_times.max(),
            "slowest of 200 sync sends to a closed port (each returned the error)",
        )
        .ms(
            "down.closed.recovered",
            recovered_after,
            "from the server listening to the first sync send it accepted (connect backoff)",
        )
        .write();
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
    let _serial = faults::serial();
    let Some(blackhole) = support::or_skip(
        Blackhole::start(),
        "cannot make a server that never answers",
    ) else {
        return;
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
        first_took >= timeout.mul_f64(0.8) && first_took < timeout * 2,
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
    assert_eq!(
        (s.stats().sent, s.stats().send_errors),
        (0, 2),
        "both sends counted as failed"
    );
    Figures::new("down sync blackhole")
        .ms(
            "down.blackhole.first",
            first_took,
            "sync send to a host that never answers, timeout 500 ms: until it returned the error",
        )
        .us(
            "down.blackhole.backoff",
            second_took,
            "the next sync send, during the connect backoff: until it returned the error",
        )
        .write();
}

/// The README pattern with `graphyte::init`, while carbon is down: the only
/// test in this file that uses the global sender.
#[test]
fn interval_sends_while_carbon_is_down_are_kept_and_delivered_when_it_starts() {
    let _serial = faults::serial();
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
            Err(Error::QueueFull { capacity, .. }) => {
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
    // Time until carbon has every kept line on its disk (read back from the
    // whisper files every 100 ms), not until graphyte counted them as sent.
    let kept: Vec<u64> = (0..QUEUE).collect();
    let on_disk = lines.wait_on_disk(&carbon, &kept, Duration::from_secs(30));
    let on_disk_after = up_at.elapsed();
    faults::assert_same_lines(
        &on_disk,
        &kept,
        "carbon has exactly the lines graphyte kept",
    );
    graphyte::shutdown().expect("everything was delivered");
    let stats = graphyte::stats().unwrap();
    assert_eq!((stats.sent, stats.dropped, stats.queued), (QUEUE, full, 0));
    Figures::new("down interval carbon")
        .ms(
            "down.carbon.on_disk",
            on_disk_after,
            "from carbon listening again to all 5,000 kept lines readable in its whisper files \
             (polled every 100 ms)",
        )
        .us(
            "down.carbon.send_p99",
            times.p99(),
            "p99 of the interval-mode sends made while carbon was down",
        )
        .us(
            "down.carbon.send_max",
            times.max(),
            "slowest interval-mode send while carbon was down",
        )
        .write();
    faults::report(
        "interval, carbon down at init",
        SENT,
        on_disk.len() as u64,
        stats.dropped,
        &format!(
            "queue_size {QUEUE}; {} write attempts failed while down; all on disk {} ms after \
             carbon listened again; {}",
            stats.send_errors,
            on_disk_after.as_millis(),
            times.summary()
        ),
    );
}
