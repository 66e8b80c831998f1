//! Rate-limited logging: a condition that repeats (a dead server, a full
//! queue) is logged once, then at most once per period while it lasts,
//! saying how often it happened in between, so that it cannot flood the log.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Logs a condition once, then at most once per period while it lasts,
/// saying how many times it happened in between. Behind a lock.
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

/// Counts occurrences and says when one should be logged, at most once per
/// period, without a lock: callers race only for a compare-and-swap on the
/// time the next report is due (used where many threads may hit the
/// condition at once, such as sends refused by a full queue).
#[derive(Debug)]
pub(crate) struct AtomicLogLimiter {
    started: Instant,
    period: Duration,
    /// When the next report is due, in nanoseconds since `started`.
    next_due: AtomicU64,
    /// Occurrences so far, and at the last report.
    hits: AtomicU64,
    reported: AtomicU64,
}

impl AtomicLogLimiter {
    pub(crate) fn new(period: Duration) -> AtomicLogLimiter {
        AtomicLogLimiter {
            started: Instant::now(),
            period,
            next_due: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            reported: AtomicU64::new(0),
        }
    }

    /// Records one occurrence; if a report is due, returns the occurrences
    /// since the last one (this one included).
    pub(crate) fn hit(&self) -> Option<u64> {
        let hits = self.hits.fetch_add(1, Ordering::Relaxed) + 1;
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
        Some(hits - self.reported.swap(hits, Ordering::Relaxed))
    }
}

/// "1 line", "2 lines": a count of lines for a log message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineCount(pub(crate) usize);

impl fmt::Display for LineCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("1 line"),
            n => write!(f, "{n} lines"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_counts_read_right() {
        assert_eq!(LineCount(0).to_string(), "0 lines");
        assert_eq!(LineCount(1).to_string(), "1 line");
        assert_eq!(LineCount(103).to_string(), "103 lines");
    }

    #[test]
    fn a_repeated_condition_is_logged_once_per_period_with_the_count() {
        let mut limiter = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(limiter.hit(), Some(0));
        assert_eq!(limiter.hit(), None);
        assert_eq!(limiter.hit(), None);
        assert!(limiter.clear().is_some());
        assert_eq!(limiter.hit(), Some(0), "a new condition is logged at once");

        let atomic = AtomicLogLimiter::new(Duration::from_secs(3600));
        assert_eq!(atomic.hit(), Some(1));
        assert_eq!(atomic.hit(), None);
        let zero = AtomicLogLimiter::new(Duration::ZERO);
        assert_eq!(zero.hit(), Some(1));
        assert_eq!(zero.hit(), Some(1));
    }
}
