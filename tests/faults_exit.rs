//! Fault tests, exit: a child process that follows the README pattern
//! (`graphyte::init` with a 10 s interval, sends, `graphyte::shutdown()` at
//! the end of main, exits normally) delivers every line, to a loopback
//! listener and to a real carbon-cache, although it exits long before its
//! first interval ends. The child is this test binary run again, with
//! `--exact child_entry --ignored` and an environment variable saying what to
//! send (`child_entry` does nothing without it).
//!
//! And `Drop` (or `stop`) of a `Sender` with lines queued for a server that
//! cannot take them returns within about its timeout, counting what it
//! could not deliver: a closed port, a host that never answers, a server
//! that accepts but never reads (the socket buffers fill), and one that
//! reads, but too slowly to take the queue within the timeout.
//!
//! Run with `--nocapture` to see the figures (`[faults] ...` lines).

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use graphyte::{Config, Error, Sender};
use support::faults::{self, Blackhole, Figures, Numbered, RecordingTcp};
use support::{CarbonServer, LineListener};

/// graphyte's log records (target `graphyte`) as `(thread name, message)`:
/// `Drop` of a sender that could not deliver logs `sender dropped: N lines
/// were not delivered: ...`, the only place the count of a `Drop` shows.
static LOG: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target() == "graphyte"
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let thread = thread::current().name().unwrap_or("").to_owned();
            let message = record.args().to_string();
            LOG.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((thread, message));
        }
    }
    fn flush(&self) {}
}

fn capture_log() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&Capture).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Error);
    });
}

/// The `N` of the `sender dropped: N lines were not delivered` record the
/// thread named `thread` logged; 0 if it logged none (all delivered).
fn dropped_logged_by(thread: &str) -> u64 {
    let log = LOG.lock().unwrap_or_else(|e| e.into_inner());
    let counts: Vec<u64> = log
        .iter()
        .filter(|(t, _)| t == thread)
        .filter_map(|(_, m)| m.strip_prefix("sender dropped: "))
        .map(|m| {
            m.split_once(" lines were not delivered")
                .and_then(|(n, _)| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected log record: {m}"))
        })
        .collect();
    assert!(
        counts.len() <= 1,
        "{thread} logged several drops: {counts:?}"
    );
    counts.first().copied().unwrap_or(0)
}

/// Tells `child_entry` what to do: `PORT BASE METRICS COUNT PREFIX`.
const CHILD_ENV: &str = "GRAPHYTE_FAULTS_EXIT_CHILD";

/// The child: the README's interval pattern, then a normal exit. Run only by
/// the tests below (as a separate process).
#[test]
#[ignore = "the child process of the exit tests; does nothing when run by hand"]
fn child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let fields: Vec<&str> = spec.split(' ').collect();
    let [port, base, metrics, count, prefix] = fields[..] else {
        panic!("bad {CHILD_ENV}: {spec:?}");
    };
    let lines = Numbered {
        prefix: prefix.to_owned(),
        metrics: metrics.parse().unwrap(),
        base: base.parse().unwrap(),
    };
    graphyte::init(
        Config::new("127.0.0.1")
            .port(port.parse().unwrap())
            .prefix(prefix)
            .interval(Duration::from_secs(10)),
    )
    .unwrap();
    for i in 0..count.parse().unwrap() {
        graphyte::send_at(&lines.name(i), i, lines.ts(i)).unwrap();
    }
    graphyte::shutdown().unwrap();
    let stats = graphyte::stats().unwrap();
    println!(
        "child stats: sent {} dropped {} queued {}",
        stats.sent, stats.dropped, stats.queued
    );
}

/// Runs `child_entry` in a new process sending `count` lines to `port`;
/// waits for it to exit (at most 60 s) and returns its output and how long
/// it ran.
fn run_child(port: u16, lines: &Numbered, count: u64) -> (String, Duration) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_entry",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(
            CHILD_ENV,
            format!(
                "{port} {} {} {count} {}",
                lines.base, lines.metrics, lines.prefix
            ),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not exit within 60 s");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    let mut output = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    assert!(status.success(), "the child failed ({status}):\n{output}");
    assert!(
        output.contains("1 passed"),
        "the child did not run child_entry:\n{output}"
    );
    (output, took)
}

