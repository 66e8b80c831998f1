//! The real TCP and UDP paths against loopback listeners the test controls:
//! exact bytes, one persistent connection, reconnects, refusals, shutdown.

mod support;

use std::time::Duration;

use graphyte::{Config, Error, Protocol, Sender};
use support::{LineListener, UdpListener};

const TS: u64 = 1_700_000_000;
const WAIT: Duration = Duration::from_secs(5);

fn tcp(listener: &LineListener) -> Config {
    Config::new("127.0.0.1")
        .port(listener.port())
        .timeout(Duration::from_secs(2))
}

#[test]
fn sync_sends_share_one_persistent_connection() {
    let listener = LineListener::start();
    let s = Sender::new(tcp(&listener).prefix("loop")).unwrap();
    for i in 0..100 {
        s.send_at("m", i, TS).unwrap();
    }
    let lines = listener.wait_for_lines(100, WAIT);
    let expected: Vec<String> = (0..100).map(|i| format!("loop.m {i} 1700000000")).collect();
    assert_eq!(lines, expected);
    assert_eq!(listener.connections(), 1, "one connection for many sends");
}

#[test]
fn sync_reconnects_after_the_server_drops_the_connection() {
    let listener = LineListener::start();
    let s = Sender::new(tcp(&listener)).unwrap();
    s.send_at("before", 1, TS).unwrap();
    listener.wait_for_lines(1, WAIT);
    listener.drop_connections();
    // Give the FIN time to arrive; the sender checks for it before writing.
    std::thread::sleep(Duration::from_millis(100));
    for i in 0..3 {
        s.send_at("after", i, TS).unwrap();
    }
    let lines = listener.wait_for_lines(4, WAIT);
    assert_eq!(
        lines,
        [
            "before 1 1700000000",
            "after 0 1700000000",
            "after 1 1700000000",
            "after 2 1700000000"
        ],
        "nothing lost across the reconnect"
    );
    assert_eq!(listener.connections(), 2);
}

#[test]
fn refused_input_writes_nothing() {
    let listener = LineListener::start();
    let s = Sender::new(tcp(&listener)).unwrap();
    assert!(matches!(
        s.send_at("a\nb", 1, TS),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        s.send_tagged_at("m", 1, &[("k", "v\n")], TS),
        Err(Error::InvalidTag { .. })
    ));
    assert!(matches!(
        s.send_at("m", f64::INFINITY, TS),
        Err(Error::InvalidValue { .. })
    ));
    assert!(matches!(
        s.send_at("m", 1, 0),
        Err(Error::InvalidTimestamp { .. })
    ));
    s.send_at("good", 1, TS).unwrap();
    assert_eq!(listener.wait_for_lines(1, WAIT), ["good 1 1700000000"]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        listener.received(),
        "good 1 1700000000\n",
        "only the valid line arrived"
    );
}

#[test]
fn sync_send_to_a_closed_port_returns_the_error_with_the_address() {
    // Bound, not listening: refused, and no parallel test can take it.
    let closed = support::faults::closed_port();
    let port = closed.port();
    let s = Sender::new(Config::new("127.0.0.1").port(port)).unwrap();
    match s.send_at("m", 1, TS) {
        Err(Error::Io { addr, .. }) => assert_eq!(addr, format!("127.0.0.1:{port}")),
        other => panic!("{other:?}"),
    }
    // During the backoff the next send fails at once instead of blocking.
    let started = std::time::Instant::now();
    assert!(s.send_at("m", 1, TS).is_err());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn interval_mode_delivers_everything_queued_on_shutdown() {
    let listener = LineListener::start();
    let s = Sender::new(
        tcp(&listener)
            .interval(Duration::from_secs(3600))
            .batch_size(7),
    )
    .unwrap();
    for i in 0..1000 {
        s.send_at(&format!("series.{}", i % 10), i, TS).unwrap();
    }
    s.stop().unwrap();
    let lines = listener.wait_for_lines(1000, WAIT);
    assert_eq!(lines.len(), 1000);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line, &format!("series.{} {i} 1700000000", i % 10));
    }
    assert_eq!(listener.connections(), 1);
    assert_eq!(s.stats().sent, 1000);
}

