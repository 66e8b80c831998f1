//! The aggregation registry behind `count!`, `gauge!` and `#[timed]`.
//!
//! Every series the macros feed is registered here once, by its full name
//! (path and inline tags), so that all call sites with one name share one
//! series. Call sites keep a `&'static` handle to their series, so the hot
//! path never touches the registry; only names that are not literals are
//! looked up per call (a read lock and a hash).
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

mod counter;
mod gauge;
mod histogram;
mod timer;

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::sync::{Mutex, RwLock};

pub use counter::CountDelta;
pub(crate) use counter::Counter;
pub(crate) use gauge::Gauge;
pub(crate) use timer::Timer;

use crate::error::Error;
use crate::line::LineFormat;
use crate::sync::{lock, read, write};
use crate::timestamp::Timestamp;
use crate::value::Value;
use timer::Summary;

/// The most invalid names remembered so that each is logged only once.
const MAX_REPORTED: usize = 1024;

/// A registered series.
#[derive(Clone, Copy)]
enum Series {
    Counter(&'static Counter),
    Gauge(&'static Gauge),
    Timer(&'static Timer),
}

impl Series {
    fn kind(self) -> &'static str {
        match self {
            Series::Counter(_) => "a counter (count!)",
            Series::Gauge(_) => "a gauge (gauge!)",
            Series::Timer(_) => "a timer (#[timed])",
        }
    }
}

/// Every series, by name.
#[derive(Default)]
pub(crate) struct Registry {
    names: RwLock<HashMap<Box<str>, Series>>,
    /// Series in registration order; the drain picks up new ones from here.
    order: Mutex<Vec<Series>>,
    /// What the drains sent, per series. Only the drain takes this lock.
    sent: Mutex<Drains>,
    /// Names whose problem was logged already.
    reported: Mutex<Reported>,
}

#[derive(Default)]
struct Reported {
    names: HashSet<Box<str>>,
    overflowed: bool,
}

#[derive(Default)]
struct Drains {
    series: Vec<Sent>,
    buckets: Vec<(u32, u64)>,
}

/// What was sent for one series with the timestamp `ts`.
struct Sent {
    series: Series,
    ts: i64,
    total: i64,
    last_gauge: Option<u64>,
    summary: Summary,
}

/// Lines appended by one drain, and the problems to log once it is done.
struct Out<'a> {
    buf: &'a mut Vec<u8>,
    format: &'a LineFormat,
    ts: Timestamp,
    lines: usize,
    failed: Vec<(Box<str>, Error)>,
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

impl Registry {
    /// The counter named `name`, registered on first use; `None` (and logged
    /// once) if the name is invalid or already used by another kind of series.
    pub(crate) fn counter(&self, name: &str) -> Option<&'static Counter> {
        match self.series(name, |name| {
            Series::Counter(Box::leak(Box::new(Counter::new(name))))
        })? {
            Series::Counter(c) => Some(c),
            other => self.conflict(name, other, "a counter (count!)"),
        }
    }

    /// The gauge named `name`; see [`counter`](Self::counter).
    pub(crate) fn gauge(&self, name: &str) -> Option<&'static Gauge> {
        match self.series(name, |name| {
            Series::Gauge(Box::leak(Box::new(Gauge::new(name))))
        })? {
            Series::Gauge(g) => Some(g),
            other => self.conflict(name, other, "a gauge (gauge!)"),
        }
    }

    /// The timer named `name`; see [`counter`](Self::counter).
    pub(crate) fn timer(&self, name: &str) -> Option<&'static Timer> {
        match self.series(name, |name| {
            Series::Timer(Box::leak(Box::new(Timer::new(name))))
        })? {
            Series::Timer(t) => Some(t),
            other => self.conflict(name, other, "a timer (#[timed])"),
        }
    }

    fn conflict<T>(&self, name: &str, existing: Series, wanted: &str) -> Option<T> {
        self.report_once(
            name,
            format_args!(
                "metric {name:?} is already {}; its use as {wanted} is ignored",
                existing.kind()
            ),
        );
        None
    }

    fn series(&self, name: &str, make: impl FnOnce(Box<str>) -> Series) -> Option<Series> {
        if let Some(&series) = read(&self.names).get(name) {
            return Some(series);
        }
        if let Err(e) = crate::line::check_name(name) {
            self.report_once(name, e);
            return None;
        }
        let mut names = write(&self.names);
        if let Some(&series) = names.get(name) {
            return Some(series);
        }
        let series = make(name.into());
        names.insert(name.into(), series);
        lock(&self.order).push(series);
        Some(series)
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

    /// Appends the aggregated lines of the interval that started at `ts` to
    /// `buf`, with `format`'s prefix and default tags; returns how many.
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
        let mut out = Out {
            buf,
            format,
            ts,
            lines: 0,
            failed: Vec::new(),
        };
        {
            let mut drains = lock(&self.sent);
            let Drains { series, buckets } = &mut *drains;
            {
                let order = lock(&self.order);
                series.extend(order[series.len()..].iter().map(|&s| Sent {
                    series: s,
                    ts: i64::MIN,
                    total: 0,
                    last_gauge: None,
                    summary: Summary::default(),
                }));
            }
            for sent in series.iter_mut() {
                sent.drain(&mut out, buckets, residual);
            }
        }
        // Logged without holding any lock: a logger may use the macros too.
        for (name, error) in out.failed {
            self.report_once(&name, error);
        }
        out.lines
    }
}

impl Sent {
    fn drain(&mut self, out: &mut Out<'_>, buckets: &mut Vec<(u32, u64)>, residual: bool) {
        let ts = out.ts.as_secs();
        let same_bucket = self.ts == ts;
        self.ts = ts;
        match self.series {
            Series::Counter(counter) => {
                let delta = counter.take();
                self.total = if same_bucket {
                    self.total.wrapping_add(delta)
                } else {
                    delta
                };
                if !(residual && delta == 0) {
                    out.line(counter.name(), self.total);
                }
            }
            Series::Gauge(gauge) => {
                let Some(value) = gauge.get() else { return };
                let bits = value.to_bits();
                if !(residual && self.last_gauge == Some(bits)) {
                    self.last_gauge = Some(bits);
                    out.number(gauge.name(), value);
                }
            }
            Series::Timer(timer) => {
                buckets.clear();
                let taken = timer.take(buckets);
                if !same_bucket {
                    self.summary = Summary::default();
                }
                self.summary.merge(taken, buckets);
                if residual && taken.count == 0 {
                    return;
                }
                let names = timer.names();
                out.line(&names[0], self.summary.count);
                if let Some(ms) = self.summary.millis() {
                    let values = [ms.sum, ms.min, ms.max, ms.mean, ms.p50, ms.p90, ms.p99];
                    for (name, value) in names[1..].iter().zip(values) {
                        out.number(name, value);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(std::ptr::eq(a, b));
        assert!(r.gauge("requests").is_none());
        assert!(r.timer("requests").is_none());
        assert!(r.counter("bad name").is_none());
        assert!(r.counter("x;env=").is_none());
        assert!(r.gauge("queue.depth").is_some());
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
}
