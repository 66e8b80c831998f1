//! A program that ends without `graphyte::shutdown()` still delivers: when
//! `main` returns or `std::process::exit` is called, the global sender's
//! exit handler sends what is queued and the macros' interval in progress,
//! within the timeout, and says at WARN what it could not deliver. And a
//! program whose server is down ends within about one timeout, even after
//! a `flush` that used up that timeout already.
//!
//! The children are this test binary run again, with `--exact child_entry
//! --ignored` and an environment variable saying what to do.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use graphyte::Config;
use support::LineListener;

const CHILD_ENV: &str = "GRAPHYTE_EXIT_CHILD";
const LINES: u64 = 100;
const TS: u64 = 1_700_000_000;
const TIMEOUT: Duration = Duration::from_secs(1);

/// Prints graphyte's log records on stderr, as `LEVEL message`.
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target() == "graphyte"
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("{} {}", record.level(), record.args());
        }
    }
    fn flush(&self) {}
}

/// The child: `MODE PORT`. Sends `LINES` lines and some macro calls in
/// interval mode, then ends as MODE says.
#[test]
#[ignore = "the child process of the exit tests; does nothing when run by hand"]
fn child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mode, port) = spec.split_once(' ').expect("MODE PORT");
    log::set_logger(&Stderr).unwrap();
    log::set_max_level(log::LevelFilter::Debug);
    graphyte::init(
        Config::new("127.0.0.1")
            .port(port.parse().unwrap())
            .interval(Duration::from_secs(24 * 3600))
            .timeout(TIMEOUT),
    )
    .unwrap();
    for i in 0..LINES {
        graphyte::send_at("exit.line", i, TS + i).unwrap();
    }
    graphyte::count!("exit.count", 2);
    graphyte::count!("exit.count", 3);
    graphyte::gauge!("exit.gauge", 7);
    match mode {
        "return" => {}
        "exit" => std::process::exit(0),
        "flush_then_shutdown" => {
            // The README's ending, with the server down.
            let started = Instant::now();
            let flushed = graphyte::flush();
            eprintln!("flush: {flushed:?} after {:?}", started.elapsed());
            let stopped = graphyte::shutdown();
            println!(
                "\nflush {} shutdown {} after {} ms",
                flushed.is_ok(),
                stopped.is_ok(),
                started.elapsed().as_millis()
            );
        }
        other => panic!("unknown mode {other:?}"),
    }
}

/// Runs the child; returns its output and how long it ran.
fn run_child(mode: &str, port: u16) -> (Output, Duration) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let started = Instant::now();
    let output = Command::new(exe)
        .args(["--exact", "child_entry", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CHILD_ENV, format!("{mode} {port}"))
        .output()
        .expect("the child runs");
    let took = started.elapsed();
    assert!(output.status.success(), "child failed: {output:?}");
    (output, took)
}

/// A loopback port that refuses connections.
fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Every line the child sent and its macro totals are at the listener.
fn assert_everything_arrived(listener: &LineListener) {
    let lines = listener.wait_for_lines(LINES as usize + 2, Duration::from_secs(10));
    for i in 0..LINES {
        let line = format!("exit.line {i} {}", TS + i);
        assert_eq!(
            lines.iter().filter(|l| **l == line).count(),
            1,
            "{line}: {lines:?}"
        );
    }
    let sum = |name: &str| -> u64 {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(name))
            .map(|rest| rest.split(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(sum("exit.count "), 5, "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("exit.gauge 7 ")),
        "{lines:?}"
    );
}

#[test]
fn returning_from_main_without_shutdown_delivers_everything() {
    let listener = LineListener::start();
    let (output, _) = run_child("return", listener.port());
    assert_everything_arrived(&listener);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("WARN"), "{stderr}");
}

#[test]
fn process_exit_without_shutdown_delivers_everything() {
    let listener = LineListener::start();
    let (output, _) = run_child("exit", listener.port());
    assert_everything_arrived(&listener);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("WARN"), "{stderr}");
}

#[test]
fn exiting_with_the_server_down_takes_about_the_timeout_and_says_what_was_lost() {
    let (output, took) = run_child("return", refused_port());
    // The promise: about the timeout (1 s), not more. The bound leaves room
    // for starting the process on a loaded machine.
    assert!(took < TIMEOUT * 3, "the child ran {took:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("WARN")).collect();
    // The 100 lines and the interval in progress: a counter and a gauge.
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].starts_with(&format!(
            "WARN at exit: {} lines not delivered: ",
            LINES + 2
        )),
        "{stderr}"
    );
    assert!(
        warnings[0].ends_with("(graphyte::shutdown() was not called)"),
        "{stderr}"
    );
}

#[test]
fn flush_then_shutdown_with_the_server_down_waits_one_timeout_not_two() {
    let (output, _) = run_child("flush_then_shutdown", refused_port());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = stdout
        .lines()
        .find_map(|l| Some(l.split_once("flush false shutdown false after ")?.1))
        .unwrap_or_else(|| panic!("{stdout} {}", String::from_utf8_lossy(&output.stderr)));
    let ms: u64 = report.strip_suffix(" ms").unwrap().parse().unwrap();
    // The flush waits the timeout (1 s); shutdown then gives up at once
    // instead of waiting another second.
    assert!(ms >= 1000, "{ms} ms");
    assert!(ms < 1500, "flush then shutdown took {ms} ms");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("at exit"), "shutdown was called: {stderr}");
}
