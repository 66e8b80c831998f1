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

/// One of the sender's own counters, sent as `graphyte.NAME`.
struct SelfMetric {
    name: &'static str,
    read: fn(&Stats) -> u64,
    /// Sent as the change since the last report that was queued (a count
    /// per interval), rather than as it is (a level).
    delta: bool,
}

/// What every sender with `self_metrics` reports.
const SENDER_METRICS: [SelfMetric; 5] = [
    SelfMetric {
        name: "graphyte.sent",
        read: |s| s.sent,
        delta: true,
    },
    SelfMetric {
        name: "graphyte.dropped",
        read: |s| s.dropped,
        delta: true,
    },
    SelfMetric {
        name: "graphyte.send_errors",
        read: |s| s.send_errors,
        delta: true,
    },
    SelfMetric {
        name: "graphyte.reconnects",
        read: |s| s.reconnects,
        delta: true,
    },
    SelfMetric {
        name: "graphyte.queued",
        read: |s| s.queued,
        delta: false,
    },
];

/// What a sender with a source (the global one) reports besides.
const SOURCE_METRICS: [SelfMetric; 2] = [
    SelfMetric {
        name: "graphyte.series",
        read: |s| s.series,
        delta: false,
    },
    SelfMetric {
        name: "graphyte.series_refused",
        read: |s| s.series_refused,
        delta: true,
    },
];

/// The interval thread's reports and the state they need between intervals.
pub(crate) struct Reports {
    /// The sender's prefix and default tags.
    format: Arc<LineFormat>,
    source: Option<Arc<dyn LineSource>>,
    /// Report the sender's own counters as `graphyte.*` lines.
    self_metrics: bool,
    /// Per self-metric (`SENDER_METRICS` then `SOURCE_METRICS`), its value
    /// at the last report whose line for it was queued: a report dropped
    /// by a full queue leaves its counts to the next one.
    last: Vec<u64>,
    /// The last report's self-metric lines: (metric, value read, position
    /// among the report's lines), until [`committed`](Reports::committed).
    pending: Vec<(usize, u64, usize)>,
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
            last: vec![0; SENDER_METRICS.len() + SOURCE_METRICS.len()],
            pending: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Whether there is anything to report at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.source.is_none() && !self.self_metrics
    }

    /// The report of the interval that started at `start`: the source's
    /// lines, then self-metrics from `now`, the sender's counters. Call
    /// [`committed`](Reports::committed) with how many of its lines were
    /// queued.
    pub(crate) fn build(&mut self, start: Timestamp, mut now: Stats) -> Report<'_> {
        if let Some(source) = &self.source {
            let series = source.series();
            now.series = series.live;
            now.series_refused = series.refused;
        }
        self.out.clear();
        self.pending.clear();
        let mut count = 0;
        if let Some(source) = &self.source {
            count += source.interval_lines(start, &self.format, &mut self.out);
        }
        if self.self_metrics {
            // The series figures only for a sender with a source (the global one).
            let source_metrics = if self.source.is_some() {
                &SOURCE_METRICS[..]
            } else {
                &[]
            };
            for (i, metric) in SENDER_METRICS.iter().chain(source_metrics).enumerate() {
                let value = (metric.read)(&now);
                let sent = if metric.delta {
                    value.saturating_sub(self.last[i])
                } else {
                    value
                };
                if self
                    .format
                    .format_into(&mut self.out, metric.name, &[], sent, start)
                    .is_ok()
                {
                    self.pending.push((i, value, count));
                    count += 1;
                }
            }
        }
        Report {
            lines: &self.out,
            count,
        }
    }

    /// The first `kept` lines of the last report were queued (the rest
    /// dropped, the queue being full): the counts of the self-metric lines
    /// among them are reported; the others are left for the next report.
    pub(crate) fn committed(&mut self, kept: usize) {
        for &(metric, value, position) in &self.pending {
            if position < kept {
                self.last[metric] = value;
            }
        }
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(report: &Report<'_>) -> Vec<String> {
        String::from_utf8_lossy(report.lines)
            .lines()
            .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
            .collect()
    }

    #[test]
    fn counts_of_a_dropped_report_go_into_the_next() {
        let format = Arc::new(LineFormat::default());
        let mut reports = Reports::new(format, None, true);
        let at = |sent, dropped| Stats {
            sent,
            dropped,
            ..Stats::default()
        };
        let first = values(&reports.build(Timestamp::from(100), at(10, 2)));
        assert_eq!(first[..2], ["graphyte.sent 10", "graphyte.dropped 2"]);
        // The queue was full: none of its lines were queued.
        reports.committed(0);
        let second = values(&reports.build(Timestamp::from(110), at(15, 7)));
        assert_eq!(second[..2], ["graphyte.sent 15", "graphyte.dropped 7"]);
        // Only its first line (sent) was queued.
        reports.committed(1);
        let third = values(&reports.build(Timestamp::from(120), at(16, 7)));
        assert_eq!(third[..2], ["graphyte.sent 1", "graphyte.dropped 7"]);
        reports.committed(third.len());
        let fourth = values(&reports.build(Timestamp::from(130), at(16, 7)));
        assert_eq!(fourth[..2], ["graphyte.sent 0", "graphyte.dropped 0"]);
    }
}
