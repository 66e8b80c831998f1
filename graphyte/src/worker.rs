//! Interval mode's background thread: it writes the [queue](crate::queue)
//! at every interval boundary (aligned to wall-clock multiples of the
//! interval), when the queue is half full, or when asked to flush or stop;
//! it adds the interval [reports](crate::report) at each boundary; after a
//! failed write it retries with backoff; at stop it delivers what it can
//! until the stop deadline, then exits.

use std::cell::Cell;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::link::Link;
use crate::log_limit::LineCount;
use crate::queue::{Lines, Queue};
use crate::report::Reports;
use crate::stats::Counters;
use crate::sync::{deadline_after, lock, wait_timeout};
use crate::timestamp::Timestamp;

/// First wait before retrying a failed write; doubles up to the interval.
const MIN_RETRY: Duration = Duration::from_millis(50);

thread_local! {
    /// On an interval thread, the address of its [`Worker`]: how code that
    /// may run there (an exit handler) knows not to wait for that thread.
    /// No destructor, so it can be read while the process exits.
    static INTERVAL_THREAD_OF: Cell<usize> = const { Cell::new(0) };
}

/// The queue and the interval thread, as the sender sees them.
pub(crate) struct Worker {
    queue: Queue,
    control: Mutex<Control>,
    /// Wakes the thread.
    work: Condvar,
    /// Wakes `flush` and `stop` callers when the thread made progress.
    progress: Condvar,
    interval: Duration,
}

/// What callers ask of the thread, and what it tells them back.
#[derive(Default)]
struct Control {
    /// Flush generations: requested by callers, completed by the thread.
    flush_requested: u64,
    flush_done: u64,
    /// Set by `stop`: the thread delivers what it can until then, and exits.
    deadline: Option<Instant>,
    /// The thread has exited.
    exited: bool,
    /// Lines the thread gave up on at stop.
    lost: usize,
    /// Why the last write failed, until one succeeds.
    last_error: Option<String>,
    /// A flush timed out and no write succeeded since: the server has had
    /// a whole timeout already, so a stop does not wait another one.
    flush_timed_out: bool,
}

impl Worker {
    /// Starts the thread for `queue`, writing through `link`.
    pub(crate) fn start(
        queue: Queue,
        interval: Duration,
        link: Arc<Link>,
        mut reports: Reports,
    ) -> Result<(Arc<Worker>, JoinHandle<()>)> {
        let worker = Arc::new(Worker {
            queue,
            control: Mutex::new(Control::default()),
            work: Condvar::new(),
            progress: Condvar::new(),
            interval,
        });
        let thread = {
            let worker = Arc::clone(&worker);
            thread::Builder::new()
                .name("graphyte".into())
                .spawn(move || {
                    INTERVAL_THREAD_OF.with(|of| of.set(Arc::as_ptr(&worker) as usize));
                    worker.run(&link, &mut reports)
                })
                .map_err(|e| Error::Io {
                    addr: "graphyte worker thread".into(),
                    source: e,
                })?
        };
        Ok((worker, thread))
    }

    /// The queue the thread writes.
    pub(crate) fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Whether the calling thread is this worker's interval thread.
    pub(crate) fn is_current(&self) -> bool {
        INTERVAL_THREAD_OF.with(Cell::get) == self as *const Worker as usize
    }

    /// The interval between the thread's regular writes.
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// Wakes the thread to write now (the queue is half full).
    pub(crate) fn wake(&self) {
        // Through the control lock, so the thread cannot miss the wake-up
        // between its check and its wait.
        drop(lock(&self.control));
        self.work.notify_one();
    }