/// `(sent, dropped)` from the child's `child stats:` line.
fn child_stats(output: &str) -> (u64, u64) {
    let line = output
        .lines()
        .find_map(|l| l.split_once("child stats: ").map(|(_, stats)| stats))
        .unwrap_or_else(|| panic!("no stats in the child's output:\n{output}"));
    let words: Vec<&str> = line.split(' ').collect();
    (words[1].parse().unwrap(), words[3].parse().unwrap())
}

#[test]
fn child_following_the_readme_delivers_every_line_to_a_listener() {
    let _serial = faults::serial();
    let listener = LineListener::start();
    const COUNT: u64 = 20_000;
    let lines = Numbered::new("faults.exit.listener", COUNT);
    let (output, took) = run_child(listener.port(), &lines, COUNT);
    let (sent, dropped) = child_stats(&output);
    let expected: Vec<u64> = (0..COUNT).collect();
    let received = lines.wait_received(&listener, &expected, Duration::from_secs(10));
    faults::assert_same_lines(&received, &expected, "lines from the child");
    assert_eq!((sent, dropped), (COUNT, 0));
    faults::report(
        "child process exits normally (listener)",
        COUNT,
        received.len() as u64,
        dropped,
        &format!(
            "interval 10 s, the child ran {} ms, {} connection(s)",
            took.as_millis(),
            listener.connections()
        ),
    );
    Figures::new("exit listener")
        .count("exit.listener.delivered", received.len() as u64, "lines a child process (interval 10 s) sent before graphyte::shutdown() and a normal exit that the listener received")
        .ms("exit.listener.ran", took, "how long that child process ran, start to exit")
        .write();
}

#[test]
fn child_following_the_readme_delivers_every_line_to_carbon() {
    let _serial = faults::serial();
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    const COUNT: u64 = 5_000;
    let lines = Numbered::new("faults.exit.carbon", COUNT);
    let (output, took) = run_child(carbon.port(), &lines, COUNT);
    let (sent, dropped) = child_stats(&output);
    let expected: Vec<u64> = (0..COUNT).collect();
    let on_disk = lines.wait_on_disk(&carbon, &expected, Duration::from_secs(15));
    faults::assert_same_lines(&on_disk, &expected, "carbon has every line of the child");
    assert_eq!((sent, dropped), (COUNT, 0));
    faults::report(
        "child process exits normally (carbon)",
        COUNT,
        on_disk.len() as u64,
        dropped,
        &format!("interval 10 s, the child ran {} ms", took.as_millis()),
    );
    Figures::new("exit carbon")
        .count(
            "exit.carbon.delivered",
            on_disk.len() as u64,
            "lines of such a child process found in carbon's whisper files",
        )
        .write();
}

const TIMEOUT: Duration = Duration::from_secs(1);

/// An interval sender with a long interval, so lines stay queued until the
/// sender stops, holding lines `0..count`.
fn queued_sender(config: Config, lines: &Numbered, count: u64) -> Sender {
    let s = Sender::new(
        config
            .prefix(lines.prefix.as_str())
            .interval(Duration::from_secs(3600))
            .queue_size(1_000_000)
            .timeout(TIMEOUT),
    )
    .unwrap();
    for i in 0..count {
        lines.send(&s, i).unwrap();
    }
    s
}

/// Drops `s` under a watchdog; returns how long it took and how many lines
/// it said (in its log record) it could not deliver.
fn timed_drop(s: Sender, name: &str) -> (Duration, u64) {
    capture_log();
    let thread = format!("watchdog: Drop of a Sender ({name})");
    let took = faults::within(
        &format!("Drop of a Sender ({name})"),
        Duration::from_secs(120),
        move || {
            let started = Instant::now();
            drop(s);
            started.elapsed()
        },
    );
    (took, dropped_logged_by(&thread))
}

/// The bound the tests hold `Drop` and `stop` to: the README says they
/// deliver "for at most the timeout"; twice that leaves room for a loaded
/// machine.
fn assert_about_the_timeout(took: Duration, what: &str) {
    assert!(
        took < TIMEOUT * 2,
        "{what} took {took:?}; the timeout is {TIMEOUT:?}"
    );
}

