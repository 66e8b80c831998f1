//! The `graphyte` command-line tool, run as a subprocess against loopback
//! listeners this test controls (exact bytes on the wire, exit codes,
//! messages), and against a real carbon-cache (points read back from
//! whisper; skipped loudly without carbon unless `GRAPHYTE_REQUIRE_CARBON=1`).

#[path = "../../tests/support/mod.rs"]
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{unix_now, CarbonServer, LineListener, UdpListener};

const BIN: &str = env!("CARGO_BIN_EXE_graphyte");
/// Longest a run of the binary may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// How long to wait for lines at a listener.
const WAIT: Duration = Duration::from_secs(10);
const TS: &str = "1700000000";

/// What a run of the binary gave.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "exit status\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// No panic, no backtrace: only the tool's own messages.
    fn assert_no_panic(&self) -> &Run {
        for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
            assert!(!self.stderr.contains(bad), "{bad} in {:?}", self.stderr);
        }
        self
    }
}

/// Runs the binary with `args`, feeding it `stdin` (none: an empty stdin),
/// and kills it if it takes longer than [`RUN_LIMIT`].
fn run(args: &[&str], stdin: Option<Vec<u8>>) -> Run {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the graphyte binary");
    let mut pipe = child.stdin.take().expect("stdin pipe");
    let feeder = thread::spawn(move || {
        if let Some(input) = stdin {
            // The tool may stop reading early (e.g. after a send error).
            if let Err(e) = pipe.write_all(&input) {
                assert_eq!(e.kind(), ErrorKind::BrokenPipe, "writing stdin: {e}");
            }
        }
    });
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).map(|_| text)
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("stdout pipe")));
    let stderr = read_all(Box::new(child.stderr.take().expect("stderr pipe")));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for graphyte") {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("graphyte {args:?} did not finish within {RUN_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(2));
    };
    let elapsed = started.elapsed();
    feeder.join().expect("stdin feeder");
    let text = |reader: thread::JoinHandle<std::io::Result<String>>| {
        reader.join().expect("pipe reader").expect("UTF-8 output")
    };
    Run {
        code: status.code(),
        stdout: text(stdout),
        stderr: text(stderr),
        elapsed,
    }
}

