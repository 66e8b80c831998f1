//! Interval mode's bounded line buffer.
//!
//! `send` formats a line and appends it here under a short lock; it never
//! touches the network. The buffer is sharded, one shard per core: a thread
//! always appends to the same shard (so its lines stay in order) and threads
//! on different shards do not contend; one atomic counter keeps the bound
//! for the whole queue, and counts the lines being written too. The
//! [worker](crate::worker) takes each shard's lines in O(1), writes them in
//! batches of at most `batch_size` lines, and puts back in front what it
//! could not write.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::error::Error;
use crate::log_limit::{AtomicLogLimiter, LineCount};
use crate::stats::Counters;
use crate::sync::lock;

/// The shared queue.
pub(crate) struct Queue {
    shards: Box<[Shard]>,
    /// Lines in the shards plus lines being written: what the bound applies to.
    total: AtomicUsize,
    capacity: usize,
    batch_size: usize,
    /// Queue length at which the worker writes without waiting for the tick.
    high_water: usize,
    full: AtomicLogLimiter,
}

/// One shard of the queue, on cache lines of its own.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    lines: Mutex<Lines>,
}

/// Complete lines, back to back, with the offsets that cut them into batches.
#[derive(Default)]
pub(crate) struct Lines {
    buf: Vec<u8>,
    /// Number of lines in `buf`.
    count: usize,
    /// Offsets in `buf` just after every `batch_size`-th line, so batches
    /// are cut without scanning for newlines.
    batch_ends: Vec<usize>,
    /// The queue is closed: later sends go synchronous.
    closed: bool,
}

/// A line was queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// And nothing else needs doing.
    Queued,
    /// And the queue just reached half its capacity: wake the worker.
    HalfFull,
}

/// Why a line was not queued.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The queue is full: dropped and counted.
    Full(Error),
    /// The queue is closed: the caller sends synchronously.
    Closed,
}

/// One batch of a [`Lines`]: its end offset and how many lines it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Batch {
    pub(crate) end: usize,
    pub(crate) lines: usize,
}

/// The shard of the calling thread: fixed per thread, spread round-robin.
fn my_shard(shards: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|&i| i % shards)
}

