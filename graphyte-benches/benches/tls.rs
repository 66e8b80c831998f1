//! Interval mode end to end over TLS against plaintext TCP, on loopback, in
//! the same run (issue 14's target: TLS ≥ 0.6 × plaintext). Needs
//! graphyte's `tls` feature, which this package's `tls` feature turns on:
//!
//! ```text
//! cargo bench -p graphyte-benches --features tls --bench tls
//! ```
//!
//! One process. A drain per measurement: a loopback listener whose reader
//! thread reads 256 KiB at a time and counts newlines and bytes; the TLS
//! drain feeds what it read to a rustls `ServerConnection` from memory
//! (ring provider, TLS 1.3, a certificate for 127.0.0.1 from a CA made
//! at run time with rcgen) and counts the decrypted bytes, so that it costs
//! the sender little CPU on a small machine. One producer sends `N` lines
//! `bench.tls I 1700000000` through a `Metric` handle of an interval
//! sender (50 ms interval, default queue and batch sizes; a send refused
//! with `QueueFull` is retried after `yield_now`); the sender trusts only
//! that CA (`Tls::new().ca_pem(..)`). The time runs from the first send
//! until the drain has counted every line (the TLS handshake included,
//! made on the first write). Each round measures plaintext and TLS back to
//! back, alternating which goes first; the verdict is on the median of the
//! per-round ratios TLS / plaintext (the two halves of a round see the same
//! load on a shared machine). Every measurement asserts that exactly the
//! `N` lines and their exact bytes arrived.
//!
//! A full run (`--bench`): N = 3,000,000, five rounds, prints every round
//! and writes the fragment `tls.md` (with the command, date, commit, figures
//! and verdict) under `target/bench-results/fragments/`. Under
//! `cargo test -p graphyte-benches --features tls --bench tls` it is a smoke
//! test: N = 20,000, one round, the assertions, no verdict, the fragment
//! under `target/bench-results/smoke/`.

#[path = "../../graphyte/tests/tls_support/mod.rs"]
mod tls_support;

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use graphyte::{Config, Error, Sender, Tls};
use graphyte_benches::{commit, full_run, results_dir, utc_now, verdict, Fragment};
use rustls::ServerConnection;
use tls_support::{server_config, Ca};

const TS: u32 = 1_700_000_000;
const INTERVAL: Duration = Duration::from_millis(50);
const TARGET: f64 = 0.6;

fn main() {
    let full = full_run();
    let (lines, rounds): (u64, usize) = if full { (3_000_000, 5) } else { (20_000, 1) };
    let ca = Ca::new("graphyte bench CA");
    let server = Arc::new(server_config(&ca.server(), None));
    let bytes = expected_bytes(lines);
    println!(
        "interval mode end to end over TLS vs plaintext on loopback: {} run, N = {lines} lines ({bytes} bytes) per measurement, {rounds} round(s)",
        if full { "full" } else { "smoke (cargo test)" }
    );

    let (mut plains, mut tlss, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let measure = |tls: bool| {
            if tls {
                let drain = Drain::start(Some(Arc::clone(&server)));
                let config = Config::new("127.0.0.1")
                    .port(drain.port)
                    .tls(Tls::new().ca_pem(ca.pem()));
                run(config, &drain, lines, bytes)
            } else {
                let drain = Drain::start(None);
                run(
                    Config::new("127.0.0.1").port(drain.port),
                    &drain,
                    lines,
                    bytes,
                )
            }
        };
        let (plain, tls) = if round.is_multiple_of(2) {
            let plain = measure(false);
            (plain, measure(true))
        } else {
            let tls = measure(true);
            (measure(false), tls)
        };
        println!(
            "round {}: plaintext {:.2} M lines/s, TLS {:.2} M lines/s: {:.2} x",
            round + 1,
            plain / 1e6,
            tls / 1e6,
            tls / plain
        );
        plains.push(plain);
        tlss.push(tls);
        ratios.push(tls / plain);
    }
    let (plain, tls, ratio) = (median(&plains), median(&tlss), median(&ratios));
    let met = ratio >= TARGET;

    let mut fragment = Fragment::new("tls");
    fragment.line(format!(
        "`cargo bench -p graphyte-benches --features tls --bench tls`, {}, commit {}.",
        utc_now(),
        commit()
    ));
    fragment.line("");
    fragment.line("| | plaintext | TLS (rustls, ring) | TLS / plaintext |");
    fragment.line("|---|---|---|---|");
    fragment.line(format!(
        "| median of {rounds} rounds, {} lines each | {:.2} M lines/s | {:.2} M lines/s | **{ratio:.2} ×** (median of the rounds' ratios) |",
        thousands(lines),
        plain / 1e6,
        tls / 1e6
    ));
    for (i, ((p, t), r)) in plains.iter().zip(&tlss).zip(&ratios).enumerate() {
        fragment.line(format!(
            "| round {} | {:.2} M | {:.2} M | {r:.2} × |",
            i + 1,
            p / 1e6,
            t / 1e6
        ));
    }
    fragment.line("");
    fragment.line(format!(
        "Target TLS ≥ {TARGET} × plaintext: **{}**.",
        if full { verdict(met) } else { "- (smoke run)" }
    ));
    fragment.save(&results_dir(full));
}

