//! graphyte into VictoriaMetrics (issue 20): thousands of plain and tagged
//! series from a synchronous and from an interval `Sender`, read back
//! through `/api/v1/export`: every series exactly once, with its path as
//! `__name__` and its tags as labels (given here out of canonical order),
//! the exact value at the exact timestamp, and nothing else under the
//! prefix. Values VictoriaMetrics rounds (it keeps 12 significant digits)
//! are stored exactly as the same value in a raw line is.
//!
//! Skips loudly without VictoriaMetrics; fails under ./scripts/test.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use graphyte::Sender;
use support::unix_now;
use support::vm::{labels_of, same_stored_value, VmServer};

const PLAIN: u64 = 1500;
const TAGGED: u64 = 500;

fn plain_value(i: u64) -> f64 {
    // Exact in binary, not an integer: float formatting too.
    i as f64 + 0.25
}

fn tagged_value(i: u64) -> i64 {
    -(i as i64) * 3 - 1
}

/// Per-call tags, deliberately not in canonical order.
fn tags(i: u64) -> [(String, String); 3] {
    [
        ("shard".to_owned(), format!("s{}", i % 7)),
        ("host".to_owned(), format!("web-{i}")),
        ("env".to_owned(), "test".to_owned()),
    ]
}

/// Every series with its value, as Graphite names.
fn expected(prefix: &str) -> Vec<(String, f64)> {
    let plain = (0..PLAIN).map(|i| (format!("{prefix}.p{i}.value"), plain_value(i)));
    let tagged = (0..TAGGED).map(|i| {
        (
            format!("{prefix}.t{i};env=test;host=web-{i};shard=s{}", i % 7),
            tagged_value(i) as f64,
        )
    });
    plain.chain(tagged).collect()
}

fn send_all(sender: &Sender, ts: u32) {
    for i in 0..PLAIN {
        sender
            .send_at(&format!("p{i}.value"), plain_value(i), ts)
            .unwrap();
    }
    for i in 0..TAGGED {
        sender
            .send_tagged_at(&format!("t{i}"), tagged_value(i), &tags(i), ts)
            .unwrap();
    }
}

/// Waits until every series is stored, then checks each one and that
/// nothing else is under the prefix.
fn check(vm: &VmServer, prefix: &str, ts: u32, what: &str) {
    let expected = expected(prefix);
    let names: Vec<String> = expected.iter().map(|(n, _)| n.clone()).collect();
    let stored = vm.wait_for(prefix, &names, Duration::from_secs(60), |_, p| {
        !p.is_empty()
    });
    let mut problems = Vec::new();
    for (name, value) in &expected {
        let points = &stored.points[name];
        if points != &[(u64::from(ts) * 1000, *value)] {
            problems.push(format!(
                "{name}: stored {points:?}, expected [({}, {value})]",
                u64::from(ts) * 1000
            ));
        }
    }
    let others = stored.others(&names);
    assert!(
        problems.is_empty() && others.is_empty(),
        "{what}: {} of {} series wrong, first ones:\n{}\nseries not sent: {:?}",
        problems.len(),
        expected.len(),
        problems[..problems.len().min(10)].join("\n"),
        &others[..others.len().min(10)]
    );
    assert_eq!(stored.all.len(), expected.len(), "{what}");
    // Tags became labels, path the name.
    let t3 = labels_of(&format!("{prefix}.t3;env=test;host=web-3;shard=s3"));
    assert_eq!(
        stored.all[&t3].labels.keys().collect::<Vec<_>>(),
        ["__name__", "env", "host", "shard"]
    );
    assert_eq!(stored.all[&t3].labels["__name__"], format!("{prefix}.t3"));
    eprintln!(
        "[vm] {what}: {} series ({PLAIN} plain, {TAGGED} tagged) stored exactly",
        expected.len()
    );
}

#[test]
fn sync_sender_series_are_stored_exactly() {
    let Some(vm) = VmServer::start_or_skip() else {
        return;
    };
    let ts = unix_now() - 120;
    let sender = Sender::new(vm.config().prefix("vm.sync")).unwrap();
    send_all(&sender, ts);
    let stats = sender.stats();
    assert_eq!((stats.sent, stats.dropped), (PLAIN + TAGGED, 0));
    check(&vm, "vm.sync", ts, "sync sender");
}

