//! Counters every sender keeps, readable through [`Sender::stats`](crate::Sender::stats).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a sender's counters since it was made.
///
/// In interval mode, every line accepted by `send` ends up either in `sent`
/// or in `dropped` (or is still in `queued`): nothing is lost uncounted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Lines handed to the transport successfully.
    pub sent: u64,
    /// Lines dropped: the queue was full, or they were still undelivered when
    /// the sender stopped.
    pub dropped: u64,
    /// Failed transport writes (each may have been retried later).
    pub send_errors: u64,
    /// Times the transport re-opened its connection after losing one.
    pub reconnects: u64,
    /// Lines waiting in the queue right now (interval mode).
    pub queued: u64,
    /// The global sender: the macros' series that exist now (see
    /// [`Config::max_series`](crate::Config::max_series)). 0 for other senders.
    pub series: u64,
    /// The global sender: new series names refused because
    /// [`Config::max_series`](crate::Config::max_series) series existed.
    pub series_refused: u64,
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) send_errors: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn snapshot(&self, queued: usize) -> Stats {
        Stats {
            sent: self.sent.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            send_errors: self.send_errors.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            queued: queued as u64,
            series: 0,
            series_refused: 0,
        }
    }
}