/// `-s 127.0.0.1 -p PORT` followed by `rest`.
fn to(port: u16, rest: &[&str]) -> Vec<String> {
    let mut args = vec![
        "-s".to_owned(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ];
    args.extend(rest.iter().map(|s| s.to_string()));
    args
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A loopback port that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    listener.local_addr().expect("local_addr").port()
}

/// Waits until `listener` received `expected` bytes exactly (no more
/// arrive within a short grace period), and checks them.
fn assert_received(listener: &LineListener, expected: &str) {
    let lines = expected.lines().count();
    listener.wait_for_lines(lines, WAIT);
    thread::sleep(Duration::from_millis(50));
    assert_eq!(listener.received(), expected);
}

// --- one metric ---------------------------------------------------------

#[test]
fn sends_the_exact_line_and_says_so() {
    let listener = LineListener::start();
    let port = listener.port();
    let r = run(&refs(&to(port, &["-t", TS, "foo.bar", "42"])), None);
    r.assert_code(0).assert_no_panic();
    assert_received(&listener, "foo.bar 42 1700000000\n");
    assert_eq!(
        r.stderr,
        format!("sent \"foo.bar 42 1700000000\" to 127.0.0.1:{port}\n")
    );
    assert_eq!(r.stdout, "");
}

#[test]
fn defaults_to_localhost_and_now() {
    let listener = LineListener::start();
    let port = listener.port().to_string();
    let before = unix_now();
    let r = run(&["-p", &port, "foo.bar", "1"], None);
    let after = unix_now();
    r.assert_code(0);
    let lines = listener.wait_for_lines(1, WAIT);
    let ts: u32 = lines[0]
        .strip_prefix("foo.bar 1 ")
        .and_then(|ts| ts.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {:?}", lines[0]));
    assert!(
        (before..=after).contains(&ts),
        "{ts} not in {before}..={after}"
    );
    assert!(
        r.stderr.ends_with(&format!(" to localhost:{port}\n")),
        "{}",
        r.stderr
    );
}

#[test]
fn values_integers_stay_integers() {
    let listener = LineListener::start();
    let cases = [
        ("42", "42"),
        ("-7", "-7"),
        ("+3", "3"),
        ("42.5", "42.5"),
        ("42.0", "42.0"),
        ("1e3", "1000.0"),
        ("0.1", "0.1"),
        ("-.5", "-0.5"),
        ("18446744073709551615", "18446744073709551615"),
    ];
    let mut expected = String::new();
    for (typed, wire) in cases {
        run(
            &refs(&to(listener.port(), &["-q", "-t", TS, "v", typed])),
            None,
        )
        .assert_code(0);
        expected.push_str(&format!("v {wire} {TS}\n"));
        // Wait per run: each run is a connection, kept in accept order.
        listener.wait_for_lines(expected.lines().count(), WAIT);
    }
    assert_received(&listener, &expected);
}

#[test]
fn prefix_and_tags() {
    let listener = LineListener::start();
    let args = to(
        listener.port(),
        &[
            "--prefix",
            "system.cli",
            "--tag",
            "env=prod",
            "--tag",
            "host=a",
            "-t",
            TS,
            "foo.bar",
            "1",
        ],
    );
    run(&refs(&args), None).assert_code(0);
    assert_received(
        &listener,
        "system.cli.foo.bar;env=prod;host=a 1 1700000000\n",
    );

    // Inline tags merge with --tag; the inline one wins for the same key.
    let listener = LineListener::start();
    let args = to(
        listener.port(),
        &["--tag", "env=prod", "-t", TS, "m;env=dev;dc=x", "2"],
    );
    run(&refs(&args), None).assert_code(0);
    assert_received(&listener, "m;dc=x;env=dev 2 1700000000\n");
}

#[test]
fn every_spelling_of_the_options_sends_the_same_bytes() {
    let listener = LineListener::start();
    let port = listener.port().to_string();
    let spellings: Vec<Vec<String>> = vec![
        vec!["-s", "127.0.0.1", "-p", &port, "-t", TS, "-q"],
        vec![
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--timestamp",
            TS,
            "--quiet",
        ],
        vec![
            "--server=127.0.0.1",
            &format!("--port={port}"),
            &format!("--timestamp={TS}"),
            "--quiet",
        ],
        vec!["-s127.0.0.1", &format!("-p{port}"), &format!("-qt{TS}")],
        vec!["-qs", "127.0.0.1", "-p", &port, "-t", TS],
        vec!["-q", "-t", TS, "-p", &port, "-s", "127.0.0.1", "--"],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(str::to_owned).collect())
    .collect();
    let mut expected = String::new();
    for (i, spelling) in spellings.iter().enumerate() {
        let mut args = spelling.clone();
        args.extend([format!("m{i}"), "5".to_owned()]);
        let r = run(&refs(&args), None);
        r.assert_code(0);
        assert_eq!(r.stderr, "", "{args:?} is quiet");
        expected.push_str(&format!("m{i} 5 {TS}\n"));
        listener.wait_for_lines(expected.lines().count(), WAIT);
    }
    assert_received(&listener, &expected);
}

#[test]
fn negative_values_need_no_double_dash_and_double_dash_ends_options() {
    let listener = LineListener::start();
    run(&refs(&to(listener.port(), &["-t", TS, "m", "-5"])), None).assert_code(0);
    run(
        &refs(&to(listener.port(), &["-t", TS, "--", "-q", "-1.5"])),
        None,
    )
    .assert_code(0);
    assert_received(&listener, "m -5 1700000000\n-q -1.5 1700000000\n");
}

#[test]
fn udp() {
    let listener = UdpListener::start();
    let port = listener.port();
    for flag in ["-u", "--udp"] {
        let r = run(&refs(&to(port, &[flag, "-t", TS, "foo.bar", "1"])), None);
        r.assert_code(0);
        assert_eq!(
            r.stderr,
            format!("sent \"foo.bar 1 1700000000\" to udp://127.0.0.1:{port}\n")
        );
    }
    listener.wait_for_lines(2, WAIT);
    assert_eq!(
        listener.datagrams(),
        [
            b"foo.bar 1 1700000000\n".to_vec(),
            b"foo.bar 1 1700000000\n".to_vec()
        ]
    );
}

#[test]
fn quiet_prints_nothing_on_success() {
    let listener = LineListener::start();
    let r = run(&refs(&to(listener.port(), &["-q", "foo", "1"])), None);
    r.assert_code(0);
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""));
    listener.wait_for_lines(1, WAIT);
}

