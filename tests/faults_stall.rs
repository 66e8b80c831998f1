//! Fault tests, server stalled or slow: a real carbon-cache frozen with
//! SIGSTOP for 3 s then resumed with SIGCONT, a loopback listener that stops
//! reading for longer than graphyte's timeout, and one that reads very
//! slowly. Meanwhile the application sends as fast as a busy program would
//! (20,000 lines of 300 bytes a second, more than the socket buffers and
//! the queue hold), and the tests show that:
//!
//! - the caller never blocks: every `send` is timed, the slowest stays far
//!   under the interval (p99 and max are reported);
//! - memory stays bounded: `stats().queued`, sampled every millisecond,
//!   never exceeds `queue_size` (the process's RSS is reported);
//! - overflow is counted: every `send` refused with `QueueFull` is in
//!   `stats().dropped`, and nothing else is missing;
//! - everything kept is delivered after recovery: sent = delivered + counted
//!   drops, exactly, read back from carbon's disk or the listener.
//!
//! A stall longer than the timeout makes graphyte give up on the connection
//! with part of a batch written. It resends only the lines the old
//! connection did not take whole (the cut line, which carbon drops without
//! its newline, and the rest), so no line arrives twice: that test checks it.
//!
//! Run with `--nocapture` to see the figures (`[faults] ...` lines).

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use graphyte::{Config, Error, Sender, Stats};
use support::faults::{self, Figures, Numbered, SendTimes};
use support::{CarbonServer, LineListener};

/// A path segment that makes every line about 300 bytes, so the socket
/// buffers (several MB on loopback) fill within the test.
/// The interval of every sender here.
const INTERVAL: Duration = Duration::from_secs(1);

fn padding() -> String {
    "p".repeat(250)
}

/// What the application saw.
#[derive(Default)]
struct Sent {
    sent: u64,
    accepted: Vec<u64>,
    full: u64,
    times: SendTimes,
}

impl Sent {
    /// Sends the next numbered line, timing it and noting a full queue.
    fn one(&mut self, sender: &Sender, lines: &Numbered) {
        let i = self.sent;
        match self.times.time(|| lines.send(sender, i)) {
            Ok(()) => self.accepted.push(i),
            Err(Error::QueueFull { .. }) => self.full += 1,
            Err(e) => panic!("send {i}: {e}"),
        }
        self.sent += 1;
    }

    /// 200 lines every 10 ms (about 20,000 a second) for `duration`.
    fn burst(&mut self, sender: &Sender, lines: &Numbered, duration: Duration) {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            for _ in 0..200 {
                self.one(sender, lines);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The queue overflowed, every refused send is counted as dropped, and
    /// the queue never held more than `queue_size` lines.
    fn assert_overflow_counted(&self, stats: &Stats, max_queued: u64, queue_size: usize) {
        assert!(self.full > 0, "the fault should overflow the queue");
        assert_eq!(stats.dropped, self.full, "every refused send is counted");
        assert!(
            max_queued <= queue_size as u64,
            "queued {max_queued} > queue_size {queue_size}"
        );
    }
}

/// An interval sender (`INTERVAL`) to 127.0.0.1:`port` with `prefix`, a
/// queue of `queue_size` lines and `timeout`.
fn stall_sender(port: u16, prefix: &str, queue_size: usize, timeout: Duration) -> Sender {
    Sender::new(
        Config::new("127.0.0.1")
            .port(port)
            .prefix(prefix)
            .interval(INTERVAL)
            .queue_size(queue_size)
            .timeout(timeout),
    )
    .unwrap()
}

/// Samples `stats().queued` every millisecond until dropped; returns the
/// largest value seen.
struct QueueSampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl QueueSampler {
    fn start(sender: &Sender) -> QueueSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, max, sender) = (Arc::clone(&stop), Arc::clone(&max), sender.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    max.fetch_max(sender.stats().queued, Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(1));
                }
            })
        };
        QueueSampler {
            stop,
            max,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.max.load(Ordering::Relaxed)
    }
}

/// The receive buffer the listeners here give each connection: small, so
/// that a stalled or slow listener blocks graphyte's writes after a known
/// amount of data whatever the host's net.ipv4.tcp_rmem (graphyte's send
/// buffer still grows to at most net.ipv4.tcp_wmem's maximum, 4 MB by
/// default, which the tests outpace several times over).
const RECEIVE_BUFFER: usize = 64 * 1024;

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("?".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0))
}

