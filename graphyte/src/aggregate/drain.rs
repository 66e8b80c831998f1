//! What one drain of the registry sends for each series, and when a series
//! has been idle long enough to stop.

use std::sync::atomic::Ordering;

use std::sync::Arc;

use super::{Quantile, Registry, Series};
use crate::line::{LineFormat, Stamp};
use crate::sync::{lock, read, write};
use crate::timestamp::Timestamp;
use crate::value::Value;

/// Series a drain reads ahead (see [`Series::warm`]) before draining them.
const WARM_AHEAD: usize = 32;

/// Lines appended by one drain, and the problems to log once it is done.
struct Out<'a> {
    buf: &'a mut Vec<u8>,
    format: &'a LineFormat,
    stamp: Stamp,
    lines: usize,
    failed: Vec<(Box<str>, crate::error::Error)>,
}

impl Out<'_> {
    fn line<V: Value>(&mut self, name: &str, value: V) {
        match self
            .format
            .format_checked_into(self.buf, name, value, &self.stamp)
        {
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
            stamp: Stamp::new(ts),
            lines: 0,
            failed: Vec::new(),
        };
        let mut buckets = lock(&self.buckets);
        let quantiles = self.quantiles();
        let mut idle: Vec<Series> = Vec::new();
        for shard in self.shards.iter() {
            {
                let index = read(shard);
                let mut series = index.iter();
                let mut chunk: Vec<&Series> = Vec::with_capacity(WARM_AHEAD);
                loop {
                    chunk.clear();
                    chunk.extend(series.by_ref().take(WARM_AHEAD));
                    if chunk.is_empty() {
                        break;
                    }
                    // Independent loads first, so that the cache misses of
                    // the chunk overlap instead of coming one per series
                    // between the locked instructions of the drain below.
                    let warmed = chunk.iter().fold(0, |acc, s| acc ^ s.warm());
                    std::hint::black_box(warmed);
                    for &series in &chunk {
                        let outcome = drain_series(
                            series,
                            &mut out,
                            &mut buckets,
                            &quantiles,
                            residual,
                            idle_secs,
                        );
                        if outcome == Outcome::Idle && !series.life().pinned() {
                            idle.push(series.clone());
                        }
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
    /// updated meanwhile or pinned by a call site; empties `idle`. Steps
    /// D1 to D3 of the expiry protocol (see [`Life`](super::Life)), under
    /// the shard's write lock: no lookup finds a series while it retires.
    pub(super) fn remove_idle(
        &self,
        shard: &std::sync::RwLock<super::Shard>,
        idle: &mut Vec<Series>,
    ) {
        let mut index = write(shard);
        let mut forgot = false;
        for series in idle.drain(..) {
            let counter = match &series {
                Series::Counter(c) => Some(Arc::clone(c)),
                _ => None,
            };
            let mut retirement = Retirement::new(series);
            let removed = loop {
                if let Some(removed) = retirement.step(&mut index, &self.live) {
                    break removed;
                }
            };
            if let (true, Some(counter)) = (removed, counter) {
                self.forget_key(&counter);
                forgot = true;
            }
        }
        // A table never shrinks by itself: give memory back once it is
        // mostly empty (a burst of made-up names that all expired).
        let len = index.len();
        if len * 4 < index.capacity() {
            index.shrink_to(len * 2);
        }
        drop(index);
        if forgot {
            self.shrink_keys();
        }
    }
}

/// Steps D1 to D3 of the expiry protocol (see [`Life`](super::Life)) for
/// one idle series, made one at a time (so that a test can run updates
/// between them) under its shard's write lock: no lookup finds the series
/// while it retires.
pub(super) struct Retirement {
    series: Series,
    next: Step,
}

enum Step {
    Retire,
    Check,
    Finish { pending: bool },
    Done,
}

impl Retirement {
    pub(super) fn new(series: Series) -> Retirement {
        Retirement {
            series,
            next: Step::Retire,
        }
    }

    /// Runs the next step on `index`, the shard's table (write-locked);
    /// after the last, says whether the series was removed (`live` counts
    /// it off).
    pub(super) fn step(
        &mut self,
        index: &mut super::Shard,
        live: &std::sync::atomic::AtomicUsize,
    ) -> Option<bool> {
        let series = &self.series;
        match self.next {
            Step::Retire => {
                // Still this series (not one registered since), not pinned.
                let current = index.get(series.name());
                if !current.is_some_and(|c| c.same(series)) || series.life().pinned() {
                    self.next = Step::Done;
                    return Some(false);
                }
                series.life().retire();
                self.next = Step::Check;
                None
            }
            Step::Check => {
                self.next = Step::Finish {
                    pending: series.has_pending(),
                };
                None
            }
            Step::Finish { pending } => {
                self.next = Step::Done;
                if pending {
                    // Updated through a handle after the drain looked:
                    // kept, sent by the next drain.
                    series.life().keep();
                    return Some(false);
                }
                let removed = index.remove(series);
                if removed {
                    live.fetch_sub(1, Ordering::Relaxed);
                }
                Some(removed)
            }
            Step::Done => Some(false),
        }
    }
}

/// The drain's interval, and when a series counts as idle in it.
struct Interval {
    /// Its start, Unix seconds.
    ts: i64,
    idle_secs: i64,
}

impl Interval {
    /// Records activity (`now_active`) in `active`, the start of the last
    /// interval with any; says whether the series is idle: its last
    /// activity is `idle_secs` old (never active: since its first drain).
    fn idle(&self, active: &mut Option<i64>, now_active: bool) -> bool {
        if now_active {
            *active = Some(self.ts);
        }
        let since = *active.get_or_insert(self.ts);
        self.ts.saturating_sub(since) >= self.idle_secs
    }
}

/// A per-interval summary of recorded values (timers, distributions).
pub(super) trait IntervalSummary: Default {
    /// What one take returned.
    type Taken: Copy;
    /// How many values it holds.
    fn count(taken: &Self::Taken) -> u64;
    /// Adds it (with its histogram buckets) to the summary.
    fn merge(&mut self, taken: Self::Taken, buckets: &[(u32, u64)]);
}

/// A summarized series' state between drains.
#[derive(Debug, Default)]
pub(crate) struct SummaryDrained<S> {
    /// The timestamp of the last lines sent, and their summary.
    ts: Option<i64>,
    summary: S,
    /// The start of the last interval with a recorded value.
    active: Option<i64>,
}

impl<S: IntervalSummary> SummaryDrained<S> {
    /// Adds what a drain took to the interval's summary (drains that share
    /// a timestamp add up); returns it if it is to be sent, `Err` with the
    /// outcome otherwise.
    fn add(
        &mut self,
        taken: S::Taken,
        buckets: &[(u32, u64)],
        interval: &Interval,
        residual: bool,
    ) -> Result<&S, Outcome> {
        let count = S::count(&taken);
        if interval.idle(&mut self.active, count > 0) {
            self.ts = None;
            return Err(Outcome::Idle);
        }
        if self.ts != Some(interval.ts) {
            self.summary = S::default();
        }
        self.ts = Some(interval.ts);
        self.summary.merge(taken, buckets);
        if residual && count == 0 {
            return Err(Outcome::Kept);
        }
        Ok(&self.summary)
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
    let interval = Interval {
        ts: out.stamp.secs(),
        idle_secs,
    };
    let ts = interval.ts;
    match series {
        Series::Counter(counter) => {
            let mut drained = counter.drained.edit();
            if let Some((value, touched)) = counter.take_absolute() {
                // A cumulative total: its latest value, like a gauge
                // (increments of a counter set absolute are not sent).
                counter.take();
                if interval.idle(&mut drained.active, touched) {
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
            if interval.idle(&mut drained.active, delta != 0) {
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
            if interval.idle(&mut drained.active, touched) {
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
            let summary = match drained.add(taken, buckets, &interval, residual) {
                Ok(summary) => summary,
                Err(outcome) => return outcome,
            };
            let names = timer.names();
            out.line(&names[0], summary.count);
            if let Some(ms) = summary.millis() {
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
            let summary = match drained.add(taken, buckets, &interval, residual) {
                Ok(summary) => summary,
                Err(outcome) => return outcome,
            };
            let names = distribution.names(quantiles);
            out.line(&names[0], summary.count);
            if let Some(values) = summary.values(quantiles) {
                let values = values.fixed.into_iter().chain(values.quantiles);
                for (name, value) in names[1..].iter().zip(values) {
                    out.number(name, value);
                }
            }
        }
    }
    Outcome::Kept
}
