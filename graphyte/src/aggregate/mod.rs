//! The aggregation registry behind `count!`, `gauge!` and `#[timed]`.
//!
//! Every series the macros feed is registered here once, by its full name
//! (path and inline tags), so that all call sites with one name share one
//! series. Call sites with a literal name keep a handle to their series, so
//! their hot path never touches the registry; names that are not literals
//! are looked up per call, in one of 16 shards picked by the name's hash
//! (foldhash), under that shard's read lock.
//!
//! The registry knows no sender and no socket. The process-wide one lives in
//! [`Global`](crate::global::Global), with the mode that says what a macro
//! call does (set by [`init`](crate::init) and [`shutdown`](crate::shutdown)):
//! nothing before `init`; update the series in interval mode, where the
//! sender's interval thread asks for [`Registry::drain`] at the end of every
//! interval (through a [`LineSource`](crate::report::LineSource)); send one
//! line per call in synchronous mode.
//!
//! # What a drain sends
//! Every line carries the interval's start (Unix seconds, aligned to the
//! interval). Carbon keeps the last value written per series and time
//! bucket, so when two drains share a timestamp (an interval under a second,
//! or the last drain at shutdown) the second sends the totals of both.
//!
//! * counter: `NAME SUM`, the sum of the deltas (`0` when there were none);
//! * gauge: `NAME VALUE`, the latest value, every interval once set;
//! * timer: `NAME.count N`, and when `N > 0` also `NAME.sum`, `NAME.min`,
//!   `NAME.max`, `NAME.mean`, `NAME.p50`, `NAME.p90`, `NAME.p99`, in
//!   milliseconds.
//!
//! # Idle series and the bound
//! A series that saw no update (a counter no non-zero delta, a gauge no
//! `set`, a timer no call) for the idle timeout stops being sent; an update
//! brings it back. One whose name was not a literal (a lookup's, a
//! `metrics` handle's) is then removed and freed once the last handle to it
//! goes (a literal call site pins its series: never removed); an update
//! through a handle of a removed series moves into a live series of the
//! same name (the protocol is in [`Life`]). At most `max_series` series are
//! live: past that, a new name is refused and counted, without a lock, and
//! logged at most once a minute; a removed series frees its place.

mod counter;
mod distribution;
mod drain;
mod gauge;
mod histogram;
mod index;
mod keys;
mod life;
mod retired;
mod timer;

use std::collections::HashSet;
use std::fmt::Display;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub use counter::CountDelta;
pub(crate) use counter::Counter;
pub(crate) use distribution::{Distribution, Quantile};
pub(crate) use gauge::Gauge;
pub(crate) use life::Life;
#[cfg_attr(not(feature = "metrics"), allow(unused_imports))]
pub(crate) use retired::GaugeOp;
pub(crate) use timer::Timer;

use crate::log_limit::AtomicLogLimiter;
use crate::sync::{lock, read, write};

/// The most invalid names remembered so that each is logged only once.
const MAX_REPORTED: usize = 1024;

/// Shards of the name index: lookups of different names rarely share a lock.
const SHARDS: usize = 16;

/// How often refusals by the bound are logged while they go on.
const REFUSED_LOG_PERIOD: Duration = Duration::from_secs(60);

/// Default [`idle timeout`](crate::Config::idle_timeout).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Default [`max_series`](crate::Config::max_series).
pub const DEFAULT_MAX_SERIES: usize = 200_000;

/// Default [`percentiles`](crate::Config::percentiles) of histograms.
pub const DEFAULT_PERCENTILES: &[f64] = &[0.5, 0.9, 0.99];

/// A registered series.
#[derive(Clone)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) enum Series {
    Counter(Arc<Counter>),
    Gauge(Arc<Gauge>),
    Timer(Arc<Timer>),
    Distribution(Arc<Distribution>),
}