    /// Waits until everything queued before this call is written, or `timeout`.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<()> {
        let deadline = deadline_after(timeout);
        let mut ctl = lock(&self.control);
        if self.queue.len() == 0 || ctl.exited {
            return Ok(());
        }
        ctl.flush_requested += 1;
        let generation = ctl.flush_requested;
        self.work.notify_one();
        while ctl.flush_done < generation && !ctl.exited {
            let now = Instant::now();
            if now >= deadline {
                ctl.flush_timed_out = true;
                return Err(Error::Undelivered {
                    pending: self.queue.len(),
                    reason: ctl
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "flush timed out".into()),
                });
            }
            ctl = wait_timeout(&self.progress, ctl, deadline - now);
        }
        Ok(())
    }

    /// Asks the thread to deliver everything (for at most `timeout`, or not
    /// at all after a flush that timed out, see below) and exit, and waits
    /// for it. Returns how many lines it had to give up on (counted as
    /// dropped).
    pub(crate) fn stop(
        &self,
        timeout: Duration,
        thread: JoinHandle<()>,
        counters: &Counters,
    ) -> usize {
        {
            // If a flush timed out and nothing was written since, the server
            // has had its timeout already: give up at once.
            let mut ctl = lock(&self.control);
            let timeout = if ctl.flush_timed_out {
                Duration::ZERO
            } else {
                timeout
            };
            ctl.deadline = Some(deadline_after(timeout));
        }
        self.work.notify_one();
        if thread.join().is_err() {
            log::error!(target: "graphyte", "the graphyte worker thread panicked");
        }
        // Nothing is left after a normal exit; after a panic, what was
        // queued can no longer be written and is counted as dropped.
        let abandoned = self.queue.abandon(counters);
        let lost = {
            let mut ctl = lock(&self.control);
            ctl.exited = true;
            ctl.lost
        };
        self.progress.notify_all();
        lost + abandoned
    }

    /// The thread. It never closes the transport: the sender does, once,
    /// after its last write.
    fn run(&self, link: &Link, reports: &mut Reports) {
        let mut taken = Vec::new();
        let mut retry = Retry::default();
        let mut ticks = Ticks::new(self.interval);
        // A write is due because an interval ended (rather than urgent).
        let mut tick_due = false;
        let mut reported_last_interval = false;
        let mut ctl = lock(&self.control);
        loop {
            let now = Instant::now();
            // 1. An interval ended: report it. Stopping: report the one in
            //    progress, once, so that nothing counted is lost.
            if now >= ticks.next {
                ctl = self.report(ctl, reports, ticks.start(), link);
                tick_due = true;
                ticks = Ticks::new(self.interval);
            }
            let stopping = ctl.deadline.is_some();
            if stopping && !reported_last_interval {
                reported_last_interval = true;
                ctl = self.report(ctl, reports, ticks.start(), link);
            }

            // 2. Nothing queued: flushes are done; a stop exits, unless a
            //    send slipped in meanwhile.
            let waiting = self.queue.len();
            if waiting == 0 {
                tick_due = false;
                let requested = ctl.flush_requested;
                Self::complete_flushes(&mut ctl, requested, &self.progress);
                if stopping {
                    if self.queue.close_if_empty() {
                        break;
                    }
                    continue;
                }
            }

            // 3. The stop deadline passed: give up on the rest.
            if ctl.deadline.is_some_and(|d| now >= d) {
                let lost = self.queue.abandon(&link.counters);
                ctl.lost = lost;
                log::error!(target: "graphyte", "stopping with {} undelivered to {}: {}", LineCount(lost), link.address(), ctl.last_error.as_deref().unwrap_or("timed out"));
                break;
            }

            // 4. Sleep unless a write is due and no retry wait runs.
            let urgent =
                stopping || ctl.flush_done < ctl.flush_requested || self.queue.past_high_water();
            let want = waiting > 0 && (tick_due || urgent);
            if !want || !retry.allows(now) {
                let mut until = ticks.next;
                if want {
                    until = until.min(retry.at.unwrap_or(now));
                }
                if let Some(deadline) = ctl.deadline {
                    until = until.min(deadline);
                }
                ctl = wait_timeout(&self.work, ctl, until.saturating_duration_since(now));
                continue;
            }

            // 5. Write everything queued, without holding the lock.
            let generation = ctl.flush_requested;
            self.queue.take(&mut taken);
            let deadline = ctl.deadline;
            drop(ctl);
            let outcome = self.write(link, &taken, deadline);
            ctl = lock(&self.control);
            match outcome {
                Ok(()) => {
                    self.queue.written(&mut taken);
                    retry = Retry::default();
                    tick_due = false;
                    ctl.last_error = None;
                    ctl.flush_timed_out = false;
                    Self::complete_flushes(&mut ctl, generation, &self.progress);
                }
                Err(stopped) => {
                    self.queue
                        .put_back(&mut taken, stopped.shard, stopped.delivered);
                    ctl.last_error = Some(stopped.error.to_string());
                    retry.schedule(self.interval);
                    self.progress.notify_all();
                }
            }
        }
        // Under the same lock as the last check: `flush` and `stop` callers
        // see the exit.
        ctl.exited = true;
        drop(ctl);
        self.progress.notify_all();
    }

    /// Marks flushes up to `generation` as done and wakes their callers.
    fn complete_flushes(ctl: &mut Control, generation: u64, progress: &Condvar) {
        if ctl.flush_done < generation {
            ctl.flush_done = generation;
            progress.notify_all();
        }
    }

    /// Queues the report of the interval that started at `start`; report
    /// lines beyond the bound are dropped and counted. Builds it without
    /// holding the control lock (a source may take locks of its own).
    fn report<'a>(
        &'a self,
        ctl: MutexGuard<'a, Control>,
        reports: &mut Reports,
        start: Timestamp,
        link: &Link,
    ) -> MutexGuard<'a, Control> {
        if reports.is_empty() {
            return ctl;
        }
        drop(ctl);
        let report = reports.build(start, link.stats(self.queue.len()));
        let count = report.count;
        let kept = self.queue.push_report(report.lines, count);
        reports.committed(kept);
        if kept < count {
            Counters::add(&link.counters.dropped, count - kept);
            log::warn!(target: "graphyte", "queue full ({}): dropped {} of an interval report", LineCount(self.queue.capacity()), LineCount(count - kept));
        }
        lock(&self.control)
    }

    /// Writes the taken lines, shard after shard, in batches. Once `stop`
    /// has set a deadline, no write runs past it.
    fn write(
        &self,
        link: &Link,
        taken: &[Lines],
        deadline: Option<Instant>,
    ) -> Result<(), Stopped> {
        let batch_size = self.queue.batch_size();
        for (shard, lines) in taken.iter().enumerate() {
            let bytes = lines.bytes();
            let mut written = 0;
            for batch in lines.batches(batch_size) {
                // `stop` may come while a pass is under way: look before each batch.
                let deadline = deadline.or(lock(&self.control).deadline);
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(Stopped {
                        shard,
                        delivered: written,
                        error: Error::Undelivered {
                            pending: self.queue.len(),
                            reason: "the stop timeout passed".into(),
                        },
                    });
                }
                if let Err(failed) =
                    link.write_by(&bytes[written..batch.end], batch.lines, deadline)
                {
                    return Err(Stopped {
                        shard,
                        delivered: written + failed.delivered.bytes,
                        error: failed.error,
                    });
                }
                written = batch.end;
            }
        }
        Ok(())
    }
}

