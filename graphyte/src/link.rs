//! The sender's side of its connection: the [`Transport`] behind a lock,
//! with the one definition of what every write does, from the caller's
//! thread or the interval thread: connect when not connected (with backoff
//! after a failed connect), encode, write by a deadline, reconnect and retry
//! once when the server had closed the connection, count whole lines
//! delivered, and log failures without flooding the log.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::encoding::{Delivered, Encoding};
use crate::error::Error;
use crate::log_limit::{LineCount, LogLimiter};
use crate::stats::{Counters, Stats};
use crate::sync::{deadline_after, lock};
use crate::transport::{ResolveTimedOut, SendError, Transport};

/// First wait after a failed connect; doubles on each further failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The transport and what goes with it.
pub(crate) struct Link {
    conn: Mutex<Connection>,
    encoding: Box<dyn Encoding>,
    address: String,
    /// Bounds each write (and the connect before it).
    timeout: Duration,
    pub(crate) counters: Counters,
    log_sends: bool,
    errors: Mutex<LogLimiter>,
}

/// The connection's state, changed only under the link's lock.
struct Connection {
    transport: Box<dyn Transport>,
    connected: bool,
    /// Set after a failed connect, cleared by a successful one.
    backoff: Option<Backoff>,
    /// Successful connects so far.
    connects: u64,
    /// Room for an encoding that builds its bytes.
    scratch: Vec<u8>,
}

/// The wait after a failed connect.
#[derive(Debug)]
struct Backoff {
    /// No connect is attempted before this.
    retry_at: Instant,
    /// How long this wait is; the next one is twice as long, up to `MAX_BACKOFF`.
    delay: Duration,
    /// Why the last connect failed.
    last_error: String,
}

/// Why a write did not go through.
struct WriteError {
    error: SendError,
    attempt: Attempt,
}

impl From<SendError> for WriteError {
    fn from(error: SendError) -> WriteError {
        WriteError {
            error,
            attempt: Attempt::Made,
        }
    }
}

/// Whether a failed write was tried at all.
enum Attempt {
    /// A connect or a send was tried, and failed.
    Made,
    /// Nothing was tried: a failed connect's backoff is still running.
    BackingOff { wait: Duration, last_error: String },
}

/// A write that failed, and the leading part of its batch that was
/// delivered anyway (counted as sent; never to be sent again).
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) error: Error,
    pub(crate) delivered: Delivered,
}

