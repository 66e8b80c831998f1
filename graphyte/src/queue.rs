//! Interval mode's bounded line buffer.
//!
//! `send` formats its line straight into a buffer of the calling thread's
//! own, a *slot*, under that slot's lock, which only the interval thread
//! takes besides: producers on different threads share no written cache
//! line. The bound (`queue_size` lines and `queue_bytes` bytes for the
//! whole queue) is kept with credit: a slot takes a small chunk of room from
//! the shared budget at a time and spends it line by line; when the budget
//! runs out, a producer takes back every other slot's unspent credit before
//! it refuses a line, so lines are refused only when lines hold the room.
//!
//! A thread's lines stay in its slot in the order it sent them. When the
//! thread exits, its credit goes back to the budget and its slot, with any
//! lines still in it, goes to the next thread that sends (behind those
//! lines). The [worker](crate::worker) takes every slot's lines in O(1)
//! each, writes them in batches of at most `batch_size` lines, and puts back
//! in front what it could not write.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use crate::error::Error;
use crate::log_limit::{AtomicLogLimiter, LineCount};
use crate::stats::Counters;
use crate::sync::{lock, read, write};

/// The least the worker may keep in spare buffers: it keeps emptied
/// buffers for reuse while they add up to a quarter of `queue_bytes`, or
/// this much if that is less (see [`Core::keep_spares`]). Reusing a buffer
/// saves the producer growing a new one through every size up to what one
/// interval holds (a tenth of `send()` end to end); the limit keeps spare
/// buffers from holding the bound's bytes a second time after a burst, and
/// a slot found empty when the worker takes gives its buffer up, so that
/// threads gone quiet (or gone) hold none: what the queue keeps allocated
/// with nothing queued is at most twice the spares' limit.
const SPARE_BYTES: usize = 1 << 20;

/// The most credit a slot takes at a time, in lines and in bytes (less for
/// a small queue: at most an eighth of the bound per core).
const CHUNK_LINES: usize = 256;
const CHUNK_BYTES: usize = 64 << 10;

/// Index of the slot the worker's own reports go into.
const REPORTS: usize = 0;
/// Index of the slot shared by sends that cannot use their thread's own
/// (from a thread-local destructor, or re-entered from a transport).
const SHARED: usize = 1;

/// The shared queue.
pub(crate) struct Queue {
    core: Arc<Core>,
}

struct Core {
    /// Tells this queue's slots apart from other queues' in a thread.
    id: usize,
    /// Every slot, in a fixed order (`REPORTS`, `SHARED`, then threads'):
    /// the order the worker takes them in. Slots are never removed, only
    /// handed to a new thread, so indices stay valid.
    slots: RwLock<Vec<Arc<Slot>>>,
    /// Slots whose thread exited, for the next thread.
    free: Mutex<Vec<Arc<Slot>>>,
    /// Room held: lines (and bytes) in the slots, being written, or held as
    /// unspent credit. Never above the bound.
    held_lines: AtomicUsize,
    held_bytes: AtomicUsize,
    /// Odd while the worker takes lines out of the slots' counts, so that
    /// [`len`](Queue::len) sums counts that only grew meanwhile.
    epoch: AtomicUsize,
    /// Set with every slot closed: slots made later start closed.
    closed: AtomicBool,
    capacity: usize,
    max_bytes: usize,
    chunk_lines: usize,
    chunk_bytes: usize,
    /// The most bytes of spare buffers the worker keeps (see [`SPARE_BYTES`]).
    spare_bytes: usize,
    batch_size: usize,
    /// Lines (bytes) at which the worker writes without waiting for the tick.
    high_water: usize,
    high_bytes: usize,
    full: AtomicLogLimiter,
}

/// One producer's lines, on cache lines of its own.
#[repr(align(128))]
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    /// Lines and bytes in `state` and taken from it by the worker, not yet
    /// written: readable without the lock (`len`).
    lines: AtomicUsize,
    bytes: AtomicUsize,
}

