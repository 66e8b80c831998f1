//! Interval mode: the bounded line queue and the background thread that
//! writes it.
//!
//! `send` formats a line and appends it to a byte buffer under a short lock;
//! it never touches the network. The queue is sharded, one shard per core:
//! a thread always appends to the same shard (so its lines stay in order)
//! and threads on different shards do not contend; one atomic counter keeps
//! the bound for the whole queue. The worker wakes at every interval
//! boundary (aligned to wall-clock multiples of the interval), when the
//! queue is half full, or when asked to flush or stop; it takes each shard's
//! buffer in O(1) and writes it in batches of at most `batch_size` lines.
//! Lines whose write failed go back to the front of their shard and are
//! retried, with backoff, after the transport reconnects.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::line::LineFormat;
use crate::link::Link;
use crate::stats::{Counters, Stats};
use crate::sync::{lock, wait_timeout};
use crate::timestamp::Timestamp;

/// Called by the worker at the end of every interval (and once more at stop,
/// for the interval in progress) with the interval's aligned start: appends
/// that interval's aggregated lines to the buffer and returns how many.
pub(crate) type TickHook = Box<dyn FnMut(Timestamp, &LineFormat, &mut Vec<u8>) -> usize + Send>;

/// First wait before retrying a failed write; doubles up to the interval.
const MIN_RETRY: Duration = Duration::from_millis(50);

/// The shared queue.
pub(crate) struct Queue {
    state: Mutex<State>,
    /// The lines, in shards: a thread always pushes to the same shard (so its
    /// lines stay in order), and threads on different shards do not contend.
    shards: Box<[Shard]>,
    /// Lines in the shards plus lines being written: what the bound applies to.
    total: AtomicUsize,
    /// Wakes the worker.
    work: Condvar,
    /// Wakes `flush` and `stop` callers when the worker made progress.
    progress: Condvar,
    capacity: usize,
    batch_size: usize,
    interval: Duration,
    /// Queue length at which the worker writes without waiting for the tick.
    high_water: usize,
    full: FullLog,
}

/// Logs "queue full" at most once per period without a lock, so senders
/// refused by a full queue do not queue up on a mutex: they race only for a
/// compare-and-swap on the time the next report is due.
struct FullLog {
    started: Instant,
    period: Duration,
    /// When the next report is due, in nanoseconds since `started`.
    next_due: AtomicU64,
    /// Refusals so far, and at the last report.
    refused: AtomicU64,
    reported: AtomicU64,
}

impl FullLog {
    fn new(period: Duration) -> FullLog {
        FullLog {
            started: Instant::now(),
            period,
            next_due: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            reported: AtomicU64::new(0),
        }
    }

    /// Records one refusal; if a report is due, returns the refusals since
    /// the last one (this one included).
    fn hit(&self) -> Option<u64> {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.started.elapsed();
        let due = self.next_due.load(Ordering::Relaxed);
        let now_ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let next_ns = u64::try_from((now + self.period).as_nanos()).unwrap_or(u64::MAX);
        if now_ns < due
            || self
                .next_due
                .compare_exchange(due, next_ns, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        Some(refused - self.reported.swap(refused, Ordering::Relaxed))
    }
}

/// One shard of the queue, on cache lines of its own.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    lines: Mutex<Lines>,
}

#[derive(Default)]
struct Lines {
    /// Complete lines waiting, back to back.
    buf: Vec<u8>,
    /// Number of lines in `buf`.
    lines: usize,
    /// Offsets in `buf` just after every `batch_size`-th line, so the worker
    /// cuts batches without scanning for newlines.
    batch_ends: Vec<usize>,
    /// The worker has exited; later sends go synchronous.
    exited: bool,
}

/// The shard of the calling thread: fixed per thread, spread round-robin.
fn my_shard(shards: usize) -> usize {
    use std::sync::atomic::AtomicUsize as Counter;
    static NEXT: Counter = Counter::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|&i| i % shards)
}

#[derive(Default)]
struct State {
    /// Flush generations: requested by callers, completed by the worker.
    flush_requested: u64,
    flush_done: u64,
    /// Set by `stop`: the worker delivers what it can until then, and exits.
    deadline: Option<Instant>,
    /// The worker has exited; later sends go synchronous.
    exited: bool,
    /// Lines the worker gave up on at stop.
    lost: usize,
    last_error: Option<String>,
}

