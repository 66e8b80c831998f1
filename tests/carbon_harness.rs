//! Tests of the test support itself (tests/support): the real carbon-cache
//! harness, the child-server harness every server runs on (ready, port
//! clashes, kill on drop and with its thread, state kept when a test
//! fails), the whisper reader, the metric-to-path mapping and the loopback
//! listeners. Uses only std sockets, not the graphyte library.
//!
//! The carbon tests skip (loudly) when carbon is not installed, unless
//! `GRAPHYTE_REQUIRE_CARBON=1`, as ./scripts/test sets it.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use support::carbon::{normalize_metric, whisper_relative_path};
use support::child::{ChildServer, Launch, Proto, Ready, StartError};
use support::{sha256, unix_now, whisper, CarbonServer, LineListener, UdpListener};

const TIMEOUT: Duration = Duration::from_secs(10);

fn send_tcp(addr: &str, payload: &str) {
    let mut stream = TcpStream::connect(addr).expect("connect to carbon");
    stream
        .write_all(payload.as_bytes())
        .expect("write to carbon");
    stream.shutdown(Shutdown::Write).expect("shutdown");
}

fn send_udp(addr: &str, payload: &str) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
    let sent = socket.send_to(payload.as_bytes(), addr).expect("send UDP");
    assert_eq!(sent, payload.len());
}

// --- sha256 -----------------------------------------------------------------

#[test]
fn sha256_matches_standard_vectors() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            b"abc",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
        (
            &[b'a'; 55],
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
        ),
        (
            &[b'a'; 56],
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
        ),
        (
            &[b'a'; 64],
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb",
        ),
        (
            &[b'a'; 1000],
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3",
        ),
        (
            "région=zürich".as_bytes(),
            "0bda95086548b1b5a6de9180549bde869ba6319993434908e9e1aa9453340daa",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            sha256::hex_digest(input),
            *expected,
            "sha256 of {} bytes",
            input.len()
        );
    }
}

// --- metric name → whisper path ---------------------------------------------

#[test]
fn normalize_metric_mirrors_carbon() {
    let cases = [
        ("a.b.c", "a.b.c"),
        ("~a.b", "a.b"),
        ("x;host=a;env=prod", "x;env=prod;host=a"),
        ("x;env=prod;host=a", "x;env=prod;host=a"),
        // The last duplicate wins.
        ("x;k=1;k=2", "x;k=2"),
        // `name=` is replaced by the real name.
        ("x;name=y;k=v", "x;k=v"),
        ("~~x;k=v", "x;k=v"),
        // Sorted as ";k=v" strings, not by key: '-' < '='.
        ("x;a=x;a-b=y", "x;a-b=y;a=x"),
        ("x;k=a=b", "x;k=a=b"),
        // Invalid tagged names are kept raw.
        ("x;env=", "x;env="),
        ("x;env", "x;env"),
        ("x;e!nv=1", "x;e!nv=1"),
        (";env=x", ";env=x"),
        ("~~~;a=b", "~~~;a=b"),
        ("x;k=~v", "x;k=~v"),
    ];
    for (input, expected) in cases {
        assert_eq!(normalize_metric(input), expected, "normalize {input:?}");
    }
}

#[test]
fn whisper_paths_mirror_carbon() {
    assert_eq!(whisper_relative_path("a.b.c"), PathBuf::from("a/b/c.wsp"));
    assert_eq!(whisper_relative_path(".a.b"), PathBuf::from("a/b.wsp"));
    assert_eq!(whisper_relative_path("a/b.c"), PathBuf::from("a/b/c.wsp"));
    // The example measured against carbon 1.1.7 (shared reference).
    let expected = PathBuf::from(
        "_tagged/4d0/0c1/4d00c1d57773af51002b8b3a84187e751735d99312ca87911dccee0b9c83e0eb.wsp",
    );
    assert_eq!(
        whisper_relative_path("test.tagged;env=prod;host=a"),
        expected
    );
    assert_eq!(
        whisper_relative_path("test.tagged;host=a;env=prod"),
        expected
    );
}

// --- whisper reader -----------------------------------------------------------

