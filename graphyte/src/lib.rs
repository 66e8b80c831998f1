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
//! * [`timed`], [`count!`] and [`gauge!`] (feature `macros`, on by default):
//!   instrument code; aggregated per interval in interval mode (see below).
//! * [`Sender`] and [`Config`]: senders of your own (several servers, prefixes).
//! * [`Transport`]: send lines your own way; [`CaptureTransport`] for tests.
//! * [`LineFormat`]: the line builder, with the validation rules.
//!
//! Errors are returned as [`Error`] and logged through the `log` crate under
//! the target `graphyte`.
//!
//! # Macros
//! ```no_run
//! # #[cfg(feature = "macros")] {
//! #[graphyte::timed("db.query")]        // NAME.count, .sum, .min, .max, .mean, .p50, .p90, .p99 (ms)
//! fn query(id: u64) -> Option<u64> {
//!     graphyte::count!("db.queries", 1);  // the sum per interval
//!     graphyte::gauge!("db.last_id", id); // the latest value, every interval
//!     Some(id)
//! }
//! # }
//! ```
//!
//! What the macros send depends on the global sender:
//!
//! | mode | `count!(name, n)` | `gauge!(name, v)` | `#[timed("name")]` |
//! |---|---|---|---|
//! | before [`init`] | nothing (one atomic load) | nothing | nothing (the clock is not read) |
//! | interval mode | `name SUM` per interval, `0` if no calls | `name LATEST` per interval, once set | `name.count N` per interval; if `N > 0` also `name.sum`, `.min`, `.max`, `.mean`, `.p50`, `.p90`, `.p99` in ms |
//! | synchronous mode, or after [`shutdown`] | `name n` per call | `name v` per call | `name MS` per call |
//!
//! In interval mode every aggregated line carries the start of its interval
//! (Unix seconds, a multiple of the interval), so two intervals never write
//! the same Carbon time bucket; Carbon keeps the last value per bucket, so
//! sums are what reaches Graphite, never single increments. Each call site
//! keeps a static handle to its series: a call is a few atomic operations,
//! without allocation, hashing, locking or formatting. Call sites with the
//! same name share one series. See the macros' own documentation for the
//! details, and [`Config::interval`] for the modes.
#![warn(missing_docs)]
// docs.rs (`--cfg docsrs`, nightly rustdoc): each feature-gated item shows the
// feature it needs. The items also say so with `doc(cfg)` themselves, for
// rustdocs whose doc_cfg does not infer it from `#[cfg]`. A stable build
// never sees either.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The macros' expansions name `::graphyte::__private`; this makes that path
// resolve inside this crate too.
extern crate self as graphyte;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod aggregate;
mod config;
mod encoding;
mod error;
mod global;
mod line;
mod link;
mod log_limit;
mod metric;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
#[path = "recorder/mod.rs"]
pub mod metrics;
mod queue;
mod report;
mod sender;
mod stats;
mod sync;
mod timestamp;
#[cfg(feature = "tls")]
mod tls;
mod transport;
mod validate;
mod value;
mod worker;

pub use aggregate::{CountDelta, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_SERIES};
pub use config::{
    Config, DEFAULT_BATCH_SIZE, DEFAULT_PORT, DEFAULT_QUEUE_BYTES, DEFAULT_QUEUE_SIZE,
    DEFAULT_TIMEOUT,
};
pub use error::{Error, Result};
pub use global::{
    flush, init, metric, send, send_at, send_tagged, send_tagged_at, sender, shutdown, stats,
};
pub use line::{check_name, LineFormat};
pub use metric::Metric;
pub use sender::Sender;
pub use stats::Stats;
pub use timestamp::Timestamp;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use tls::Tls;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use transport::TlsTransport;
pub use transport::{
    whole_lines, CaptureTransport, Protocol, SendError, TcpTransport, Transport, UdpTransport,
    DEFAULT_MAX_DATAGRAM,
};
pub use validate::MAX_LINE_LEN;
pub use value::Value;

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use graphyte_macros::{count, gauge, timed};