/// Why a line was not queued.
pub(crate) enum Refused {
    /// The queue is full: dropped and counted.
    Full(Error),
    /// The worker has stopped: the caller sends synchronously.
    Stopped,
}

impl Queue {
    /// Starts the worker thread.
    pub(crate) fn start(
        link: Arc<Link>,
        reports: Reports,
        interval: Duration,
        capacity: usize,
        batch_size: usize,
    ) -> Result<(Arc<Queue>, JoinHandle<()>)> {
        let shards = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 64);
        let queue = Arc::new(Queue {
            state: Mutex::new(State::default()),
            shards: (0..shards).map(|_| Shard::default()).collect(),
            total: AtomicUsize::new(0),
            work: Condvar::new(),
            progress: Condvar::new(),
            capacity,
            batch_size,
            interval,
            high_water: (capacity / 2).max(1),
            full: FullLog::new(interval.max(Duration::from_secs(1))),
        });
        let worker = {
            let queue = Arc::clone(&queue);
            thread::Builder::new()
                .name("graphyte".into())
                .spawn(move || {
                    let mut reports = ReportState {
                        reports,
                        scratch: Vec::new(),
                        last: Stats::default(),
                    };
                    queue.run(&link, &mut reports)
                })
                .map_err(|e| Error::Io {
                    addr: "graphyte worker thread".into(),
                    source: e,
                })?
        };
        Ok((queue, worker))
    }

    /// Queues one complete line.
    pub(crate) fn push(&self, line: &[u8], counters: &Counters) -> Result<(), Refused> {
        let shard = &self.shards[my_shard(self.shards.len())];
        let mut sh = lock(&shard.lines);
        if sh.exited {
            return Err(Refused::Stopped);
        }
        // Reserve a slot without ever passing the capacity, so `len()` (and
        // the `queued` figure) is a true bound at every instant, even while
        // producers race for the last slot.
        let reserved = self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                (t < self.capacity).then_some(t + 1)
            });
        let Ok(before) = reserved else {
            drop(sh);
            Counters::add(&counters.dropped, 1);
            if let Some(refused) = self.full.hit() {
                log::warn!(target: "graphyte", "queue full ({} lines): dropping metrics ({refused} dropped since the last report)", self.capacity);
            }
            return Err(Refused::Full(Error::QueueFull {
                capacity: self.capacity,
            }));
        };
        sh.buf.extend_from_slice(line);
        sh.lines += 1;
        if sh.lines % self.batch_size == 0 {
            let end = sh.buf.len();
            sh.batch_ends.push(end);
        }
        drop(sh);
        if before + 1 == self.high_water {
            // Through the state lock, so the worker cannot miss the wake-up
            // between its check and its wait.
            drop(lock(&self.state));
            self.work.notify_one();
        }
        Ok(())
    }

    /// The interval between the worker's regular writes.
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// Lines waiting or being written.
    pub(crate) fn len(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Locks every shard; with all of them held, no push is under way.
    fn lock_all(&self) -> Vec<MutexGuard<'_, Lines>> {
        self.shards.iter().map(|s| lock(&s.lines)).collect()
    }

    /// Waits until everything queued before this call is written, or `timeout`.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<()> {
        let deadline = deadline_after(timeout);
        let mut st = lock(&self.state);
        if self.total.load(Ordering::Acquire) == 0 || st.exited {
            return Ok(());
        }
        st.flush_requested += 1;
        let generation = st.flush_requested;
        self.work.notify_one();
        while st.flush_done < generation && !st.exited {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Undelivered {
                    pending: self.total.load(Ordering::Acquire),
                    reason: st
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "flush timed out".into()),
                });
            }
            st = wait_timeout(&self.progress, st, deadline - now);
        }
        Ok(())
    }

    /// Asks the worker to deliver everything (for at most `timeout`) and exit.
    /// Returns how many lines it had to give up on (counted as dropped).
    pub(crate) fn stop(
        &self,
        timeout: Duration,
        worker: JoinHandle<()>,
        counters: &Counters,
    ) -> usize {
        lock(&self.state).deadline = Some(deadline_after(timeout));
        self.work.notify_one();
        if worker.join().is_err() {
            log::error!(target: "graphyte", "the graphyte worker thread panicked");
        }
        // Nothing is left after a normal exit; after a panic, what was
        // queued can no longer be written and is counted as dropped.
        let abandoned = self.abandon(counters);
        let lost = {
            let mut st = lock(&self.state);
            st.exited = true;
            st.lost
        };
        self.progress.notify_all();
        lost + abandoned
    }

    /// Empties every shard for good (later sends go synchronous) and counts
    /// every line not written as dropped: those in the shards and, if the
    /// worker died mid-write, those it had taken. Returns how many.
    fn abandon(&self, counters: &Counters) -> usize {
        let mut all = self.lock_all();
        for sh in all.iter_mut() {
            sh.buf.clear();
            sh.batch_ends.clear();
            sh.lines = 0;
            sh.exited = true;
        }
        // With every shard locked no push is reserving a slot, so the total
        // is exactly the lines not written.
        let lost = self.total.swap(0, Ordering::AcqRel);
        drop(all);
        Counters::add(&counters.dropped, lost);
        lost
    }

    /// Makes the lines reported for the interval that started at `start`
    /// (macro aggregates from the hook, then self-metrics) and queues them;
    /// those beyond the bound are dropped and counted.
    fn report<'a>(
        &'a self,
        st: MutexGuard<'a, State>,
        rs: &mut ReportState,
        start: Duration,
        link: &Link,
    ) -> MutexGuard<'a, State> {
        if rs.reports.hook.is_none() && !rs.reports.self_metrics {
            return st;
        }
        let queued = self.total.load(Ordering::Acquire);
        drop(st);
        let ts = Timestamp::from(start.as_secs());
        let format = &rs.reports.format;
        rs.scratch.clear();
        let mut count = 0;
        if let Some(hook) = &mut rs.reports.hook {
            count += hook(ts, format, &mut rs.scratch);
        }
        if rs.reports.self_metrics {
            let now = link.stats(queued);
            let last = std::mem::replace(&mut rs.last, now);
            let lines = [
                // A custom transport may restart its reconnect count.
                ("graphyte.sent", now.sent.saturating_sub(last.sent)),
                ("graphyte.dropped", now.dropped.saturating_sub(last.dropped)),
                (
                    "graphyte.send_errors",
                    now.send_errors.saturating_sub(last.send_errors),
                ),
                (
                    "graphyte.reconnects",
                    now.reconnects.saturating_sub(last.reconnects),
                ),
                ("graphyte.queued", now.queued),
            ];
            for (name, value) in lines {
                if format
                    .format_into(&mut rs.scratch, name, &[], value, ts)
                    .is_ok()
                {
                    count += 1;
                }
            }
        }
        // Reserve room for as many report lines as fit, atomically.
        let mut room = 0;
        let _ = self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                room = self.capacity.saturating_sub(t).min(count);
                Some(t + room)
            });
        let (len, kept) = batch_end(&rs.scratch, room);
        lock(&self.shards[0].lines).append(&rs.scratch[..len], self.batch_size);
        let st = lock(&self.state);
        if kept < count {
            Counters::add(&link.counters.dropped, count - kept);
            log::warn!(target: "graphyte", "queue full ({} lines): dropped {} interval report lines", self.capacity, count - kept);
        }
        st
    }

    /// The worker thread. It never closes the transport: the sender does,
    /// once, after its last write.
    fn run(&self, link: &Link, reports: &mut ReportState) {
        let mut spares: Vec<(Vec<u8>, Vec<usize>, usize)> =
            self.shards.iter().map(|_| Default::default()).collect();
        let mut retry_delay = MIN_RETRY;
        let mut retry_at: Option<Instant> = None;
        let (mut next_tick, mut boundary) = next_boundary(self.interval);
        let mut tick_due = false;
        let mut final_collected = false;
        let mut st = lock(&self.state);
        loop {
            let now = Instant::now();
            if now >= next_tick {
                // The interval [boundary - interval, boundary) is over.
                let start = boundary.saturating_sub(self.interval);
                st = self.report(st, reports, start, link);
                tick_due = true;
                (next_tick, boundary) = next_boundary(self.interval);
            }
            let stopping = st.deadline.is_some();
            if stopping && !final_collected {
                // The interval in progress, so that nothing counted is lost.
                final_collected = true;
                let start = boundary.saturating_sub(self.interval);
                st = self.report(st, reports, start, link);
            }
            let waiting = self.len();
            if waiting == 0 {
                tick_due = false;
                if st.flush_done < st.flush_requested {
                    st.flush_done = st.flush_requested;
                    self.progress.notify_all();
                }
                if stopping {
                    // Exit only if no push slipped in: with every shard
                    // locked, none is under way.
                    let mut all = self.lock_all();
                    if all.iter().all(|sh| sh.lines == 0) {
                        for sh in all.iter_mut() {
                            sh.exited = true;
                        }
                        break;
                    }
                    continue;
                }
            }
            if st.deadline.is_some_and(|d| now >= d) {
                let lost = self.abandon(&link.counters);
                st.lost = lost;
                log::error!(target: "graphyte", "stopping with {} lines undelivered to {}: {}", lost, link.address(), st.last_error.as_deref().unwrap_or("timed out"));
                break;
            }
            let urgent =
                stopping || st.flush_done < st.flush_requested || waiting >= self.high_water;
            let want = waiting > 0 && (tick_due || urgent);
            let may = retry_at.is_none_or(|t| now >= t);
            if !(want && may) {
                let mut until = next_tick;
                if want {
                    until = until.min(retry_at.unwrap_or(now));
                }
                if let Some(deadline) = st.deadline {
                    until = until.min(deadline);
                }
                st = wait_timeout(&self.work, st, until.saturating_duration_since(now));
                continue;
            }

            // Take everything queued; write it without holding the lock.
            let generation = st.flush_requested;
            let mut taken = 0;
            for (shard, spare) in self.shards.iter().zip(spares.iter_mut()) {
                let mut sh = lock(&shard.lines);
                std::mem::swap(&mut sh.buf, &mut spare.0);
                std::mem::swap(&mut sh.batch_ends, &mut spare.1);
                spare.2 = std::mem::take(&mut sh.lines);
                taken += spare.2;
            }
            drop(st);
            let mut failed = None;
            for (i, spare) in spares.iter().enumerate() {
                if spare.2 == 0 {
                    continue;
                }
                let (written, error) = self.write_batches(link, &spare.0, &spare.1, spare.2);
                if let Some(e) = error {
                    failed = Some((i, written, e));
                    break;
                }
            }
            st = lock(&self.state);
            match failed {
                None => {
                    self.total.fetch_sub(taken, Ordering::AcqRel);
                    for spare in spares.iter_mut() {
                        spare.0.clear();
                        spare.1.clear();
                    }
                    retry_at = None;
                    retry_delay = MIN_RETRY;
                    tick_due = false;
                    st.last_error = None;
                    if st.flush_done < generation {
                        st.flush_done = generation;
                        self.progress.notify_all();
                    }
                }
                Some((failed_at, written, e)) => {
                    // Put the unwritten lines back in front of what arrived
                    // meanwhile, each in its shard.
                    let mut put_back = 0;
                    for (i, (shard, spare)) in self.shards.iter().zip(spares.iter_mut()).enumerate()
                    {
                        if i >= failed_at {
                            let from = if i == failed_at { written } else { 0 };
                            let mut sh = lock(&shard.lines);
                            let arrived = std::mem::take(&mut sh.buf);
                            sh.batch_ends.clear();
                            sh.lines = 0;
                            put_back += sh.append(&spare.0[from..], self.batch_size);
                            sh.append(&arrived, self.batch_size);
                        }
                        spare.0.clear();
                        spare.1.clear();
                    }
                    self.total.fetch_sub(taken - put_back, Ordering::AcqRel);
                    st.last_error = Some(e.to_string());
                    retry_at = Some(Instant::now() + retry_delay);
                    retry_delay = (retry_delay * 2).min(self.interval.max(MIN_RETRY));
                    self.progress.notify_all();
                }
            }
        }
        // Set under the same lock as the last check, so that no send can slip
        // into a queue nobody drains: later sends go synchronous.
        st.exited = true;
        drop(st);
        self.progress.notify_all();
    }

    /// Writes `count` lines in batches of at most `batch_size` lines, cut at
    /// `batch_ends`. Once `stop` has set a deadline, no write runs past it.
    /// Returns the number of leading bytes handed over (whole lines) and the
    /// error that stopped it, if any.
    fn write_batches(
        &self,
        link: &Link,
        lines: &[u8],
        batch_ends: &[usize],
        count: usize,
    ) -> (usize, Option<Error>) {
        let tail = count - batch_ends.len() * self.batch_size;
        let batches = batch_ends.iter().map(|&end| (end, self.batch_size)).chain(
            (batch_ends.last().copied().unwrap_or(0) < lines.len()).then_some((lines.len(), tail)),
        );
        let mut written = 0;
        for (end, lines_in_batch) in batches {
            // `stop` may come while a pass is under way: look before each batch.
            let deadline = lock(&self.state).deadline;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let e = Error::Undelivered {
                    pending: count,
                    reason: "the stop timeout passed".into(),
                };
                return (written, Some(e));
            }
            if let Err((e, handed_over)) =
                link.write_batch(&lines[written..end], lines_in_batch, deadline)
            {
                return (written + handed_over, Some(e));
            }
            written = end;
        }
        (written, None)
    }
}