/// A sender whose transport is graphyte's TCP one, recording what it
/// writes: the lines written successfully are counted apart from
/// graphyte's own stats.
fn recorded(port: u16) -> (Config, faults::Recorder) {
    let (transport, recorder) = RecordingTcp::new(port, TIMEOUT);
    (Config::new("127.0.0.1").transport(transport), recorder)
}

#[test]
fn drop_with_lines_queued_for_a_closed_port() {
    let _serial = faults::serial();
    // Bound, never listening: every connect is refused.
    let closed = faults::closed_port();
    let lines = Numbered::new("faults.drop.closed", 1_000);

    // stop() says what it could not deliver, and counts it.
    let (config, recorder) = recorded(closed.port());
    let s = queued_sender(config, &lines, 1_000);
    let started = Instant::now();
    let result = s.stop();
    let stop_took = started.elapsed();
    let stats = s.stats();
    let Err(Error::Undelivered { pending, .. }) = result else {
        panic!("stop with a closed port: {result:?}");
    };
    // What the application sent = what the transport wrote + what graphyte
    // counted as dropped; graphyte's "sent" is what the transport wrote.
    let written = faults::written_ok(&recorder.writes(), &lines).len() as u64;
    assert_eq!(stats.sent, written);
    assert_eq!(pending as u64, stats.dropped);
    faults::report(
        "stop with a closed port",
        1_000,
        written,
        stats.dropped,
        &format!(
            "stop took {} ms (timeout {} ms), {} connect attempts",
            stop_took.as_millis(),
            TIMEOUT.as_millis(),
            stats.send_errors
        ),
    );
    assert_about_the_timeout(stop_took, "stop with a closed port");

    let (config, recorder) = recorded(closed.port());
    let (took, dropped) = timed_drop(queued_sender(config, &lines, 1_000), "closed port");
    let written = faults::written_ok(&recorder.writes(), &lines).len() as u64;
    faults::report("Drop with a closed port", 1_000, written, dropped, "");
    assert_about_the_timeout(took, "Drop with a closed port");
    Figures::new("drop closed port")
        .ms(
            "drop.closed.stop",
            stop_took,
            "stop() with 1,000 lines queued for a closed port, timeout 1 s",
        )
        .ms(
            "drop.closed.drop",
            took,
            "Drop with 1,000 lines queued for a closed port, timeout 1 s",
        )
        .write();
}

#[test]
fn drop_with_lines_queued_for_a_host_that_never_answers() {
    let _serial = faults::serial();
    let Some(blackhole) = support::or_skip(
        Blackhole::start(),
        "cannot make a server that never answers",
    ) else {
        return;
    };
    let lines = Numbered::new("faults.drop.blackhole", 1_000);
    let (config, recorder) = recorded(blackhole.port());
    let s = queued_sender(config, &lines, 1_000);
    let (took, dropped) = timed_drop(s, "blackhole");
    let written = faults::written_ok(&recorder.writes(), &lines).len() as u64;
    faults::report(
        "Drop with a host that never answers",
        1_000,
        written,
        dropped,
        "",
    );
    assert_about_the_timeout(took, "Drop with a host that never answers");
    Figures::new("drop blackhole")
        .ms(
            "drop.blackhole.drop",
            took,
            "Drop with 1,000 lines queued for a host that never answers, timeout 1 s",
        )
        .write();
}

/// 300,000 lines of about 45 bytes: 13 MB, more than the socket buffers of
/// a loopback connection whose receive buffer is capped (below) hold: the
/// client's send buffer grows to at most net.ipv4.tcp_wmem's maximum
/// (4 MB by default).
const BIG_QUEUE: u64 = 300_000;