#[derive(Default)]
struct SlotState {
    lines: Lines,
    /// Room this slot took from the budget and has not used yet.
    credit_lines: usize,
    credit_bytes: usize,
    /// Lines (bytes) the worker took from this slot and is writing.
    taken_lines: usize,
    taken_bytes: usize,
    /// The queue is closed: sends go synchronous.
    closed: bool,
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
}

/// A line was queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// And nothing else needs doing.
    Queued,
    /// And the queue is past half its bound: wake the worker.
    HalfFull,
}

/// Why a line was not queued. The errors are boxed to keep this small:
/// every send returns it through a few calls, and an [`Error`] by value
/// (88 bytes) would be copied at each of them (boxing took `Metric::send`
/// from about 53 to 44 ns in a probe run alternately against the unboxed
/// build).
#[derive(Debug)]
pub(crate) enum Refused {
    /// The queue is full: dropped and counted.
    Full(Box<Error>),
    /// The line could not be formatted: nothing was queued.
    Invalid(Box<Error>),
    /// The queue is closed: the caller sends synchronously.
    Closed,
}

/// One batch of a [`Lines`]: its end offset and how many lines it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Batch {
    pub(crate) end: usize,
    pub(crate) lines: usize,
}

/// What a thread holds of the queues it sends to.
struct Local {
    /// A send is under way on this thread (a transport or logger sending
    /// from inside one must not take the slot's lock again).
    busy: Cell<bool>,
    /// This thread's slot of each queue it sent to, the last used first.
    held: RefCell<Vec<Held>>,
}

/// A thread's slot of one queue; dropped when the thread exits.
struct Held {
    id: usize,
    core: Weak<Core>,
    slot: Arc<Slot>,
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            busy: Cell::new(false),
            held: RefCell::new(Vec::new()),
        }
    };
}

/// Clears `busy` when the send ends, however it ends.
struct Busy<'a>(&'a Cell<bool>);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(core) = self.core.upgrade() {
            core.release(&self.slot);
        }
    }
}

impl Queue {
    /// An empty queue of at most `capacity` lines and `max_bytes` bytes, cut
    /// into batches of `batch_size`; "queue full" is logged at most once
    /// per `log_period`.
    pub(crate) fn new(
        capacity: usize,
        max_bytes: usize,
        batch_size: usize,
        log_period: Duration,
    ) -> Queue {
        static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let share = |bound: usize, most: usize| (bound / (8 * cores)).clamp(1, most);
        let core = Core {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            slots: RwLock::new(vec![Arc::default(), Arc::default()]),
            free: Mutex::new(Vec::new()),
            held_lines: AtomicUsize::new(0),
            held_bytes: AtomicUsize::new(0),
            epoch: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            capacity,
            max_bytes,
            chunk_lines: share(capacity, CHUNK_LINES),
            chunk_bytes: share(max_bytes, CHUNK_BYTES),
            spare_bytes: (max_bytes / 4).max(SPARE_BYTES),
            batch_size,
            high_water: (capacity / 2).max(1),
            high_bytes: (max_bytes / 2).max(1),
            full: AtomicLogLimiter::new(log_period),
        };
        Queue {
            core: Arc::new(core),
        }
    }

    /// Queues the line `format` appends to a buffer (it must append one
    /// complete line, or nothing and an error), or refuses it: counted as
    /// dropped when the queue is full. `format` runs at most once; on
    /// [`Refused::Closed`] it has not run.
    #[inline]
    pub(crate) fn push_with<F>(&self, counters: &Counters, format: &F) -> Result<Pushed, Refused>
    where
        F: Fn(&mut Vec<u8>) -> Result<(), Error>,
    {
        let core = &*self.core;
        let own = LOCAL.try_with(|local| {
            if local.busy.get() {
                return None;
            }
            let mine = local
                .held
                .try_borrow()
                .ok()
                .is_some_and(|held| held.first().is_some_and(|h| h.id == core.id));
            if !mine && !self.register(local) {
                return None;
            }
            local.busy.set(true);
            let _busy = Busy(&local.busy);
            let held = local.held.borrow();
            Some(core.push_into(&held[0].slot, counters, format))
        });
        match own {
            Ok(Some(pushed)) => pushed,
            // No slot of its own here: format aside, then into the shared slot.
            _ => {
                let mut line = Vec::new();
                format(&mut line).map_err(|e| Refused::Invalid(Box::new(e)))?;
                let shared = Arc::clone(&read(&core.slots)[SHARED]);
                core.push_into(&shared, counters, &|buf: &mut Vec<u8>| {
                    buf.extend_from_slice(&line);
                    Ok(())
                })
            }
        }
    }