impl Lines {
    /// Appends complete lines, keeping `lines` and `batch_ends` right;
    /// returns how many.
    fn append(&mut self, lines: &[u8], batch_size: usize) -> usize {
        let base = self.buf.len();
        self.buf.extend_from_slice(lines);
        let mut n = 0;
        for (i, &b) in lines.iter().enumerate() {
            if b == b'\n' {
                n += 1;
                self.lines += 1;
                if self.lines % batch_size == 0 {
                    self.batch_ends.push(base + i + 1);
                }
            }
        }
        n
    }
}

/// The byte length and line count of the first `max_lines` lines of `buf`.
fn batch_end(buf: &[u8], max_lines: usize) -> (usize, usize) {
    if max_lines == 0 {
        return (0, 0);
    }
    let mut count = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            count += 1;
            if count == max_lines {
                return (i + 1, count);
            }
        }
    }
    (buf.len(), count)
}

/// What the worker reports by itself at the end of every interval.
pub(crate) struct Reports {
    /// The sender's prefix and default tags.
    pub(crate) format: Arc<LineFormat>,
    /// Macro aggregates (the global sender only).
    pub(crate) hook: Option<TickHook>,
    /// Report the sender's own counters as `graphyte.*` lines.
    pub(crate) self_metrics: bool,
}

