//! The A/B probe of `scripts/ab`: built by that script against two commits of
//! graphyte (the same source, each commit's library), and run alternately.
//!
//! ```text
//! probe PRODUCERS LINES
//! ```
//!
//! Starts a loopback TCP drain (a reader thread per connection, counting
//! newlines), makes an interval-mode `Sender` (50 ms interval, otherwise the
//! defaults, as `benches/throughput.rs` measures), and has PRODUCERS threads
//! call `send(name, value)` with 1,024 distinct names each and distinct values
//! (or, built with the probe's feature `metric`, `Metric::send(value)` on a
//! handle per name, made before the clock starts) until LINES lines in total have arrived at the drain (the run ends with
//! `flush()`, so the last lines do not wait for the next tick); a send
//! refused with `QueueFull` is retried. Prints one line:
//!
//! ```text
//! lines_per_sec=N caller_ns=N retries=N
//! ```
//!
//! It uses only API that every commit since the first release has
//! (`Config::{new, port, interval, timeout}`, `Sender::{new, send, flush,
//! stop, stats}`, `Error::QueueFull`), so the same file builds against both;
//! the feature `metric` needs `Sender::metric` (commits since issue 12).

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use graphyte::{Config, Error, Sender};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: probe PRODUCERS LINES";
    let producers: u64 = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let lines: u64 = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let per = lines / producers;
    let lines = per * producers;

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the drain");
    let port = listener.local_addr().expect("drain address").port();
    let arrived = Arc::new(AtomicU64::new(0));
    {
        let arrived = Arc::clone(&arrived);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let arrived = Arc::clone(&arrived);
                thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 20];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let newlines = buf[..n].iter().filter(|&&b| b == b'\n').count();
                        arrived.fetch_add(newlines as u64, Relaxed);
                    }
                });
            }
        });
    }

    let sender = Sender::new(
        Config::new("127.0.0.1")
            .port(port)
            .interval(Duration::from_millis(50))
            .timeout(Duration::from_secs(60)),
    )
    .expect("sender");
    let start = Instant::now();
    let results: Vec<(Duration, u64)> = thread::scope(|s| {
        let threads: Vec<_> = (0..producers)
            .map(|t| {
                let sender = &sender;
                s.spawn(move || {
                    let names: Vec<String> =
                        (0..1024).map(|j| format!("bench.p{t}.m{j}")).collect();
                    #[cfg(feature = "metric")]
                    let metrics: Vec<graphyte::Metric> = names
                        .iter()
                        .map(|n| sender.metric(n).expect("a handle"))
                        .collect();
                    let first = t * per;
                    let mut retries = 0u64;
                    let begin = Instant::now();
                    for i in 0..per {
                        loop {
                            let j = i as usize % 1024;
                            #[cfg(feature = "metric")]
                            let sent = metrics[j].send(first + i);
                            #[cfg(not(feature = "metric"))]
                            let sent = sender.send(names[j].as_str(), first + i);
                            match sent {
                                Ok(()) => break,
                                Err(Error::QueueFull { .. }) => {
                                    retries += 1;
                                    thread::yield_now();
                                }
                                Err(e) => panic!("send failed: {e}"),
                            }
                        }
                    }
                    (begin.elapsed(), retries)
                })
            })
            .collect();
        threads.into_iter().map(|h| h.join().expect("producer")).collect()
    });
    // Without this the last lines wait for the next tick of the interval:
    // up to 50 ms on top of a run of 0.4 s, which would make the figure
    // jump in steps of the interval.
    sender.flush().expect("flush");
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrived.load(Relaxed) < lines {
        assert!(
            Instant::now() < deadline,
            "only {} of {lines} lines arrived",
            arrived.load(Relaxed)
        );
        thread::sleep(Duration::from_micros(200));
    }
    let secs = start.elapsed().as_secs_f64();
    sender.stop().expect("stop");
    assert_eq!(sender.stats().sent, lines, "the sender's count of lines sent");
    let caller_ns = results
        .iter()
        .map(|(d, _)| d.as_nanos() as f64 / per as f64)
        .sum::<f64>()
        / producers as f64;
    let retries: u64 = results.iter().map(|&(_, r)| r).sum();
    println!(
        "lines_per_sec={:.0} caller_ns={caller_ns:.1} retries={retries}",
        lines as f64 / secs
    );
}
