//! What the interval thread sends by itself at the end of every interval:
//! the lines of a [`LineSource`] (the macros' aggregates, for the global
//! sender) and, if asked, the sender's own counters (`graphyte.*`).

use std::sync::Arc;

use crate::aggregate::SeriesCount;
use crate::line::LineFormat;
use crate::stats::Stats;
use crate::timestamp::Timestamp;

/// A source of lines that a sender sends besides those given to `send`:
/// asked once per interval by the interval thread, and once after the sender
/// stopped. The aggregation registry behind the macros is one.
pub(crate) trait LineSource: Send + Sync {
    /// Appends the lines of the interval that started at `start` (Unix
    /// seconds, aligned to the interval) to `out`, formatted with `format`;
    /// returns how many. Called at the end of every interval, and once more
    /// at stop for the interval in progress.
    fn interval_lines(&self, start: Timestamp, format: &LineFormat, out: &mut Vec<u8>) -> usize;

    /// Called once, after the sender stopped (its interval thread, if any,
    /// has exited): appends lines to send now, synchronously, and returns
    /// how many. `start` is the start of the interval in progress in
    /// interval mode, `None` in synchronous mode.
    fn final_lines(
        &self,
        start: Option<Timestamp>,
        format: &LineFormat,
        out: &mut Vec<u8>,
    ) -> usize;

    /// How many series the source holds and refused, for
    /// [`Stats`](crate::Stats).
    fn series(&self) -> SeriesCount;
}

/// The interval thread's reports and the state they need between intervals.
pub(crate) struct Reports {
    /// The sender's prefix and default tags.
    format: Arc<LineFormat>,
    source: Option<Arc<dyn LineSource>>,
    /// Report the sender's own counters as `graphyte.*` lines.
    self_metrics: bool,
    /// The counters at the previous report.
    last: Stats,
    out: Vec<u8>,
}

/// The lines of one report.
pub(crate) struct Report<'a> {
    pub(crate) lines: &'a [u8],
    pub(crate) count: usize,
}

impl Reports {
    pub(crate) fn new(
        format: Arc<LineFormat>,
        source: Option<Arc<dyn LineSource>>,
        self_metrics: bool,
    ) -> Reports {
        Reports {
            format,
            source,
            self_metrics,
            last: Stats::default(),
            out: Vec::new(),
        }
    }

    /// Whether there is anything to report at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.source.is_none() && !self.self_metrics
    }

    /// The report of the interval that started at `start`: the source's
    /// lines, then self-metrics from `now`, the sender's counters.
    pub(crate) fn build(&mut self, start: Timestamp, now: Stats) -> Report<'_> {
        self.out.clear();
        let mut count = 0;
        if let Some(source) = &self.source {
            count += source.interval_lines(start, &self.format, &mut self.out);
        }
        if self.self_metrics {
            let last = std::mem::replace(&mut self.last, now);
            let lines = [
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
            let series = [
                ("graphyte.series", now.series),
                (
                    "graphyte.series_refused",
                    now.series_refused.saturating_sub(last.series_refused),
                ),
            ];
            // The series figures only for a sender with a source (the global one).
            let series = if self.source.is_some() {
                &series[..]
            } else {
                &[]
            };
            let lines = lines.iter().chain(series).copied();
            for (name, value) in lines {
                if self
                    .format
                    .format_into(&mut self.out, name, &[], value, start)
                    .is_ok()
                {
                    count += 1;
                }
            }
        }
        Report {
            lines: &self.out,
            count,
        }
    }
}