#[test]
fn interval_sender_series_are_stored_exactly() {
    let Some(vm) = VmServer::start_or_skip() else {
        return;
    };
    let ts = unix_now() - 120;
    let sender = Sender::new(
        vm.config()
            .prefix("vm.interval")
            .interval(Duration::from_millis(200)),
    )
    .unwrap();
    send_all(&sender, ts);
    sender.stop().unwrap();
    let stats = sender.stats();
    assert_eq!(
        (stats.sent, stats.dropped, stats.queued),
        (PLAIN + TAGGED, 0, 0)
    );
    check(&vm, "vm.interval", ts, "interval sender");
}

/// A value graphyte sends, and the text a raw line carries for it.
enum Sent {
    Float(f64),
    Unsigned(u64),
    Signed(i64),
}

impl Sent {
    fn text(&self) -> String {
        match self {
            Sent::Float(v) => format!("{v:?}"),
            Sent::Unsigned(v) => v.to_string(),
            Sent::Signed(v) => v.to_string(),
        }
    }

    fn as_f64(&self) -> f64 {
        match self {
            Sent::Float(v) => *v,
            Sent::Unsigned(v) => *v as f64,
            Sent::Signed(v) => *v as f64,
        }
    }
}

#[test]
fn values_are_stored_as_a_raw_line_of_the_same_value_is() {
    let Some(vm) = VmServer::start_or_skip() else {
        return;
    };
    let cases = [
        Sent::Float(std::f64::consts::PI),
        Sent::Float(0.1),
        Sent::Float(-2.5e-7),
        Sent::Float(123_456_789.123_456_78),
        Sent::Float(1e300),
        Sent::Float(-0.000_123_456_789_012_345),
        Sent::Unsigned((1 << 53) + 1),
        Sent::Signed(-(1 << 53) - 1),
        Sent::Unsigned(1_000_000_000_000),
        Sent::Signed(0),
    ];
    let ts = unix_now() - 60;
    let sender = Sender::new(vm.config().prefix("vm.values.g")).unwrap();
    let mut raw = TcpStream::connect(("127.0.0.1", vm.port())).unwrap();
    for (i, case) in cases.iter().enumerate() {
        let name = format!("c{i}");
        match case {
            Sent::Float(v) => sender.send_at(&name, *v, ts),
            Sent::Unsigned(v) => sender.send_at(&name, *v, ts),
            Sent::Signed(v) => sender.send_at(&name, *v, ts),
        }
        .unwrap();
        writeln!(raw, "vm.values.r.{name} {} {ts}", case.text()).unwrap();
    }
    sender.flush().unwrap();
    raw.flush().unwrap();
    drop(raw);
    let names: Vec<String> = (0..cases.len())
        .flat_map(|i| [format!("vm.values.g.c{i}"), format!("vm.values.r.c{i}")])
        .collect();
    let stored = vm.wait_for("vm.values", &names, Duration::from_secs(30), |_, p| {
        !p.is_empty()
    });
    let mut rounded = 0;
    for (i, case) in cases.iter().enumerate() {
        let ours = &stored.points[&format!("vm.values.g.c{i}")];
        let theirs = &stored.points[&format!("vm.values.r.c{i}")];
        assert_eq!(ours.len(), 1, "c{i} ({}): {ours:?}", case.text());
        assert_eq!(ours, theirs, "c{i} ({}): graphyte's vs raw", case.text());
        let (when, value) = ours[0];
        assert_eq!(when, u64::from(ts) * 1000);
        assert!(
            same_stored_value(case.as_f64(), value),
            "c{i}: sent {}, stored {value}: more than 12 significant digits apart",
            case.text()
        );
        if value != case.as_f64() {
            rounded += 1;
        }
    }
    // pi and the long fractions lose digits; VictoriaMetrics says so.
    // (Written as text: clippy reads the literal as an approximate PI.)
    let pi = stored.points["vm.values.g.c0"][0].1;
    assert_eq!(pi, "3.141592653589".parse::<f64>().unwrap(), "pi as stored");
    assert!(rounded >= 2, "only {rounded} values rounded");
    assert_eq!(stored.all.len(), names.len());
}