impl Series {
    fn kind(&self) -> &'static str {
        match self {
            Series::Counter(_) => "a counter (count!)",
            Series::Gauge(_) => "a gauge (gauge!)",
            Series::Timer(_) => "a timer (#[timed])",
            Series::Distribution(_) => "a histogram (metrics::histogram!)",
        }
    }

    fn name(&self) -> &str {
        match self {
            Series::Counter(c) => c.name(),
            Series::Gauge(g) => g.name(),
            Series::Timer(t) => t.name(),
            Series::Distribution(d) => d.name(),
        }
    }

    fn life(&self) -> &Life {
        match self {
            Series::Counter(c) => &c.life,
            Series::Gauge(g) => &g.life,
            Series::Timer(t) => &t.life,
            Series::Distribution(d) => &d.life,
        }
    }

    /// Whether it was updated since the drain last looked (`SeqCst`: see
    /// [`Life`]).
    fn has_pending(&self) -> bool {
        match self {
            Series::Counter(c) => c.has_pending(),
            Series::Gauge(g) => g.has_pending(),
            Series::Timer(t) => t.has_pending(),
            Series::Distribution(d) => d.has_pending(),
        }
    }

    /// Reads (plainly, no locked instruction) a word of each cache line a
    /// drain of it touches first: its state and its name. The drain calls
    /// it for several series before draining them, so that their cache
    /// misses overlap; the result only keeps the reads from being dropped.
    #[inline]
    pub(super) fn warm(&self) -> u64 {
        let first = u64::from(self.name().as_bytes().first().copied().unwrap_or(0));
        let state = match self {
            Series::Counter(c) => c.warm(),
            _ => u64::from(self.life().bits()),
        };
        first ^ state
    }

    /// Whether both are the same series (not only the same name).
    fn same(&self, other: &Series) -> bool {
        match (self, other) {
            (Series::Counter(a), Series::Counter(b)) => Arc::ptr_eq(a, b),
            (Series::Gauge(a), Series::Gauge(b)) => Arc::ptr_eq(a, b),
            (Series::Timer(a), Series::Timer(b)) => Arc::ptr_eq(a, b),
            (Series::Distribution(a), Series::Distribution(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

use index::Index as Shard;

/// A weak reference to a series (for tests: a freed series does not
/// upgrade).
#[derive(Debug, Clone)]
pub(crate) enum WeakSeries {
    Counter(std::sync::Weak<Counter>),
    Gauge(std::sync::Weak<Gauge>),
    Timer(std::sync::Weak<Timer>),
    Distribution(std::sync::Weak<Distribution>),
}

impl WeakSeries {
    /// The strong references left: 0 once it was freed.
    pub(crate) fn holders(&self) -> usize {
        match self {
            WeakSeries::Counter(w) => w.strong_count(),
            WeakSeries::Gauge(w) => w.strong_count(),
            WeakSeries::Timer(w) => w.strong_count(),
            WeakSeries::Distribution(w) => w.strong_count(),
        }
    }

    pub(crate) fn same(&self, other: &WeakSeries) -> bool {
        match (self, other) {
            (WeakSeries::Counter(a), WeakSeries::Counter(b)) => a.ptr_eq(b),
            (WeakSeries::Gauge(a), WeakSeries::Gauge(b)) => a.ptr_eq(b),
            (WeakSeries::Timer(a), WeakSeries::Timer(b)) => a.ptr_eq(b),
            (WeakSeries::Distribution(a), WeakSeries::Distribution(b)) => a.ptr_eq(b),
            _ => false,
        }
    }
}

/// Why a series was not given out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_series` series are live: asking again later may succeed.
    Full,
    /// The name is invalid or used by another kind of series (logged once).
    Unusable,
}

/// Every series, by name.
pub(crate) struct Registry {
    shards: Box<[RwLock<Shard>]>,
    /// Counters by the hash of the `metrics` key that named them (see
    /// [`keys`]).
    keys: Box<[RwLock<keys::KeyShard>]>,
    hasher: foldhash::fast::RandomState,
    /// Series registered now.
    live: AtomicUsize,
    /// New names refused because `max_series` were live.
    refused: AtomicU64,
    /// Refusals are logged at most once a period, without a lock.
    refused_log: AtomicLogLimiter,
    max_series: AtomicUsize,
    /// The idle timeout in whole seconds (timestamps are whole seconds).
    idle_secs: AtomicU64,
    /// The quantiles distributions send.
    quantiles: RwLock<Arc<[Quantile]>>,
    /// Scratch space of the drains; only the drain takes this lock.
    buckets: Mutex<Vec<(u32, u64)>>,
    /// Names whose problem was logged already.
    reported: Mutex<Reported>,
}

#[derive(Default)]
struct Reported {
    names: HashSet<Box<str>>,
    overflowed: bool,
}

/// How many series a registry holds, and refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SeriesCount {
    pub(crate) live: u64,
    pub(crate) refused: u64,
}

impl Default for Registry {
    fn default() -> Registry {
        let hasher = foldhash::fast::RandomState::default();
        Registry {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(Shard::new(hasher.clone())))
                .collect(),
            keys: keys::key_shards(),
            hasher,
            live: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            refused_log: AtomicLogLimiter::new(REFUSED_LOG_PERIOD),
            max_series: AtomicUsize::new(DEFAULT_MAX_SERIES),
            idle_secs: AtomicU64::new(DEFAULT_IDLE_TIMEOUT.as_secs()),
            quantiles: RwLock::new(
                DEFAULT_PERCENTILES
                    .iter()
                    .filter_map(|&q| Quantile::new(q))
                    .collect(),
            ),
            buckets: Mutex::default(),
            reported: Mutex::default(),
        }
    }
}

/// How a series is asked for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// By a literal call site, which keeps it: pinned, never removed.
    Pinned,
    /// By a `metrics` handle or a lookup: removed once idle.
    Expiring,
}