#[test]
fn connection_refused_is_one_line_and_exit_1() {
    let port = closed_port();
    for quiet in [false, true] {
        let mut rest = vec!["foo.bar", "42"];
        if quiet {
            rest.insert(0, "-q");
        }
        let r = run(&refs(&to(port, &rest)), None);
        r.assert_code(1).assert_no_panic();
        assert_eq!(r.stderr.lines().count(), 1, "{:?}", r.stderr);
        assert!(
            r.stderr
                .starts_with(&format!("graphyte: sending to 127.0.0.1:{port} failed: ")),
            "{:?}",
            r.stderr
        );
        assert!(
            r.stderr.to_lowercase().contains("refused"),
            "{:?}",
            r.stderr
        );
    }
}

#[test]
fn unknown_host_is_exit_1() {
    let r = run(&["-s", "no-such-host.invalid", "foo", "1"], None);
    r.assert_code(1).assert_no_panic();
    assert_eq!(r.stderr.lines().count(), 1, "{:?}", r.stderr);
    assert!(
        r.stderr
            .starts_with("graphyte: sending to no-such-host.invalid:2003 failed: "),
        "{:?}",
        r.stderr
    );
}

#[test]
fn timeout_bounds_a_stalled_server() {
    // A listener that never accepts: the kernel completes the handshake and
    // buffers what it can, then writes block until the timeout.
    let stalled = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = stalled.local_addr().expect("local_addr").port();
    let input: String = (0..1_000_000)
        .map(|i| format!("stall.m{} {i} 1700000000\n", i % 10))
        .collect();
    let r = run(
        &refs(&to(port, &["--timeout", "0.5", "-"])),
        Some(input.into_bytes()),
    );
    r.assert_code(1).assert_no_panic();
    assert!(
        r.stderr
            .contains(&format!("graphyte: sending to 127.0.0.1:{port} failed: ")),
        "{:?}",
        r.stderr
    );
    // Well under the 5 s default: --timeout took effect.
    assert!(r.elapsed < Duration::from_secs(4), "took {:?}", r.elapsed);
    drop(stalled);
}

// --- usage, help, version ----------------------------------------------

#[test]
fn usage_errors_exit_2_and_send_nothing() {
    let listener = LineListener::start();
    let port = listener.port().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&[], "missing METRIC and VALUE"),
        (&["foo"], "missing VALUE"),
        (&["foo", "1", "2"], "unexpected argument"),
        (&["--bogus", "foo", "1"], "unknown option '--bogus'"),
        (&["-x", "foo", "1"], "unknown option '-x'"),
        (&["foo", "1", "--server"], "needs a value"),
        (&["-p", "notaport", "foo", "1"], "invalid --port"),
        (&["-t", "yesterday", "foo", "1"], "invalid --timestamp"),
        (&["-t", "1700000000000", "foo", "1"], "milliseconds"),
        (&["--timeout", "0", "foo", "1"], "invalid --timeout"),
        (&["--tag", "env", "foo", "1"], "expected KEY=VALUE"),
        (&["--tag", "env=a b", "foo", "1"], "invalid --tag"),
        (&["--prefix", "a..b", "foo", "1"], "invalid --prefix"),
        (&["-s", "host:2003", "foo", "1"], "-p/--port"),
        (&["--udp=1", "foo", "1"], "does not take a value"),
        (&["foo", "abc"], "is not a number"),
        (&["foo", "nan"], "NaN"),
        (&["foo", "inf"], "infinite"),
        (&["foo", "-inf"], "infinite"),
        (&["foo bar", "1"], "invalid metric name"),
        (&["foo..bar", "1"], "invalid metric name"),
        (&["", "1"], "invalid metric name"),
    ];
    for (args, expected) in cases {
        // Every case but the -p one points at the listener.
        let mut all = vec!["-s", "127.0.0.1"];
        if !args.contains(&"-p") {
            all.extend(["-p", &port]);
        }
        all.extend_from_slice(args);
        let r = run(&all, None);
        r.assert_code(2).assert_no_panic();
        let first = r.stderr.lines().next().unwrap_or("");
        assert!(
            first.starts_with("graphyte: ") && first.contains(expected),
            "{args:?}: {:?} lacks {expected:?}",
            r.stderr
        );
        assert!(r.stderr.contains("usage: graphyte"), "{:?}", r.stderr);
        assert_eq!(r.stdout, "");
    }
    thread::sleep(Duration::from_millis(100));
    assert_eq!(listener.connections(), 0, "{:?}", listener.received());
}

