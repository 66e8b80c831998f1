//! Fault tests, server restarted mid-stream: graphyte streams numbered lines
//! in interval mode while the server dies and comes back on the same port;
//! it reconnects (with its connect backoff) and delivers everything it
//! still has, and the caller never blocks.
//!
//! Plaintext TCP has no acknowledgements, so what a dying server had
//! received but not processed is lost with it. To tell whose loss it is,
//! graphyte's own TCP transport is wrapped to record when every line was
//! written, and each line that never arrived is classified against the
//! moment the server died (see `support::faults::classify_loss`):
//!
//! - written before the server began to die: the server had it, in its
//!   socket buffer or in memory (carbon writes points to disk up to about a
//!   second after receiving them and flushes nothing when it is killed):
//!   the server's loss, measured and reported. The carbon test kills carbon
//!   20 ms after one of graphyte's writes, so that batch is in this class;
//! - written while it was dying: in flight;
//! - written after it was gone: written into a dead connection, which the
//!   peer-closed check before every write exists to prevent. Asserted zero.
//!
//! Against the loopback listeners, which record every byte they read, the
//! same accounting shows what is lost on the wire alone.
//!
//! Run with `--nocapture` to see the figures (`[faults] ...` lines).

mod support;

use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use graphyte::{Config, Sender};
use support::faults::{self, Numbered, Outage, RecordingTcp, SendTimes, Write};
use support::{CarbonServer, LineListener};

const TIMEOUT: Duration = Duration::from_secs(5);
const INTERVAL: Duration = Duration::from_millis(250);

/// What the application did.
struct Streamed {
    sent: u64,
    times: SendTimes,
}

/// Sends numbered lines, 20 every 10 ms (about 2,000 a second), until
/// `done()`; every send must be accepted (the queue is far from full).
fn stream(sender: &Sender, lines: &Numbered, mut done: impl FnMut() -> bool) -> Streamed {
    let mut times = SendTimes::new();
    let mut sent = 0;
    while !done() {
        for _ in 0..20 {
            times
                .time(|| lines.send(sender, sent))
                .unwrap_or_else(|e| panic!("send {sent}: {e}"));
            sent += 1;
        }
        thread::sleep(Duration::from_millis(10));
    }
    Streamed { sent, times }
}

/// `done()` for [`stream`]: true once `ready` was set at least `after` ago.
fn after_ready(ready: &OnceLock<Instant>, after: Duration) -> impl FnMut() -> bool + '_ {
    move || ready.get().is_some_and(|at| at.elapsed() >= after)
}

fn sender(transport: RecordingTcp, prefix: &str) -> Sender {
    Sender::new(
        Config::new("127.0.0.1")
            .prefix(prefix)
            .interval(INTERVAL)
            .timeout(TIMEOUT)
            .transport(transport),
    )
    .unwrap()
}

/// The time from `ready` to the first successful write after it.
fn reconnected_after(writes: &[Write], ready: Instant) -> Duration {
    writes
        .iter()
        .find(|w| w.ok && w.started >= ready)
        .map_or(Duration::MAX, |w| w.finished - ready)
}

#[test]
fn carbon_killed_and_restarted_on_the_same_port() {
    let Some(mut carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    let (transport, writes) = RecordingTcp::new(carbon.port(), TIMEOUT);
    let s = sender(transport, "faults.restart.carbon");
    let writes = &writes;
    let lines = Numbered::new("faults.restart.carbon", 20_000);
    let ready = OnceLock::new();
    let (streamed, outage) = thread::scope(|scope| {
        let control = scope.spawn(|| {
            thread::sleep(Duration::from_secs(1));
            // Kill carbon 20 ms after one of graphyte's writes: it has just
            // received a batch that is not on its disk yet.
            let seen = writes.lock().unwrap().len();
            while writes.lock().unwrap().len() == seen {
                thread::sleep(Duration::from_millis(1));
            }
            thread::sleep(Duration::from_millis(20));
            let began = Instant::now();
            carbon.stop_process(); // SIGKILL, then reaped: its sockets are closed
            let outage = Outage {
                began,
                ended: Instant::now(),
            };
            thread::sleep(Duration::from_millis(300));
            carbon.restart();
            ready.set(Instant::now()).unwrap();
            outage
        });
        let streamed = stream(&s, &lines, after_ready(&ready, Duration::from_secs(1)));
        (streamed, control.join().unwrap())
    });
    let ready = *ready.get().unwrap();
    s.stop().expect("everything delivered after the restart");
    let stats = s.stats();
    let writes = writes.lock().unwrap().clone();
    let written = faults::written_ok(&writes, &lines);
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.sent, streamed.sent, "graphyte wrote every line");
    assert_eq!(written, (0..streamed.sent).collect::<Vec<_>>());

    // Everything written after carbon came back must reach its disk.
    let expected = faults::written_ok_since(&writes, &lines, outage.ended);
    let on_disk = lines.wait_on_disk(&carbon, &expected, Duration::from_secs(15));
    let loss = faults::classify_loss(&writes, &lines, &on_disk, &[outage]);
    eprintln!(
        "[faults] carbon SIGKILLed and restarted: sent {} = delivered {} + dropped {} + lost {}; \
         {}; carbon listened again {} ms after the kill, graphyte wrote {} ms later \
         ({} reconnect); {}",
        streamed.sent,
        on_disk.len(),
        stats.dropped,
        loss.total(),
        loss.summary(),
        (ready - outage.began).as_millis(),
        reconnected_after(&writes, ready).as_millis(),
        stats.reconnects,
        streamed.times.summary()
    );
    assert_eq!(
        streamed.sent,
        on_disk.len() as u64 + stats.dropped + loss.total()
    );
    assert_eq!(stats.reconnects, 1, "one new connection after the restart");
    assert!(
        loss.on_wire.is_empty(),
        "lines written into the dead connection after carbon was gone: {:?}",
        loss.on_wire
    );
    let missing_late: Vec<u64> = expected
        .iter()
        .copied()
        .filter(|i| on_disk.binary_search(i).is_err())
        .collect();
    assert!(
        missing_late.is_empty(),
        "written after the restart but not on disk: {missing_late:?}"
    );
    // Carbon loses what it had not written to disk yet: about the last second.
    assert!(
        loss.oldest_with_server < Duration::from_secs(5),
        "carbon lost lines written {:?} before it was killed",
        loss.oldest_with_server
    );
    streamed
        .times
        .assert_max_below(INTERVAL / 2, "interval send across a restart");
}

