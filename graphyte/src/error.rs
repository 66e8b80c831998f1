//! The one error type of the crate.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::validate::{self, Invalid};

/// A specialised `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when building or sending a metric.
///
/// Every variant says what was wrong with enough context to find the
/// offending call: the metric name, the tag, the server address.
///
/// ```
/// let sender = graphyte::Sender::new(
///     graphyte::Config::new("localhost").transport(graphyte::CaptureTransport::new()),
/// )?;
/// match sender.send("bad name", 1) {
///     Err(graphyte::Error::InvalidName { name, reason }) => {
///         assert_eq!(name, "bad name");
///         assert_eq!(reason, "must not contain whitespace");
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// # Ok::<(), graphyte::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The metric name (or the configured prefix) would not make one valid
    /// Carbon path: empty, whitespace or control characters, an empty segment.
    InvalidName {
        /// The name as given by the caller.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A tag key or value that Carbon would refuse or store under another name.
    InvalidTag {
        /// The metric the tag was for.
        name: String,
        /// The tag key.
        key: String,
        /// The tag value.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A value Graphite cannot store faithfully (NaN or an infinity).
    InvalidValue {
        /// The metric the value was for.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A timestamp whisper cannot store (before 1970-01-01T00:00:01Z, or
    /// beyond `u32::MAX` seconds, which usually means milliseconds were given).
    InvalidTimestamp {
        /// The metric the timestamp was for.
        name: String,
        /// The timestamp as given, in seconds.
        timestamp: i64,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The finished line would exceed [`MAX_LINE_LEN`](crate::MAX_LINE_LEN);
    /// Carbon closes the connection on such a line and loses the rest of the stream.
    LineTooLong {
        /// The metric name.
        name: String,
        /// The length the line would have had, in bytes, including the newline.
        len: usize,
    },
    /// The configuration is unusable (for example an unparsable `host:port`).
    InvalidConfig(String),
    /// A global function was called before [`init`](crate::init).
    NotInitialized,
    /// [`init`](crate::init) was called a second time.
    AlreadyInitialized,
    /// Connecting or writing to the server failed.
    Io {
        /// The server (or transport) that failed, e.g. `graphite.example.com:2003`.
        addr: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The server's host name could not be resolved in time: the name server
    /// did not answer within the timeout (or the call's deadline). Nothing
    /// was sent; the next attempt waits like after a failed connect.
    ResolveTimedOut {
        /// The host name, e.g. `graphite.example.com`.
        host: String,
        /// How long the lookup was waited for.
        after: Duration,
    },
    /// Interval mode: the queue already holds `capacity` lines, or this line
    /// would take it past `max_bytes`, so the line was dropped (and counted
    /// in [`Stats::dropped`](crate::Stats::dropped)).
    QueueFull {
        /// The configured queue size, in lines.
        capacity: usize,
        /// The configured queue bound in bytes.
        max_bytes: usize,
    },
    /// `flush`, `stop` or `shutdown` could not deliver everything within the
    /// timeout; `pending` lines are still queued (or, after a stop, lost).
    Undelivered {
        /// Lines that were not delivered.
        pending: usize,
        /// The last error seen, if any, or why delivery stopped.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidName { name, reason } => {
                validate::write_message(f, name, Invalid::Path(reason))
            }
            Error::InvalidTag {
                name,
                key,
                value,
                reason,
            } => validate::write_message(f, name, Invalid::Tag { key, value, reason }),
            Error::InvalidValue { name, reason } => {
                write!(f, "invalid value for metric {name:?}: {reason}")
            }
            Error::InvalidTimestamp {
                name,
                timestamp,
                reason,
            } => write!(
                f,
                "invalid timestamp {timestamp} for metric {name:?}: {reason}"
            ),
            Error::LineTooLong { name, len } => write!(
                f,
                "metric {name:?} makes a {len}-byte line; Carbon accepts at most {} bytes",
                crate::MAX_LINE_LEN
            ),
            Error::InvalidConfig(msg) => write!(f, "invalid graphyte configuration: {msg}"),
            Error::NotInitialized => {
                f.write_str("graphyte is not initialized: call graphyte::init first")
            }
            Error::AlreadyInitialized => f.write_str("graphyte::init was already called"),
            Error::Io { addr, source } => write!(f, "sending to {addr} failed: {source}"),
            Error::ResolveTimedOut { host, after } => write!(
                f,
                "resolving {host} timed out after {after:?}: the name server did not answer"
            ),
            Error::QueueFull {
                capacity,
                max_bytes,
            } => write!(
                f,
                "graphyte queue is full (it holds at most {capacity} lines and {max_bytes} bytes); the metric was dropped"
            ),
            Error::Undelivered { pending, reason } => {
                write!(f, "{pending} lines were not delivered: {reason}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