impl Registry {
    /// Sets the quantiles distributions send (at `init`, before any drain).
    pub(crate) fn set_quantiles(&self, quantiles: &[f64]) {
        *write(&self.quantiles) = quantiles.iter().filter_map(|&q| Quantile::new(q)).collect();
    }

    /// The quantiles distributions send.
    pub(crate) fn quantiles(&self) -> Arc<[Quantile]> {
        Arc::clone(&read(&self.quantiles))
    }

    /// Sets the bound and the idle timeout (at `init`).
    pub(crate) fn configure(&self, max_series: usize, idle_timeout: Duration) {
        self.max_series.store(max_series, Ordering::Relaxed);
        // At least a second: timestamps are whole seconds.
        self.idle_secs
            .store(idle_timeout.as_secs().max(1), Ordering::Relaxed);
    }

    /// Series live and refused so far.
    pub(crate) fn count(&self) -> SeriesCount {
        SeriesCount {
            live: self.live.load(Ordering::Relaxed) as u64,
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    /// A weak reference to the series named `name`, if one is live.
    pub(crate) fn watch(&self, name: &str) -> Option<WeakSeries> {
        Some(match read(self.shard(name)).get(name)? {
            Series::Counter(c) => WeakSeries::Counter(Arc::downgrade(c)),
            Series::Gauge(g) => WeakSeries::Gauge(Arc::downgrade(g)),
            Series::Timer(t) => WeakSeries::Timer(Arc::downgrade(t)),
            Series::Distribution(d) => WeakSeries::Distribution(Arc::downgrade(d)),
        })
    }

    fn shard(&self, name: &str) -> &RwLock<Shard> {
        self.locate(name).1
    }

    /// The hash of `name` and its shard, picked by the hash's high bits
    /// (the table inside probes with the low ones).
    #[inline]
    fn locate(&self, name: &str) -> (u64, &RwLock<Shard>) {
        let hash = self.hasher.hash_one(name);
        (hash, &self.shards[(hash >> 60) as usize % SHARDS])
    }

    /// The counter named `name`, registered on first use, for a call site
    /// that keeps it (pinned); refused (and logged once) if the name is
    /// invalid, used by another kind of series, or past the bound.
    pub(crate) fn counter(&self, name: &str) -> Result<Arc<Counter>, Refusal> {
        self.counter_for(name, Use::Pinned).map(|(c, _)| c)
    }

    /// The counter named `name` for a `metrics` handle: not pinned, so it
    /// expires when idle; also says whether it was made by this call.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn expiring_counter(&self, name: &str) -> Result<(Arc<Counter>, bool), Refusal> {
        self.counter_for(name, Use::Expiring)
    }

    fn counter_for(&self, name: &str, how: Use) -> Result<(Arc<Counter>, bool), Refusal> {
        let make = |name| Series::Counter(Arc::new(Counter::new(name)));
        match self.get(name, how, make)? {
            (Series::Counter(c), made) => Ok((c, made)),
            (other, _) => self.conflict(name, &other, "a counter (count!)"),
        }
    }

    /// The gauge named `name`; see [`counter`](Self::counter).
    pub(crate) fn gauge(&self, name: &str) -> Result<Arc<Gauge>, Refusal> {
        self.gauge_for(name, Use::Pinned, None).map(|(g, _)| g)
    }

    /// The gauge named `name` for a `metrics` handle (expiring); a gauge
    /// made by this call starts at `initial`, if given.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn expiring_gauge(
        &self,
        name: &str,
        initial: Option<f64>,
    ) -> Result<(Arc<Gauge>, bool), Refusal> {
        self.gauge_for(name, Use::Expiring, initial)
    }

