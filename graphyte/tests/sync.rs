//! Synchronous mode through the capture transport.

use std::io;

use graphyte::{CaptureTransport, Config, Error, Sender};

const TS: u64 = 1_700_000_000;

#[test]
fn each_send_is_written_at_once_with_prefix_and_tags() {
    let capture = CaptureTransport::new();
    let s = Sender::new(
        Config::new("unused")
            .prefix("system.sync")
            .tag("env", "prod")
            .transport(capture.clone()),
    )
    .unwrap();
    assert_eq!(s.interval(), None);
    s.send_at("foo.bar", 42, TS).unwrap();
    assert_eq!(capture.batches(), 1);
    s.send_tagged_at("foo.bar", 1, &[("env", "dev"), ("host", "a")], TS)
        .unwrap();
    assert_eq!(
        capture.lines(),
        [
            "system.sync.foo.bar;env=prod 42 1700000000",
            "system.sync.foo.bar;env=dev;host=a 1 1700000000",
        ]
    );
}

#[test]
fn errors_are_returned_with_the_address() {
    let capture = CaptureTransport::new();
    let s = Sender::new(Config::new("unused").transport(capture.clone())).unwrap();
    capture.fail_with(Some(io::ErrorKind::ConnectionRefused));
    match s.send_at("m", 1, TS) {
        Err(Error::Io { addr, source }) => {
            assert_eq!(addr, "capture");
            assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.stats().send_errors, 1);
    capture.fail_with(None);
    s.send_at("m", 2, TS).unwrap();
    assert_eq!(capture.lines(), ["m 2 1700000000"]);
}

#[test]
fn send_without_timestamp_uses_now() {
    let capture = CaptureTransport::new();
    let s = Sender::new(Config::new("unused").transport(capture.clone())).unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    s.send("m", 7u8).unwrap();
    let line = capture.lines().pop().unwrap();
    let ts: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    // `Timestamp::now` reads the coarse clock, which may still show the
    // second before for a few milliseconds after the system clock turned
    // (documented on `Timestamp::now`).
    assert!(ts + 1 >= before && ts <= before + 2, "{line}");
    assert!(line.starts_with("m 7 "));
}

#[test]
fn bad_config_is_refused_up_front() {
    for config in [
        Config::new("host:notaport"),
        Config::new("h").prefix("a..b"),
        Config::new("h").tag("k", ""),
    ] {
        assert!(Sender::new(config).is_err());
    }
}

#[test]
fn a_system_time_timestamp_is_truncated_to_the_second() {
    let capture = CaptureTransport::new();
    let s = Sender::new(Config::new("unused").transport(capture.clone())).unwrap();
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_750);
    s.send_at("m", 1, t).unwrap();
    assert_eq!(capture.lines(), ["m 1 1700000000"]);
}

/// Settings that cannot work are refused when the sender is made, with a
/// message that says what is wrong, instead of failing at the first send.
#[test]
fn unusable_settings_are_refused_up_front() {
    let refused = |config: Config| match Sender::new(config) {
        Err(Error::InvalidConfig(why)) => why,
        other => panic!("expected InvalidConfig, got {other:?}"),
    };
    assert_eq!(
        refused(Config::new("http://127.0.0.1:2003")),
        "host \"http://127.0.0.1:2003\": a URL scheme (http://) is not part of a host; give host or host:port"
    );
    assert_eq!(
        refused(Config::new("127.0.0.1:notaport")),
        "host \"127.0.0.1:notaport\": invalid port \"notaport\" (a number from 1 to 65535)"
    );
    assert_eq!(
        refused(Config::new("127.0.0.1").port(0)),
        "port 0 is not a port to send to"
    );
    let interval = |c: Config| c.interval(std::time::Duration::from_secs(1));
    assert_eq!(
        refused(interval(Config::new("127.0.0.1")).queue_size(0)),
        "queue_size must be at least 1 line"
    );
    assert_eq!(
        refused(interval(Config::new("127.0.0.1")).batch_size(0)),
        "batch_size must be at least 1 line"
    );
    let e = Sender::new(Config::new("graphite .example.com")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid graphyte configuration: host \"graphite .example.com\": contains whitespace"
    );
}

/// Tags may be owned strings, as they come from configuration.
#[test]
fn tags_from_owned_strings() {
    let capture = CaptureTransport::new();
    let s = Sender::new(Config::new("unused").transport(capture.clone())).unwrap();
    let tags: Vec<(String, String)> =
        vec![("host".into(), "h1".into()), ("env".into(), "prod".into())];
    s.send_tagged_at("m", 1, &tags, TS).unwrap();
    let mixed = [("region", String::from("eu"))];
    s.send_tagged_at("m", 2, &mixed, TS).unwrap();
    s.send_tagged_at("m", 3, &[("env", "dev")], TS).unwrap();
    assert_eq!(
        capture.lines(),
        [
            "m;env=prod;host=h1 1 1700000000",
            "m;region=eu 2 1700000000",
            "m;env=dev 3 1700000000",
        ]
    );
}

/// Milliseconds, whatever integer type they come in, reach graphyte's own
/// range check and its hint.
#[test]
fn millisecond_timestamps_of_any_integer_type_are_refused_with_the_hint() {
    let capture = CaptureTransport::new();
    let s = Sender::new(Config::new("unused").transport(capture.clone())).unwrap();
    let since_epoch = std::time::Duration::from_secs(TS);
    let as_millis: u128 = since_epoch.as_millis();
    let as_millis_u64: u64 = 1_700_000_000_000;
    let as_millis_i64: i64 = 1_700_000_000_000;
    for e in [
        s.send_at("m", 1, as_millis).unwrap_err(),
        s.send_at("m", 1, as_millis_u64).unwrap_err(),
        s.send_at("m", 1, as_millis_i64).unwrap_err(),
        s.send_at("m", 1, 1_700_000_000_000_i64).unwrap_err(),
    ] {
        match e {
            Error::InvalidTimestamp {
                timestamp, reason, ..
            } => {
                assert_eq!(timestamp, 1_700_000_000_000);
                assert!(
                    reason.ends_with("was it given in milliseconds?"),
                    "{reason}"
                );
            }
            other => panic!("expected InvalidTimestamp, got {other:?}"),
        }
    }
    s.send_at("m", 1, since_epoch.as_secs()).unwrap();
    s.send_at("m", 2, std::time::UNIX_EPOCH + since_epoch)
        .unwrap();
    assert_eq!(capture.lines(), ["m 1 1700000000", "m 2 1700000000"]);
}

/// `name` is Graphite's own tag for the path: carbon would store
/// `x;name=a` and `x;name=b` as one series. Refused wherever tags come in.
#[test]
fn the_tag_name_is_refused() {
    let capture = CaptureTransport::new();
    let s = Sender::new(Config::new("unused").transport(capture.clone())).unwrap();
    for e in [
        s.send_tagged_at("jobs.done", 1, &[("name", "resize")], TS)
            .unwrap_err(),
        s.send_at("jobs.done;name=resize", 1, TS).unwrap_err(),
    ] {
        match e {
            Error::InvalidTag { key, reason, .. } => {
                assert_eq!(key, "name");
                assert_eq!(
                    reason,
                    "tag key 'name' is reserved by Graphite for the metric's path"
                );
            }
            other => panic!("expected InvalidTag, got {other:?}"),
        }
    }
    assert!(matches!(
        Sender::new(
            Config::new("unused")
                .tag("name", "x")
                .transport(capture.clone())
        ),
        Err(Error::InvalidTag { .. })
    ));
    assert!(capture.lines().is_empty());
}
