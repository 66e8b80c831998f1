//! Through carbon-c-relay to two carbon-caches (issue 14): thousands of
//! plain and tagged series, from a synchronous and from an interval
//! `Sender`, each land in exactly one of the two caches (never both, never
//! neither), with the exact value at the exact timestamp, and nothing else
//! lands anywhere. The relay hashes each series (`fnv1a_ch`) on its full
//! name, tags included; graphyte renders tags in carbon's canonical order,
//! so the per-call tags are given here in another order on purpose.
//!
//! Prints the split between the caches (`[relay] ...`, `--nocapture`).
//! Skips loudly without carbon or the relay; fails under ./scripts/test.

mod support;

use std::time::Duration;

use graphyte::Sender;
use support::relay::Topology;
use support::unix_now;

const PLAIN: u64 = 1500;
const TAGGED: u64 = 500;

/// The series of one run: (full name as carbon stores it, value), and how
/// to send them.
struct Series {
    prefix: &'static str,
    ts: u32,
}

impl Series {
    fn plain_name(&self, i: u64) -> String {
        format!("p{i}.value")
    }

    /// Exact in binary, and not an integer: checks float formatting too.
    fn plain_value(i: u64) -> f64 {
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

    /// Every series with its value, under carbon's (canonical) name.
    fn expected(&self) -> Vec<(String, f64)> {
        let plain = (0..PLAIN).map(|i| {
            (
                format!("{}.{}", self.prefix, self.plain_name(i)),
                Self::plain_value(i),
            )
        });
        let tagged = (0..TAGGED).map(|i| {
            (
                format!(
                    "{}.t{i};env=test;host=web-{i};shard=s{}",
                    self.prefix,
                    i % 7
                ),
                Self::tagged_value(i) as f64,
            )
        });
        plain.chain(tagged).collect()
    }

    fn send_all(&self, sender: &Sender) {
        for i in 0..PLAIN {
            sender
                .send_at(&self.plain_name(i), Self::plain_value(i), self.ts)
                .unwrap();
        }
        for i in 0..TAGGED {
            let tags = Self::tags(i);
            sender
                .send_tagged_at(&format!("t{i}"), Self::tagged_value(i), &tags, self.ts)
                .unwrap();
        }
    }
}

/// Waits until every series is on disk, then checks where and what.
fn check(topology: &Topology, series: &Series, what: &str) {
    let expected = series.expected();
    let per_cache = topology.check_single_points(what, &expected, series.ts);
    let total = expected.len();
    eprintln!(
        "[relay] {what}: {total} series ({PLAIN} plain, {TAGGED} tagged): cache 0 got {} ({:.1} %), cache 1 got {} ({:.1} %), none in both or neither",
        per_cache[0],
        100.0 * per_cache[0] as f64 / total as f64,
        per_cache[1],
        100.0 * per_cache[1] as f64 / total as f64,
    );
    topology.assert_both_caches_share(what, per_cache);
}

#[test]
fn sync_sender_series_land_in_exactly_one_cache() {
    let Some(topology) = Topology::start_or_skip() else {
        return;
    };
    let series = Series {
        prefix: "relay.sync",
        ts: unix_now() - 120,
    };
    let sender = Sender::new(topology.config().prefix(series.prefix)).unwrap();
    series.send_all(&sender);
    let stats = sender.stats();
    assert_eq!((stats.sent, stats.dropped), (PLAIN + TAGGED, 0));
    check(&topology, &series, "sync sender");
}

#[test]
fn interval_sender_series_land_in_exactly_one_cache() {
    let Some(topology) = Topology::start_or_skip() else {
        return;
    };
    let series = Series {
        prefix: "relay.interval",
        ts: unix_now() - 120,
    };
    let sender = Sender::new(
        topology
            .config()
            .prefix(series.prefix)
            .interval(Duration::from_millis(200)),
    )
    .unwrap();
    series.send_all(&sender);
    sender.stop().unwrap();
    let stats = sender.stats();
    assert_eq!(
        (stats.sent, stats.dropped, stats.queued),
        (PLAIN + TAGGED, 0, 0)
    );
    check(&topology, &series, "interval sender");
}
