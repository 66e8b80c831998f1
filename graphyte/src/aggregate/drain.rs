//! What one drain of the registry sends for each series, and when a series
//! has been idle long enough to stop.

use std::sync::atomic::Ordering;

use super::{Entry, Quantile, Registry, Series};
use crate::line::LineFormat;
use crate::sync::{lock, read, write};
use crate::timestamp::Timestamp;
use crate::value::Value;

/// Lines appended by one drain, and the problems to log once it is done.
struct Out<'a> {
    buf: &'a mut Vec<u8>,
    format: &'a LineFormat,
    ts: Timestamp,
    lines: usize,
    failed: Vec<(Box<str>, crate::error::Error)>,
}

impl Out<'_> {
    fn line<V: Value>(&mut self, name: &str, value: V) {
        match self.format.format_into(self.buf, name, &[], value, self.ts) {
            Ok(()) => self.lines += 1,
            Err(e) => self.failed.push((name.into(), e)),
        }
    }

    /// Whole numbers without a fraction (`5`, not `5.0`).
    fn number(&mut self, name: &str, value: f64) {
        const EXACT: f64 = (1u64 << 53) as f64;
        if value.fract() == 0.0 && value.abs() < EXACT {
            self.line(name, value as i64);
        } else {
            self.line(name, value);
        }
    }
}

/// What a series did in one drain.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Sent, or waiting to be set; not idle.
    Kept,
    /// Idle for the idle timeout: sent nothing.
    Idle,
}

impl Registry {
    /// Appends the aggregated lines of the interval that started at `ts` to
    /// `buf`, with `format`'s prefix and default tags; returns how many.
    /// Series idle for the idle timeout send nothing, and those whose name
    /// was not a literal are removed.
    ///
    /// With `residual`, only series that changed since the previous drain
    /// are sent (the last drain at shutdown, after the interval thread's own).
    pub(crate) fn drain(
        &self,
        ts: Timestamp,
        format: &LineFormat,
        buf: &mut Vec<u8>,
        residual: bool,
    ) -> usize {
        let idle_secs = i64::try_from(self.idle_secs.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let mut out = Out {
            buf,
            format,
            ts,
            lines: 0,
            failed: Vec::new(),
        };
        let mut buckets = lock(&self.buckets);
        let quantiles = self.quantiles();
        let mut idle: Vec<Series> = Vec::new();
        for shard in self.shards.iter() {
            {
                let index = read(shard);
                for entry in index.iter() {
                    let outcome = drain_series(
                        &entry.series,
                        &mut out,
                        &mut buckets,
                        &quantiles,
                        residual,
                        idle_secs,
                    );
                    if outcome == Outcome::Idle && !entry.pinned.load(Ordering::Relaxed) {
                        idle.push(entry.series.clone());
                    }
                }
            }
            if !idle.is_empty() {
                self.remove_idle(shard, &mut idle);
            }
        }
        drop(buckets);
        // Logged without holding any lock: a logger may use the macros too.
        for (name, error) in out.failed {
            self.report_once(&name, error);
        }
        out.lines
    }

    /// Removes the idle series of `idle` from `shard`, unless one was
    /// updated meanwhile or pinned by a call site; empties `idle`.
    pub(super) fn remove_idle(
        &self,
        shard: &std::sync::RwLock<super::Shard>,
        idle: &mut Vec<Series>,
    ) {
        let mut index = write(shard);
        for series in idle.drain(..) {
            // Under the write lock no update is under way: one that came
            // after the drain looked keeps the series.
            let keep = index
                .get(series.name())
                .is_none_or(|entry: &Entry| entry.pinned.load(Ordering::Relaxed))
                || series.has_pending();
            if !keep && index.remove(series.name()) {
                self.live.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// Sends what one series has for this drain; says whether it is idle.
fn drain_series(
    series: &Series,
    out: &mut Out<'_>,
    buckets: &mut Vec<(u32, u64)>,
    quantiles: &[Quantile],
    residual: bool,
    idle_secs: i64,
) -> Outcome {
    let ts = out.ts.as_secs();
    // Idle once the last activity is `idle_secs` old (never active: since
    // its first drain).
    let idle = |active: &mut Option<i64>, now_active: bool| {
        if now_active {
            *active = Some(ts);
        }
        let since = *active.get_or_insert(ts);
        ts.saturating_sub(since) >= idle_secs
    };
    match series {
        Series::Counter(counter) => {
            let mut drained = lock(&counter.drained);
            if let Some((value, touched)) = counter.take_absolute() {
                // A cumulative total: its latest value, like a gauge
                // (increments of a counter set absolute are not sent).
                counter.take();
                if idle(&mut drained.active, touched) {
                    drained.ts = None;
                    return Outcome::Idle;
                }
                let changed = drained.ts != Some(ts) || touched;
                drained.ts = Some(ts);
                if !residual || changed {
                    out.line(counter.name(), value);
                }
                return Outcome::Kept;
            }
            let delta = counter.take();
            if idle(&mut drained.active, delta != 0) {
                drained.ts = None;
                return Outcome::Idle;
            }
            let same_bucket = drained.ts == Some(ts);
            drained.ts = Some(ts);
            drained.total = if same_bucket {
                drained.total.wrapping_add(delta)
            } else {
                delta
            };
            if !(residual && delta == 0) {
                out.line(counter.name(), drained.total);
            }
        }
        Series::Gauge(gauge) => {
            let mut drained = lock(&gauge.drained);
            let touched = gauge.take_touched();
            let Some(value) = gauge.get() else {
                return Outcome::Kept;
            };
            if idle(&mut drained.active, touched) {
                drained.sent = None;
                return Outcome::Idle;
            }
            let bits = value.to_bits();
            if !(residual && drained.sent == Some(bits)) {
                drained.sent = Some(bits);
                out.number(gauge.name(), value);
            }
        }
        Series::Timer(timer) => {
            let mut drained = lock(&timer.drained);
            buckets.clear();
            let taken = timer.take(buckets);
            if idle(&mut drained.active, taken.count > 0) {
                drained.ts = None;
                return Outcome::Idle;
            }
            let same_bucket = drained.ts == Some(ts);
            drained.ts = Some(ts);
            if !same_bucket {
                drained.summary = Default::default();
            }
            drained.summary.merge(taken, buckets);
            if residual && taken.count == 0 {
                return Outcome::Kept;
            }
            let names = timer.names();
            out.line(&names[0], drained.summary.count);
            if let Some(ms) = drained.summary.millis() {
                let values = [ms.sum, ms.min, ms.max, ms.mean, ms.p50, ms.p90, ms.p99];
                for (name, value) in names[1..].iter().zip(values) {
                    out.number(name, value);
                }
            }
        }
        Series::Distribution(distribution) => {
            let mut drained = lock(&distribution.drained);
            buckets.clear();
            let taken = distribution.take(buckets);
            if idle(&mut drained.active, taken.count > 0) {
                drained.ts = None;
                return Outcome::Idle;
            }
            let same_bucket = drained.ts == Some(ts);
            drained.ts = Some(ts);
            if !same_bucket {
                drained.summary = Default::default();
            }
            drained.summary.merge(taken, buckets);
            if residual && taken.count == 0 {
                return Outcome::Kept;
            }
            let names = distribution.names(quantiles);
            out.line(&names[0], drained.summary.count);
            if let Some(values) = drained.summary.values(quantiles) {
                let values = values.fixed.into_iter().chain(values.quantiles);
                for (name, value) in names[1..].iter().zip(values) {
                    out.number(name, value);
                }
            }
        }
    }
    Outcome::Kept
}
