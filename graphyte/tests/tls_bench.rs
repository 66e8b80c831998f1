//! Interval mode end to end over TLS vs plaintext TCP on loopback, in the
//! same run (issue 14's target: TLS at least 0.6 x plaintext). Not a test:
//! run it with
//!
//! ```text
//! cargo test --release -p graphyte --features tls --test tls_bench -- --ignored --nocapture
//! ```
//!
//! One producer sends `LINES` lines (`bench.tls.N VALUE 1700000000`) through
//! an interval sender (50 ms interval, default queue and batch sizes,
//! retrying on `QueueFull`); the time is from the first send until the
//! drain has counted every line. The drains read, decrypt (TLS) and count
//! newlines. Rounds alternate plaintext and TLS.
#![cfg(feature = "tls")]

mod tls_support;

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use graphyte::{Config, Error, Sender, Tls};
use rustls::ServerConnection;
use tls_support::{server_config, Ca};

const LINES: u64 = 3_000_000;
const ROUNDS: usize = 3;

/// A drain on loopback that counts newlines: plaintext, or TLS with `tls`.
fn drain(tls: Option<Arc<rustls::ServerConfig>>) -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&count);
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        match tls {
            None => loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let lines = buf[..n].iter().filter(|&&b| b == b'\n').count();
                        counted.fetch_add(lines as u64, Ordering::Relaxed);
                    }
                }
            },
            Some(config) => {
                // Large socket reads fed to rustls from memory (rustls reads
                // a socket 4 KiB at a time), so the drain costs the sender
                // little CPU on a small machine.
                let mut conn = ServerConnection::new(config).unwrap();
                let mut plain = vec![0u8; 64 * 1024];
                loop {
                    if conn.wants_write() {
                        conn.write_tls(&mut stream).unwrap();
                    }
                    let n = match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let mut data = &buf[..n];
                    while !data.is_empty() {
                        conn.read_tls(&mut data).unwrap();
                        let state = conn.process_new_packets().unwrap();
                        let mut left = state.plaintext_bytes_to_read();
                        while left > 0 {
                            let n = conn.reader().read(&mut plain).unwrap();
                            let lines = plain[..n].iter().filter(|&&b| b == b'\n').count();
                            counted.fetch_add(lines as u64, Ordering::Relaxed);
                            left -= n;
                        }
                    }
                }
            }
        }
    });
    (port, count)
}

/// Lines per second, end to end.
fn round(config: Config, count: &AtomicU64) -> f64 {
    let sender = Sender::new(config.interval(Duration::from_millis(50))).unwrap();
    let metric = sender.metric("bench.tls").unwrap();
    let started = Instant::now();
    for i in 0..LINES {
        loop {
            match metric.send_at(i, 1_700_000_000) {
                Ok(()) => break,
                Err(Error::QueueFull { .. }) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
    }
    sender.flush().unwrap();
    while count.load(Ordering::Relaxed) < LINES {
        assert!(started.elapsed() < Duration::from_secs(120), "lines lost");
        thread::sleep(Duration::from_micros(200));
    }
    let rate = LINES as f64 / started.elapsed().as_secs_f64();
    sender.stop().unwrap();
    rate
}

#[test]
#[ignore = "a benchmark: run with --release -- --ignored --nocapture"]
fn interval_end_to_end_tls_vs_plaintext() {
    let ca = Ca::new("bench CA");
    let server = Arc::new(server_config(&ca.server(), None));
    let (mut plain, mut tls) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (port, count) = drain(None);
        plain.push(round(Config::new("127.0.0.1").port(port), &count));
        let (port, count) = drain(Some(Arc::clone(&server)));
        let config = Config::new("127.0.0.1")
            .port(port)
            .tls(Tls::new().ca_pem(ca.pem()));
        tls.push(round(config, &count));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let show = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{:.2}", r / 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("plaintext rounds (M lines/s): {}", show(&plain));
    println!("TLS rounds (M lines/s):       {}", show(&tls));
    let (p, t) = (median(&mut plain), median(&mut tls));
    println!(
        "interval end to end, {LINES} lines, median: plaintext {:.2} M lines/s, TLS {:.2} M lines/s, TLS/plaintext {:.2}",
        p / 1e6,
        t / 1e6,
        t / p
    );
}