/// [`Reports`] with the worker's scratch space and the counters at the
/// previous report.
struct ReportState {
    reports: Reports,
    scratch: Vec<u8>,
    last: Stats,
}

/// `timeout` from now; a timeout too long to be a point in time (such as
/// `Duration::MAX`, "wait as long as it takes") is a year from now.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 60 * 60))
}

/// The start of the interval in progress, aligned like the worker's ticks,
/// in Unix seconds.
pub(crate) fn interval_start(interval: Duration) -> Timestamp {
    let (_, boundary) = next_boundary(interval);
    Timestamp::from(boundary.saturating_sub(interval).as_secs())
}

/// The next wall-clock multiple of `interval` after now: as an `Instant` to
/// wait for, and as time since the Unix epoch.
fn next_boundary(interval: Duration) -> (Instant, Duration) {
    let now = Instant::now();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let period = interval.as_nanos().max(1);
    let wait = period - wall.as_nanos() % period;
    let wait = Duration::from_nanos(wait.min(u128::from(u64::MAX)) as u64);
    (now + wait, wall + wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_end_on_line_boundaries() {
        let buf = b"a 1 1\nb 2 2\nc 3 3\n";
        assert_eq!(batch_end(buf, 1), (6, 1));
        assert_eq!(batch_end(buf, 2), (12, 2));
        assert_eq!(batch_end(buf, 5), (18, 3));
        assert_eq!(batch_end(buf, 0), (0, 0));
        let mut st = Lines::default();
        st.append(buf, 2);
        st.append(buf, 2);
        assert_eq!((st.lines, st.batch_ends.as_slice()), (6, &[12, 24, 36][..]));
    }

    #[test]
    fn boundaries_are_aligned_and_ahead() {
        let interval = Duration::from_millis(200);
        let (at, wall) = next_boundary(interval);
        let ahead = at.saturating_duration_since(Instant::now());
        assert!(ahead <= interval);
        assert_eq!(wall.as_nanos() % interval.as_nanos(), 0);
    }
}