/// A whisper file with one archive of `slots.len()` points.
fn whisper_bytes(step: u32, slots: &[(u32, f64)]) -> Vec<u8> {
    let points = slots.len() as u32;
    let mut data = Vec::new();
    data.extend_from_slice(&1u32.to_be_bytes()); // average
    data.extend_from_slice(&(step * points).to_be_bytes());
    data.extend_from_slice(&0.5f32.to_be_bytes());
    data.extend_from_slice(&1u32.to_be_bytes());
    data.extend_from_slice(&28u32.to_be_bytes());
    data.extend_from_slice(&step.to_be_bytes());
    data.extend_from_slice(&points.to_be_bytes());
    for &(ts, value) in slots {
        data.extend_from_slice(&ts.to_be_bytes());
        data.extend_from_slice(&value.to_be_bytes());
    }
    data
}

#[test]
fn whisper_reader_keeps_only_valid_slots() {
    let now = 1_800_000_000u32;
    let base = now - now % 60 - 120;
    let slots = [
        (base, 1.0),               // slot 0: the first write
        (base + 60, -2.5),         // slot 1
        (0, 99.0),                 // slot 2: empty
        (base + 181, 99.0),        // slot 3: not aligned to the step
        (base - 360, 4.0),         // slot 4: wrapped around, still in retention
        (base + 300 - 1200, 99.0), // slot 5: right slot but older than 600 s
        (base + 420, 99.0),        // slot 6: belongs in slot 7
        (0, 0.0),
        (0, 0.0),
        (0, 0.0),
    ];
    let data = whisper_bytes(60, &slots);

    let header = whisper::parse_header(&data).unwrap();
    assert_eq!(header.aggregation_type, 1);
    assert_eq!(header.max_retention, 600);
    assert_eq!(header.x_files_factor, 0.5);
    assert_eq!(
        header.archives,
        vec![whisper::ArchiveInfo {
            offset: 28,
            seconds_per_point: 60,
            points: 10
        }]
    );
    assert_eq!(
        whisper::parse_points(&data, u64::from(now)).unwrap(),
        vec![(base - 360, 4.0), (base, 1.0), (base + 60, -2.5)]
    );
    // A file that is still being created is an error, not "no points".
    assert!(whisper::parse_points(&data[..data.len() - 1], u64::from(now)).is_err());
    assert!(whisper::parse_header(&data[..20]).is_err());
}

// --- carbon-cache -------------------------------------------------------------

#[test]
fn carbon_stores_a_tcp_line() {
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    let ts = unix_now();
    send_tcp(&carbon.addr(), &format!("harness.tcp.plain 42 {ts}\n"));
    let points = carbon.wait_for_points("harness.tcp.plain", 1, TIMEOUT);
    assert_eq!(points, vec![(ts, 42.0)]);
    assert!(carbon.whisper_dir().join("harness/tcp/plain.wsp").is_file());
    assert_eq!(carbon.read_points("harness.tcp.plain"), points);
    assert!(carbon.read_points("harness.never.sent").is_empty());
}

#[test]
fn carbon_stores_a_udp_datagram() {
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    let ts = unix_now();
    send_udp(&carbon.addr(), &format!("harness.udp.float 43.5 {ts}\n"));
    let points = carbon.wait_for_points("harness.udp.float", 1, TIMEOUT);
    assert_eq!(points, vec![(ts, 43.5)]);
}

#[test]
fn carbon_stores_tagged_series_under_the_normalised_hash() {
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    let ts = unix_now();
    send_tcp(
        &carbon.addr(),
        &format!("harness.tagged;host=a;env=prod 7 {ts}\n"),
    );
    let points = carbon.wait_for_points("harness.tagged;env=prod;host=a", 1, TIMEOUT);
    assert_eq!(points, vec![(ts, 7.0)]);
    let h = "5d4bf8308b14e81c972814db55d61590d09ce03d81cda399c12ff54679a84e02";
    assert_eq!(
        carbon.whisper_files(),
        vec![PathBuf::from(format!(
            "_tagged/{}/{}/{h}.wsp",
            &h[..3],
            &h[3..6]
        ))]
    );
}