#[test]
fn carbon_frozen_with_sigstop_then_resumed() {
    let _serial = faults::serial();
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    const QUEUE: usize = 10_000;
    let stall = Duration::from_secs(3);
    let prefix = format!("faults.stall.carbon.{}", padding());
    // Longer than the stall: the blocked write just waits.
    let s = stall_sender(carbon.port(), &prefix, QUEUE, Duration::from_secs(5));
    let lines = Numbered::new(&prefix, 100_000);
    let sampler = QueueSampler::start(&s);
    let rss_before = faults::rss_bytes();
    let mut app = Sent::default();
    app.burst(&s, &lines, Duration::from_millis(300));

    faults::signal(carbon.pid(), "STOP");
    let mut during = Sent {
        sent: app.sent,
        ..Sent::default()
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        during.burst(&s, &lines, stall);
    }));
    let rss_stalled = faults::rss_bytes();
    faults::signal(carbon.pid(), "CONT");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    app.sent = during.sent;
    app.accepted.extend(&during.accepted);
    app.full += during.full;
    app.times.merge(&during.times);
    app.burst(&s, &lines, Duration::from_millis(300));

    s.stop()
        .expect("everything kept is delivered after SIGCONT");
    let max_queued = sampler.finish();
    let stats = s.stats();
    app.assert_overflow_counted(&stats, max_queued, QUEUE);
    assert!(during.full > 0, "the stall should overflow the queue");
    let on_disk = lines.wait_on_disk(&carbon, &app.accepted, Duration::from_secs(20));
    faults::assert_same_lines(&on_disk, &app.accepted, "carbon has exactly the lines kept");
    during
        .times
        .assert_max_below(INTERVAL / 2, "send while carbon is stopped");
    faults::report(
        "carbon SIGSTOP 3 s",
        app.sent,
        on_disk.len() as u64,
        stats.dropped,
        &format!(
            "queue_size {QUEUE}, most queued {max_queued}; RSS {} before, {} stalled; during \
             the stall {}; overall {}",
            mib(rss_before),
            mib(rss_stalled),
            during.times.summary(),
            app.times.summary()
        ),
    );
    let mut figures = Figures::new("stall carbon sigstop");
    figures
        .us(
            "stall.carbon.send_p99",
            during.times.p99(),
            "p99 of the interval-mode sends made while carbon was frozen (SIGSTOP) for 3 s",
        )
        .us(
            "stall.carbon.send_max",
            during.times.max(),
            "slowest interval-mode send while carbon was frozen",
        )
        .count(
            "stall.carbon.sends",
            during.times.count() as u64,
            "sends made while carbon was frozen",
        )
        .count(
            "stall.carbon.max_queued",
            max_queued,
            "most lines queued (sampled every ms), queue_size 10,000",
        )
        .count("stall.carbon.sent", app.sent, "lines the application sent")
        .count(
            "stall.carbon.delivered",
            on_disk.len() as u64,
            "lines read back from carbon's whisper files",
        )
        .count(
            "stall.carbon.dropped",
            stats.dropped,
            "lines graphyte counted as dropped (each a QueueFull)",
        );
    if let (Some(before), Some(stalled)) = (rss_before, rss_stalled) {
        figures
            .add(
                "stall.carbon.rss_before",
                before as f64 / 1048576.0,
                "MiB",
                "resident memory of the test process before the stall",
            )
            .add(
                "stall.carbon.rss_stalled",
                stalled as f64 / 1048576.0,
                "MiB",
                "resident memory at the end of the 3 s stall",
            );
    }
    figures.write();
}