impl Link {
    pub(crate) fn new(
        transport: Box<dyn Transport>,
        encoding: Box<dyn Encoding>,
        timeout: Duration,
        log_sends: bool,
        log_period: Duration,
    ) -> Link {
        Link {
            address: transport.address(),
            conn: Mutex::new(Connection {
                transport,
                connected: false,
                backoff: None,
                connects: 0,
                scratch: Vec::new(),
            }),
            encoding,
            timeout,
            counters: Counters::default(),
            log_sends,
            errors: Mutex::new(LogLimiter::new(log_period)),
        }
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Writes `lines` (`count` complete lines) within the timeout, counting
    /// and logging the outcome.
    pub(crate) fn write(&self, lines: &[u8], count: usize) -> Result<(), Error> {
        self.write_by(lines, count, None)
            .map_err(|failed| failed.error)
    }

    /// Like [`write`](Link::write), but never past `stop` (the stop
    /// deadline, when the sender is stopping); on failure also says which
    /// leading lines were delivered whole.
    pub(crate) fn write_by(
        &self,
        lines: &[u8],
        count: usize,
        stop: Option<Instant>,
    ) -> Result<(), Failed> {
        let started = Instant::now();
        let end = deadline_after(self.timeout);
        let deadline = stop.map_or(end, |stop| stop.min(end));
        let result = lock(&self.conn).write(&*self.encoding, lines, deadline, &self.counters);
        match result {
            Ok(()) => {
                Counters::add(&self.counters.sent, count);
                if let Some(down_for) = lock(&self.errors).clear() {
                    log::info!(target: "graphyte", "sending to {} works again after {:.1} s of errors", self.address, down_for.as_secs_f64());
                }
                if self.log_sends {
                    let ms = started.elapsed().as_secs_f64() * 1e3;
                    if count == 1 {
                        log::info!(target: "graphyte", "sent {:?} to {} in {ms:.3} ms", String::from_utf8_lossy(lines), self.address);
                    } else {
                        log::info!(target: "graphyte", "sent {count} lines ({} bytes) to {} in {ms:.3} ms", lines.len(), self.address);
                    }
                }
                Ok(())
            }
            Err(WriteError { error, attempt }) => {
                Counters::add(&self.counters.send_errors, 1);
                let delivered = self.encoding.delivered(lines, error.written);
                Counters::add(&self.counters.sent, delivered.lines);
                if let Some(suppressed) = lock(&self.errors).hit() {
                    let lines = LineCount(count - delivered.lines);
                    let address = &self.address;
                    let source = &error.source;
                    match (&attempt, suppressed) {
                        (Attempt::BackingOff { wait, last_error }, 0) => {
                            log::error!(target: "graphyte", "{lines} not sent to {address}: next connect attempt in {} ms (last error: {last_error})", wait.as_millis())
                        }
                        (Attempt::Made, 0) => {
                            log::error!(target: "graphyte", "sending {lines} to {address} failed: {source}")
                        }
                        _ => {
                            log::warn!(target: "graphyte", "sending to {address} still fails: {source} ({suppressed} more failures since the last report)")
                        }
                    }
                }
                Err(Failed {
                    error: io_error(&self.address, error.source),
                    delivered,
                })
            }
        }
    }

    /// The counters, with `queued` lines waiting.
    pub(crate) fn stats(&self, queued: usize) -> Stats {
        self.counters.snapshot(queued)
    }

    /// Closes the connection.
    pub(crate) fn close(&self) {
        let mut conn = lock(&self.conn);
        conn.transport.close();
        conn.connected = false;
    }
}

/// The error of a failed write to `addr`: a lookup that timed out is
/// [`Error::ResolveTimedOut`], anything else [`Error::Io`].
fn io_error(addr: &str, source: std::io::Error) -> Error {
    match source
        .get_ref()
        .and_then(|e| e.downcast_ref::<ResolveTimedOut>())
    {
        Some(timed_out) => Error::ResolveTimedOut {
            host: timed_out.host.clone(),
            after: timed_out.after,
        },
        None => Error::Io {
            addr: addr.to_owned(),
            source,
        },
    }
}

impl Connection {
    /// Connects if needed, then writes the encoded `lines` by `deadline`.
    fn write(
        &mut self,
        encoding: &dyn Encoding,
        lines: &[u8],
        deadline: Instant,
        counters: &Counters,
    ) -> Result<(), WriteError> {
        let mut retried = false;
        loop {
            let fresh = !self.connected;
            if fresh {
                self.connect(deadline, counters)?;
            }
            let bytes = encoding.encode(lines, &mut self.scratch);
            match self.transport.send(bytes, deadline) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.transport.close();
                    self.connected = false;
                    // The server had closed the connection before this
                    // write: reconnect and retry once, at once.
                    let stale =
                        e.written == 0 && e.source.kind() == std::io::ErrorKind::NotConnected;
                    if stale && !fresh && !retried {
                        log::debug!(target: "graphyte", "{}: {}; reconnecting", self.transport.address(), e.source);
                        retried = true;
                        continue;
                    }
                    return Err(e.into());
                }
            }
        }
    }

    /// Connects, unless a failed connect's backoff is still running.
    fn connect(&mut self, deadline: Instant, counters: &Counters) -> Result<(), WriteError> {
        let now = Instant::now();
        if let Some(backoff) = self.backoff.as_ref().filter(|b| now < b.retry_at) {
            let wait = backoff.retry_at - now;
            return Err(WriteError {
                error: SendError::not_connected(format!(
                    "not connected, next attempt in {} ms (last error: {})",
                    wait.as_millis(),
                    backoff.last_error
                )),
                attempt: Attempt::BackingOff {
                    wait,
                    last_error: backoff.last_error.clone(),
                },
            });
        }
        match self.transport.connect(deadline) {
            Ok(()) => {
                self.connected = true;
                self.backoff = None;
                self.connects += 1;
                if self.connects > 1 {
                    counters.reconnects.fetch_add(1, Relaxed);
                }
                Ok(())
            }
            Err(e) => {
                self.transport.close();
                let delay = self
                    .backoff
                    .as_ref()
                    .map_or(MIN_BACKOFF, |b| (b.delay * 2).min(MAX_BACKOFF));
                self.backoff = Some(Backoff {
                    retry_at: Instant::now() + delay,
                    delay,
                    last_error: e.to_string(),
                });
                Err(SendError::from(e).into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::net::TcpListener;

    use super::*;
    use crate::encoding::Plaintext;
    use crate::transport::TcpTransport;

    fn link_to(port: u16) -> Link {
        let transport = TcpTransport::new("127.0.0.1", port, Duration::from_secs(1));
        Link::new(
            Box::new(transport),
            Box::new(Plaintext),
            Duration::from_secs(1),
            false,
            Duration::from_secs(10),
        )
    }

    /// A port nothing listens on: connects to it are refused at once.
    fn refused_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    fn io_error(e: Error) -> io::Error {
        match e {
            Error::Io { source, .. } => source,
            other => panic!("expected Error::Io, got {other:?}"),
        }
    }

    #[test]
    fn failed_connects_back_off_from_100_ms_to_10_s() {
        let link = link_to(refused_port());
        let mut delays = Vec::new();
        for _ in 0..10 {
            let e = io_error(link.write(b"a 1 1\n", 1).unwrap_err());
            assert_ne!(e.kind(), io::ErrorKind::NotConnected, "{e}");
            let mut conn = lock(&link.conn);
            let backoff = conn.backoff.as_mut().expect("backing off");
            delays.push(backoff.delay);
            let last_error = backoff.last_error.clone();
            drop(conn);
            // During the wait a send fails at once, naming the last error.
            let e = io_error(link.write(b"a 1 1\n", 1).unwrap_err());
            assert_eq!(e.kind(), io::ErrorKind::NotConnected);
            let message = e.to_string();
            assert!(
                message.starts_with("not connected, next attempt in "),
                "{message}"
            );
            assert!(
                message.ends_with(&format!(" ms (last error: {last_error})")),
                "{message}"
            );
            // Skip the wait.
            lock(&link.conn).backoff.as_mut().unwrap().retry_at = Instant::now();
        }
        let ms = Duration::from_millis;
        assert_eq!(
            delays,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(3200),
                ms(6400),
                MAX_BACKOFF,
                MAX_BACKOFF,
                MAX_BACKOFF
            ]
        );
        let stats = link.stats(0);
        assert_eq!(
            (stats.send_errors, stats.sent, stats.reconnects),
            (20, 0, 0)
        );
    }

    /// Keeps the messages logged under target `graphyte` (for every test
    /// of this process; each test picks its own by address).
    struct Captured(Mutex<Vec<String>>);

    impl log::Log for Captured {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            if record.target() == "graphyte" {
                lock(&self.0).push(record.args().to_string());
            }
        }
        fn flush(&self) {}
    }

    static LOGGED: Captured = Captured(Mutex::new(Vec::new()));

    #[test]
    fn the_log_says_whether_a_connect_was_tried() {
        let _ = log::set_logger(&LOGGED);
        log::set_max_level(log::LevelFilter::Trace);
        let port = refused_port();
        let transport = TcpTransport::new("127.0.0.1", port, Duration::from_secs(1));
        // A zero log period: every failure is logged.
        let link = Link::new(
            Box::new(transport),
            Box::new(Plaintext),
            Duration::from_secs(1),
            false,
            Duration::ZERO,
        );
        link.write(b"a 1 1\n", 1).unwrap_err();
        link.write(b"a 1 1\nb 2 2\nc 3 3\n", 3).unwrap_err();
        let address = format!("127.0.0.1:{port}");
        let logged: Vec<String> = lock(&LOGGED.0)
            .iter()
            .filter(|m| m.contains(&address))
            .cloned()
            .collect();
        assert_eq!(logged.len(), 2, "{logged:?}");
        assert!(
            logged[0].starts_with(&format!("sending 1 line to {address} failed: ")),
            "{logged:?}"
        );
        let not_sent = format!("3 lines not sent to {address}: next connect attempt in ");
        assert!(logged[1].starts_with(&not_sent), "{logged:?}");
        assert!(logged[1].contains(" ms (last error: "), "{logged:?}");
    }

    #[test]
    fn a_closed_connection_is_reopened_at_once_and_counted() {
        use std::io::Read;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let link = link_to(listener.local_addr().unwrap().port());
        link.write(b"a 1 1\n", 1).unwrap();
        let (mut first, _) = listener.accept().unwrap();
        let mut got = [0u8; 6];
        first.read_exact(&mut got).unwrap();
        drop(first);
        std::thread::sleep(Duration::from_millis(50));
        // The server closed the connection: the next write reconnects and
        // succeeds, without an error.
        link.write(b"b 2 2\n", 1).unwrap();
        let (mut second, _) = listener.accept().unwrap();
        second.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"b 2 2\n");
        let stats = link.stats(0);
        assert_eq!((stats.sent, stats.send_errors, stats.reconnects), (2, 0, 1));
    }
}
