//! [`Sender`]: validates, formats and sends metrics, synchronously or from
//! the interval thread.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::line::LineFormat;
use crate::link::Link;
use crate::queue::{Queue, Refused, Reports, TickHook};
use crate::stats::Stats;
use crate::sync::lock;
use crate::timestamp::Timestamp;
use crate::transport::{Protocol, TcpTransport, Transport, UdpTransport};
use crate::value::Value;

/// How often a failing synchronous sender repeats its error in the log.
const SYNC_LOG_PERIOD: Duration = Duration::from_secs(10);

thread_local! {
    /// Per-thread scratch buffer, so formatting a line does not allocate.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Sends metrics to one Carbon server.
///
/// Most programs use the global functions ([`init`](crate::init),
/// [`send`](crate::send)); make `Sender`s directly to send to several
/// servers, with different prefixes, or through your own [`Transport`].
///
/// Without an [interval](Config::interval), each send is written on the
/// caller's thread over one persistent connection and returns the outcome.
/// With one, sends are queued and written by a background thread; `send`
/// then only reports problems with the metric itself or a full queue.
///
/// `Sender` is cheap to clone (clones share the connection and the queue).
/// When the last clone is dropped it stops: queued lines are delivered first,
/// for at most the configured timeout.
///
/// ```
/// use graphyte::{CaptureTransport, Config, Sender};
/// let capture = CaptureTransport::new();
/// let sender = Sender::new(Config::new("graphite1.example.com").prefix("system.one").transport(capture.clone()))?;
/// sender.send_at("foo.bar1", 42.5, 1_700_000_000)?;
/// sender.send_tagged_at("foo.bar1", 1, &[("env", "prod")], 1_700_000_000)?;
/// assert_eq!(capture.lines(), [
///     "system.one.foo.bar1 42.5 1700000000",
///     "system.one.foo.bar1;env=prod 1 1700000000",
/// ]);
/// # Ok::<(), graphyte::Error>(())
/// ```
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    format: Arc<LineFormat>,
    link: Arc<Link>,
    queue: Option<Arc<Queue>>,
    /// Held for the whole of a stop, so a concurrent `stop` waits for the
    /// first one to finish instead of returning while lines are still queued.
    stopping: Mutex<Stopping>,
    /// Set once the queue has stopped (for [`Sender::interval`]).
    stopped: AtomicBool,
    timeout: Duration,
}

/// What stopping uses up.
struct Stopping {
    worker: Option<JoinHandle<()>>,
    on_stop: Option<StopHook>,
    done: bool,
}

/// Runs once, after the sender has stopped: appends lines to send now,
/// synchronously, and returns how many.
pub(crate) type StopHook = Box<dyn FnOnce(&LineFormat, &mut Vec<u8>) -> usize + Send>;

impl Sender {
    /// Makes a sender. Validates the prefix, the default tags and the
    /// address; connects lazily, on the first write, so a server that is
    /// down now does not make this fail. In interval mode, starts the
    /// background thread.
    pub fn new(config: impl Into<Config>) -> Result<Sender> {
        Sender::build(config.into(), None, None)
    }

    /// Makes a sender whose interval thread also runs `hook` at the end of
    /// every interval, and which runs `on_stop` once it has stopped (the
    /// global sender uses them to report macro aggregates).
    pub(crate) fn build(
        config: Config,
        hook: Option<TickHook>,
        on_stop: Option<StopHook>,
    ) -> Result<Sender> {
        if let Some(error) = config.error {
            return Err(Error::InvalidConfig(error));
        }
        let format = Arc::new(LineFormat::new(&config.prefix, &config.tags)?);
        let transport: Box<dyn Transport> = match config.transport {
            Some(transport) => transport,
            None => match config.protocol {
                Protocol::Tcp => {
                    Box::new(TcpTransport::new(&config.host, config.port, config.timeout))
                }
                Protocol::Udp => Box::new(UdpTransport::new(
                    &config.host,
                    config.port,
                    config.udp_max_datagram,
                )),
            },
        };
        let log_period = config.interval.unwrap_or(SYNC_LOG_PERIOD);
        let link = Arc::new(Link::new(transport, config.log_sends, log_period));
        let (queue, worker) = match config.interval {
            Some(interval) => {
                let reports = Reports {
                    format: Arc::clone(&format),
                    hook,
                    self_metrics: config.self_metrics,
                };
                let (queue, worker) = Queue::start(
                    Arc::clone(&link),
                    reports,
                    interval,
                    config.queue_size,
                    config.batch_size,
                )?;
                (Some(queue), Some(worker))
            }
            None => (None, None),
        };
        Ok(Sender {
            inner: Arc::new(Inner {
                format,
                link,
                queue,
                stopping: Mutex::new(Stopping {
                    worker,
                    on_stop,
                    done: false,
                }),
                stopped: AtomicBool::new(false),
                timeout: config.timeout,
            }),
        })
    }

    /// Sends `name value <now>`.
    pub fn send<V: Value>(&self, name: &str, value: V) -> Result<()> {
        self.send_line(name, &[], value, Timestamp::now())
    }