#[test]
fn carbon_keeps_several_points_and_logs_rejected_lines() {
    let Some(carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    let ts = unix_now() - 10;
    let payload: String = (0..5)
        .map(|i| format!("harness.series {} {}\n", i as f64 * 1.5, ts + i))
        .collect();
    send_tcp(&carbon.addr(), &format!("{payload}this line is bad\n"));
    let points = carbon.wait_for_points("harness.series", 5, TIMEOUT);
    let expected: Vec<(u32, f64)> = (0..5).map(|i| (ts + i, i as f64 * 1.5)).collect();
    assert_eq!(points, expected);

    let deadline = Instant::now() + TIMEOUT;
    while !carbon.listener_log().contains("invalid line") {
        assert!(
            Instant::now() < deadline,
            "no rejection in the listener log; full log:\n{}",
            carbon.console_log()
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(carbon.listener_log().contains("this line is bad"));
}

#[test]
fn carbon_servers_are_isolated_and_stopped_on_drop() {
    let Some(first) = CarbonServer::start_or_skip() else {
        return;
    };
    let second = CarbonServer::start();
    let ports = |c: &CarbonServer| [c.port(), c.pickle_port(), c.cache_query_port()];
    let all: std::collections::HashSet<u16> =
        ports(&first).into_iter().chain(ports(&second)).collect();
    assert_eq!(all.len(), 6, "ports must all differ");
    assert_ne!(first.state_dir(), second.state_dir());

    let ts = unix_now();
    send_tcp(&first.addr(), &format!("harness.iso.first 1 {ts}\n"));
    send_tcp(&second.addr(), &format!("harness.iso.second 2 {ts}\n"));
    assert_eq!(
        first.wait_for_points("harness.iso.first", 1, TIMEOUT),
        vec![(ts, 1.0)]
    );
    assert_eq!(
        second.wait_for_points("harness.iso.second", 1, TIMEOUT),
        vec![(ts, 2.0)]
    );
    assert_eq!(
        first.whisper_files(),
        vec![PathBuf::from("harness/iso/first.wsp")]
    );
    assert_eq!(
        second.whisper_files(),
        vec![PathBuf::from("harness/iso/second.wsp")]
    );

    let pid = first.pid();
    let state = first.state_dir().to_path_buf();
    let addr = first.addr();
    drop(first);
    assert!(
        !state.exists(),
        "state dir left behind: {}",
        state.display()
    );
    if PathBuf::from("/proc/self").exists() {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        assert!(!proc_dir.exists(), "carbon {pid} still running");
    }
    assert!(TcpStream::connect(addr).is_err(), "port still accepting");
}

// --- loopback listeners -------------------------------------------------------

#[test]
fn line_listener_records_bytes_and_drops_connections() {
    let listener = LineListener::start();
    assert_eq!(listener.addr().ip().to_string(), "127.0.0.1");
    assert_eq!(listener.connections(), 0);

    let mut first = TcpStream::connect(listener.addr()).unwrap();
    first.write_all(b"a.b 1 100\nc.d 2.5 101\npart").unwrap();
    assert_eq!(
        listener.wait_for_lines(2, TIMEOUT),
        vec!["a.b 1 100", "c.d 2.5 101"]
    );
    assert_eq!(listener.wait_for_connections(1, TIMEOUT), 1);
    first.write_all(b"ial 3 102\n").unwrap();
    assert_eq!(listener.wait_for_lines(3, TIMEOUT)[2], "partial 3 102");

    listener.drop_connections();
    // The server closed its side: the client sees EOF...
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(first.read(&mut buf).unwrap(), 0);
    // ...and writing fails soon (the first write may still be accepted
    // locally; the peer answers it with a reset).
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match first.write_all(b"lost 1 1\n") {
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                    "unexpected error {e}"
                );
                break;
            }
            Ok(()) => {
                assert!(Instant::now() < deadline, "writes never failed");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }

    let mut second = TcpStream::connect(listener.addr()).unwrap();
    second.write_all(b"e.f 4 103\n").unwrap();
    let lines = listener.wait_for_lines(4, TIMEOUT);
    assert_eq!(
        lines,
        vec!["a.b 1 100", "c.d 2.5 101", "partial 3 102", "e.f 4 103"]
    );
    assert_eq!(listener.connections(), 2);
    assert_eq!(
        listener.received(),
        "a.b 1 100\nc.d 2.5 101\npartial 3 102\ne.f 4 103\n"
    );
    // The port can be served again after the listener is gone.
    let port = listener.port();
    drop(listener);
    let again = LineListener::start_on(port);
    TcpStream::connect(again.addr())
        .unwrap()
        .write_all(b"g 5 104\n")
        .unwrap();
    assert_eq!(again.wait_for_lines(1, TIMEOUT), vec!["g 5 104"]);
}

#[test]
fn line_listener_lists_only_complete_lines() {
    let listener = LineListener::start();
    let mut client = TcpStream::connect(listener.addr()).unwrap();
    client.write_all(b"x 1 1\nno newline").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(listener.wait_for_lines(1, TIMEOUT), vec!["x 1 1"]);
    let deadline = Instant::now() + TIMEOUT;
    while listener.received() != "x 1 1\nno newline" {
        assert!(Instant::now() < deadline, "got {:?}", listener.received());
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(listener.lines(), vec!["x 1 1"]);
}

#[test]
fn udp_listener_records_datagrams() {
    let listener = UdpListener::start();
    let addr = listener.addr().to_string();
    send_udp(&addr, "a 1 1\nb 2 2\n");
    send_udp(&addr, "c 3 3");
    let lines = listener.wait_for_lines(3, TIMEOUT);
    assert_eq!(lines, vec!["a 1 1", "b 2 2", "c 3 3"]);
    assert_eq!(
        listener.datagrams(),
        vec![b"a 1 1\nb 2 2\n".to_vec(), b"c 3 3".to_vec()]
    );
    assert_eq!(listener.received(), "a 1 1\nb 2 2\nc 3 3");
    assert_eq!(listener.port(), listener.addr().port());
}

/// Run by [`a_skip_fails_under_require_and_is_loud_otherwise`] in a child
/// process: a test that cannot run (here: carbon "not installed").
#[test]
#[ignore = "run as a child process by a_skip_fails_under_require_and_is_loud_otherwise"]
fn skip_child() {
    if std::env::var_os("GRAPHYTE_SKIP_CHILD").is_none() {
        return;
    }
    let Some(_carbon) = CarbonServer::start_or_skip() else {
        return;
    };
    panic!("carbon started from a venv that does not exist");
}

/// The one rule for skips: under GRAPHYTE_REQUIRE_CARBON=1 (./scripts/test) a
/// test that cannot run fails with the reason; otherwise it passes with a
/// loud `*** SKIPPED` line on stderr (which ./scripts/test also rejects).
#[test]
fn a_skip_fails_under_require_and_is_loud_otherwise() {
    let run = |require: Option<&str>| {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "skip_child", "--ignored", "--test-threads", "1"])
            .env("GRAPHYTE_SKIP_CHILD", "1")
            .env("GRAPHYTE_CARBON_VENV", "/nonexistent/graphyte-venv");
        match require {
            Some(v) => command.env(support::REQUIRE_ENV, v),
            None => command.env_remove(support::REQUIRE_ENV),
        };
        let out = command.output().expect("run the child");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = run(Some("1"));
    assert!(!ok, "a skip under REQUIRE=1 must fail:\n{text}");
    assert!(
        text.contains("cannot run: carbon not available") && text.contains("/nonexistent"),
        "the failure says why:\n{text}"
    );
    let (ok, text) = run(None);
    assert!(ok, "without REQUIRE a skip passes:\n{text}");
    assert!(
        text.contains("*** SKIPPED: test `skip_child` did not run: carbon not available"),
        "a skip is loud:\n{text}"
    );
}

#[test]
fn a_reserved_port_refuses_connects_keeps_the_port_and_listens_on_it_later() {
    let reserved = support::sys::ReservedPort::new().unwrap();
    let addr = reserved.addr();
    let e = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    // No other socket can take it meanwhile (std binds with SO_REUSEADDR).
    assert!(std::net::TcpListener::bind(addr).is_err(), "port taken");
    let listener = LineListener::start_reserved(reserved);
    assert_eq!(listener.port(), addr.port());
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(b"a 1 1\n").unwrap();
    assert_eq!(listener.wait_for_lines(1, TIMEOUT), ["a 1 1"]);
}

#[test]
fn a_stopped_listener_keeps_its_port_reserved_until_it_comes_back() {
    let mut first = LineListener::start();
    let port = first.port();
    let mut client = TcpStream::connect(first.addr()).unwrap();
    client.write_all(b"a 1 1\n").unwrap();
    first.wait_for_lines(1, TIMEOUT);
    let reserved = first.stop_and_reserve();
    assert_eq!(reserved.port(), port);
    let e = TcpStream::connect(first.addr()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    let second = LineListener::start_reserved(reserved);
    TcpStream::connect(second.addr()).unwrap();
    second.wait_for_connections(1, TIMEOUT);
}

#[test]
fn drop_connections_counts_only_live_connections() {
    let listener = LineListener::start();
    let live = TcpStream::connect(listener.addr()).unwrap();
    let closed = TcpStream::connect(listener.addr()).unwrap();
    listener.wait_for_connections(2, TIMEOUT);
    closed.shutdown(Shutdown::Both).unwrap();
    drop(closed);
    // Let the listener's reader see the client's close.
    thread::sleep(Duration::from_millis(200));
    assert_eq!(listener.drop_connections(), 1, "one live connection cut");
    assert_eq!(listener.drop_connections(), 0, "nothing left to cut");
    drop(live);
}

#[test]
fn a_capped_receive_buffer_blocks_a_writer_after_a_few_megabytes() {
    let (listener, granted) = LineListener::start_with_receive_buffer(64 * 1024);
    assert!(granted <= 256 * 1024, "granted {granted}");
    listener.pause_reading();
    let mut stream = TcpStream::connect(listener.addr()).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut written = 0usize;
    let blocked = loop {
        match stream.write(&chunk) {
            Ok(n) => written += n,
            Err(e) => break e,
        }
        assert!(written < 64 << 20, "64 MB written into a paused listener");
    };
    assert!(
        matches!(blocked.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{blocked}"
    );
    eprintln!("a paused listener with a capped buffer took {written} bytes");
}

#[test]
fn a_blackhole_never_completes_a_connect() {
    let blackhole = support::faults::Blackhole::start().expect("a blackhole on loopback");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], blackhole.port()));
    let started = Instant::now();
    let e = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert!(started.elapsed() >= Duration::from_millis(300));
}

// --- the child-server harness (support::child) ---------------------------

/// A tiny server for the harness tests: binds 127.0.0.1:PORT (argv[1]),
/// listens, says so, and waits; on a taken port Python prints `OSError:
/// [Errno 98] Address already in use` and exits 1. `FAIL` as the port
/// exits 3 with a message of its own.
const TINY_SERVER: &str = r#"
import socket, sys, time
if sys.argv[1] == "FAIL":
    print("tiny server: refusing to start", flush=True)
    sys.exit(3)
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("tiny server listening", flush=True)
time.sleep(120)
"#;

/// The Python to run [`TINY_SERVER`] with, or `None` after a skip.
fn python() -> Option<PathBuf> {
    support::or_skip(
        support::child::locate_binary("GRAPHYTE_PYTHON", "python3", ".venv/bin/python"),
        "no Python to run the harness's tiny server",
    )
}

fn tiny_server(python: &std::path::Path, dir: &std::path::Path, port: &str) -> Launch {
    let mut launch = Launch::new("tiny-server", python, dir)
        .arg("-c")
        .arg(TINY_SERVER)
        .arg(port)
        .timeout(Duration::from_secs(10))
        .clash_marker("address already in use")
        .ready(Ready::LogLine("tiny server listening".into()));
    if let Ok(port) = port.parse() {
        launch = launch.ready(Ready::Sockets(vec![(Proto::Tcp, port)]));
    }
    launch
}

#[test]
fn the_harness_waits_until_ready_and_kills_on_drop() {
    let Some(python) = python() else { return };
    let dir = support::child::fresh_dir("harness");
    let port = support::child::pick_ports(&[false])[0];
    let mut server = ChildServer::spawn(&tiny_server(&python, &dir, &port.to_string()))
        .unwrap_or_else(|e| panic!("{}", e.message()));
    // Ready means listening: a connect succeeds at once.
    TcpStream::connect(("127.0.0.1", port)).expect("connect to the tiny server");
    assert!(server.log().contains("tiny server listening"));
    assert!(server.is_running());
    let pid = server.pid();
    assert!(PathBuf::from(format!("/proc/{pid}")).exists());
    drop(server);
    // Killed and reaped: the process is gone, and so is its port.
    assert!(!PathBuf::from(format!("/proc/{pid}")).exists(), "pid {pid}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    support::child::remove_dir(&dir, "harness");
}

#[test]
fn the_harness_retries_on_a_port_clash_and_gives_up_on_anything_else() {
    let Some(python) = python() else { return };
    let dir = support::child::fresh_dir("harness");
    // The first attempt gets a port someone else listens on.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let mut attempts = Vec::new();
    let (server, port) = support::child::retry_on_clash("tiny-server", 3, || {
        let port = if attempts.is_empty() {
            taken_port
        } else {
            support::child::pick_ports(&[false])[0]
        };
        let result = ChildServer::spawn(&tiny_server(&python, &dir, &port.to_string()));
        attempts.push(match &result {
            Ok(_) => "started".to_owned(),
            Err(StartError::PortClash(why)) => format!("clash: {why}"),
            Err(StartError::Fatal(why)) => format!("fatal: {why}"),
        });
        result.map(|server| (server, port))
    });
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(
        attempts[0].starts_with("clash: ") && attempts[0].contains("Address already in use"),
        "the clash's message carries the server's log: {attempts:?}"
    );
    assert_ne!(port, taken_port);
    TcpStream::connect(("127.0.0.1", port)).expect("the second attempt listens");
    drop(server);

    // Any other failure is fatal, with the log in the message.
    match ChildServer::spawn(&tiny_server(&python, &dir, "FAIL")) {
        Err(StartError::Fatal(why)) => {
            assert!(why.contains("exit status: 3"), "{why}");
            assert!(why.contains("tiny server: refusing to start"), "{why}");
        }
        Err(StartError::PortClash(why)) => panic!("a clash? {why}"),
        Ok(_) => panic!("the failing server started"),
    }
    support::child::remove_dir(&dir, "harness");
}

#[test]
fn a_child_dies_with_the_thread_that_started_it() {
    let Some(python) = python() else { return };
    let dir = support::child::fresh_dir("harness");
    let port = support::child::pick_ports(&[false])[0];
    let launch = tiny_server(&python, &dir, &port.to_string());
    // Started on a thread that then ends, as if the test process died:
    // PR_SET_PDEATHSIG kills it, though its value lives on.
    let mut server =
        thread::spawn(move || ChildServer::spawn(&launch).map_err(|e| format!("{e:?}")))
            .join()
            .unwrap()
            .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while server.is_running() {
        assert!(
            Instant::now() < deadline,
            "still running after its thread ended"
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    support::child::remove_dir(&dir, "harness");
}

#[test]
fn a_failing_test_keeps_the_state_directory() {
    struct Guard(PathBuf);
    impl Drop for Guard {
        fn drop(&mut self) {
            support::child::remove_dir(&self.0, "harness");
        }
    }
    let dir = support::child::fresh_dir("harness");
    let kept = dir.clone();
    let panicked = std::panic::catch_unwind(move || {
        let _guard = Guard(kept);
        panic!("a failing test");
    });
    assert!(panicked.is_err());
    assert!(dir.is_dir(), "removed although the test failed");
    // Without a panic it goes.
    drop(Guard(dir.clone()));
    assert!(!dir.exists());
}