#[test]
fn drop_with_a_server_that_accepts_but_never_reads() {
    let _serial = faults::serial();
    let (listener, _) = LineListener::start_with_receive_buffer(64 * 1024);
    listener.pause_reading();
    let lines = Numbered::new("faults.drop.unread", BIG_QUEUE);
    let s = queued_sender(
        Config::new("127.0.0.1").port(listener.port()),
        &lines,
        BIG_QUEUE,
    );
    let (took, dropped) = timed_drop(s, "never reads");
    listener.resume_reading();
    // The lines the socket took whole arrive; graphyte counted the rest.
    let expected = (BIG_QUEUE - dropped) as usize;
    listener.wait_for_line_count(expected, Duration::from_secs(30));
    thread::sleep(Duration::from_millis(200));
    let mut arrived = Vec::new();
    listener.with_received(|connections| {
        for data in connections {
            lines.parse_bytes(data, &mut arrived);
        }
    });
    arrived.sort_unstable();
    faults::assert_same_lines(
        &arrived,
        &(0..expected as u64).collect::<Vec<_>>(),
        "lines taken",
    );
    assert!(dropped > 0, "the kernel cannot have taken 13 MB");
    faults::report(
        "Drop with a server that never reads",
        BIG_QUEUE,
        arrived.len() as u64,
        dropped,
        &format!(
            "Drop took {} ms (timeout {} ms)",
            took.as_millis(),
            TIMEOUT.as_millis()
        ),
    );
    assert_about_the_timeout(took, "Drop with a server that never reads");
    Figures::new("drop never reads")
        .ms(
            "drop.unread.drop",
            took,
            "Drop with 300,000 lines (13 MB) queued for a server that never reads, timeout 1 s",
        )
        .write();
}

/// 24 MB: the socket buffers of a connection whose reader is slow grow to
/// about 10 MB here, and the rest takes the slow reader several seconds.
const BIGGER_QUEUE: u64 = 600_000;

#[test]
fn stop_with_a_server_reading_too_slowly() {
    let _serial = faults::serial();
    let listener = LineListener::start();
    listener.read_slowly(16 * 1024, Duration::from_millis(10)); // about 1.6 MB/s
    let lines = Numbered::new("faults.drop.slow", BIGGER_QUEUE);
    let s = queued_sender(
        Config::new("127.0.0.1").port(listener.port()),
        &lines,
        BIGGER_QUEUE,
    );
    let (result, took, stats) = {
        let s = s.clone();
        faults::within(
            "stop with a slow server",
            Duration::from_secs(120),
            move || {
                let started = Instant::now();
                let result = s.stop();
                (result, started.elapsed(), s.stats())
            },
        )
    };
    listener.read_at_full_speed();
    // Whatever stop decided, its counts must add up and match the wire.
    listener.wait_for_line_count(stats.sent as usize, Duration::from_secs(30));
    thread::sleep(Duration::from_millis(200));
    let arrived = listener.line_count() as u64;
    let outcome = match &result {
        Ok(()) => "Ok".to_string(),
        Err(e) => e.to_string(),
    };
    eprintln!(
        "[faults] stop with {BIGGER_QUEUE} lines queued for a server reading 1.6 MB/s: took {} ms \
         (timeout {} ms) and returned {outcome}; sent {BIGGER_QUEUE}: {} written, {} dropped \
         (counted by graphyte), {arrived} lines arrived",
        took.as_millis(),
        TIMEOUT.as_millis(),
        stats.sent,
        stats.dropped,
    );
    assert_eq!(
        stats.sent + stats.dropped,
        BIGGER_QUEUE,
        "every line is accounted for"
    );
    match result {
        Ok(()) => assert_eq!((arrived, stats.dropped), (BIGGER_QUEUE, 0)),
        Err(Error::Undelivered { pending, .. }) => {
            assert_eq!(pending as u64, stats.dropped);
            // Lines of a write cut short by the deadline that the socket
            // took whole count as sent, the rest as dropped: exactly.
            assert_eq!(arrived, stats.sent, "lines arrived = lines counted as sent");
        }
        Err(e) => panic!("{e}"),
    }
    assert_about_the_timeout(took, "stop with a server reading too slowly");
    Figures::new("stop slow reader")
        .ms(
            "drop.slow.stop",
            took,
            "stop() with 600,000 lines (24 MB) queued for a server reading 1.6 MB/s, timeout 1 s",
        )
        .write();
}