    /// Gives this thread a slot of this queue, first in its list; false if
    /// it cannot have one now (its list is in use further up the stack).
    #[cold]
    fn register(&self, local: &Local) -> bool {
        let Ok(mut held) = local.held.try_borrow_mut() else {
            return false;
        };
        // Slots of queues that are gone go back with their threads'.
        held.retain(|h| h.core.strong_count() > 0);
        if let Some(i) = held.iter().position(|h| h.id == self.core.id) {
            held.swap(0, i);
            return true;
        }
        let reused = lock(&self.core.free).pop();
        let slot = reused.unwrap_or_else(|| {
            let mut slots = write(&self.core.slots);
            let slot = Arc::new(Slot::default());
            lock(&slot.state).closed = self.core.closed.load(Ordering::Acquire);
            slots.push(Arc::clone(&slot));
            slot
        });
        held.insert(
            0,
            Held {
                id: self.core.id,
                core: Arc::downgrade(&self.core),
                slot,
            },
        );
        true
    }

    /// Queues lines the worker made itself (interval reports), as many as
    /// fit in the bound; returns how many were kept.
    pub(crate) fn push_report(&self, lines: &[u8], count: usize) -> usize {
        let core = &*self.core;
        let bytes = first_lines(lines, count, usize::MAX).1;
        if !core.has_room(count, bytes) {
            core.reclaim(None);
        }
        let got_lines = take_room(&core.held_lines, core.capacity, 0, count).unwrap_or(0);
        let (fit, len) = first_lines(lines, got_lines, usize::MAX);
        let got_bytes = take_room(&core.held_bytes, core.max_bytes, 0, len).unwrap_or(0);
        let (kept, kept_len) = first_lines(lines, fit, got_bytes);
        core.held_lines
            .fetch_sub(got_lines - kept, Ordering::AcqRel);
        core.held_bytes
            .fetch_sub(got_bytes - kept_len, Ordering::AcqRel);
        let slot = Arc::clone(&read(&core.slots)[REPORTS]);
        let mut st = lock(&slot.state);
        st.lines.append(&lines[..kept_len], core.batch_size);
        slot.publish(&st);
        kept
    }

    /// Lines waiting or being written. Never above the bound, even while
    /// producers race for the last room: the counts of the slots only grow
    /// while they are summed, or the sum is made again.
    pub(crate) fn len(&self) -> usize {
        self.core
            .sum(|slot| (slot.lines.load(Ordering::Relaxed), 0))
            .0
    }

    /// Whether the worker should write without waiting for its tick: half
    /// the lines or half the bytes of the bound are queued.
    pub(crate) fn past_high_water(&self) -> bool {
        let core = &*self.core;
        let (lines, bytes) = core.sum(|slot| {
            (
                slot.lines.load(Ordering::Relaxed),
                slot.bytes.load(Ordering::Relaxed),
            )
        });
        lines >= core.high_water || bytes >= core.high_bytes
    }

    /// The most lines a queue holds.
    pub(crate) fn capacity(&self) -> usize {
        self.core.capacity
    }

    /// The most lines per batch.
    pub(crate) fn batch_size(&self) -> usize {
        self.core.batch_size
    }

    /// Swaps every slot's lines into `into` (one entry per slot, in order,
    /// made as needed), in O(1) per slot; returns how many lines were taken.
    /// They still count against the bound until [`written`](Queue::written)
    /// or [`put_back`](Queue::put_back).
    pub(crate) fn take(&self, into: &mut Vec<Lines>) -> usize {
        let core = &*self.core;
        let slots = read(&core.slots);
        into.resize_with(slots.len(), Lines::default);
        let mut lines = 0;
        for (slot, spare) in slots.iter().zip(into.iter_mut()) {
            let mut st = lock(&slot.state);
            if st.lines.count == 0 {
                // Quiet since the last take: its buffer goes.
                if st.lines.buf.capacity() > 0 {
                    st.lines = Lines::default();
                }
                continue;
            }
            std::mem::swap(&mut st.lines, spare);
            st.taken_lines = spare.count;
            st.taken_bytes = spare.buf.len();
            lines += spare.count;
        }
        lines
    }

