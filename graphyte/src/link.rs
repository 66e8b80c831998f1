//! The link to the server: the transport behind a lock, with the counters and
//! the logging every write shares (caller's thread or background thread).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::stats::{Counters, Stats};
use crate::sync::lock;
use crate::transport::{whole_lines, Transport};

/// Logs a condition once, then at most once per period while it lasts,
/// saying how many times it happened in between.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    period: Duration,
    last_logged: Option<Instant>,
    suppressed: u64,
    failing_since: Option<Instant>,
}

impl LogLimiter {
    pub(crate) fn new(period: Duration) -> LogLimiter {
        LogLimiter {
            period,
            last_logged: None,
            suppressed: 0,
            failing_since: None,
        }
    }

    /// Records one occurrence; returns how many were suppressed since the
    /// last log line if this one should be logged.
    pub(crate) fn hit(&mut self) -> Option<u64> {
        let now = Instant::now();
        self.failing_since.get_or_insert(now);
        match self.last_logged {
            Some(at) if now.duration_since(at) < self.period => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last_logged = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// Ends the condition; returns how long it lasted if it had started.
    pub(crate) fn clear(&mut self) -> Option<Duration> {
        self.last_logged = None;
        self.suppressed = 0;
        self.failing_since.take().map(|t| t.elapsed())
    }
}

/// The transport and what goes with it.
pub(crate) struct Link {
    transport: Mutex<Box<dyn Transport>>,
    address: String,
    pub(crate) counters: Counters,
    log_sends: bool,
    errors: Mutex<LogLimiter>,
}

impl Link {
    pub(crate) fn new(
        transport: Box<dyn Transport>,
        log_sends: bool,
        log_period: Duration,
    ) -> Link {
        Link {
            address: transport.address(),
            transport: Mutex::new(transport),
            counters: Counters::default(),
            log_sends,
            errors: Mutex::new(LogLimiter::new(log_period)),
        }
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Writes `lines` (`count` complete lines) through the transport,
    /// counting and logging the outcome.
    pub(crate) fn write(&self, lines: &[u8], count: usize) -> Result<()> {
        self.write_batch(lines, count, None).map_err(|(e, _)| e)
    }

    /// Like [`write`](Link::write), but gives up at `deadline`, and on
    /// failure also says how many leading bytes of `lines` were complete
    /// lines handed over (and counted as sent).
    pub(crate) fn write_batch(
        &self,
        lines: &[u8],
        count: usize,
        deadline: Option<Instant>,
    ) -> Result<(), (Error, usize)> {
        let started = self.log_sends.then(Instant::now);
        let (result, handed_over) = {
            let mut transport = lock(&self.transport);
            let result = match deadline {
                Some(deadline) => transport.send_before(lines, deadline),
                None => transport.send(lines),
            };
            let handed_over = if result.is_err() {
                transport.handed_over()
            } else {
                0
            };
            let reconnects = transport.reconnects();
            self.counters
                .reconnects
                .store(reconnects, std::sync::atomic::Ordering::Relaxed);
            (result, handed_over)
        };
        match result {
            Ok(()) => {
                Counters::add(&self.counters.sent, count);
                if let Some(down_for) = lock(&self.errors).clear() {
                    log::info!(target: "graphyte", "sending to {} works again after {:.1} s of errors", self.address, down_for.as_secs_f64());
                }
                if let Some(started) = started {
                    let ms = started.elapsed().as_secs_f64() * 1e3;
                    if count == 1 {
                        log::info!(target: "graphyte", "sent {:?} to {} in {ms:.3} ms", String::from_utf8_lossy(lines), self.address);
                    } else {
                        log::info!(target: "graphyte", "sent {count} lines ({} bytes) to {} in {ms:.3} ms", lines.len(), self.address);
                    }
                }
                Ok(())
            }
            Err(source) => {
                Counters::add(&self.counters.send_errors, 1);
                // Only whole lines count as handed over.
                let (complete, complete_lines) = whole_lines(lines, handed_over);
                Counters::add(&self.counters.sent, complete_lines);
                if let Some(suppressed) = lock(&self.errors).hit() {
                    if suppressed == 0 {
                        log::error!(target: "graphyte", "sending {count} lines to {} failed: {source}", self.address);
                    } else {
                        log::warn!(target: "graphyte", "sending to {} still fails: {source} ({suppressed} more failures since the last report)", self.address);
                    }
                }
                Err((
                    Error::Io {
                        addr: self.address.clone(),
                        source,
                    },
                    complete,
                ))
            }
        }
    }

    /// The counters, with `queued` lines waiting.
    pub(crate) fn stats(&self, queued: usize) -> Stats {
        self.counters.snapshot(queued)
    }

    /// Closes the transport's connections.
    pub(crate) fn close(&self) {
        lock(&self.transport).close();
    }
}