impl Queue {
    /// An empty queue of at most `capacity` lines, cut into batches of
    /// `batch_size`; "queue full" is logged at most once per `log_period`.
    pub(crate) fn new(capacity: usize, batch_size: usize, log_period: Duration) -> Queue {
        let shards = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 64);
        Queue {
            shards: (0..shards).map(|_| Shard::default()).collect(),
            total: AtomicUsize::new(0),
            capacity,
            batch_size,
            high_water: (capacity / 2).max(1),
            full: AtomicLogLimiter::new(log_period),
        }
    }

    /// Queues one complete line, or refuses it (counted as dropped when full).
    pub(crate) fn push(&self, line: &[u8], counters: &Counters) -> Result<Pushed, Refused> {
        let shard = &self.shards[my_shard(self.shards.len())];
        let mut sh = lock(&shard.lines);
        if sh.closed {
            return Err(Refused::Closed);
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
            return Err(self.refuse_full(counters));
        };
        sh.buf.extend_from_slice(line);
        sh.count += 1;
        if sh.count % self.batch_size == 0 {
            let end = sh.buf.len();
            sh.batch_ends.push(end);
        }
        drop(sh);
        Ok(if before + 1 == self.high_water {
            Pushed::HalfFull
        } else {
            Pushed::Queued
        })
    }

    #[cold]
    fn refuse_full(&self, counters: &Counters) -> Refused {
        Counters::add(&counters.dropped, 1);
        if let Some(refused) = self.full.hit() {
            log::warn!(target: "graphyte", "queue full ({}): dropping metrics ({refused} dropped since the last report)", LineCount(self.capacity));
        }
        Refused::Full(Error::QueueFull {
            capacity: self.capacity,
        })
    }

    /// Queues lines the worker made itself (interval reports), as many as
    /// fit in the bound; returns how many were kept. They go into the first
    /// shard.
    pub(crate) fn push_report(&self, lines: &[u8], count: usize) -> usize {
        let mut room = 0;
        let _ = self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                room = self.capacity.saturating_sub(t).min(count);
                Some(t + room)
            });
        let len = first_lines(lines, room);
        lock(&self.shards[0].lines).append(&lines[..len], self.batch_size)
    }

    /// Lines waiting or being written.
    pub(crate) fn len(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// The length at which the worker writes without waiting for its tick.
    pub(crate) fn high_water(&self) -> usize {
        self.high_water
    }

    /// The most lines a queue holds.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The most lines per batch.
    pub(crate) fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// An empty buffer for each shard, for [`take`](Queue::take).
    pub(crate) fn spares(&self) -> Vec<Lines> {
        self.shards.iter().map(|_| Lines::default()).collect()
    }

    /// Swaps every shard's lines into `into` (from [`spares`](Queue::spares),
    /// emptied), in O(1) per shard; returns how many lines were taken. They
    /// still count against the bound until [`written`](Queue::written) or
    /// [`put_back`](Queue::put_back).
    pub(crate) fn take(&self, into: &mut [Lines]) -> usize {
        let mut taken = 0;
        for (shard, spare) in self.shards.iter().zip(into.iter_mut()) {
            let mut sh = lock(&shard.lines);
            std::mem::swap(&mut sh.buf, &mut spare.buf);
            std::mem::swap(&mut sh.batch_ends, &mut spare.batch_ends);
            spare.count = std::mem::take(&mut sh.count);
            taken += spare.count;
        }
        taken
    }

    /// All `taken` lines were written: they leave the queue.
    pub(crate) fn written(&self, taken: &mut [Lines], count: usize) {
        self.total.fetch_sub(count, Ordering::AcqRel);
        taken.iter_mut().for_each(Lines::clear);
    }

    /// Writing `taken` (`count` lines) stopped in shard `failed` after its
    /// first `delivered` bytes: puts what was not written back in front of
    /// what arrived meanwhile, each in its shard; the rest leave the queue.
    pub(crate) fn put_back(
        &self,
        taken: &mut [Lines],
        count: usize,
        failed: usize,
        delivered: usize,
    ) {
        let mut put_back = 0;
        for (i, (shard, spare)) in self.shards.iter().zip(taken.iter_mut()).enumerate() {
            if i >= failed {
                let from = if i == failed { delivered } else { 0 };
                let mut sh = lock(&shard.lines);
                let arrived = std::mem::take(&mut sh.buf);
                sh.batch_ends.clear();
                sh.count = 0;
                put_back += sh.append(&spare.buf[from..], self.batch_size);
                sh.append(&arrived, self.batch_size);
            }
            spare.clear();
        }
        self.total.fetch_sub(count - put_back, Ordering::AcqRel);
    }

    /// Closes the queue if it is empty, so that no send can slip into a
    /// queue nobody drains (later sends go synchronous); returns whether it
    /// did.
    pub(crate) fn close_if_empty(&self) -> bool {
        let mut all = self.lock_all();
        if all.iter().any(|sh| sh.count > 0) {
            return false;
        }
        for sh in all.iter_mut() {
            sh.closed = true;
        }
        true
    }

    /// Closes the queue and empties it for good, counting every line not
    /// written as dropped: those in the shards and, if the worker died
    /// mid-write, those it had taken. Returns how many.
    pub(crate) fn abandon(&self, counters: &Counters) -> usize {
        let mut all = self.lock_all();
        for sh in all.iter_mut() {
            sh.clear();
            sh.closed = true;
        }
        // With every shard locked no push is reserving a slot, so the total
        // is exactly the lines not written.
        let lost = self.total.swap(0, Ordering::AcqRel);
        drop(all);
        Counters::add(&counters.dropped, lost);
        lost
    }

    /// Locks every shard; with all of them held, no push is under way.
    fn lock_all(&self) -> Vec<MutexGuard<'_, Lines>> {
        self.shards.iter().map(|s| lock(&s.lines)).collect()
    }
}