/// The bytes of `lines` lines `bench.tls I 1700000000\n`, I = 0..lines.
fn expected_bytes(lines: u64) -> u64 {
    let fixed = "bench.tls  1700000000\n".len() as u64;
    (0..lines).map(|i| fixed + digits(i)).sum()
}

fn digits(mut n: u64) -> u64 {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `3,000,000`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A loopback listener for one connection that counts newlines and bytes:
/// plaintext, or TLS with a server config.
struct Drain {
    port: u16,
    lines: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl Drain {
    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Drain {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let drain = Drain {
            port: listener.local_addr().expect("local_addr").port(),
            lines: Arc::default(),
            bytes: Arc::default(),
        };
        let (lines, bytes) = (Arc::clone(&drain.lines), Arc::clone(&drain.bytes));
        let count = move |data: &[u8]| {
            let n = data.iter().filter(|&&b| b == b'\n').count();
            bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            lines.fetch_add(n as u64, Ordering::Relaxed);
        };
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buf = vec![0u8; 256 * 1024];
            let Some(config) = tls else {
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => count(&buf[..n]),
                    }
                }
            };
            // Large socket reads fed to rustls from memory (rustls reads a
            // socket 4 KiB at a time).
            let mut conn = ServerConnection::new(config).expect("server connection");
            let mut plain = vec![0u8; 64 * 1024];
            loop {
                while conn.wants_write() {
                    conn.write_tls(&mut stream).expect("handshake write");
                }
                let n = match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let mut data = &buf[..n];
                while !data.is_empty() {
                    conn.read_tls(&mut data).expect("read_tls");
                    let state = conn.process_new_packets().expect("TLS records");
                    let mut left = state.plaintext_bytes_to_read();
                    while left > 0 {
                        let n = conn.reader().read(&mut plain).expect("plaintext");
                        count(&plain[..n]);
                        left -= n;
                    }
                }
            }
        });
        drain
    }
}

/// One measurement: lines/s from the first send until the drain counted
/// every line; asserts the exact lines and bytes.
fn run(config: Config, drain: &Drain, lines: u64, bytes: u64) -> f64 {
    let sender = Sender::new(config.interval(INTERVAL)).expect("sender");
    let metric = sender.metric("bench.tls").expect("metric");
    let started = Instant::now();
    let mut refused = 0;
    for i in 0..lines {
        loop {
            match metric.send_at(i, TS) {
                Ok(()) => break,
                Err(Error::QueueFull { .. }) => {
                    refused += 1;
                    thread::yield_now()
                }
                Err(e) => panic!("send: {e}"),
            }
        }
    }
    sender.flush().expect("flush");
    while drain.lines.load(Ordering::Relaxed) < lines {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {} of {lines} lines arrived in 120 s",
            drain.lines.load(Ordering::Relaxed)
        );
        thread::sleep(Duration::from_micros(200));
    }
    let rate = lines as f64 / started.elapsed().as_secs_f64();
    sender.stop().expect("stop");
    let stats = sender.stats();
    // A send refused with QueueFull counts as dropped (and was retried).
    assert_eq!(
        (stats.sent, stats.dropped),
        (lines, refused),
        "sender stats"
    );
    // Nothing more may come (no line twice).
    thread::sleep(Duration::from_millis(20));
    assert_eq!(drain.lines.load(Ordering::Relaxed), lines, "lines arrived");
    assert_eq!(drain.bytes.load(Ordering::Relaxed), bytes, "bytes arrived");
    rate
}
