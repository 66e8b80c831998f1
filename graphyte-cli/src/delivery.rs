//! Bulk mode's way to the server: a graphyte [`Sender`] in interval mode.
//!
//! The sender does the sending: it queues the lines, writes them in batches
//! from its own thread every [`INTERVAL`] (so a slow producer's lines go out
//! at once, and a fast one's in large writes), and when a write fails it
//! keeps the lines, reconnects with backoff and resends only the lines the
//! server did not take whole. This module adds what a command needs on top,
//! and nothing of that machinery:
//!
//! * **No line is dropped:** it never lets the queue fill up; it waits for
//!   room instead.
//! * **When to give up:** at once when the server never took a line (a wrong
//!   address) or a write timed out (the server is there but does not read;
//!   another connection would only fill another socket buffer); otherwise
//!   once the writes have failed for `--timeout` (a restart that takes too
//!   long). Giving up stops all writing at once (`Sender::stop_within` with
//!   no time left), since a normal stop would keep trying for another
//!   timeout.
//! * **What got through:** the input line numbers of the queued lines, so a
//!   failure names the first input line the server did not get.
//!
//! To know those, it watches the transport the sender writes through
//! ([`Watched`]): which lines went out whole, and the last error with its
//! kind. The sender's [`Stats`](graphyte::Stats) count lines but keep
//! neither the error nor its kind.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

use graphyte::{Config, SendError, Sender, Timestamp, Transport};

use crate::number::Number;

/// How often the sender's thread writes what is queued.
pub const INTERVAL: Duration = Duration::from_millis(10);

/// The sender's queue bound, in lines; it is never reached.
pub const QUEUE_LINES: usize = 131_072;

/// The most lines per write.
pub const BATCH_LINES: usize = 2_000;

/// How long to wait before looking again at a full queue or a pending
/// delivery.
const POLL: Duration = Duration::from_micros(200);

/// The way to the server; see the [module](self).
pub struct Delivery {
    /// `None` once given up.
    sender: Option<Sender>,
    watch: Arc<Mutex<Watch>>,
    address: String,
    /// How long failing writes are retried once the server has taken lines.
    timeout: Duration,
    /// Lines that can be queued before the queue must be looked at again.
    room: usize,
    /// Lines queued so far.
    queued: u64,
    /// The input line numbers of the queued lines not known to be delivered,
    /// oldest first ...
    numbers: VecDeque<u64>,
    /// ... after the first `forgotten` queued lines, which were.
    forgotten: u64,
}

/// Why a line was not queued.
#[derive(Debug)]
pub enum Refused {
    /// graphyte refused the line (name, tag, value or timestamp).
    Line(graphyte::Error),
    /// The server is given up on.
    Undelivered(Undelivered),
}

/// The server is given up on: no line from `first_unsent` on was delivered
/// (all lines before it were).
#[derive(Debug)]
pub struct Undelivered {
    /// Why, naming the server: `sending to HOST:PORT failed: REASON`.
    pub error: String,
    /// The input line number of the first line not delivered.
    pub first_unsent: u64,
}

impl Delivery {
    /// The configuration of a bulk sender writing through `transport`, and
    /// the watch on it for [`Delivery::new`].
    pub fn configure(config: Config, transport: Box<dyn Transport>) -> (Config, Arc<Mutex<Watch>>) {
        let watch = Arc::new(Mutex::new(Watch::default()));
        let watched = Watched {
            inner: transport,
            watch: Arc::clone(&watch),
        };
        let config = config
            .interval(INTERVAL)
            .queue_size(QUEUE_LINES)
            .batch_size(BATCH_LINES)
            .transport(watched);
        (config, watch)
    }

    /// Delivers through `sender`, made from [`Delivery::configure`]'s
    /// configuration; gives up on a failing server after `timeout`.
    pub fn new(sender: Sender, watch: Arc<Mutex<Watch>>, timeout: Duration) -> Delivery {
        Delivery {
            address: sender.address().to_owned(),
            sender: Some(sender),
            watch,
            timeout,
            room: 0,
            queued: 0,
            numbers: VecDeque::new(),
            forgotten: 0,
        }
    }

    /// Queues input line `number`, `name value timestamp`, waiting for room
    /// if need be.
    pub fn send(
        &mut self,
        number: u64,
        name: &str,
        value: Number,
        timestamp: Timestamp,
    ) -> Result<(), Refused> {
        loop {
            while self.room == 0 {
                self.room = self.wait_for_room().map_err(Refused::Undelivered)?;
            }
            let Some(sender) = &self.sender else {
                unreachable!("a delivery given up on returns no room");
            };
            match value.send(sender, name, timestamp) {
                Ok(()) => break,
                // Not expected (room is kept), but a line must not be lost.
                Err(graphyte::Error::QueueFull { .. }) => self.room = 0,
                Err(e) => return Err(Refused::Line(e)),
            }
        }
        self.room -= 1;
        self.queued += 1;
        self.numbers.push_back(number);
        Ok(())
    }