#[test]
fn listener_stalled_for_five_timeouts() {
    let _serial = faults::serial();
    let (listener, _) = LineListener::start_with_receive_buffer(RECEIVE_BUFFER);
    const QUEUE: usize = 10_000;
    let timeout = Duration::from_millis(500);
    let prefix = format!("faults.stall.listener.{}", padding());
    let s = stall_sender(listener.port(), &prefix, QUEUE, timeout);
    let lines = Numbered::new(&prefix, 100_000);
    let sampler = QueueSampler::start(&s);
    let mut app = Sent::default();
    app.burst(&s, &lines, Duration::from_millis(300));
    listener.pause_reading();
    app.burst(&s, &lines, Duration::from_millis(2500));
    listener.resume_reading();
    app.burst(&s, &lines, Duration::from_millis(300));
    s.stop()
        .expect("everything kept is delivered after the stall");
    let max_queued = sampler.finish();
    let stats = s.stats();
    app.assert_overflow_counted(&stats, max_queued, QUEUE);
    assert!(stats.send_errors > 0, "the stall outlasted the timeout");

    let mut received = lines.wait_received(&listener, &app.accepted, Duration::from_secs(10));
    let arrived = received.len();
    received.dedup();
    // A connection given up mid-write ends with part of a line, which carbon
    // discards when the connection closes (every complete line was checked).
    let cut_lines = listener
        .received_per_connection()
        .iter()
        .filter(|data| !data.is_empty() && !data.ends_with(b"\n"))
        .count();
    let duplicates = (arrived - received.len()) as u64;
    faults::assert_same_lines(&received, &app.accepted, "every line kept arrived");
    // Lines the old connection took whole are not resent.
    assert_eq!(
        duplicates, 0,
        "{duplicates} duplicates for {} failed writes",
        stats.send_errors
    );
    app.times
        .assert_max_below(INTERVAL / 2, "send while the listener stalls");
    faults::report(
        "listener stalled 2.5 s, timeout 0.5 s",
        app.sent,
        received.len() as u64,
        stats.dropped,
        &format!(
            "{} failed writes, {} connections ({cut_lines} ending in a cut line), {duplicates} \
             lines arrived twice; most queued \
             {max_queued}; {}",
            stats.send_errors,
            listener.connections(),
            app.times.summary()
        ),
    );
    Figures::new("stall listener")
        .count("stall.listener.duplicates", duplicates, "lines that arrived twice after writes timed out mid-batch (listener stalled 2.5 s, timeout 0.5 s)")
        .count("stall.listener.failed_writes", stats.send_errors, "writes that timed out during that stall")
        .count("stall.listener.sent", app.sent, "lines the application sent")
        .count("stall.listener.delivered", received.len() as u64, "lines the listener received")
        .count("stall.listener.dropped", stats.dropped, "lines graphyte counted as dropped")
        .write();
}

#[test]
fn server_reading_very_slowly() {
    let _serial = faults::serial();
    let (listener, _) = LineListener::start_with_receive_buffer(RECEIVE_BUFFER);
    listener.read_slowly(1024, Duration::from_millis(10)); // about 100 KB/s
    const QUEUE: usize = 5_000;
    let prefix = format!("faults.slow.{}", padding());
    let s = stall_sender(listener.port(), &prefix, QUEUE, Duration::from_secs(5));
    let lines = Numbered::new(&prefix, 100_000);
    let sampler = QueueSampler::start(&s);
    let mut app = Sent::default();
    app.burst(&s, &lines, Duration::from_secs(2));
    let slow_bytes = listener.bytes_received();
    listener.read_at_full_speed();
    s.stop()
        .expect("everything kept is delivered once it reads again");
    let max_queued = sampler.finish();
    let stats = s.stats();
    app.assert_overflow_counted(&stats, max_queued, QUEUE);
    let received = lines.wait_received(&listener, &app.accepted, Duration::from_secs(10));
    faults::assert_same_lines(&received, &app.accepted, "every line kept arrived, once");
    app.times
        .assert_max_below(INTERVAL / 2, "send while the server is slow");
    faults::report(
        "server reading 100 KB/s",
        app.sent,
        received.len() as u64,
        stats.dropped,
        &format!(
            "it read {} KB in 2 s; most queued {max_queued} (queue_size {QUEUE}); {}",
            slow_bytes / 1000,
            app.times.summary()
        ),
    );
    Figures::new("stall slow reader")
        .count(
            "slow.sent",
            app.sent,
            "lines the application sent to a server reading 100 KB/s",
        )
        .count(
            "slow.delivered",
            received.len() as u64,
            "lines that server received",
        )
        .count(
            "slow.dropped",
            stats.dropped,
            "lines graphyte counted as dropped",
        )
        .write();
}