    /// All `taken` lines were written: they leave the queue.
    pub(crate) fn written(&self, taken: &mut [Lines]) {
        self.put_back(taken, usize::MAX, 0);
    }

    /// Writing `taken` stopped in slot `failed` after its
    /// first `delivered` bytes: puts what was not written back in front of
    /// what arrived meanwhile, each in its slot; the rest leave the queue.
    pub(crate) fn put_back(&self, taken: &mut [Lines], failed: usize, delivered: usize) {
        let core = &*self.core;
        let slots = read(&core.slots);
        let (mut gone_lines, mut gone_bytes) = (0, 0);
        core.removing(|| {
            for (i, (slot, spare)) in slots.iter().zip(taken.iter_mut()).enumerate() {
                if spare.count == 0 {
                    continue;
                }
                let mut st = lock(&slot.state);
                st.taken_lines = 0;
                st.taken_bytes = 0;
                if i >= failed {
                    let from = if i == failed { delivered } else { 0 };
                    let arrived = std::mem::take(&mut st.lines);
                    let back = st.lines.append(&spare.buf[from..], core.batch_size);
                    st.lines.append(&arrived.buf, core.batch_size);
                    gone_lines += spare.count - back;
                    gone_bytes += from;
                } else {
                    gone_lines += spare.count;
                    gone_bytes += spare.buf.len();
                }
                slot.publish(&st);
                drop(st);
                spare.clear();
            }
        });
        core.keep_spares(taken);
        core.held_lines.fetch_sub(gone_lines, Ordering::AcqRel);
        core.held_bytes.fetch_sub(gone_bytes, Ordering::AcqRel);
    }

    /// Closes the queue if it is empty, so that no send can slip into a
    /// queue nobody drains (later sends go synchronous); returns whether it
    /// did.
    pub(crate) fn close_if_empty(&self) -> bool {
        let core = &*self.core;
        let slots = write(&core.slots);
        let mut all: Vec<MutexGuard<'_, SlotState>> =
            slots.iter().map(|s| lock(&s.state)).collect();
        if all.iter().any(|st| st.lines.count + st.taken_lines > 0) {
            return false;
        }
        for st in all.iter_mut() {
            st.closed = true;
        }
        core.closed.store(true, Ordering::Release);
        true
    }

    /// Closes the queue and empties it for good, counting every line not
    /// written as dropped: those in the slots and, if the worker died
    /// mid-write, those it had taken. Returns how many.
    pub(crate) fn abandon(&self, counters: &Counters) -> usize {
        let core = &*self.core;
        let slots = write(&core.slots);
        let (mut lines, mut bytes) = (0, 0);
        core.removing(|| {
            for slot in slots.iter() {
                let mut st = lock(&slot.state);
                lines += st.lines.count + st.taken_lines;
                bytes += st.lines.buf.len() + st.taken_bytes;
                st.lines = Lines::default();
                (st.taken_lines, st.taken_bytes) = (0, 0);
                st.closed = true;
                slot.publish(&st);
            }
        });
        core.closed.store(true, Ordering::Release);
        core.held_lines.fetch_sub(lines, Ordering::AcqRel);
        core.held_bytes.fetch_sub(bytes, Ordering::AcqRel);
        drop(slots);
        Counters::add(&counters.dropped, lines);
        lines
    }
}

impl Core {
    /// Frees the worker's spare buffers (emptied) past what it keeps: as
    /// many as add up to at most `spare_bytes`, in slot order.
    fn keep_spares(&self, spares: &mut [Lines]) {
        let mut kept = 0;
        for spare in spares {
            let bytes = spare.buf.capacity() + spare.batch_ends.capacity() * size_of::<usize>();
            if kept + bytes <= self.spare_bytes {
                kept += bytes;
            } else {
                *spare = Lines::default();
            }
        }
    }