#[test]
fn listener_killed_and_restarted_on_the_same_port() {
    let mut first = LineListener::start();
    let port = first.port();
    let (transport, writes) = RecordingTcp::new(port, TIMEOUT);
    let s = sender(transport, "faults.restart.listener");
    let lines = Numbered::new("faults.restart.listener", 20_000);
    let ready = OnceLock::new();
    let (streamed, outage, second) = thread::scope(|scope| {
        let control = scope.spawn(|| {
            thread::sleep(Duration::from_secs(1));
            let began = Instant::now();
            first.stop();
            let outage = Outage {
                began,
                ended: Instant::now(),
            };
            thread::sleep(Duration::from_millis(300));
            let second = LineListener::start_on(port);
            ready.set(Instant::now()).unwrap();
            (outage, second)
        });
        let streamed = stream(&s, &lines, after_ready(&ready, Duration::from_secs(1)));
        let (outage, second) = control.join().unwrap();
        (streamed, outage, second)
    });
    let ready = *ready.get().unwrap();
    s.stop().expect("everything delivered after the restart");
    let stats = s.stats();
    let writes = writes.lock().unwrap().clone();
    assert_eq!((stats.sent, stats.dropped), (streamed.sent, 0));

    // Lines reach a connection in order: once the last ones are in, all are.
    let late = faults::written_ok_since(&writes, &lines, outage.ended);
    let mut received = lines.wait_received(&second, &late, Duration::from_secs(10));
    received.extend(lines.received(&first));
    let count = received.len();
    received.sort_unstable();
    received.dedup();
    assert_eq!(received.len(), count, "no line arrived twice");
    let loss = faults::classify_loss(&writes, &lines, &received, &[outage]);
    eprintln!(
        "[faults] listener stopped and restarted: sent {} = delivered {} + dropped {} + lost {}; \
         {}; graphyte wrote {} ms after the listener was back; {} connections; {}",
        streamed.sent,
        received.len(),
        stats.dropped,
        loss.total(),
        loss.summary(),
        reconnected_after(&writes, ready).as_millis(),
        first.connections() + second.connections(),
        streamed.times.summary()
    );
    assert_eq!(
        streamed.sent,
        received.len() as u64 + stats.dropped + loss.total()
    );
    assert!(loss.on_wire.is_empty(), "{}", loss.summary());
    assert_eq!(
        (first.connections(), second.connections(), stats.reconnects),
        (1, 1, 1),
        "one connection to each listener"
    );
    // The listener reads everything at once: at most one write can be caught.
    assert!(
        loss.total() <= 1_000,
        "more than a batch lost: {}",
        loss.summary()
    );
    streamed
        .times
        .assert_max_below(INTERVAL / 2, "interval send across a restart");
}

/// Cuts all connections every 150 ms while graphyte streams, `CUTS` times.
fn cut_repeatedly(listener: &LineListener, done: &OnceLock<Instant>) -> Vec<Outage> {
    const CUTS: usize = 12;
    let mut outages = Vec::new();
    for _ in 0..CUTS {
        thread::sleep(Duration::from_millis(150));
        let began = Instant::now();
        listener.drop_connections();
        outages.push(Outage {
            began,
            ended: Instant::now(),
        });
    }
    done.set(Instant::now()).unwrap();
    outages
}

