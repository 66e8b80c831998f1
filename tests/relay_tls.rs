//! graphyte over TLS into carbon-c-relay's TLS listener, in front of two
//! carbon-caches (issue 14). Needs the `tls` feature:
//!
//! ```text
//! cargo test -p graphyte-workspace --features tls --test relay_tls
//! ```
//!
//! The tests make a CA and a server certificate for `127.0.0.1` and
//! `localhost` with rcgen (graphyte's tests/tls_support), and start the
//! relay with
//!
//! ```text
//! listen type linemode transport plain ssl DIR/listener.pem 127.0.0.1:PR proto tcp ;
//! ```
//!
//! (`listener.pem`: the certificate, then its private key; carbon-c-relay
//! 3.7.3 reads both from that one file). Then:
//!
//! - plain and tagged series from a synchronous and from an interval
//!   sender with `Config::tls(Tls::new().ca_pem(CA).server_name(..))` each
//!   land in exactly one of the two caches, with the exact value at the
//!   exact timestamp, and nothing else lands anywhere;
//! - a plaintext sender on the TLS port, and a TLS sender that trusts
//!   another CA, store nothing: the relay drops the plaintext connection
//!   (it is not a TLS handshake), and graphyte refuses the relay's
//!   certificate (`UnknownIssuer`) before sending anything. A good TLS
//!   sender on the same relay afterwards gets through, so the relay was
//!   working all along.
//!
//! Prints what it observed (`[relay-tls] ...`, `--nocapture`). Skips loudly
//! without carbon or the relay; fails under ./scripts/test.
#![cfg(feature = "tls")]

mod support;
#[path = "../graphyte/tests/tls_support/mod.rs"]
mod tls_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use graphyte::{Sender, Tls};
use support::relay::Topology;
use support::unix_now;
use tls_support::Ca;

const PLAIN: u64 = 600;
const TAGGED: u64 = 200;

/// A CA and the relay's listener PEM (certificate, then key) signed by it.
fn relay_certificate() -> (Ca, String) {
    let ca = Ca::new("graphyte relay test CA");
    let leaf = ca.server();
    let pem = format!("{}{}", leaf.cert, leaf.key);
    (ca, pem)
}

/// Trusts only `ca`, and checks the name `127.0.0.1` (the address connected
/// to) explicitly, as a deployment reaching its relay by IP would.
fn tls(ca: &Ca) -> Tls {
    Tls::new().ca_pem(ca.pem()).server_name("127.0.0.1")
}

struct Series {
    prefix: &'static str,
    ts: u32,
}

impl Series {
    fn plain_name(i: u64) -> String {
        format!("p{i}.value")
    }

    /// Exact in binary, and not an integer.
    fn plain_value(i: u64) -> f64 {
        i as f64 + 0.75
    }

    fn tagged_value(i: u64) -> i64 {
        -(i as i64) * 5 - 2
    }

    /// Per-call tags, deliberately not in canonical order.
    fn tags(i: u64) -> [(String, String); 2] {
        [
            ("zone".to_owned(), format!("z{}", i % 3)),
            ("host".to_owned(), format!("h-{i}")),
        ]
    }

    /// Every series with its value, under carbon's (canonical) name.
    fn expected(&self) -> Vec<(String, f64)> {
        let plain = (0..PLAIN).map(|i| {
            (
                format!("{}.{}", self.prefix, Self::plain_name(i)),
                Self::plain_value(i),
            )
        });
        let tagged = (0..TAGGED).map(|i| {
            (
                format!("{}.t{i};host=h-{i};zone=z{}", self.prefix, i % 3),
                Self::tagged_value(i) as f64,
            )
        });
        plain.chain(tagged).collect()
    }

    fn send_all(&self, sender: &Sender) {
        for i in 0..PLAIN {
            sender
                .send_at(&Self::plain_name(i), Self::plain_value(i), self.ts)
                .unwrap();
        }
        for i in 0..TAGGED {
            sender
                .send_tagged_at(
                    &format!("t{i}"),
                    Self::tagged_value(i),
                    &Self::tags(i),
                    self.ts,
                )
                .unwrap();
        }
    }
}

/// Waits until every series is on disk, then checks that each is in
/// exactly one cache with its exact point, and that no other file exists.
fn check(topology: &Topology, series: &Series, what: &str) {
    let expected = series.expected();
    let per_cache = topology.check_single_points(what, &expected, series.ts);
    let total = expected.len();
    eprintln!(
        "[relay-tls] {what}: {total} series ({PLAIN} plain, {TAGGED} tagged) over TLS: cache 0 got {}, cache 1 got {}, none in both or neither, every value exact",
        per_cache[0], per_cache[1]
    );
    topology.assert_both_caches_share(what, per_cache);
}

#[test]
fn sync_sender_over_tls_series_land_in_exactly_one_cache() {
    let (ca, pem) = relay_certificate();
    let Some(topology) = Topology::start_tls_or_skip(pem) else {
        return;
    };
    let series = Series {
        prefix: "relaytls.sync",
        ts: unix_now() - 120,
    };
    let sender = Sender::new(topology.config().prefix(series.prefix).tls(tls(&ca))).unwrap();
    series.send_all(&sender);
    let stats = sender.stats();
    assert_eq!((stats.sent, stats.dropped), (PLAIN + TAGGED, 0));
    check(&topology, &series, "sync sender");
}

