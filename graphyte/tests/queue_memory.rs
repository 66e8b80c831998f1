//! The interval queue's memory is bounded in bytes, not only in lines:
//! with lines of 16 KiB, 250,000 of them would be 4 GiB. A counting
//! allocator (this test binary's global allocator) measures what the heap
//! grows by while producers fill a queue whose server is down.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use graphyte::{CaptureTransport, Config, Sender};

/// Bytes allocated and not freed, and the most there were.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

struct Counting;

// SAFETY: every call forwards to `System`, and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    // A growing Vec reallocates: counted as the change in size, which is
    // what it is (the default would count the old and new block at once).
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const TS: u64 = 1_700_000_000;

/// Fills a queue of `queue_bytes` from `threads` threads with lines of
/// `len` bytes until every thread is refused many times over; returns how
/// much the heap grew at most, and the lines and bytes queued.
fn fill(threads: usize, len: usize, queue_bytes: usize) -> (usize, u64) {
    let capture = CaptureTransport::new();
    capture.fail_with(Some(io::ErrorKind::ConnectionRefused));
    let s = Sender::new(
        Config::new("unused")
            .interval(Duration::from_secs(3600))
            .queue_bytes(queue_bytes)
            .transport(capture.clone()),
    )
    .unwrap();
    let name = "n".repeat(len - " 1 1700000000\n".len());
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut refused = 0;
                while refused < 1000 {
                    if s.send_at(&name, 1, TS).is_err() {
                        refused += 1;
                    }
                }
            });
        }
    });
    let grown = PEAK.load(Ordering::Relaxed) - before;
    let queued = s.stats().queued;
    assert!(
        queued as usize * len <= queue_bytes,
        "{queued} lines of {len} bytes queued past a bound of {queue_bytes} bytes"
    );
    assert!(
        queued as usize * len > queue_bytes - threads * len - (64 << 10),
        "the queue filled: {queued} lines of {len} bytes"
    );
    s.stop_within(Duration::ZERO).ok();
    (grown, queued)
}

#[test]
fn the_queue_holds_at_most_queue_bytes_and_its_buffers_at_most_four_times_that() {
    // Run one after the other: the allocator counts the whole process.
    for (threads, len, bound) in [
        (1, 16 << 10, 32 << 20),
        (2, 1000, 1 << 20),
        (4, 4096, 8 << 20),
    ] {
        let (grown, queued) = fill(threads, len, bound);
        // Buffers grow by doubling, so they hold at most twice what is in
        // them; while a failed write goes back in front of what arrived
        // meanwhile, both copies are alive for a moment: four times at the
        // peak. Each thread's buffer may hold one line more while it is
        // refused; the rest is the sender's own bookkeeping.
        let allowed = 4 * bound + threads * 2 * len + (256 << 10);
        println!(
            "{threads} threads, lines of {len} bytes, queue_bytes {bound}: {queued} lines queued, the heap grew by {grown} bytes (allowed {allowed})"
        );
        assert!(
            grown <= allowed,
            "{threads} threads, lines of {len} bytes: the heap grew by {grown} bytes for a queue of {bound} bytes (allowed {allowed})"
        );
    }
}