impl Lines {
    /// The lines, back to back.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The batches of at most `batch_size` lines, in order.
    pub(crate) fn batches(&self, batch_size: usize) -> impl Iterator<Item = Batch> + '_ {
        let full = self.batch_ends.iter().map(move |&end| Batch {
            end,
            lines: batch_size,
        });
        let last_end = self.batch_ends.last().copied().unwrap_or(0);
        let tail = (last_end < self.buf.len()).then(|| Batch {
            end: self.buf.len(),
            lines: self.count - self.batch_ends.len() * batch_size,
        });
        full.chain(tail)
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.batch_ends.clear();
        self.count = 0;
    }

    /// Appends complete lines, keeping `count` and `batch_ends` right;
    /// returns how many.
    fn append(&mut self, lines: &[u8], batch_size: usize) -> usize {
        let base = self.buf.len();
        self.buf.extend_from_slice(lines);
        let mut n = 0;
        for (i, &b) in lines.iter().enumerate() {
            if b == b'\n' {
                n += 1;
                self.count += 1;
                if self.count % batch_size == 0 {
                    self.batch_ends.push(base + i + 1);
                }
            }
        }
        n
    }
}

/// The byte length of the first `max_lines` lines of `buf`.
fn first_lines(buf: &[u8], max_lines: usize) -> usize {
    if max_lines == 0 {
        return 0;
    }
    let mut count = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            count += 1;
            if count == max_lines {
                return i + 1;
            }
        }
    }
    buf.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_end_on_line_boundaries() {
        let buf = b"a 1 1\nb 2 2\nc 3 3\n";
        assert_eq!(first_lines(buf, 1), 6);
        assert_eq!(first_lines(buf, 2), 12);
        assert_eq!(first_lines(buf, 5), 18);
        assert_eq!(first_lines(buf, 0), 0);
        let mut lines = Lines::default();
        lines.append(buf, 2);
        lines.append(buf, 2);
        lines.append(b"d 4 4\n", 2);
        assert_eq!(
            (lines.count, lines.batch_ends.as_slice()),
            (7, &[12, 24, 36][..])
        );
        let batches: Vec<Batch> = lines.batches(2).collect();
        assert_eq!(
            batches,
            [
                Batch { end: 12, lines: 2 },
                Batch { end: 24, lines: 2 },
                Batch { end: 36, lines: 2 },
                Batch { end: 42, lines: 1 },
            ]
        );
    }

    #[test]
    fn lines_not_written_go_back_in_front_of_new_ones() {
        let counters = Counters::default();
        let queue = Queue::new(100, 10, Duration::from_secs(1));
        for line in [&b"a 1 1\n"[..], b"b 2 2\n", b"c 3 3\n"] {
            queue.push(line, &counters).unwrap();
        }
        let mut taken = queue.spares();
        assert_eq!(queue.take(&mut taken), 3);
        queue.push(b"d 4 4\n", &counters).unwrap();
        let shard = taken.iter().position(|l| l.count > 0).unwrap();
        // "a" went out whole; "b" and "c" go back, before "d".
        queue.put_back(&mut taken, 3, shard, 6);
        assert_eq!(queue.len(), 3);
        let mut again = queue.spares();
        assert_eq!(queue.take(&mut again), 3);
        assert_eq!(again[shard].bytes(), b"b 2 2\nc 3 3\nd 4 4\n");
        queue.written(&mut again, 3);
        assert_eq!(queue.len(), 0);
        assert!(queue.close_if_empty());
        assert!(matches!(
            queue.push(b"e 5 5\n", &counters),
            Err(Refused::Closed)
        ));
    }

    #[test]
    fn the_bound_holds_and_refusals_are_counted() {
        let counters = Counters::default();
        let queue = Queue::new(4, 10, Duration::from_secs(1));
        let pushed: Vec<Pushed> = (0..4)
            .map(|_| queue.push(b"a 1 1\n", &counters).unwrap())
            .collect();
        assert_eq!(pushed[1], Pushed::HalfFull);
        assert!(matches!(
            queue.push(b"a 1 1\n", &counters),
            Err(Refused::Full(Error::QueueFull { capacity: 4 }))
        ));
        assert_eq!(queue.push_report(b"r 1 1\nr 2 2\n", 2), 0, "no room");
        assert_eq!(counters.snapshot(queue.len()).dropped, 1);
        assert_eq!(queue.abandon(&counters), 4);
        assert_eq!(counters.snapshot(queue.len()).dropped, 5);
    }
}
