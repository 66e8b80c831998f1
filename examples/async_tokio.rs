//! graphyte in an async program: interval mode, so that no send waits for
//! the network on an executor thread.
//!
//! ```text
//! cargo run --features tokio --example async_tokio
//! ```
//!
//! It sends to a `CaptureTransport` and prints what Carbon would receive.
//! The code between the markers is the README's "In async code" example,
//! checked by `graphyte/tests/readme_examples.rs`.

use std::time::Duration;

// README example start
#[graphyte::timed("api.handle")]
async fn handle(request: u64) -> u64 {
    graphyte::count!("api.requests", 1);
    tokio::time::sleep(Duration::from_millis(request)).await; // timed to completion
    request * 2
}

async fn run(config: graphyte::Config) -> Result<(), graphyte::Error> {
    // Interval mode: sends and macro calls only queue or aggregate, in
    // nanoseconds; the background thread does the network I/O.
    graphyte::init(config.interval(Duration::from_secs(10)))?;
    let tasks: Vec<_> = (1..=3).map(|i| tokio::spawn(handle(i))).collect();
    for task in tasks {
        let doubled = task.await.expect("the task ran");
        graphyte::send("api.last_result", doubled)?;
    }
    // `shutdown` waits for the network (up to the timeout): off the
    // executor's threads.
    tokio::task::spawn_blocking(graphyte::shutdown)
        .await
        .expect("shutdown ran")
}
// README example end

#[tokio::main]
async fn main() -> Result<(), graphyte::Error> {
    let capture = graphyte::CaptureTransport::new();
    run(graphyte::Config::new("unused").transport(capture.clone())).await?;
    for line in capture.lines() {
        println!("{line}");
    }
    Ok(())
}