    /// Appends the line `format` makes to `slot`, spending its credit.
    #[inline]
    fn push_into<F>(&self, slot: &Slot, counters: &Counters, format: &F) -> Result<Pushed, Refused>
    where
        F: Fn(&mut Vec<u8>) -> Result<(), Error>,
    {
        let mut st = lock(&slot.state);
        if st.closed {
            return Err(Refused::Closed);
        }
        let start = st.lines.buf.len();
        if let Err(e) = format(&mut st.lines.buf) {
            st.lines.buf.truncate(start);
            return Err(Refused::Invalid(Box::new(e)));
        }
        let len = st.lines.buf.len() - start;
        let mut pushed = Pushed::Queued;
        if st.credit_lines == 0 || st.credit_bytes < len {
            match self.claim(&mut st, len) {
                Some(p) => pushed = p,
                None => {
                    // Out of room: take back the other slots' credit, which
                    // needs this slot's lock released.
                    let line = st.lines.buf[start..].to_vec();
                    st.lines.buf.truncate(start);
                    drop(st);
                    return self.push_slow(slot, &line, counters);
                }
            }
        }
        st.credit_lines -= 1;
        st.credit_bytes -= len;
        st.lines.count += 1;
        if st.lines.count % self.batch_size == 0 {
            let end = st.lines.buf.len();
            st.lines.batch_ends.push(end);
        }
        slot.publish(&st);
        Ok(pushed)
    }

    /// Takes credit enough for one line of `len` bytes from the budget
    /// (a chunk when there is room); `None` if there is not enough left.
    fn claim(&self, st: &mut SlotState, len: usize) -> Option<Pushed> {
        let need_lines = usize::from(st.credit_lines == 0);
        let need_bytes = len.saturating_sub(st.credit_bytes);
        let (lines, after_lines) = if need_lines > 0 {
            let got = take_room(&self.held_lines, self.capacity, 1, self.chunk_lines)?;
            (got, self.held_lines.load(Ordering::Relaxed))
        } else {
            (0, 0)
        };
        let (bytes, after_bytes) = if need_bytes > 0 {
            match take_room(
                &self.held_bytes,
                self.max_bytes,
                need_bytes,
                need_bytes.max(self.chunk_bytes),
            ) {
                Some(got) => (got, self.held_bytes.load(Ordering::Relaxed)),
                None => {
                    self.held_lines.fetch_sub(lines, Ordering::AcqRel);
                    return None;
                }
            }
        } else {
            (0, 0)
        };
        st.credit_lines += lines;
        st.credit_bytes += bytes;
        Some(
            if after_lines >= self.high_water || after_bytes >= self.high_bytes {
                Pushed::HalfFull
            } else {
                Pushed::Queued
            },
        )
    }

    /// The budget ran out: takes back the credit other slots hold, then
    /// tries once more; refuses the line if there is still no room.
    #[cold]
    fn push_slow(&self, slot: &Slot, line: &[u8], counters: &Counters) -> Result<Pushed, Refused> {
        self.reclaim(Some(slot));
        let mut st = lock(&slot.state);
        if st.closed {
            return Err(Refused::Closed);
        }
        if (st.credit_lines == 0 || st.credit_bytes < line.len())
            && self.claim(&mut st, line.len()).is_none()
        {
            drop(st);
            return Err(self.refuse_full(counters));
        }
        st.credit_lines -= 1;
        st.credit_bytes -= line.len();
        st.lines.append(line, self.batch_size);
        slot.publish(&st);
        // The bound was reached: the worker is due to write.
        Ok(Pushed::HalfFull)
    }

    /// Gives the unspent credit of every slot but `except` back to the budget.
    fn reclaim(&self, except: Option<&Slot>) {
        let slots = read(&self.slots);
        for slot in slots.iter() {
            if except.is_some_and(|e| std::ptr::eq(e, &**slot)) {
                continue;
            }
            let mut st = lock(&slot.state);
            self.give_back(&mut st);
        }
    }

