//! [`Sender`]: validates, formats and sends metrics, synchronously or from
//! the interval thread.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::Config;
use crate::encoding::Plaintext;
use crate::error::{Error, Result};
use crate::line::LineFormat;
use crate::link::Link;
use crate::metric::Metric;
use crate::queue::{Pushed, Queue, Refused};
use crate::report::{LineSource, Reports};
use crate::stats::Stats;
use crate::sync::lock;
use crate::timestamp::Timestamp;
use crate::transport::{Protocol, TcpTransport, Transport, UdpTransport};
use crate::value::Value;
use crate::worker::{interval_start, Worker};

/// No per-call tags.
const NO_TAGS: &[(&str, &str)] = &[];

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
    /// The queue and its thread, in interval mode.
    worker: Option<Arc<Worker>>,
    /// Lines to send besides those given to `send` (the macros' aggregates).
    source: Option<Arc<dyn LineSource>>,
    /// Held for the whole of a stop, so a concurrent `stop` waits for the
    /// first one to finish instead of returning while lines are still queued.
    stopping: Mutex<Stopping>,
    /// Set once the queue has stopped (for [`Sender::interval`]).
    stopped: AtomicBool,
    timeout: Duration,
}

/// What stopping uses up.
struct Stopping {
    thread: Option<JoinHandle<()>>,
    done: bool,
}

impl Sender {
    /// Makes a sender. Validates the prefix, the default tags and the
    /// address; connects lazily, on the first write, so a server that is
    /// down now does not make this fail. In interval mode, starts the
    /// background thread.
    pub fn new(config: impl Into<Config>) -> Result<Sender> {
        let config = config.into();
        if let Some(problem) = config.problem() {
            return Err(Error::InvalidConfig(problem));
        }
        let format = Arc::new(LineFormat::new(&config.prefix, &config.tags)?);
        let transport: Box<dyn Transport> = match config.transport {
            Some(transport) => transport,
            None => match config.protocol {
                #[cfg(feature = "tls")]
                Protocol::Tcp if config.tls.is_some() => {
                    let tls = config.tls.as_ref().expect("checked by the guard");
                    Box::new(
                        crate::transport::TlsTransport::new(
                            &config.host,
                            config.port,
                            config.timeout,
                            tls,
                        )?
                        .dns_refresh(config.dns_refresh),
                    )
                }
                Protocol::Tcp => Box::new(
                    TcpTransport::new(&config.host, config.port, config.timeout)
                        .dns_refresh(config.dns_refresh),
                ),
                Protocol::Udp => Box::new(
                    UdpTransport::new(&config.host, config.port, config.udp_max_datagram)
                        .lookup_timeout(config.timeout)
                        .dns_refresh(config.dns_refresh),
                ),
            },
        };
        let log_period = config.interval.unwrap_or(SYNC_LOG_PERIOD);
        let link = Arc::new(Link::new(
            transport,
            Box::new(Plaintext),
            config.timeout,
            config.log_sends,
            log_period,
        ));
        let (worker, thread) = match config.interval {
            Some(interval) => {
                let queue = Queue::new(
                    config.queue_size,
                    config.queue_bytes,
                    config.batch_size,
                    interval.max(Duration::from_secs(1)),
                );
                let reports = Reports::new(
                    Arc::clone(&format),
                    config.source.clone(),
                    config.self_metrics,
                );
                let (worker, thread) = Worker::start(queue, interval, Arc::clone(&link), reports)?;
                (Some(worker), Some(thread))
            }
            None => (None, None),
        };
        Ok(Sender {
            inner: Arc::new(Inner {
                format,
                link,
                worker,
                source: config.source,
                stopping: Mutex::new(Stopping {
                    thread,
                    done: false,
                }),
                stopped: AtomicBool::new(false),
                timeout: config.timeout,
            }),
        })
    }

    /// Sends `name value <now>`.
    pub fn send<V: Value>(&self, name: &str, value: V) -> Result<()> {
        self.send_line(name, NO_TAGS, value, Timestamp::now())
    }

    /// Sends with an explicit timestamp: Unix seconds as any integer type,
    /// or a [`SystemTime`](std::time::SystemTime). Out of whisper's range
    /// (`1..=u32::MAX`, so also milliseconds) it is refused with
    /// [`Error::InvalidTimestamp`].
    pub fn send_at<V: Value>(
        &self,
        name: &str,
        value: V,
        timestamp: impl Into<Timestamp>,
    ) -> Result<()> {
        self.send_line(name, NO_TAGS, value, timestamp.into())
    }

    /// Sends with Graphite 1.1 tags, added to the sender's default tags
    /// (these win for the same key). Tags are pairs of any string type:
    /// `&[("env", "prod")]`, or a `Vec<(String, String)>`.
    pub fn send_tagged<V: Value, K: AsRef<str>, T: AsRef<str>>(
        &self,
        name: &str,
        value: V,
        tags: &[(K, T)],
    ) -> Result<()> {
        self.send_line(name, tags, value, Timestamp::now())
    }

    /// Sends with tags and an explicit timestamp.
    pub fn send_tagged_at<V: Value, K: AsRef<str>, T: AsRef<str>>(
        &self,
        name: &str,
        value: V,
        tags: &[(K, T)],
        timestamp: impl Into<Timestamp>,
    ) -> Result<()> {
        self.send_line(name, tags, value, timestamp.into())
    }

    fn send_line<V: Value, K: AsRef<str>, T: AsRef<str>>(
        &self,
        name: &str,
        tags: &[(K, T)],
        value: V,
        ts: Timestamp,
    ) -> Result<()> {
        self.deliver_with(&|buf: &mut Vec<u8>| {
            self.inner
                .format
                .format_tagged_into(buf, name, tags, value, ts)
        })
    }