/// Where a write of the taken lines stopped.
struct Stopped {
    /// The shard whose lines were being written.
    shard: usize,
    /// Bytes of that shard's lines delivered whole before it stopped.
    delivered: usize,
    error: Error,
}

/// The wait before retrying after a failed write.
#[derive(Default)]
struct Retry {
    /// No write before this.
    at: Option<Instant>,
    /// The next wait.
    delay: Option<Duration>,
}

impl Retry {
    fn allows(&self, now: Instant) -> bool {
        self.at.is_none_or(|at| now >= at)
    }

    /// Waits 50 ms after the first failure, doubling up to the interval.
    fn schedule(&mut self, interval: Duration) {
        let delay = self.delay.unwrap_or(MIN_RETRY);
        self.at = Some(Instant::now() + delay);
        self.delay = Some((delay * 2).min(interval.max(MIN_RETRY)));
    }
}

/// The next interval boundary: a wall-clock multiple of the interval.
struct Ticks {
    interval: Duration,
    /// When it comes, to wait for.
    next: Instant,
    /// The same moment as time since the Unix epoch.
    boundary: Duration,
}

impl Ticks {
    /// The next boundary after now.
    fn new(interval: Duration) -> Ticks {
        let now = Instant::now();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let period = interval.as_nanos().max(1);
        let wait = period - wall.as_nanos() % period;
        let wait = Duration::from_nanos(wait.min(u128::from(u64::MAX)) as u64);
        Ticks {
            interval,
            next: now + wait,
            boundary: wall + wait,
        }
    }

    /// The start of the interval that ends at this boundary (Unix seconds).
    fn start(&self) -> Timestamp {
        Timestamp::from(self.boundary.saturating_sub(self.interval).as_secs())
    }
}

/// The start of the interval in progress, aligned like the thread's ticks,
/// in Unix seconds.
pub(crate) fn interval_start(interval: Duration) -> Timestamp {
    Ticks::new(interval).start()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_aligned_and_ahead() {
        let interval = Duration::from_millis(200);
        let ticks = Ticks::new(interval);
        let ahead = ticks.next.saturating_duration_since(Instant::now());
        assert!(ahead <= interval);
        assert_eq!(ticks.boundary.as_nanos() % interval.as_nanos(), 0);
    }

    #[test]
    fn retries_back_off_from_50_ms_to_the_interval() {
        let mut retry = Retry::default();
        let now = Instant::now();
        assert!(retry.allows(now));
        retry.schedule(Duration::from_millis(300));
        assert!(!retry.allows(now));
        let mut next = Vec::new();
        for _ in 0..5 {
            next.push(retry.delay.unwrap());
            retry.schedule(Duration::from_millis(300));
        }
        let ms = Duration::from_millis;
        assert_eq!(next, [ms(100), ms(200), ms(300), ms(300), ms(300)]);
    }
}