    /// Sends with an explicit timestamp (Unix seconds, or a [`SystemTime`](std::time::SystemTime)).
    pub fn send_at<V: Value>(
        &self,
        name: &str,
        value: V,
        timestamp: impl Into<Timestamp>,
    ) -> Result<()> {
        self.send_line(name, &[], value, timestamp.into())
    }

    /// Sends with Graphite 1.1 tags, added to the sender's default tags
    /// (these win for the same key).
    pub fn send_tagged<V: Value>(&self, name: &str, value: V, tags: &[(&str, &str)]) -> Result<()> {
        self.send_line(name, tags, value, Timestamp::now())
    }

    /// Sends with tags and an explicit timestamp.
    pub fn send_tagged_at<V: Value>(
        &self,
        name: &str,
        value: V,
        tags: &[(&str, &str)],
        timestamp: impl Into<Timestamp>,
    ) -> Result<()> {
        self.send_line(name, tags, value, timestamp.into())
    }

    fn send_line<V: Value>(
        &self,
        name: &str,
        tags: &[(&str, &str)],
        value: V,
        ts: Timestamp,
    ) -> Result<()> {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                self.format_and_deliver(&mut buf, name, tags, value, ts)
            }
            // Re-entered from a transport or logger: use a fresh buffer.
            Err(_) => self.format_and_deliver(&mut Vec::new(), name, tags, value, ts),
        })
    }

    fn format_and_deliver<V: Value>(
        &self,
        buf: &mut Vec<u8>,
        name: &str,
        tags: &[(&str, &str)],
        value: V,
        ts: Timestamp,
    ) -> Result<()> {
        self.inner.format.format_into(buf, name, tags, value, ts)?;
        self.deliver(buf)
    }

    /// Queues (interval mode) or writes one complete line. Once the queue
    /// has stopped, it refuses the line and it is written synchronously.
    fn deliver(&self, line: &[u8]) -> Result<()> {
        if let Some(queue) = &self.inner.queue {
            match queue.push(line, &self.inner.link.counters) {
                Ok(()) => return Ok(()),
                Err(Refused::Full(e)) => return Err(e),
                Err(Refused::Stopped) => {}
            }
        }
        self.inner.link.write(line, 1)
    }

    /// The line format (prefix and default tags) of this sender.
    pub fn line_format(&self) -> &LineFormat {
        &self.inner.format
    }

    /// Where lines go (`host:port`, or the custom transport's address).
    pub fn address(&self) -> &str {
        self.inner.link.address()
    }

    /// The interval, if this sender queues sends for a background thread.
    pub fn interval(&self) -> Option<Duration> {
        self.inner
            .queue
            .as_ref()
            .filter(|_| !self.inner.stopped.load(Ordering::Acquire))
            .map(|queue| queue.interval())
    }

    /// Counters since the sender was made: lines sent, dropped, write errors,
    /// reconnects, and the lines queued now.
    pub fn stats(&self) -> Stats {
        let queued = self.inner.queue.as_ref().map_or(0, |q| q.len());
        self.inner.link.stats(queued)
    }

    /// Interval mode: writes everything queued now and waits until it is
    /// delivered, for at most the configured timeout. A no-op in sync mode.
    pub fn flush(&self) -> Result<()> {
        match &self.inner.queue {
            Some(queue) => queue.flush(self.inner.timeout),
            None => Ok(()),
        }
    }

    /// Stops the background thread after delivering everything queued (for
    /// at most the configured timeout) and closes the connection. Later sends
    /// on this sender are synchronous. Calling it again does nothing.
    ///
    /// Returns [`Error::Undelivered`] if lines had to be dropped.
    pub fn stop(&self) -> Result<()> {
        self.inner.stop()
    }
}

impl Inner {
    fn stop(&self) -> Result<()> {
        let mut stopping = lock(&self.stopping);
        if std::mem::replace(&mut stopping.done, true) {
            return Ok(());
        }
        let lost = match (&self.queue, stopping.worker.take()) {
            (Some(queue), Some(worker)) => queue.stop(self.timeout, worker, &self.link.counters),
            _ => 0,
        };
        self.stopped.store(true, Ordering::Release);
        let late = match stopping.on_stop.take() {
            Some(on_stop) => {
                let mut buf = Vec::new();
                match on_stop(&self.format, &mut buf) {
                    0 => Ok(()),
                    lines => self.link.write(&buf, lines),
                }
            }
            None => Ok(()),
        };
        // Once, after the last write of the stop.
        self.link.close();
        if lost > 0 {
            return Err(Error::Undelivered {
                pending: lost,
                reason: format!(
                    "{} did not accept them within {:?}",
                    self.link.address(),
                    self.timeout
                ),
            });
        }
        late
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            log::error!(target: "graphyte", "sender dropped: {e}");
        }
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("address", &self.address())
            .field("prefix", &self.inner.format.prefix())
            .field("interval", &self.interval())
            .field("stats", &self.stats())
            .finish()
    }
}