#[test]
fn help_and_version() {
    for flag in ["-h", "--help"] {
        let r = run(&[flag], None);
        r.assert_code(0);
        assert_eq!(r.stderr, "");
        assert!(
            r.stdout.starts_with("graphyte: send metrics"),
            "{}",
            r.stdout
        );
        for option in [
            "-s, --server HOST",
            "-p, --port PORT",
            "-u, --udp",
            "-t, --timestamp SECS",
            "-q, --quiet",
            "--prefix PREFIX",
            "--tag KEY=VALUE",
            "--timeout SECS",
            "-h, --help",
            "--version",
            "METRIC",
            "VALUE",
            "Exit status",
        ] {
            assert!(r.stdout.contains(option), "help lacks {option:?}");
        }
    }
    // --help wins over what else is on the line.
    run(&["foo", "--bogus-but-later", "-h"], None).assert_code(2);
    run(&["foo", "-h", "--bogus"], None).assert_code(0);
    let r = run(&["--version"], None);
    r.assert_code(0);
    assert_eq!(
        r.stdout,
        format!("graphyte {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(r.stderr, "");
}

// --- bulk mode ----------------------------------------------------------

#[test]
fn bulk_sends_good_lines_in_order_and_reports_bad_ones() {
    let listener = LineListener::start();
    let port = listener.port();
    let input = "\
good.a 1 1700000000
# a comment

bad.value x 1700000000
good.b 2.5 1700000001
bad..name 1 1700000000
good.c -3 1700000002\r
onlyname
good.d 4
bad.ts 1 0
too many fields here
  good.e   5   1700000003  
bad.nan nan 1700000000
";
    let r = run(
        &refs(&to(port, &["-t", "1600000000", "-"])),
        Some(input.into()),
    );
    r.assert_code(1).assert_no_panic();
    assert_received(
        &listener,
        "good.a 1 1700000000\n\
         good.b 2.5 1700000001\n\
         good.c -3 1700000002\n\
         good.d 4 1600000000\n\
         good.e 5 1700000003\n",
    );
    assert_eq!(listener.connections(), 1);
    let stderr: Vec<&str> = r.stderr.lines().collect();
    let expected = [
        "graphyte: line 4: invalid value for metric \"bad.value\": \"x\" is not a number",
        "graphyte: line 6: invalid metric name \"bad..name\"",
        "graphyte: line 8: expected \"metric value [timestamp]\", found 1 field",
        "graphyte: line 10: invalid timestamp 0 for metric \"bad.ts\"",
        "graphyte: line 11: expected \"metric value [timestamp]\", found 4 fields",
        "graphyte: line 13: invalid value for metric \"bad.nan\": \"nan\" is NaN",
    ];
    assert_eq!(stderr.len(), expected.len() + 1, "{}", r.stderr);
    for (got, expected) in stderr.iter().zip(expected) {
        assert!(
            got.starts_with(expected),
            "{got:?} should start with {expected:?}"
        );
    }
    assert_eq!(
        stderr[expected.len()],
        format!("sent 5, refused 6 (127.0.0.1:{port})")
    );
}

#[test]
fn bulk_all_good_is_exit_0_and_quiet_hides_only_the_summary() {
    let listener = LineListener::start();
    let port = listener.port();
    let r = run(
        &refs(&to(port, &["--prefix", "p", "--tag", "k=v", "-"])),
        Some(b"a 1 1700000000\nb 2 1700000001\n".to_vec()),
    );
    r.assert_code(0);
    assert_eq!(r.stderr, format!("sent 2, refused 0 (127.0.0.1:{port})\n"));
    assert_received(&listener, "p.a;k=v 1 1700000000\np.b;k=v 2 1700000001\n");

    let listener = LineListener::start();
    let r = run(
        &refs(&to(listener.port(), &["-q", "-"])),
        Some(b"a 1 1700000000\nbad\n".to_vec()),
    );
    r.assert_code(1);
    assert_eq!(
        r.stderr,
        "graphyte: line 2: expected \"metric value [timestamp]\", found 1 field\n"
    );
    assert_received(&listener, "a 1 1700000000\n");

    // Empty input: nothing to send, nothing wrong.
    let listener = LineListener::start();
    let r = run(&refs(&to(listener.port(), &["-"])), Some(Vec::new()));
    r.assert_code(0);
    assert_eq!(
        r.stderr,
        format!("sent 0, refused 0 (127.0.0.1:{})\n", listener.port())
    );
}

#[test]
fn bulk_10000_lines_over_one_connection_fast() {
    let listener = LineListener::start();
    let input: String = (0..10_000)
        .map(|i| format!("bulk.m{} {i} {}\n", i % 10, 1_700_000_000 + i))
        .collect();
    let r = run(
        &refs(&to(listener.port(), &["-"])),
        Some(input.clone().into_bytes()),
    );
    r.assert_code(0);
    assert_eq!(
        r.stderr,
        format!("sent 10000, refused 0 (127.0.0.1:{})\n", listener.port())
    );
    listener.wait_for_lines(10_000, WAIT);
    assert_eq!(listener.received(), input);
    assert_eq!(listener.connections(), 1);
    eprintln!(
        "bulk: 10,000 lines to a loopback listener in {:?}",
        r.elapsed
    );
    assert!(r.elapsed < Duration::from_secs(10), "took {:?}", r.elapsed);
}

#[test]
fn bulk_over_udp_never_splits_a_line() {
    let listener = UdpListener::start();
    let port = listener.port();
    let input: String = (0..300)
        .map(|i| format!("udp.metric.number{i} {i} 1700000000\n"))
        .collect();
    let r = run(
        &refs(&to(port, &["-u", "-"])),
        Some(input.clone().into_bytes()),
    );
    r.assert_code(0);
    assert_eq!(
        r.stderr,
        format!("sent 300, refused 0 (udp://127.0.0.1:{port})\n")
    );
    listener.wait_for_lines(300, WAIT);
    let datagrams = listener.datagrams();
    assert!(datagrams.len() > 1, "{} datagrams", datagrams.len());
    for datagram in &datagrams {
        assert!(datagram.len() <= 1432, "{} bytes", datagram.len());
        assert!(datagram.ends_with(b"\n"));
    }
    assert_eq!(datagrams.concat(), input.into_bytes());
}

#[test]
fn bulk_connection_refused_is_exit_1() {
    let port = closed_port();
    let r = run(
        &refs(&to(port, &["-"])),
        Some(b"a 1 1700000000\nb 2 1700000000\n".to_vec()),
    );
    r.assert_code(1).assert_no_panic();
    let stderr: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(stderr.len(), 2, "{:?}", r.stderr);
    assert!(
        stderr[0].starts_with(&format!("graphyte: sending to 127.0.0.1:{port} failed: ")),
        "{:?}",
        stderr[0]
    );
    assert_eq!(
        stderr[1],
        format!("sent 0, refused 0 (127.0.0.1:{port}); input from line 1 on was not sent")
    );
}

/// Starts the tool with `args`, keeping its stdin open for the test to
/// write to as a producer would.
fn streaming(args: &[String]) -> (std::process::Child, std::process::ChildStdin) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start graphyte");
    let stdin = child.stdin.take().expect("stdin");
    (child, stdin)
}

#[test]
fn bulk_streams_lines_as_they_arrive() {
    // A slow producer: each line must reach the server before the next one
    // is written, not at the end of the input.
    let listener = LineListener::start();
    let (child, mut stdin) = streaming(&to(listener.port(), &["-q", "-"]));
    for i in 0..3 {
        writeln!(stdin, "slow.m {i} 1700000000").expect("write a line");
        stdin.flush().expect("flush");
        let lines = listener.wait_for_lines(i + 1, WAIT);
        assert_eq!(lines[i], format!("slow.m {i} 1700000000"));
    }
    drop(stdin);
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(listener.connections(), 1);
}

#[test]
fn bulk_rides_out_a_server_restart() {
    // The server goes away mid-stream and is back 0.6 s later, within the
    // 5 s timeout: the tool reconnects, every line arrives once, exit 0.
    let mut first = LineListener::start();
    let port = first.port();
    let (child, mut stdin) = streaming(&to(port, &["-"]));
    let expected: Vec<String> = (0..6)
        .map(|i| format!("restart.m {i} 1700000000"))
        .collect();
    for line in &expected[..3] {
        writeln!(stdin, "{line}").expect("write a line");
    }
    stdin.flush().expect("flush");
    assert_eq!(first.wait_for_lines(3, WAIT), expected[..3]);
    first.stop();
    for line in &expected[3..] {
        writeln!(stdin, "{line}").expect("write a line");
    }
    stdin.flush().expect("flush");
    thread::sleep(Duration::from_millis(600));
    let second = LineListener::start_on(port);
    drop(stdin);
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!("sent 6, refused 0 (127.0.0.1:{port})")
    );
    let mut got = first.lines();
    got.extend(second.wait_for_lines(3, WAIT));
    assert_eq!(got, expected, "each line once, in order");
}