    /// Gives up if the server is failing for good (see the [module](self)).
    /// Cheap: called before every read that may wait for the producer.
    pub fn check(&mut self) -> Result<(), Undelivered> {
        self.look().map(drop)
    }

    /// Waits until every queued line is delivered, then stops the sender.
    pub fn finish(&mut self) -> Result<(), Undelivered> {
        while self.look()? != Some(self.queued) {
            thread::sleep(POLL);
        }
        if let Some(sender) = self.sender.take() {
            // Nothing is queued: this only ends the thread and the connection.
            let _ = sender.stop();
        }
        Ok(())
    }

    /// Lines delivered so far.
    pub fn sent(&self) -> u64 {
        lock(&self.watch).delivered
    }

    /// Where the lines go: `host:port`, or `udp://host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Room in the queue once there is some.
    fn wait_for_room(&mut self) -> Result<usize, Undelivered> {
        loop {
            self.look()?;
            let queued = self.sender.as_ref().map_or(0, |s| s.stats().queued) as usize;
            // Half empty: the sender's thread writes from half full on, so
            // queueing goes on while it writes.
            if queued <= QUEUE_LINES / 2 {
                return Ok(QUEUE_LINES - queued);
            }
            thread::sleep(POLL);
        }
    }

    /// Looks at the watch, unless a write is under way: forgets the numbers
    /// of the lines delivered, and gives up if the writes fail for good.
    /// Returns the lines delivered, if it could look.
    fn look(&mut self) -> Result<Option<u64>, Undelivered> {
        let mut watch = match self.watch.try_lock() {
            Ok(watch) => watch,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(None),
        };
        let delivered = watch.delivered;
        while self.forgotten < delivered {
            self.numbers.pop_front();
            self.forgotten += 1;
        }
        let Some(failing) = &watch.failing else {
            return Ok(Some(delivered));
        };
        let hopeless = delivered == 0 || failing.stalled || failing.since.elapsed() >= self.timeout;
        if !hopeless || delivered == self.queued {
            return Ok(Some(delivered));
        }
        let error = format!("sending to {} failed: {}", self.address, failing.message);
        // Under the lock no write is under way, and none starts after this.
        watch.closed = true;
        drop(watch);
        // Stop at once: a normal stop would try again for up to the timeout.
        if let Some(sender) = self.sender.take() {
            let _ = sender.stop_within(Duration::ZERO);
        }
        Err(Undelivered {
            error,
            first_unsent: self.numbers.front().copied().unwrap_or_default(),
        })
    }
}

/// What the watched transport saw.
#[derive(Debug, Default)]
pub struct Watch {
    /// Given up: write nothing more.
    closed: bool,
    /// Lines handed over whole.
    delivered: u64,
    /// Since the last write that went through, if the writes fail.
    failing: Option<Failing>,
}

#[derive(Debug)]
struct Failing {
    /// The first failure.
    since: Instant,
    /// A write timed out.
    stalled: bool,
    /// The last error.
    message: String,
}

/// The sender's transport, watched: the lock on the [`Watch`] is held for
/// the whole of each connect and write, so that what it says is exact when
/// it is read.
struct Watched {
    inner: Box<dyn Transport>,
    watch: Arc<Mutex<Watch>>,
}

impl Watch {
    /// Records a failed connect or write.
    fn failed(&mut self, error: &io::Error) {
        let stalled = matches!(
            error.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        );
        let failing = self.failing.get_or_insert(Failing {
            since: Instant::now(),
            stalled: false,
            message: String::new(),
        });
        failing.stalled |= stalled;
        failing.message = error.to_string();
    }
}

impl Transport for Watched {
    fn connect(&mut self, deadline: Instant) -> io::Result<()> {
        let mut watch = lock(&self.watch);
        if watch.closed {
            return Err(io::Error::other("given up"));
        }
        self.inner
            .connect(deadline)
            .inspect_err(|e| watch.failed(e))
    }

    fn send(&mut self, lines: &[u8], deadline: Instant) -> Result<(), SendError> {
        let mut watch = lock(&self.watch);
        if watch.closed {
            return Err(io::Error::other("given up").into());
        }
        match self.inner.send(lines, deadline) {
            Ok(()) => {
                watch.delivered += lines.iter().filter(|&&b| b == b'\n').count() as u64;
                watch.failing = None;
                Ok(())
            }
            Err(e) => {
                watch.delivered += graphyte::whole_lines(lines, e.written).1 as u64;
                watch.failed(&e.source);
                Err(e)
            }
        }
    }