    fn give_back(&self, st: &mut SlotState) {
        let (lines, bytes) = (
            std::mem::take(&mut st.credit_lines),
            std::mem::take(&mut st.credit_bytes),
        );
        self.held_lines.fetch_sub(lines, Ordering::AcqRel);
        self.held_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Whether `lines` lines of `bytes` bytes fit in the budget now.
    fn has_room(&self, lines: usize, bytes: usize) -> bool {
        self.held_lines.load(Ordering::Acquire) + lines <= self.capacity
            && self.held_bytes.load(Ordering::Acquire) + bytes <= self.max_bytes
    }

    /// The thread of `slot` exited: its credit goes back, the slot (with
    /// any lines still in it) to the next thread.
    fn release(&self, slot: &Arc<Slot>) {
        self.give_back(&mut lock(&slot.state));
        lock(&self.free).push(Arc::clone(slot));
    }

    /// Runs `remove`, which lowers slots' counts, with the epoch odd.
    fn removing(&self, remove: impl FnOnce()) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::Release);
        remove();
        self.epoch.fetch_add(1, Ordering::Release);
    }

    /// Sums `count` over the slots at a time no count was lowered (see
    /// [`removing`](Core::removing)).
    fn sum(&self, count: impl Fn(&Slot) -> (usize, usize)) -> (usize, usize) {
        let slots = read(&self.slots);
        loop {
            let before = self.epoch.load(Ordering::Acquire);
            if before % 2 == 0 {
                let sum = slots.iter().fold((0, 0), |(a, b), slot| {
                    let (x, y) = count(slot);
                    (a + x, b + y)
                });
                fence(Ordering::Acquire);
                if self.epoch.load(Ordering::Relaxed) == before {
                    return sum;
                }
            }
            std::thread::yield_now();
        }
    }

    #[cold]
    fn refuse_full(&self, counters: &Counters) -> Refused {
        Counters::add(&counters.dropped, 1);
        if let Some(refused) = self.full.hit() {
            log::warn!(target: "graphyte", "queue full ({} or {} bytes): dropping metrics ({refused} dropped since the last report)", LineCount(self.capacity), self.max_bytes);
        }
        Refused::Full(Box::new(Error::QueueFull {
            capacity: self.capacity,
            max_bytes: self.max_bytes,
        }))
    }
}

impl Slot {
    /// Makes the slot's line and byte counts readable without its lock.
    #[inline]
    fn publish(&self, st: &SlotState) {
        self.lines
            .store(st.lines.count + st.taken_lines, Ordering::Relaxed);
        self.bytes
            .store(st.lines.buf.len() + st.taken_bytes, Ordering::Relaxed);
    }
}

/// Takes between `need` and `want` from `held` without passing `bound`:
/// as much of `want` as there is room for, if that is at least `need`.
fn take_room(held: &AtomicUsize, bound: usize, need: usize, want: usize) -> Option<usize> {
    let mut got = 0;
    held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
        let room = bound.saturating_sub(h);
        if room < need {
            return None;
        }
        got = want.min(room);
        Some(h + got)
    })
    .ok()?;
    Some(got)
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

    /// Empties it, keeping its buffers for reuse.
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