    /// A handle for sending `name` over and over: the name and the prefix
    /// are validated and rendered once, so that each send only formats the
    /// value and the timestamp. See [`Metric`].
    pub fn metric(&self, name: &str) -> Result<Metric> {
        Metric::new(self, name, NO_TAGS)
    }

    /// [`metric`](Sender::metric) with tags (any string pairs), added to
    /// the sender's default tags like [`send_tagged`](Sender::send_tagged).
    pub fn metric_tagged<K: AsRef<str>, T: AsRef<str>>(
        &self,
        name: &str,
        tags: &[(K, T)],
    ) -> Result<Metric> {
        Metric::new(self, name, tags)
    }

    /// Queues (interval mode) or writes the one complete line `format`
    /// appends to a buffer (or the error it returns, leaving the buffer as
    /// it was). In interval mode the line is formatted straight into the
    /// queue; once the queue has stopped, it is written synchronously.
    #[inline]
    pub(crate) fn deliver_with<F>(&self, format: &F) -> Result<()>
    where
        F: Fn(&mut Vec<u8>) -> Result<()>,
    {
        if let Some(worker) = &self.inner.worker {
            match worker.queue().push_with(&self.inner.link.counters, format) {
                Ok(Pushed::Queued) => return Ok(()),
                Ok(Pushed::HalfFull) => {
                    worker.wake();
                    return Ok(());
                }
                Err(Refused::Full(e) | Refused::Invalid(e)) => return Err(*e),
                Err(Refused::Closed) => {}
            }
        }
        SCRATCH.with(|scratch| {
            // Re-entered from a transport or logger: a fresh buffer.
            let (mut borrowed, mut fresh) = (scratch.try_borrow_mut(), Vec::new());
            let buf = match &mut borrowed {
                Ok(buf) => {
                    buf.clear();
                    &mut **buf
                }
                Err(_) => &mut fresh,
            };
            format(buf)?;
            self.inner.link.write(buf, 1)
        })
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
            .worker
            .as_ref()
            .filter(|_| !self.inner.stopped.load(Ordering::Acquire))
            .map(|worker| worker.interval())
    }

    /// Whether [`stop`](Sender::stop) has run (or is running).
    pub(crate) fn is_stopped(&self) -> bool {
        lock(&self.inner.stopping).done
    }

    /// Whether the calling thread is this sender's interval thread, which
    /// must never wait for itself (a transport or a logger it calls may end
    /// the process there).
    pub(crate) fn on_interval_thread(&self) -> bool {
        self.inner.worker.as_ref().is_some_and(|w| w.is_current())
    }

    /// Lines queued or being written, read without taking a lock.
    pub(crate) fn queued(&self) -> usize {
        self.inner.worker.as_ref().map_or(0, |w| w.queue().len())
    }

    /// Counters since the sender was made: lines sent, dropped, write errors,
    /// reconnects, and the lines queued now.
    pub fn stats(&self) -> Stats {
        let queued = self.inner.worker.as_ref().map_or(0, |w| w.queue().len());
        let mut stats = self.inner.link.stats(queued);
        if let Some(source) = &self.inner.source {
            let series = source.series();
            stats.series = series.live;
            stats.series_refused = series.refused;
        }
        stats
    }

    /// Interval mode: writes everything queued now and waits until it is
    /// delivered, for at most the configured timeout; then returns
    /// [`Error::Undelivered`] (the lines stay queued). A no-op in sync mode.
    ///
    /// There is no need to flush before [`stop`](Sender::stop), which
    /// delivers everything too; if you do and the flush times out, `stop`
    /// does not wait a second timeout (see there).
    pub fn flush(&self) -> Result<()> {
        match &self.inner.worker {
            Some(worker) => worker.flush(self.inner.timeout),
            None => Ok(()),
        }
    }

    /// Stops the background thread after delivering everything queued (for
    /// at most the configured timeout) and closes the connection. Later sends
    /// on this sender are synchronous. Calling it again does nothing.
    ///
    /// Returns [`Error::Undelivered`] if lines had to be dropped (they are
    /// counted in [`Stats::dropped`]). If a [`flush`](Sender::flush) timed out
    /// and nothing was delivered since, the server has had its timeout
    /// already: `stop` then gives up on what is queued at once, so that a
    /// program whose server is down ends within about one timeout.
    pub fn stop(&self) -> Result<()> {
        self.inner.stop(self.inner.timeout)
    }

    /// [`stop`](Sender::stop), giving up on what is still queued after
    /// `timeout` instead of the configured timeout: `Duration::ZERO` stops
    /// at once, counting everything queued as dropped (for a program that
    /// has given up on its server and must not wait).
    pub fn stop_within(&self, timeout: Duration) -> Result<()> {
        self.inner.stop(timeout)
    }
}

impl Inner {
    fn stop(&self, timeout: Duration) -> Result<()> {
        let mut stopping = lock(&self.stopping);
        if std::mem::replace(&mut stopping.done, true) {
            return Ok(());
        }
        let lost = match (&self.worker, stopping.thread.take()) {
            (Some(worker), Some(thread)) => worker.stop(timeout, thread, &self.link.counters),
            _ => 0,
        };
        self.stopped.store(true, Ordering::Release);
        let late = match &self.source {
            Some(source) => {
                let start = self.worker.as_ref().map(|w| interval_start(w.interval()));
                let mut buf = Vec::new();
                match source.final_lines(start, &self.format, &mut buf) {
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
                    timeout
                ),
            });
        }
        late
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.stop(self.timeout) {
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
