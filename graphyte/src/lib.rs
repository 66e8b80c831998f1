//! Send metrics to Graphite (Carbon).
//!
//! ```no_run
//! # fn main() -> Result<(), graphyte::Error> {
//! use std::time::Duration;
//! graphyte::init(
//!     graphyte::Config::new("graphite.example.com")
//!         .prefix("system.async")
//!         .interval(Duration::from_secs(10)),
//! )?;
//! graphyte::send("foo.bar", 42)?;               // queued, written within 10 s
//! graphyte::send_tagged("foo.bar", 1, &[("env", "prod")])?;
//! graphyte::shutdown()?;                        // deliver what is queued, stop the thread
//! # Ok(()) }
//! ```
//!
//! * [`init`] / [`send`] / [`flush`] / [`shutdown`]: the process-wide sender.
//! * [`Sender`] and [`Config`]: senders of your own (several servers, prefixes).
//! * [`Transport`]: send lines your own way; [`CaptureTransport`] for tests.
//! * [`LineFormat`]: the line builder, with the validation rules.
//!
//! Errors are returned as [`Error`] and logged through the `log` crate under
//! the target `graphyte`.
#![warn(missing_docs)]

mod config;
mod error;
mod global;
mod line;
mod link;
mod queue;
mod sender;
mod stats;
mod timestamp;
mod transport;
mod validate;
mod value;

pub use config::{Config, DEFAULT_BATCH_SIZE, DEFAULT_PORT, DEFAULT_QUEUE_SIZE, DEFAULT_TIMEOUT};
pub use error::{Error, Result};
pub use global::{
    flush, init, send, send_at, send_tagged, send_tagged_at, sender, shutdown, stats,
};
pub use line::{check_name, LineFormat};
pub use sender::Sender;
pub use stats::Stats;
pub use timestamp::Timestamp;
pub use transport::{
    CaptureTransport, Protocol, TcpTransport, Transport, UdpTransport, DEFAULT_MAX_DATAGRAM,
};
pub use validate::MAX_LINE_LEN;
pub use value::Value;