    fn gauge_for(
        &self,
        name: &str,
        how: Use,
        initial: Option<f64>,
    ) -> Result<(Arc<Gauge>, bool), Refusal> {
        let make = |name| {
            let gauge = Gauge::new(name);
            if let Some(value) = initial {
                gauge.set(value);
            }
            Series::Gauge(Arc::new(gauge))
        };
        match self.get(name, how, make)? {
            (Series::Gauge(g), made) => Ok((g, made)),
            (other, _) => self.conflict(name, &other, "a gauge (gauge!)"),
        }
    }

    /// The timer named `name`; see [`counter`](Self::counter).
    pub(crate) fn timer(&self, name: &str) -> Result<Arc<Timer>, Refusal> {
        match self.get(name, Use::Pinned, |name| {
            Series::Timer(Arc::new(Timer::new(name)))
        })? {
            (Series::Timer(t), _) => Ok(t),
            (other, _) => self.conflict(name, &other, "a timer (#[timed])"),
        }
    }

    /// The distribution named `name` for a `metrics` handle (expiring).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn expiring_distribution(
        &self,
        name: &str,
    ) -> Result<(Arc<Distribution>, bool), Refusal> {
        match self.get(name, Use::Expiring, |name| {
            Series::Distribution(Arc::new(Distribution::new(name)))
        })? {
            (Series::Distribution(d), made) => Ok((d, made)),
            (other, _) => self.conflict(name, &other, "a histogram (metrics::histogram!)"),
        }
    }

    /// Adds `delta` to the counter named `name` (a name that is not a
    /// literal: looked up per call, registered on first use).
    #[inline]
    pub(crate) fn add_to_counter(&self, name: &str, delta: i64) {
        self.update(
            name,
            |series| match series {
                Series::Counter(c) => {
                    c.add(delta);
                    Ok(())
                }
                other => Err(other.kind()),
            },
            |name| Series::Counter(Arc::new(Counter::new(name))),
            "a counter (count!)",
        )
    }

    /// Sets the gauge named `name` (a name that is not a literal).
    #[inline]
    pub(crate) fn set_gauge(&self, name: &str, value: f64) {
        self.update(
            name,
            |series| match series {
                Series::Gauge(g) => {
                    g.set(value);
                    Ok(())
                }
                other => Err(other.kind()),
            },
            |name| Series::Gauge(Arc::new(Gauge::new(name))),
            "a gauge (gauge!)",
        )
    }

    fn conflict<T>(&self, name: &str, existing: &Series, wanted: &str) -> Result<T, Refusal> {
        self.report_conflict(name, existing.kind(), wanted);
        Err(Refusal::Unusable)
    }

    fn report_conflict(&self, name: &str, existing: &str, wanted: &str) {
        self.report_once(
            name,
            format_args!("metric {name:?} is already {existing}; its use as {wanted} is ignored"),
        );
    }

    /// Applies `update` to the series named `name`, registering it first
    /// if need be. The update runs under the shard's read lock, so that a
    /// drain removing an idle series (under the write lock) never loses it.
    fn update(
        &self,
        name: &str,
        update: impl Fn(&Series) -> Result<(), &'static str>,
        make: impl FnOnce(Box<str>) -> Series,
        wanted: &str,
    ) {
        let (hash, shard) = self.locate(name);
        {
            let index = read(shard);
            if let Some(series) = index.find(hash, name) {
                if let Err(existing) = update(series) {
                    drop(index);
                    self.report_conflict(name, existing, wanted);
                }
                return;
            }
        }
        if self
            .register(hash, shard, name, make, Use::Expiring)
            .is_ok()
        {
            let index = read(shard);
            if let Some(series) = index.find(hash, name) {
                if let Err(existing) = update(series) {
                    drop(index);
                    self.report_conflict(name, existing, wanted);
                }
            }
        }
    }

    /// The series named `name`, registered if need be (and pinned for a
    /// literal call site); with whether this call made it.
    fn get(
        &self,
        name: &str,
        how: Use,
        make: impl FnOnce(Box<str>) -> Series,
    ) -> Result<(Series, bool), Refusal> {
        let (hash, shard) = self.locate(name);
        {
            let index = read(shard);
            if let Some(series) = index.find(hash, name) {
                if how == Use::Pinned {
                    series.life().pin();
                }
                return Ok((series.clone(), false));
            }
        }
        self.register(hash, shard, name, make, how)
    }

    /// Registers a new series, unless the name is invalid (refused, logged
    /// once) or the bound is reached (refused, counted, logged at most once
    /// a minute; neither takes a lock then); returns it, and whether it was
    /// made here rather than by a racing call.
    #[cold]
    fn register(
        &self,
        hash: u64,
        shard: &RwLock<Shard>,
        name: &str,
        make: impl FnOnce(Box<str>) -> Series,
        how: Use,
    ) -> Result<(Series, bool), Refusal> {
        if let Err(e) = crate::line::check_name(name) {
            self.report_once(name, e);
            return Err(Refusal::Unusable);
        }
        let max = self.max_series.load(Ordering::Relaxed);
        if self.live.load(Ordering::Relaxed) >= max {
            return Err(self.refuse(name, max));
        }
        let mut index = write(shard);
        if let Some(series) = index.find(hash, name) {
            if how == Use::Pinned {
                series.life().pin();
            }
            return Ok((series.clone(), false));
        }
        let reserved = self
            .live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |live| {
                (live < max).then_some(live + 1)
            });
        if reserved.is_err() {
            drop(index);
            return Err(self.refuse(name, max));
        }
        let series = make(name.into());
        if how == Use::Pinned {
            series.life().pin();
        }
        index.insert(hash, series.clone());
        Ok((series, true))
    }

    /// Counts a name refused by the bound; logs it at most once a period.
    #[cold]
    fn refuse(&self, name: &str, max: usize) -> Refusal {
        self.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = self.refused_log.hit() {
            log::error!(
                target: "graphyte",
                "metric {name:?} refused: {max} series exist already (Config::max_series); its calls send nothing ({n} refusals since the last report; stats().series_refused counts them all)"
            );
        }
        Refusal::Full
    }

    /// Logs `problem` under target `graphyte` unless a problem with `name`
    /// was logged before (at most [`MAX_REPORTED`] names are remembered;
    /// past that, one last message says so and the rest are not logged).
    pub(crate) fn report_once(&self, name: &str, problem: impl Display) {
        let (first, overflow) = {
            let mut reported = lock(&self.reported);
            if reported.names.contains(name) {
                (false, false)
            } else if reported.names.len() < MAX_REPORTED {
                reported.names.insert(name.into());
                (true, false)
            } else {
                (false, !std::mem::replace(&mut reported.overflowed, true))
            }
        };
        if first {
            log::error!(target: "graphyte", "{problem} (further problems with {name:?} are not logged)");
        } else if overflow {
            log::error!(target: "graphyte", "{problem} (more than {MAX_REPORTED} metric names had problems: no more are logged)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::LineFormat;
    use crate::timestamp::Timestamp;

    fn drain(r: &Registry, ts: i64, residual: bool) -> Vec<String> {
        let format = LineFormat::new("app", &[("host", "h1")]).unwrap();
        let mut buf = Vec::new();
        let n = r.drain(Timestamp::from(ts), &format, &mut buf, residual);
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), n);
        lines
    }

    #[test]
    fn series_are_shared_by_name_and_kinds_do_not_mix() {
        let r = Registry::default();
        let a = r.counter("requests").unwrap();
        let b = r.counter("requests").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(r.gauge("requests").is_err());
        assert!(r.timer("requests").is_err());
        assert!(r.counter("bad name").is_err());
        assert!(r.counter("x;env=").is_err());
        assert!(r.gauge("queue.depth").is_ok());
    }

    #[test]
    fn counters_send_interval_sums_and_zero_when_idle() {
        let r = Registry::default();
        let c = r.counter("requests;env=prod").unwrap();
        c.add(3);
        c.add(4);
        assert_eq!(
            drain(&r, 100, false),
            ["app.requests;env=prod;host=h1 7 100"]
        );
        assert_eq!(
            drain(&r, 110, false),
            ["app.requests;env=prod;host=h1 0 110"]
        );
        c.add(-2);
        assert_eq!(
            drain(&r, 120, false),
            ["app.requests;env=prod;host=h1 -2 120"]
        );
    }

    #[test]
    fn drains_sharing_a_timestamp_send_running_totals() {
        let r = Registry::default();
        let c = r.counter("c").unwrap();
        c.add(5);
        assert_eq!(drain(&r, 100, false), ["app.c;host=h1 5 100"]);
        c.add(2);
        assert_eq!(drain(&r, 100, false), ["app.c;host=h1 7 100"]);
        // A residual drain sends only what changed, still as the total.
        assert!(drain(&r, 100, true).is_empty());
        c.add(1);
        assert_eq!(drain(&r, 100, true), ["app.c;host=h1 8 100"]);
        assert_eq!(drain(&r, 101, false), ["app.c;host=h1 0 101"]);
    }

    #[test]
    fn gauges_repeat_their_latest_value() {
        let r = Registry::default();
        let g = r.gauge("load").unwrap();
        let never_set = r.gauge("unset").unwrap();
        assert!(drain(&r, 100, false).is_empty());
        g.set(0.75);
        assert_eq!(drain(&r, 100, false), ["app.load;host=h1 0.75 100"]);
        g.set(12.0);
        assert_eq!(drain(&r, 110, false), ["app.load;host=h1 12 110"]);
        assert_eq!(drain(&r, 120, false), ["app.load;host=h1 12 120"]);
        assert!(drain(&r, 120, true).is_empty());
        let _ = never_set;
    }

    #[test]
    fn timers_send_eight_series_in_ms_or_only_a_zero_count() {
        let r = Registry::default();
        let t = r.timer("db.query;env=prod").unwrap();
        for ms in [1u64, 2, 3, 10] {
            t.record(ms * 1_000_000);
        }
        let lines = drain(&r, 100, false);
        assert_eq!(
            lines[..5],
            [
                "app.db.query.count;env=prod;host=h1 4 100",
                "app.db.query.sum;env=prod;host=h1 16 100",
                "app.db.query.min;env=prod;host=h1 1 100",
                "app.db.query.max;env=prod;host=h1 10 100",
                "app.db.query.mean;env=prod;host=h1 4 100",
            ]
        );
        // p50 is 2 ms within the histogram's precision; p90 and p99 are the max.
        let p50: f64 = lines[5]
            .strip_prefix("app.db.query.p50;env=prod;host=h1 ")
            .and_then(|rest| rest.strip_suffix(" 100"))
            .unwrap()
            .parse()
            .unwrap();
        assert!((p50 - 2.0).abs() < 0.01, "{lines:?}");
        assert_eq!(
            lines[6..],
            [
                "app.db.query.p90;env=prod;host=h1 10 100",
                "app.db.query.p99;env=prod;host=h1 10 100",
            ]
        );
        assert_eq!(
            drain(&r, 110, false),
            ["app.db.query.count;env=prod;host=h1 0 110"]
        );
        assert!(drain(&r, 110, true).is_empty());
        t.record(500_000);
        let lines = drain(&r, 110, true);
        assert_eq!(lines[0], "app.db.query.count;env=prod;host=h1 1 110");
        assert_eq!(lines[1], "app.db.query.sum;env=prod;host=h1 0.5 110");
    }

    #[test]
    fn lines_that_cannot_be_formatted_are_skipped() {
        let r = Registry::default();
        let long = "x".repeat(crate::MAX_LINE_LEN);
        r.counter(&long).unwrap().add(1);
        r.counter("ok").unwrap().add(1);
        assert_eq!(drain(&r, 100, false), ["app.ok;host=h1 1 100"]);
        assert!(lock(&r.reported).names.contains(long.as_str()));
    }

    #[test]
    fn problems_are_reported_once_per_name() {
        let r = Registry::default();
        r.report_once("a", "first");
        r.report_once("a", "second");
        assert_eq!(lock(&r.reported).names.len(), 1);
        for i in 0..MAX_REPORTED + 10 {
            r.report_once(&format!("n{i}"), "bad");
        }
        let reported = lock(&r.reported);
        assert_eq!(reported.names.len(), MAX_REPORTED);
        assert!(reported.overflowed);
    }

    fn registry(max_series: usize, idle_secs: u64) -> Registry {
        let r = Registry::default();
        r.configure(max_series, Duration::from_secs(idle_secs));
        r
    }

    /// A drain's lines, sorted (shards are drained in hash order).
    fn sorted(r: &Registry, ts: i64, residual: bool) -> Vec<String> {
        let mut lines = drain(r, ts, residual);
        lines.sort();
        lines
    }

    #[test]
    fn idle_counters_send_zeros_until_the_timeout_then_nothing() {
        let r = registry(100, 30);
        r.add_to_counter("dyn", 4);
        let literal = r.counter("lit").unwrap();
        literal.add(1);
        assert_eq!(
            sorted(&r, 100, false),
            ["app.dyn;host=h1 4 100", "app.lit;host=h1 1 100"]
        );
        assert_eq!(
            sorted(&r, 110, false),
            ["app.dyn;host=h1 0 110", "app.lit;host=h1 0 110"]
        );
        assert_eq!(
            sorted(&r, 120, false),
            ["app.dyn;host=h1 0 120", "app.lit;host=h1 0 120"]
        );
        // 30 s after the last non-zero interval: idle, nothing sent; the
        // dynamic one is removed, the literal one kept (its site holds it).
        assert_eq!(r.count().live, 2);
        assert!(sorted(&r, 130, false).is_empty());
        assert_eq!(r.count().live, 1);
        assert_eq!(Arc::strong_count(&literal), 2, "still registered");
        assert!(sorted(&r, 140, false).is_empty());
        // Updates bring both back, with the new sums only.
        r.add_to_counter("dyn", 2);
        literal.add(3);
        assert_eq!(
            sorted(&r, 150, false),
            ["app.dyn;host=h1 2 150", "app.lit;host=h1 3 150"]
        );
        assert_eq!(r.count().live, 2);
    }

    #[test]
    fn idle_gauges_and_timers_stop_too() {
        let r = registry(100, 20);
        r.set_gauge("g", 1.5);
        let timer = r.timer("t").unwrap();
        timer.record(2_000_000);
        let first = sorted(&r, 100, false);
        assert_eq!(first.len(), 1 + 8, "{first:?}");
        assert_eq!(
            sorted(&r, 110, false),
            ["app.g;host=h1 1.5 110", "app.t.count;host=h1 0 110"]
        );
        assert!(sorted(&r, 120, false).is_empty());
        assert_eq!(r.count().live, 1, "the gauge was freed, the timer kept");
        // A gauge set to the same value again is in use again.
        r.set_gauge("g", 1.5);
        assert_eq!(sorted(&r, 130, false), ["app.g;host=h1 1.5 130"]);
    }

    #[test]
    fn an_update_racing_the_removal_keeps_the_series() {
        let r = registry(100, 10);
        r.add_to_counter("c", 1);
        drain(&r, 100, false);
        // Idle at 110; an add between the drain's look and the removal
        // (simulated: the add happens, then the removal re-checks).
        let index = read(r.shard("c"));
        let series = index.get("c").unwrap().clone();
        drop(index);
        assert!(drain(&r, 110, false).is_empty());
        assert_eq!(r.count().live, 0, "removed");
        // An update after the removal registers it afresh.
        r.add_to_counter("c", 5);
        assert_eq!(drain(&r, 120, false), ["app.c;host=h1 5 120"]);
        // The removed series' handle is no longer in the index.
        let Series::Counter(old) = series else {
            panic!()
        };
        old.add(7);
        assert!(!Arc::ptr_eq(&old, &r.counter("c").unwrap()));
        // And a series updated between look and removal is kept.
        let r = registry(100, 10);
        r.add_to_counter("k", 1);
        drain(&r, 100, false);
        let mut idle = vec![index_series(&r, "k")];
        r.add_to_counter("k", 1);
        r.remove_idle(r.shard("k"), &mut idle);
        assert_eq!(r.count().live, 1, "kept: updated after the look");
    }

    fn index_series(r: &Registry, name: &str) -> Series {
        read(r.shard(name)).get(name).unwrap().clone()
    }

    #[test]
    fn past_the_bound_new_names_are_refused_counted_and_use_no_memory() {
        let r = registry(3, 600);
        for i in 0..10 {
            r.add_to_counter(&format!("c{i}"), 1);
        }
        assert_eq!(
            r.count(),
            SeriesCount {
                live: 3,
                refused: 7
            }
        );
        assert_eq!(sorted(&r, 100, false).len(), 3);
        // Calls on refused names stay refused and counted; known ones work.
        r.add_to_counter("c9", 1);
        r.add_to_counter("c0", 1);
        assert_eq!(
            r.count(),
            SeriesCount {
                live: 3,
                refused: 8
            }
        );
        assert!(
            r.counter("literal").err() == Some(Refusal::Full),
            "a literal site is refused too"
        );
        // Refusals are logged at a limited rate (the first was logged: the
        // next report is a minute away), not remembered per name: no mutex
        // is taken on a refused call.
        assert!(r.refused_log.hit().is_none());
        assert!(lock(&r.reported).names.is_empty());
    }

    #[test]
    fn a_call_on_a_refused_name_takes_no_write_lock_and_no_mutex() {
        let r = registry(1, 600);
        r.add_to_counter("taken", 1);
        // Hold what a refused call must not need: a read lock on the shard
        // of the refused name (a write lock would wait for it) and the
        // mutex of the names logged once.
        let shard = read(r.shard("refused"));
        let reported = lock(&r.reported);
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..3 {
                    r.add_to_counter("refused", 1);
                    assert!(r.counter("refused").is_err());
                }
                done.store(true, Ordering::SeqCst);
            });
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !done.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            let finished = done.load(Ordering::SeqCst);
            drop((shard, reported));
            assert!(finished, "a refused call waited for a lock");
        });
        assert_eq!(
            r.count(),
            SeriesCount {
                live: 1,
                refused: 6
            }
        );
    }

    #[test]
    fn expiry_makes_room_under_the_bound() {
        let r = registry(2, 10);
        r.add_to_counter("a", 1);
        r.add_to_counter("b", 1);
        r.add_to_counter("c", 1);
        assert_eq!(
            r.count(),
            SeriesCount {
                live: 2,
                refused: 1
            }
        );
        drain(&r, 100, false);
        drain(&r, 110, false);
        assert_eq!(r.count().live, 0);
        r.add_to_counter("c", 1);
        assert_eq!(drain(&r, 120, false), ["app.c;host=h1 1 120"]);
    }
}