/// What `listener` received of `lines` across the `outages`: waits for every
/// line written successfully after the last one, checks that no line
/// arrived twice, and sorts out what the cuts lost.
fn received_across(
    listener: &LineListener,
    writes: &[Write],
    lines: &Numbered,
    outages: &[Outage],
) -> (Vec<u64>, faults::Loss) {
    let last = outages.last().unwrap().ended;
    let late = faults::written_ok_since(writes, lines, last);
    let received = lines.wait_received(listener, &late, Duration::from_secs(10));
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "no line arrived twice"
    );
    let loss = faults::classify_loss(writes, lines, &received, outages);
    (received, loss)
}

#[test]
fn interval_mode_across_connections_dropped_repeatedly() {
    let listener = LineListener::start();
    let (transport, writes) = RecordingTcp::new(listener.port(), TIMEOUT);
    let s = sender(transport, "faults.drops.interval");
    let lines = Numbered::new("faults.drops.interval", 20_000);
    let done = OnceLock::new();
    let (streamed, outages) = thread::scope(|scope| {
        let control = scope.spawn(|| cut_repeatedly(&listener, &done));
        let streamed = stream(&s, &lines, after_ready(&done, Duration::from_millis(300)));
        (streamed, control.join().unwrap())
    });
    s.stop().expect("everything delivered");
    let stats = s.stats();
    let writes = writes.lock().unwrap().clone();
    assert_eq!((stats.sent, stats.dropped), (streamed.sent, 0));
    let (received, loss) = received_across(&listener, &writes, &lines, &outages);
    eprintln!(
        "[faults] interval mode, {} connection drops: sent {} = delivered {} + dropped {} + \
         lost {}; {}; {} connections, {} failed writes; {}",
        outages.len(),
        streamed.sent,
        received.len(),
        stats.dropped,
        loss.total(),
        loss.summary(),
        listener.connections(),
        stats.send_errors,
        streamed.times.summary()
    );
    assert_eq!(
        streamed.sent,
        received.len() as u64 + stats.dropped + loss.total()
    );
    assert!(loss.on_wire.is_empty(), "{}", loss.summary());
    // Only a write caught by a cut can lose lines: at most a batch per cut.
    assert!(
        loss.total() <= 1_000 * outages.len() as u64,
        "{}",
        loss.summary()
    );
    // Writes come every 250 ms and cuts every 150 ms: most writes find
    // their connection cut and open a new one.
    assert!(
        listener.connections() >= 3,
        "graphyte reconnected after the drops"
    );
    assert_eq!(stats.reconnects, listener.connections() as u64 - 1);
    streamed
        .times
        .assert_max_below(INTERVAL / 2, "interval send across dropped connections");
}

#[test]
fn sync_mode_across_connections_dropped_repeatedly() {
    let listener = LineListener::start();
    let (transport, writes) = RecordingTcp::new(listener.port(), TIMEOUT);
    let s = Sender::new(
        Config::new("127.0.0.1")
            .prefix("faults.drops.sync")
            .timeout(TIMEOUT)
            .transport(transport),
    )
    .unwrap();
    let lines = Numbered::new("faults.drops.sync", 20_000);
    let done = OnceLock::new();
    let (sent, refused, outages) = thread::scope(|scope| {
        let control = scope.spawn(|| cut_repeatedly(&listener, &done));
        let (mut sent, mut refused) = (0u64, 0u64);
        while done.get().is_none() {
            for _ in 0..20 {
                if lines.send(&s, sent).is_err() {
                    refused += 1;
                }
                sent += 1;
            }
            thread::sleep(Duration::from_millis(10));
        }
        (sent, refused, control.join().unwrap())
    });
    let writes = writes.lock().unwrap().clone();
    let stats = s.stats();
    assert_eq!(stats.sent + stats.send_errors, sent);
    assert_eq!(stats.send_errors, refused);
    // Everything accepted arrives, but what a cut connection swallowed.
    let (received, loss) = received_across(&listener, &writes, &lines, &outages);
    eprintln!(
        "[faults] sync mode, {} connection drops: sent {sent} = delivered {} + refused {refused} \
         (send returned Err) + lost {} (send returned Ok); {}; {} connections",
        outages.len(),
        received.len(),
        loss.total(),
        loss.summary(),
        listener.connections()
    );
    assert_eq!(sent, received.len() as u64 + refused + loss.total());
    assert!(loss.on_wire.is_empty(), "{}", loss.summary());
    // Only lines written in the instant of a cut: at most one send's worth
    // of lines per cut, give or take a few.
    assert!(
        loss.total() <= 5 * outages.len() as u64,
        "{}",
        loss.summary()
    );
    assert!(listener.connections() > outages.len() / 2);
}
