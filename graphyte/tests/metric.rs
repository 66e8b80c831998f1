//! `Metric` handles: the same lines as `Sender::send`, refusals at creation,
//! tags in Carbon's order, across reconnects and after the sender stopped.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use graphyte::{CaptureTransport, Config, Error, Sender};
use support::LineListener;

const TS: u64 = 1_700_000_000;

fn capture_sender(config: Config) -> (Sender, CaptureTransport) {
    let capture = CaptureTransport::new();
    let sender = Sender::new(config.transport(capture.clone())).unwrap();
    (sender, capture)
}

#[test]
fn a_metric_sends_exactly_what_send_sends() {
    let config = || Config::new("unused").prefix("app").tag("host", "h1");
    let (by_send, sent) = capture_sender(config());
    let (by_metric, via_metric) = capture_sender(config());
    let names = ["a", "a.b.c", "x;env=prod", "db.query;db=users;a-b=y"];
    let tags: [&[(&str, &str)]; 3] = [&[], &[("env", "dev")], &[("host", "h2"), ("a", "x")]];
    for name in names {
        for tags in tags {
            let metric = by_metric.metric_tagged(name, tags).unwrap();
            for (i, value) in [0.0, 1.5, -3.25, 1e16, 0.1].into_iter().enumerate() {
                by_send
                    .send_tagged_at(name, value, tags, TS + i as u64)
                    .unwrap();
                metric.send_at(value, TS + i as u64).unwrap();
            }
            by_send.send_tagged_at(name, u64::MAX, tags, TS).unwrap();
            metric.send_at(u64::MAX, TS).unwrap();
        }
    }
    assert_eq!(via_metric.lines(), sent.lines());
    assert_eq!(sent.lines().len(), names.len() * tags.len() * 6);
    // Tags in Carbon's canonical order, call tags winning over default ones.
    let metric = by_metric
        .metric_tagged("q", &[("host", "h2"), ("a-b", "y"), ("a", "x")])
        .unwrap();
    metric.send_at(1, TS).unwrap();
    assert_eq!(
        via_metric.lines().last().unwrap(),
        "app.q;a-b=y;a=x;host=h2 1 1700000000"
    );
}

#[test]
fn bad_names_and_tags_are_refused_when_the_metric_is_made() {
    let (sender, capture) = capture_sender(Config::new("unused"));
    assert!(matches!(
        sender.metric("bad name"),
        Err(Error::InvalidName { name, reason }) if name == "bad name" && reason == "must not contain whitespace"
    ));
    assert!(matches!(
        sender.metric_tagged("ok", &[("env", "a b")]),
        Err(Error::InvalidTag { .. })
    ));
    let long = "x".repeat(graphyte::MAX_LINE_LEN);
    assert!(matches!(
        sender.metric(&long),
        Err(Error::LineTooLong { .. })
    ));
    // Values and timestamps are checked per send, as by `send`.
    let metric = sender.metric("ok").unwrap();
    assert!(matches!(
        metric.send_at(f64::NAN, TS),
        Err(Error::InvalidValue { .. })
    ));
    assert!(matches!(
        metric.send_at(1, 1_700_000_000_000_u64),
        Err(Error::InvalidTimestamp { .. })
    ));
    assert!(capture.lines().is_empty());
    assert_eq!(metric.name(), "ok");
}

#[test]
fn a_metric_works_across_reconnects_and_after_stop() {
    let listener = LineListener::start();
    let sender = Sender::new(
        Config::new("127.0.0.1")
            .port(listener.port())
            .interval(Duration::from_secs(3600)),
    )
    .unwrap();
    let metric = sender.metric("m").unwrap();
    let clone = metric.clone();
    metric.send_at(1, TS).unwrap();
    sender.flush().unwrap();
    listener.wait_for_lines(1, Duration::from_secs(5));
    listener.drop_connections();
    clone.send_at(2, TS).unwrap();
    sender.flush().unwrap();
    sender.stop().unwrap();
    // After stop: synchronous, like `send`.
    metric.send_at(3, TS).unwrap();
    let lines = listener.wait_for_lines(3, Duration::from_secs(5));
    assert_eq!(
        lines,
        ["m 1 1700000000", "m 2 1700000000", "m 3 1700000000"]
    );
    assert!(listener.connections() >= 2, "reconnected");
    assert_eq!(sender.stats().sent, 3);
}

#[test]
fn metric_is_clone_send_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<graphyte::Metric>();
}