#[test]
fn interval_sender_over_tls_series_land_in_exactly_one_cache() {
    let (ca, pem) = relay_certificate();
    let Some(topology) = Topology::start_tls_or_skip(pem) else {
        return;
    };
    let series = Series {
        prefix: "relaytls.interval",
        ts: unix_now() - 120,
    };
    let sender = Sender::new(
        topology
            .config()
            .prefix(series.prefix)
            .interval(Duration::from_millis(200))
            .tls(tls(&ca)),
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

/// A plaintext sender on the TLS port, then a TLS sender that trusts
/// another CA: nothing of theirs is stored. Then a good TLS sender's
/// series lands, and it is the only file in either cache.
#[test]
fn plaintext_and_unknown_ca_senders_store_nothing() {
    let (ca, pem) = relay_certificate();
    let Some(topology) = Topology::start_tls_or_skip(pem) else {
        return;
    };
    let ts = unix_now() - 120;

    // Plaintext lines on the TLS listener: the relay reads them as a TLS
    // handshake, fails it and closes the connection.
    let plain = Sender::new(topology.config().timeout(Duration::from_secs(2))).unwrap();
    let mut plain_results = Vec::new();
    for i in 0..20 {
        plain_results.push(plain.send_at(&format!("refused.plain.m{i}"), i, ts));
        std::thread::sleep(Duration::from_millis(50));
    }
    let plain_stats = plain.stats();
    let plain_errors: Vec<String> = plain_results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    eprintln!(
        "[relay-tls] plaintext sender on the TLS port: {} of 20 sends failed (first: {:?}); stats: sent {}, dropped {}, send errors {}, reconnects {}",
        plain_errors.len(),
        plain_errors.first(),
        plain_stats.sent,
        plain_stats.dropped,
        plain_stats.send_errors,
        plain_stats.reconnects
    );
    // The relay closed each connection: graphyte saw it and reconnected
    // (a plaintext TCP client cannot tell that its line was not taken).
    assert!(
        plain_stats.reconnects + plain_stats.send_errors > 0,
        "the relay should have closed the plaintext connection: {plain_stats:?}"
    );
    drop(plain);
    support::faults::Figures::new("relay tls plaintext")
        .count(
            "relay.tls.plaintext_sent",
            plain_stats.sent,
            "of 20 sync sends of a plaintext sender to the relay's TLS port, those counted as sent",
        )
        .count(
            "relay.tls.plaintext_reconnects",
            plain_stats.reconnects,
            "that sender's reconnects (the relay dropped each of its connections)",
        )
        .write();
    // The same seen from a raw socket: the relay resets the connection
    // after the first plaintext bytes, and answers nothing.
    let mut raw = TcpStream::connect(("127.0.0.1", topology.relay.port())).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(format!("refused.raw.m0 1 {ts}\n").as_bytes())
        .unwrap();
    let mut answer = [0u8; 64];
    match raw.read(&mut answer) {
        Ok(0) => eprintln!("[relay-tls] raw plaintext line: the relay closed the connection"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            eprintln!("[relay-tls] raw plaintext line: the relay reset the connection")
        }
        other => panic!("the relay should close a plaintext connection on its TLS port: {other:?}"),
    }

    // A TLS sender that trusts another CA: refused at the handshake,
    // before a byte of data, and every send says why.
    let other = Ca::new("some other CA");
    let stranger = Sender::new(
        topology
            .config()
            .timeout(Duration::from_secs(2))
            .tls(tls(&other)),
    )
    .unwrap();
    for i in 0..5 {
        let err = stranger
            .send_at(&format!("refused.unknownca.m{i}"), i, ts)
            .expect_err("a relay certificate from an unknown CA must be refused");
        let text = format!("{err}");
        assert!(
            text.contains("UnknownIssuer"),
            "the refusal should name the unknown issuer: {text}"
        );
        if i == 0 {
            eprintln!("[relay-tls] TLS sender trusting another CA: {text}");
        }
    }
    let stats = stranger.stats();
    assert_eq!(stats.sent, 0, "nothing counted as sent to a refused relay");
    drop(stranger);

    // The relay works: a good TLS sender gets through.
    let good = Sender::new(topology.config().tls(tls(&ca))).unwrap();
    good.send_at("accepted.marker", 7, ts).unwrap();
    let marker = ["accepted.marker".to_owned()];
    let found = topology.wait_for(&marker, Duration::from_secs(30), |[a, b]| {
        !a.is_empty() || !b.is_empty()
    });
    let points = &found["accepted.marker"];
    assert!(
        points[0] == [(ts, 7.0)] || points[1] == [(ts, 7.0)],
        "the good sender's point: {points:?}\n{}",
        topology.logs()
    );
    // Anything of the refused senders would have been written by now.
    std::thread::sleep(Duration::from_millis(2500));
    let files: Vec<_> = topology
        .caches
        .iter()
        .flat_map(|c| c.whisper_files())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "only the good sender's series may be stored: {files:?}\n{}",
        topology.logs()
    );
    let relay_log = topology.relay.log();
    let said: Vec<&str> = relay_log
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("ssl") || l.contains("tls") || l.contains("handshake")
        })
        .filter(|l| !l.contains("transport"))
        .collect();
    eprintln!(
        "[relay-tls] nothing of the refused senders stored; relay log lines about ssl/tls/handshakes: {:?}",
        &said[..said.len().min(6)]
    );
}
