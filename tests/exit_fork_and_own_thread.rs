//! The exit handler in the two exits that are not a normal end of `main`:
//!
//! - a child forked after `init` exits: the interval thread exists only in
//!   the parent, so the child's handler does nothing and the child exits at
//!   once; the parent still delivers everything at its own exit;
//! - the process exits on graphyte's interval thread (a `Transport`, or a
//!   logger, calling `std::process::exit`): the handler never waits for
//!   that thread, and logs the WARN with the number of lines not delivered,
//!   also when the exit comes while the main thread is inside
//!   `graphyte::shutdown()`.
//!
//! The children are this test binary run again, with `--exact child_entry
//! --ignored` and an environment variable saying what to do; each runs
//! under a watchdog, so a child that hangs at exit fails the test.

mod support;

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use graphyte::{Config, SendError, TcpTransport, Transport};
use support::LineListener;

const CHILD_ENV: &str = "GRAPHYTE_EXIT_EDGE_CHILD";
const TS: u64 = 1_700_000_000;
const TIMEOUT: Duration = Duration::from_secs(1);
/// Lines written before the transport ends the process, and after.
const FIRST: u64 = 100;
const SECOND: u64 = 50;
/// Exit status the transport ends the process with.
const TRANSPORT_EXIT: i32 = 3;
/// Exit status the logger ends the process with.
const LOGGER_EXIT: i32 = 4;
/// Lines queued when the logger ends the process.
const LOGGED: u64 = 30;
/// How long the forked child is given to exit: "at once" is a few
/// milliseconds; this leaves room for a loaded machine (see the test).
const FORK_EXIT_WITHIN: Duration = Duration::from_millis(500);

/// Prints graphyte's log records on stderr, as `LEVEL message`; with
/// `exit_on_error`, ends the process after printing the first ERROR record
/// logged on graphyte's interval thread (a logger that exits on errors).
struct Stderr {
    exit_on_error: AtomicBool,
}

static STDERR: Stderr = Stderr {
    exit_on_error: AtomicBool::new(false),
};

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target() == "graphyte"
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("{} {}", record.level(), record.args());
            if record.level() == log::Level::Error
                && thread::current().name() == Some("graphyte")
                && self.exit_on_error.swap(false, Ordering::SeqCst)
            {
                std::process::exit(LOGGER_EXIT);
            }
        }
    }
    fn flush(&self) {}
}

/// TCP to the listener, except that the second write ends the process
/// (from the interval thread, which is where transports run).
struct ExitOnSecondWrite {
    tcp: TcpTransport,
    writes: usize,
}

impl Transport for ExitOnSecondWrite {
    fn send(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), SendError> {
        self.writes += 1;
        if self.writes == 2 {
            std::process::exit(TRANSPORT_EXIT);
        }
        self.tcp.send(bytes, deadline)
    }
    fn address(&self) -> String {
        self.tcp.address()
    }
    fn connect(&mut self, deadline: Instant) -> std::io::Result<()> {
        self.tcp.connect(deadline)
    }
    fn close(&mut self) {
        self.tcp.close()
    }
}

/// The child: `MODE PORT`.
#[test]
#[ignore = "the child process of the exit tests; does nothing when run by hand"]
fn child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mode, port) = spec.split_once(' ').expect("MODE PORT");
    let port: u16 = port.parse().unwrap();
    log::set_logger(&STDERR).unwrap();
    log::set_max_level(log::LevelFilter::Debug);
    let config = Config::new("127.0.0.1")
        .port(port)
        .interval(Duration::from_secs(24 * 3600))
        .timeout(TIMEOUT);
    match mode {
        "fork" => fork_child(config),
        "transport_exits_in_flush" | "transport_exits_in_shutdown" => {
            let transport = ExitOnSecondWrite {
                tcp: TcpTransport::new("127.0.0.1", port, TIMEOUT),
                writes: 0,
            };
            graphyte::init(config.transport(transport)).unwrap();
            for i in 0..FIRST {
                graphyte::send_at("own.first", i, TS + i).unwrap();
            }
            graphyte::flush().unwrap(); // the first write: delivered
            for i in 0..SECOND {
                graphyte::send_at("own.second", i, TS + i).unwrap();
            }
            // The second write ends the process on the interval thread,
            // while this thread waits in `flush` or in `shutdown` (which
            // holds the sender's stop lock and joins the interval thread).
            if mode == "transport_exits_in_flush" {
                let _ = graphyte::flush();
            } else {
                let _ = graphyte::shutdown();
            }
            // Not reached unless the exit failed to happen; this thread must
            // not race the exit with one of its own.
            println!("\nthe transport did not end the process");
            loop {
                thread::park();
            }
        }
        "logger_exits" => {
            // The server is down: the interval thread's first failed write
            // logs an ERROR, and the logger ends the process there.
            graphyte::init(config).unwrap();
            STDERR.exit_on_error.store(true, Ordering::SeqCst);
            for i in 0..LOGGED {
                graphyte::send_at("logged.line", i, TS + i).unwrap();
            }
            let _ = graphyte::flush();
            println!("\nthe logger did not end the process");
            loop {
                thread::park();
            }
        }
        other => panic!("unknown mode {other:?}"),
    }
}