    fn address(&self) -> String {
        self.inner.address()
    }

    fn close(&mut self) {
        self.inner.close();
    }
}

fn lock(watch: &Mutex<Watch>) -> MutexGuard<'_, Watch> {
    watch.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use graphyte::CaptureTransport;

    /// A delivery through `transport` that gives up after `timeout`.
    pub(crate) fn delivery(transport: impl Transport, timeout: Duration) -> Delivery {
        let (config, watch) = Delivery::configure(
            Config::new("localhost").timeout(timeout),
            Box::new(transport),
        );
        Delivery::new(Sender::new(config).expect("a valid config"), watch, timeout)
    }

    /// A server that goes away: attempt `n` (from 0) hands over the first
    /// `cuts[n]` bytes of its batch and fails, while attempts past the
    /// script succeed, or fail if `then_fail`. What each "connection" got is
    /// kept, a failure ending the connection.
    pub(crate) struct Flaky {
        cuts: Vec<Option<usize>>,
        then_fail: bool,
        /// The error of a failed attempt.
        pub(crate) kind: io::ErrorKind,
        attempts: usize,
        pub(crate) connections: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl Flaky {
        pub(crate) fn new(cuts: Vec<Option<usize>>, then_fail: bool) -> Flaky {
            Flaky {
                cuts,
                then_fail,
                kind: io::ErrorKind::ConnectionReset,
                attempts: 0,
                connections: Arc::new(Mutex::new(vec![Vec::new()])),
            }
        }

        /// The complete lines the server got, over all connections, in order
        /// (a fragment left on a connection that failed is discarded).
        pub(crate) fn lines(connections: &Mutex<Vec<Vec<u8>>>) -> Vec<String> {
            let connections = connections.lock().unwrap();
            connections
                .iter()
                .flat_map(|data| {
                    let text = String::from_utf8(data.clone()).unwrap();
                    let whole = text.rfind('\n').map_or(0, |i| i + 1);
                    text[..whole].lines().map(str::to_owned).collect::<Vec<_>>()
                })
                .collect()
        }
    }

    impl Transport for Flaky {
        fn send(&mut self, lines: &[u8], _deadline: Instant) -> Result<(), SendError> {
            let cut = match self.cuts.get(self.attempts) {
                Some(cut) => *cut,
                None if self.then_fail => Some(0),
                None => None,
            };
            self.attempts += 1;
            let mut connections = self.connections.lock().unwrap();
            let taken = cut.unwrap_or(lines.len()).min(lines.len());
            connections
                .last_mut()
                .unwrap()
                .extend_from_slice(&lines[..taken]);
            if cut.is_none() {
                return Ok(());
            }
            connections.push(Vec::new());
            Err(SendError::new(
                taken,
                io::Error::new(self.kind, "server gone"),
            ))
        }
        fn address(&self) -> String {
            "flaky:2003".into()
        }
    }

    fn queue(delivery: &mut Delivery, names: &[&str]) {
        for (i, name) in names.iter().enumerate() {
            let ts = Timestamp::from(1_700_000_000);
            delivery
                .send(i as u64 + 1, name, Number::Int(1), ts)
                .expect("queued");
        }
    }

    #[test]
    fn the_watch_counts_whole_lines_only() {
        // "a" whole and 4 bytes of "b", then everything on the next attempt.
        let flaky = Flaky::new(vec![Some(15 + 4)], false);
        let connections = Arc::clone(&flaky.connections);
        let mut delivery = delivery(flaky, Duration::from_secs(5));
        queue(&mut delivery, &["a", "b", "c"]);
        delivery.finish().expect("delivered on the second attempt");
        assert_eq!(delivery.sent(), 3);
        assert_eq!(
            Flaky::lines(&connections),
            ["a 1 1700000000", "b 1 1700000000", "c 1 1700000000"]
        );
    }

    #[test]
    fn giving_up_stops_all_writing() {
        let capture = CaptureTransport::new();
        capture.fail_with(Some(io::ErrorKind::ConnectionRefused));
        let mut delivery = delivery(capture.clone(), Duration::from_secs(5));
        queue(&mut delivery, &["a", "b"]);
        let undelivered = delivery.finish().expect_err("refused");
        assert_eq!(undelivered.first_unsent, 1);
        // The server is back, but the run is over: nothing more goes out.
        capture.fail_with(None);
        thread::sleep(INTERVAL * 10);
        assert!(capture.lines().is_empty());
        assert_eq!(delivery.sent(), 0);
    }
}
