//! A small program instrumented with `#[timed]`, `count!` and `gauge!`.
//!
//! It needs no server: the global sender writes into a `CaptureTransport`,
//! and the program prints what would have been sent to Carbon when it ends.
//!
//! ```text
//! cargo run --example instrumented
//! ```
//!
//! The sender is in interval mode (1 s), so each metric is aggregated and
//! sent once per interval, timestamped with the interval's start:
//! `jobs.done` as the interval's sum, `queue.depth` as its latest value,
//! and `jobs.process.{count,sum,min,max,mean,p50,p90,p99}` in milliseconds.

use std::collections::VecDeque;
use std::thread;
use std::time::Duration;

use graphyte::{count, gauge, timed, CaptureTransport, Config};

#[derive(Debug)]
struct Job {
    id: u64,
    size: u64,
}

/// Timed under an explicit name; the suffixes go before the inline tag.
#[timed("jobs.process;worker=demo")]
fn process(job: &Job) -> Result<u64, String> {
    if job.size == 0 {
        return Err(format!("job {} is empty", job.id)); // timed too
    }
    thread::sleep(Duration::from_millis(job.size * 8));
    Ok(job.size * 2)
}

/// Timed under its module path and name: `instrumented.refill`.
#[timed]
fn refill(queue: &mut VecDeque<Job>, next_id: &mut u64) {
    for _ in 0..5 {
        *next_id += 1;
        queue.push_back(Job {
            id: *next_id,
            size: *next_id % 7,
        });
    }
}

fn main() -> Result<(), graphyte::Error> {
    let capture = CaptureTransport::new();
    graphyte::init(
        Config::new("graphite.example.com")
            .prefix("demo")
            .interval(Duration::from_secs(1))
            .transport(capture.clone()),
    )?;

    let mut queue = VecDeque::new();
    let mut next_id = 0;
    for _ in 0..12 {
        refill(&mut queue, &mut next_id);
        while let Some(job) = queue.pop_front() {
            gauge!("queue.depth", queue.len());
            match process(&job) {
                Ok(bytes) => {
                    count!("jobs.done", 1);
                    count!("jobs.bytes", bytes);
                }
                Err(e) => {
                    eprintln!("{e}");
                    count!("jobs.failed;reason=empty", 1);
                }
            }
        }
    }

    // Sends what the interval in progress aggregated; do this before exit.
    graphyte::shutdown()?;
    println!("Lines sent to Carbon (prefix \"demo\", 1 s intervals):");
    for line in capture.lines() {
        println!("  {line}");
    }
    Ok(())
}
