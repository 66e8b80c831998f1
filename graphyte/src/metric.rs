//! [`Metric`]: a handle for sending one series over and over, with its name
//! validated and rendered once.

use std::fmt;
use std::sync::Arc;

use crate::error::Result;
use crate::line::{check_line_len, write_tail};
use crate::sender::Sender;
use crate::timestamp::Timestamp;
use crate::value::Value;

/// One series of one [`Sender`]: its name, the sender's prefix and the tags
/// validated and rendered once, so that a send only formats the value and
/// the timestamp. Made by [`Sender::metric`], [`Sender::metric_tagged`] or
/// [`metric`](crate::metric) (the global sender's).
///
/// `Metric` is `Clone + Send + Sync` and cheap to clone (two reference
/// counts). It sends through its sender whatever that sender's state: over
/// reconnects, and synchronously once the sender has stopped, like
/// [`Sender::send`]. It keeps its sender alive: a sender whose last clone
/// is dropped stops only when its metrics are dropped too.
///
/// ```
/// use graphyte::{CaptureTransport, Config, Sender};
/// let capture = CaptureTransport::new();
/// let sender = Sender::new(Config::new("unused").prefix("app").transport(capture.clone()))?;
/// let requests = sender.metric_tagged("requests", &[("env", "prod")])?;
/// requests.send_at(3, 1_700_000_000)?;
/// requests.send_at(4, 1_700_000_010)?;
/// assert_eq!(capture.lines(), [
///     "app.requests;env=prod 3 1700000000",
///     "app.requests;env=prod 4 1700000010",
/// ]);
/// # Ok::<(), graphyte::Error>(())
/// ```
#[derive(Clone)]
pub struct Metric {
    sender: Sender,
    series: Arc<Series>,
}

/// A metric's name, and how its lines start.
struct Series {
    /// The name as given, for errors.
    name: Box<str>,
    /// `prefix.path;tags ` as it goes on the wire.
    head: Box<[u8]>,
}

impl Metric {
    pub(crate) fn new<K: AsRef<str>, T: AsRef<str>>(
        sender: &Sender,
        name: &str,
        tags: &[(K, T)],
    ) -> Result<Metric> {
        let head = sender.line_format().head(name, tags)?;
        Ok(Metric {
            sender: sender.clone(),
            series: Arc::new(Series {
                name: name.into(),
                head,
            }),
        })
    }

    /// Sends `value` now. The same line as `Sender::send` of this name
    /// (and tags) would send.
    #[inline]
    pub fn send<V: Value>(&self, value: V) -> Result<()> {
        self.send_line(value, Timestamp::now())
    }

    /// Sends `value` with an explicit timestamp (Unix seconds of any
    /// integer type, or a [`SystemTime`](std::time::SystemTime)).
    #[inline]
    pub fn send_at<V: Value>(&self, value: V, timestamp: impl Into<Timestamp>) -> Result<()> {
        self.send_line(value, timestamp.into())
    }

    /// The name the metric was made with (without the sender's prefix).
    pub fn name(&self) -> &str {
        &self.series.name
    }

    /// The sender it sends through.
    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    #[inline]
    fn send_line<V: Value>(&self, value: V, ts: Timestamp) -> Result<()> {
        let series = &*self.series;
        self.sender.deliver_with(&|buf: &mut Vec<u8>| {
            let start = buf.len();
            buf.extend_from_slice(&series.head);
            if let Err(e) = write_tail(buf, &series.name, value, ts) {
                buf.truncate(start);
                return Err(e);
            }
            check_line_len(buf, start, &series.name)
        })
    }
}

impl fmt::Debug for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metric")
            .field("name", &self.series.name)
            .field(
                "line",
                &String::from_utf8_lossy(&self.series.head).trim_end(),
            )
            .field("sender", &self.sender.address())
            .finish()
    }
}