/// Of the first `max_lines` lines of `buf`, how many fit whole in
/// `max_bytes`, and their length in bytes.
fn first_lines(buf: &[u8], max_lines: usize, max_bytes: usize) -> (usize, usize) {
    let (mut count, mut len) = (0, 0);
    for (i, &b) in buf.iter().enumerate() {
        if count == max_lines || i >= max_bytes {
            break;
        }
        if b == b'\n' {
            count += 1;
            len = i + 1;
        }
    }
    (count, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(queue: &Queue, counters: &Counters, line: &[u8]) -> Result<Pushed, Refused> {
        queue.push_with(counters, &|buf: &mut Vec<u8>| {
            buf.extend_from_slice(line);
            Ok(())
        })
    }

    #[test]
    fn batches_end_on_line_boundaries() {
        let buf = b"a 1 1\nb 2 2\nc 3 3\n";
        assert_eq!(first_lines(buf, 1, usize::MAX), (1, 6));
        assert_eq!(first_lines(buf, 2, usize::MAX), (2, 12));
        assert_eq!(first_lines(buf, 5, usize::MAX), (3, 18));
        assert_eq!(first_lines(buf, 0, usize::MAX), (0, 0));
        assert_eq!(first_lines(buf, 5, 17), (2, 12), "only whole lines");
        assert_eq!(first_lines(buf, 5, 18), (3, 18));
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
        let queue = Queue::new(100, 1 << 20, 10, Duration::from_secs(1));
        for line in [&b"a 1 1\n"[..], b"b 2 2\n", b"c 3 3\n"] {
            push(&queue, &counters, line).unwrap();
        }
        let mut taken = Vec::new();
        assert_eq!(queue.take(&mut taken), 3);
        assert_eq!(queue.len(), 3, "lines being written are still queued");
        push(&queue, &counters, b"d 4 4\n").unwrap();
        assert_eq!(queue.len(), 4);
        let slot = taken.iter().position(|l| l.count > 0).unwrap();
        // "a" went out whole; "b" and "c" go back, before "d".
        queue.put_back(&mut taken, slot, 6);
        assert_eq!(queue.len(), 3);
        let mut again = Vec::new();
        assert_eq!(queue.take(&mut again), 3);
        assert_eq!(again[slot].bytes(), b"b 2 2\nc 3 3\nd 4 4\n");
        queue.written(&mut again);
        assert_eq!(queue.len(), 0);
        assert!(queue.close_if_empty());
        assert!(matches!(
            push(&queue, &counters, b"e 5 5\n"),
            Err(Refused::Closed)
        ));
    }

    #[test]
    fn the_bound_holds_and_refusals_are_counted() {
        let counters = Counters::default();
        let queue = Queue::new(4, 1 << 20, 10, Duration::from_secs(1));
        let pushed: Vec<Pushed> = (0..4)
            .map(|_| push(&queue, &counters, b"a 1 1\n").unwrap())
            .collect();
        assert_eq!(pushed[1], Pushed::HalfFull);
        assert!(matches!(
            push(&queue, &counters, b"a 1 1\n"),
            Err(Refused::Full(e)) if matches!(*e, Error::QueueFull { capacity: 4, .. })
        ));
        assert_eq!(queue.push_report(b"r 1 1\nr 2 2\n", 2), 0, "no room");
        assert_eq!(counters.snapshot(queue.len()).dropped, 1);
        assert_eq!(queue.abandon(&counters), 4);
        assert_eq!(counters.snapshot(queue.len()).dropped, 5);
    }

    #[test]
    fn the_byte_bound_holds_and_a_line_that_does_not_fit_is_refused_whole() {
        let counters = Counters::default();
        let queue = Queue::new(1000, 20, 10, Duration::from_secs(1));
        push(&queue, &counters, b"aaaaaaaa 1 1\n").unwrap(); // 13 bytes
        assert!(matches!(
            push(&queue, &counters, b"bbbbbbbb 1 1\n"),
            Err(Refused::Full(e)) if matches!(*e, Error::QueueFull { max_bytes: 20, .. })
        ));
        push(&queue, &counters, b"c 1 1\n").unwrap(); // 19 bytes in all
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.push_report(b"r 1 1\n", 1), 0, "one byte left");
        let mut taken = Vec::new();
        assert_eq!(queue.take(&mut taken), 2);
        queue.written(&mut taken);
        assert_eq!(queue.push_report(b"r 1 1\nr 2 2\nr 3 3\nr 4 4\n", 4), 3);
    }

    #[test]
    fn a_thread_takes_back_the_credit_others_hold_before_it_refuses() {
        let counters = Counters::default();
        let queue = Queue::new(64, 1 << 20, 10, Duration::from_secs(1));
        // Another thread takes a chunk of credit and uses one line of it.
        std::thread::scope(|s| {
            s.spawn(|| push(&queue, &counters, b"x 1 1\n").unwrap());
        });
        // Its thread exited: its credit came back, and this thread can fill
        // the rest exactly.
        let accepted = (0..100)
            .filter(|_| push(&queue, &counters, b"y 1 1\n").is_ok())
            .count();
        assert_eq!(accepted, 63);
        assert_eq!(queue.len(), 64);
        assert_eq!(counters.snapshot(0).dropped, 37);
    }

    #[test]
    fn credit_held_by_a_live_thread_is_taken_back_too() {
        let counters = Counters::default();
        let queue = Queue::new(64, 1 << 20, 10, Duration::from_secs(1));
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (done, pushed) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            let (queue, counters) = (&queue, &counters);
            s.spawn(move || {
                push(queue, counters, b"x 1 1\n").unwrap();
                done.send(()).unwrap();
                wait.recv().unwrap(); // stays alive, holding its credit
            });
            pushed.recv().unwrap();
            let accepted = (0..100)
                .filter(|_| push(queue, counters, b"y 1 1\n").is_ok())
                .count();
            assert_eq!(accepted, 63);
            go.send(()).unwrap();
        });
    }

    #[test]
    fn a_send_from_inside_a_send_goes_to_the_shared_slot() {
        let counters = Counters::default();
        let queue = Queue::new(100, 1 << 20, 10, Duration::from_secs(1));
        let inner = |buf: &mut Vec<u8>| {
            push(&queue, &counters, b"inner 1 1\n").unwrap();
            buf.extend_from_slice(b"outer 1 1\n");
            Ok(())
        };
        queue.push_with(&counters, &inner).unwrap();
        let mut taken = Vec::new();
        assert_eq!(queue.take(&mut taken), 2);
        assert_eq!(taken[SHARED].bytes(), b"inner 1 1\n");
    }

    /// Bytes of buffer the slots hold, and the worker's spares.
    fn retained(queue: &Queue, spares: &[Lines]) -> (usize, usize) {
        let slots = read(&queue.core.slots);
        let held = slots
            .iter()
            .map(|s| lock(&s.state).lines.buf.capacity())
            .sum();
        (held, spares.iter().map(|l| l.buf.capacity()).sum())
    }

    #[test]
    fn quiet_and_gone_threads_leave_no_buffers_beyond_the_spares_limit() {
        let counters = Counters::default();
        // 64 MiB of bytes: the spares' limit is 16 MiB.
        let queue = Queue::new(1_000_000, 64 << 20, 1000, Duration::from_secs(1));
        let limit = 16 << 20;
        let line = [b"x".repeat(1000), b" 1 1\n".to_vec()].concat();
        // This thread's slot comes first (after the worker's two), so its
        // buffer is the first spare the worker keeps.
        for _ in 0..2000 {
            push(&queue, &counters, &line).unwrap();
        }
        // 16 threads each leave 2 MB of lines in the slots and exit (a
        // thread may get the slot of one that already exited, lines and all).
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| {
                    for _ in 0..2000 {
                        push(&queue, &counters, &line).unwrap();
                    }
                });
            }
        });
        let mut spares = Vec::new();
        assert_eq!(queue.take(&mut spares), 17 * 2000);
        queue.written(&mut spares);
        let (held, kept) = retained(&queue, &spares);
        assert_eq!(held, 0, "the slots got the worker's empty spares");
        assert!(kept <= limit, "the worker kept {kept} bytes of spares");
        assert!(
            kept >= 2_000_000,
            "the worker kept only {kept} bytes for reuse"
        );

        // This thread sends again: its slot gets its buffer back at the next
        // take, for reuse. Then it goes quiet, and the take after that frees it.
        push(&queue, &counters, &line).unwrap();
        assert_eq!(queue.take(&mut spares), 1);
        queue.written(&mut spares);
        let (held, kept) = retained(&queue, &spares);
        assert!(
            held >= 2_000_000,
            "the sender's slot got its buffer back: {held} bytes"
        );
        assert!(held + kept <= 2 * limit, "{held} + {kept} bytes kept");
        assert_eq!(queue.take(&mut spares), 0);
        queue.written(&mut spares);
        let (held, kept) = retained(&queue, &spares);
        assert_eq!(held, 0, "the quiet slot gave its buffer up");
        assert!(kept <= limit, "the worker kept {kept} bytes of spares");
        assert_eq!(queue.len(), 0);
    }
}