// --- a real carbon-cache ------------------------------------------------

#[test]
fn carbon_stores_a_cli_send() {
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    let port = carbon.port();
    let ts = (unix_now() - 60).to_string();
    run(
        &refs(&to(port, &["-q", "-t", &ts, "cli.single", "42"])),
        None,
    )
    .assert_code(0);
    run(
        &refs(&to(
            port,
            &["-q", "-u", "-t", &ts, "cli.single_udp", "-2.5"],
        )),
        None,
    )
    .assert_code(0);
    let ts: u32 = ts.parse().expect("a number");
    assert_eq!(carbon.wait_for_points("cli.single", 1, WAIT), [(ts, 42.0)]);
    assert_eq!(
        carbon.wait_for_points("cli.single_udp", 1, WAIT),
        [(ts, -2.5)]
    );
}

#[test]
fn carbon_stores_a_bulk_load_of_10000_lines() {
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    // Carbon here keeps 1 s points for an hour: 10 series of 1,000 points.
    const SERIES: u32 = 10;
    const POINTS: u32 = 1_000;
    let start = unix_now() - 1_500;
    let mut input = String::new();
    for i in 0..POINTS {
        for s in 0..SERIES {
            input.push_str(&format!(
                "cli.bulk.s{s} {} {}\n",
                s * 100_000 + i,
                start + i
            ));
        }
    }
    let r = run(
        &refs(&to(carbon.port(), &["--prefix", "load", "-"])),
        Some(input.into_bytes()),
    );
    r.assert_code(0);
    assert_eq!(
        r.stderr,
        format!("sent 10000, refused 0 (127.0.0.1:{})\n", carbon.port())
    );
    for s in 0..SERIES {
        let metric = format!("load.cli.bulk.s{s}");
        let points = carbon.wait_for_points(&metric, POINTS as usize, Duration::from_secs(30));
        let expected: Vec<(u32, f64)> = (0..POINTS)
            .map(|i| (start + i, f64::from(s * 100_000 + i)))
            .collect();
        assert_eq!(points, expected, "{metric}");
    }
}