/// Sends, forks a child that exits at once, waits for it, sends again and
/// returns from `main` (the exit handler delivers).
fn fork_child(config: Config) {
    graphyte::init(config).unwrap();
    for i in 0..FIRST {
        graphyte::send_at("fork.before", i, TS + i).unwrap();
    }
    let forked = Instant::now();
    // SAFETY: the child calls only `exit`, which runs the C exit handlers
    // (graphyte's among them), and nothing else.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: ends the child the way a Rust program's exit does.
        unsafe { libc::exit(0) };
    }
    let mut status = 0;
    let outcome = loop {
        // SAFETY: `pid` is our child; `status` is a valid out-pointer.
        let reaped = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if reaped == pid {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status).to_string()
            } else {
                format!("signal {}", libc::WTERMSIG(status))
            };
            break format!(
                "forked child exited after {} ms with {code}",
                forked.elapsed().as_millis()
            );
        }
        assert_eq!(reaped, 0, "waitpid: {}", std::io::Error::last_os_error());
        if forked.elapsed() > Duration::from_secs(10) {
            // SAFETY: `pid` is our child, not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            break "forked child still running after 10000 ms (killed)".to_string();
        }
        thread::sleep(Duration::from_millis(1));
    };
    println!("\n{outcome}");
    for i in 0..FIRST {
        graphyte::send_at("fork.after", i, TS + i).unwrap();
    }
}

/// Runs the child under a watchdog; returns its status, stdout and stderr.
fn run_child(mode: &str, port: u16) -> (ExitStatus, String, String) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args(["--exact", "child_entry", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CHILD_ENV, format!("{mode} {port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the child runs");
    let read = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    match status {
        Some(status) => (status, stdout, stderr),
        None => panic!("the child ({mode}) hung at exit for 30 s:\n{stdout}\n{stderr}"),
    }
}

/// Asserts that `lines` hold `name i TS+i` once for every i below `n`.
fn assert_each_once(lines: &[String], name: &str, n: u64) {
    for i in 0..n {
        let line = format!("{name} {i} {}", TS + i);
        assert_eq!(
            lines.iter().filter(|l| **l == line).count(),
            1,
            "{line}: {lines:?}"
        );
    }
}

#[test]
fn a_child_forked_after_init_exits_at_once_and_the_parent_still_delivers() {
    let listener = LineListener::start();
    let (status, stdout, stderr) = run_child("fork", listener.port());
    assert!(status.success(), "{status}: {stdout}\n{stderr}");
    let outcome = stdout
        .lines()
        .find(|l| l.starts_with("forked child "))
        .unwrap_or_else(|| panic!("{stdout}\n{stderr}"));
    println!("{outcome}");
    let ms: u64 = outcome
        .strip_prefix("forked child exited after ")
        .and_then(|rest| rest.strip_suffix(" ms with 0"))
        .unwrap_or_else(|| panic!("the forked child did not exit normally: {outcome}"))
        .parse()
        .unwrap();
    assert!(
        u128::from(ms) < FORK_EXIT_WITHIN.as_millis(),
        "the forked child took {ms} ms to exit"
    );
    // The parent's exit handler delivered both halves, each line once: the
    // child delivered none of the parent's queue a second time.
    let lines = listener.wait_for_lines(2 * FIRST as usize, Duration::from_secs(10));
    assert_each_once(&lines, "fork.before", FIRST);
    assert_each_once(&lines, "fork.after", FIRST);
    assert_eq!(lines.len(), 2 * FIRST as usize, "{lines:?}");
    // Nothing went wrong in the child: no join of a thread the child does
    // not have (std panics there: "threads should not terminate
    // unexpectedly"), no log record, no stop attempted.
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("WARN"), "{stderr}");
}

/// The transport ended the process with its status on the second write:
/// the first write's lines arrived, the second's did not, and the one WARN
/// says how many were not delivered.
fn assert_exit_on_the_interval_thread(mode: &str) {
    let listener = LineListener::start();
    let (status, stdout, stderr) = run_child(mode, listener.port());
    assert_eq!(
        status.code(),
        Some(TRANSPORT_EXIT),
        "{status}: {stdout}\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].starts_with(&format!(
            "WARN at exit: {SECOND} lines not delivered: the process exited on graphyte's interval thread"
        )),
        "{stderr}"
    );
    let lines = listener.wait_for_lines(FIRST as usize, Duration::from_secs(10));
    // Nothing more comes: the process is gone.
    thread::sleep(Duration::from_millis(200));
    let lines_now = listener.lines();
    assert_eq!(lines_now, lines, "lines arrived after the exit");
    assert_each_once(&lines, "own.first", FIRST);
    assert_eq!(lines.len(), FIRST as usize, "{lines:?}");
}

#[test]
fn a_transport_exiting_the_process_during_a_flush_gets_the_warning_not_a_panic() {
    assert_exit_on_the_interval_thread("transport_exits_in_flush");
}

#[test]
fn a_transport_exiting_the_process_during_shutdown_does_not_hang_it() {
    assert_exit_on_the_interval_thread("transport_exits_in_shutdown");
}

#[test]
fn a_logger_exiting_the_process_on_graphytes_thread_gets_the_warning() {
    // A port nothing listens on: the first write fails and is logged.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (status, stdout, stderr) = run_child("logger_exits", port);
    assert_eq!(
        status.code(),
        Some(LOGGER_EXIT),
        "{status}: {stdout}\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].starts_with(&format!(
            "WARN at exit: {LOGGED} lines not delivered: the process exited on graphyte's interval thread"
        )),
        "{stderr}"
    );
}