#[test]
fn interval_mode_reconnects_and_retries() {
    let listener = LineListener::start();
    let s = Sender::new(tcp(&listener).interval(Duration::from_millis(100))).unwrap();
    s.send_at("a", 1, TS).unwrap();
    listener.wait_for_lines(1, WAIT);
    listener.drop_connections();
    std::thread::sleep(Duration::from_millis(100));
    for i in 0..50 {
        s.send_at("b", i, TS).unwrap();
    }
    s.flush().unwrap();
    let lines = listener.wait_for_lines(51, WAIT);
    assert_eq!(lines.len(), 51);
    assert!(listener.connections() >= 2);
    assert_eq!(s.stats().dropped, 0);
}

#[test]
fn interval_mode_keeps_lines_while_the_server_is_down() {
    // A port bound but not listening: the server is "down" at start, and
    // the listener below takes this very socket (no window to lose it in).
    let closed = support::faults::closed_port();
    let port = closed.port();
    let s = Sender::new(
        Config::new("127.0.0.1")
            .port(port)
            .interval(Duration::from_millis(100))
            .timeout(Duration::from_secs(1)),
    )
    .unwrap();
    for i in 0..20 {
        s.send_at("kept", i, TS).unwrap(); // never blocks, never fails: queued
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.stats().queued, 20);
    let listener = LineListener::start_reserved(closed);
    // The connect backoff is still under the 1 s timeout after 300 ms of failures.
    s.flush().unwrap();
    let lines = listener.wait_for_lines(20, WAIT);
    let expected: Vec<String> = (0..20).map(|i| format!("kept {i} 1700000000")).collect();
    assert_eq!(lines, expected);
}

#[test]
fn ipv6_loopback_works() {
    // No IPv6 loopback: a failure under ./scripts/test, a loud skip otherwise.
    let Some(listener) = support::or_skip(
        std::net::TcpListener::bind("[::1]:0"),
        "no IPv6 loopback on this machine (bind [::1]:0)",
    ) else {
        return;
    };
    let port = listener.local_addr().unwrap().port();
    let s = Sender::new(format!("[::1]:{port}")).unwrap();
    s.send_at("v6", 6, TS).unwrap();
    let (stream, _) = listener.accept().unwrap();
    s.stop().unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut &stream, &mut got).unwrap();
    assert_eq!(got, "v6 6 1700000000\n");
}

#[test]
fn udp_packs_lines_into_datagrams_without_splitting_them() {
    let listener = UdpListener::start();
    let s = Sender::new(
        Config::new("127.0.0.1")
            .port(listener.port())
            .protocol(Protocol::Udp)
            .udp_max_datagram(100)
            .interval(Duration::from_secs(3600)),
    )
    .unwrap();
    for i in 0..40 {
        s.send_at("udp.metric", i, TS).unwrap();
    }
    s.stop().unwrap();
    let lines = listener.wait_for_lines(40, WAIT);
    let expected: Vec<String> = (0..40)
        .map(|i| format!("udp.metric {i} 1700000000"))
        .collect();
    assert_eq!(lines, expected);
    for d in listener.datagrams() {
        assert!(d.len() <= 100, "datagram of {} bytes", d.len());
        assert!(d.ends_with(b"\n"), "a datagram ends on a line boundary");
    }
    assert!(listener.datagrams().len() > 1);
}

#[test]
fn udp_sync_send() {
    let listener = UdpListener::start();
    let s = Sender::new(
        Config::new("127.0.0.1")
            .port(listener.port())
            .protocol(Protocol::Udp),
    )
    .unwrap();
    s.send_at("u", 1.5, TS).unwrap();
    assert_eq!(listener.wait_for_lines(1, WAIT), ["u 1.5 1700000000"]);
}
