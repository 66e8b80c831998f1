//! What the expansions of `#[timed]`, `count!` and `gauge!` call. Not part
//! of the API: names and signatures here change without notice.
//!
//! Each call site expands to a `static` site (a name and a lazily resolved
//! `&'static` handle to its series in the registry) and a call on it:
//!
//! ```
//! // count!("requests", 1)
//! {
//!     ::graphyte::__private::CounterSite::count(
//!         {
//!             static __GRAPHYTE_SITE: ::graphyte::__private::CounterSite =
//!                 ::graphyte::__private::CounterSite::new("requests");
//!             &__GRAPHYTE_SITE
//!         },
//!         1,
//!     );
//! }
//! ```
//!
//! The calls check the mode (one atomic load): before `init` they return at
//! once; in interval mode they update the series (a few atomic operations,
//! the series resolved on the first call); in synchronous mode they send a
//! line through the global sender.
//!
//! A site whose series was refused because `max_series` series were live
//! keeps asking on later calls (without a lock while the bound is still
//! full), so it registers once there is room; one refused for good (the
//! name is used by another kind of series) remembers that.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::aggregate::{CountDelta, Counter, Gauge, Refusal, Timer};
use crate::error::Error;
use crate::global::{global, Mode};
use crate::value::{check_finite, Value};

#[inline]
fn clock() -> &'static quanta::Clock {
    global().clock()
}

#[inline]
fn registry() -> &'static crate::aggregate::Registry {
    global().registry()
}

/// A clock for tests that only moves when told to.
#[derive(Debug, Clone)]
pub struct MockClock(Arc<quanta::Mock>);

impl MockClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.increment(by);
    }
}

/// Makes `#[timed]` read a mock clock that only moves when the returned
/// handle moves it, so that tests can check durations exactly. Call it
/// before `init`; returns `None` if the clock was already set up (by `init`
/// or a timed call).
pub fn mock_clock() -> Option<MockClock> {
    let (clock, mock) = quanta::Clock::mock();
    global().set_clock(clock).then(|| MockClock(mock))
}

/// Sends one line through the global sender (synchronous mode); problems
/// with the name or value are logged once per name, transport errors are
/// logged by the sender.
#[inline(never)]
pub(crate) fn send_now<V: Value>(name: &str, value: V) {
    let Some(sender) = crate::sender() else {
        return;
    };
    if let Err(e) = sender.send(name, value) {
        match e {
            Error::Io { .. } | Error::QueueFull { .. } | Error::Undelivered { .. } => {}
            other => registry().report_once(name, other),
        }
    }
}

/// A `count!` call site with a literal name.
#[derive(Debug)]
pub struct CounterSite {
    name: &'static str,
    series: OnceLock<Option<Arc<Counter>>>,
}

impl CounterSite {
    /// A site for `name` (checked at compile time by the macro).
    pub const fn new(name: &'static str) -> CounterSite {
        CounterSite {
            name,
            series: OnceLock::new(),
        }
    }

    /// `count!(name, delta)`.
    #[inline]
    pub fn count<D: CountDelta>(&'static self, delta: D) {
        match global().mode() {
            Mode::Aggregate => {
                if let Some(counter) = self.series() {
                    counter.add(delta.to_i64());
                }
            }
            Mode::Sync => send_now(self.name, delta),
            Mode::Off => {}
        }
    }

    #[inline]
    fn series(&'static self) -> Option<&'static Counter> {
        match self.series.get() {
            Some(series) => series.as_deref(),
            None => resolve(&self.series, || registry().counter(self.name)),
        }
    }
}

/// A call site's series on its first calls: registered and kept, or
/// refused for good and remembered; refused by the bound, asked for again
/// by the next call.
#[cold]
fn resolve<T>(
    site: &'static OnceLock<Option<Arc<T>>>,
    get: impl FnOnce() -> Result<Arc<T>, Refusal>,
) -> Option<&'static T> {
    match get() {
        Ok(series) => site.get_or_init(|| Some(series)).as_deref(),
        Err(Refusal::Full) => None,
        Err(Refusal::Unusable) => site.get_or_init(|| None).as_deref(),
    }
}

/// `count!(name, delta)` with a name that is not a literal: looked up (and
/// on first use validated) per call.
pub fn count_dyn<S: AsRef<str> + ?Sized, D: CountDelta>(name: &S, delta: D) {
    match global().mode() {
        Mode::Aggregate => registry().add_to_counter(name.as_ref(), delta.to_i64()),
        Mode::Sync => send_now(name.as_ref(), delta),
        Mode::Off => {}
    }
}

/// A `gauge!` call site with a literal name.
#[derive(Debug)]
pub struct GaugeSite {
    name: &'static str,
    series: OnceLock<Option<Arc<Gauge>>>,
}

impl GaugeSite {
    /// A site for `name` (checked at compile time by the macro).
    pub const fn new(name: &'static str) -> GaugeSite {
        GaugeSite {
            name,
            series: OnceLock::new(),
        }
    }

    /// `gauge!(name, value)`.
    #[inline]
    pub fn set<V: Value>(&'static self, value: V) {
        match global().mode() {
            Mode::Aggregate => {
                if let Some(gauge) = self.series() {
                    set_gauge(gauge, value);
                }
            }
            Mode::Sync => send_now(self.name, value),
            Mode::Off => {}
        }
    }

    #[inline]
    fn series(&'static self) -> Option<&'static Gauge> {
        match self.series.get() {
            Some(series) => series.as_deref(),
            None => resolve(&self.series, || registry().gauge(self.name)),
        }
    }
}

#[inline]
fn set_gauge<V: Value>(gauge: &Gauge, value: V) {
    let value = value.as_f64();
    match check_finite(value) {
        Ok(()) => gauge.set(value),
        Err(reason) => refuse_value(gauge.name(), reason),
    }
}

#[cold]
pub(crate) fn refuse_value(name: &str, reason: &'static str) {
    registry().report_once(
        name,
        Error::InvalidValue {
            name: name.to_owned(),
            reason,
        },
    );
}

/// `gauge!(name, value)` with a name that is not a literal.
pub fn gauge_dyn<S: AsRef<str> + ?Sized, V: Value>(name: &S, value: V) {
    match global().mode() {
        Mode::Aggregate => {
            let name = name.as_ref();
            let value = value.as_f64();
            match check_finite(value) {
                Ok(()) => registry().set_gauge(name, value),
                Err(reason) => refuse_value(name, reason),
            }
        }
        Mode::Sync => send_now(name.as_ref(), value),
        Mode::Off => {}
    }
}

/// Where a `#[timed]` function's metric name comes from.
#[derive(Debug)]
enum TimerName {
    /// `#[timed("name")]`.
    Literal(&'static str),
    /// `#[timed]`: `module_path!()` with `::` turned into `.`, then the
    /// function's name.
    Function {
        module: &'static str,
        function: &'static str,
    },
}

/// A `#[timed]` function.
#[derive(Debug)]
pub struct TimerSite {
    name: TimerName,
    /// The metric name built from a [`TimerName::Function`], once.
    built_name: OnceLock<Box<str>>,
    series: OnceLock<Option<Arc<Timer>>>,
}

impl TimerSite {
    /// `#[timed("name")]` (checked at compile time by the macro).
    pub const fn new(name: &'static str) -> TimerSite {
        TimerSite {
            name: TimerName::Literal(name),
            built_name: OnceLock::new(),
            series: OnceLock::new(),
        }
    }

    /// `#[timed]` on `fn function` in module `module` (`module_path!()`).
    pub const fn function(module: &'static str, function: &'static str) -> TimerSite {
        TimerSite {
            name: TimerName::Function { module, function },
            built_name: OnceLock::new(),
            series: OnceLock::new(),
        }
    }

    /// Starts timing: reads the clock, unless `init` was not called yet.
    #[inline]
    pub fn start(&'static self) -> TimerGuard {
        let start = match global().mode() {
            Mode::Off => None,
            Mode::Aggregate | Mode::Sync => Some(clock().raw()),
        };
        TimerGuard { site: self, start }
    }

    /// The metric name; built on first use for a `#[timed]` without one.
    fn name(&'static self) -> &'static str {
        match self.name {
            TimerName::Literal(name) => name,
            TimerName::Function { module, function } => self
                .built_name
                .get_or_init(|| format!("{}.{function}", module.replace("::", ".")).into()),
        }
    }

    /// The series, registered on first use.
    #[inline]
    fn series(&'static self) -> Option<&'static Timer> {
        match self.series.get() {
            Some(series) => series.as_deref(),
            None => resolve(&self.series, || registry().timer(self.name())),
        }
    }

    #[inline]
    fn finish(&'static self, start: u64) {
        let clock = clock();
        let ns = clock.delta_as_nanos(start, clock.raw());
        match global().mode() {
            Mode::Aggregate => {
                if let Some(timer) = self.series() {
                    timer.record(ns);
                }
            }
            Mode::Sync => self.send(ns),
            Mode::Off => {}
        }
    }

    /// Sync mode: one line, the duration in milliseconds, as `count!` and
    /// `gauge!` send theirs (no series is registered for it).
    #[inline(never)]
    fn send(&'static self, ns: u64) {
        send_now(self.name(), ns as f64 / 1e6);
    }
}

/// Records the time since [`TimerSite::start`] when dropped: at the end of
/// the function, on early return, on `?`, on panic (while unwinding) and,
/// in an async function, when its future completes or is dropped.
#[derive(Debug)]
#[must_use = "the timing is recorded when the guard is dropped"]
pub struct TimerGuard {
    site: &'static TimerSite,
    start: Option<u64>,
}

impl Drop for TimerGuard {
    #[inline]
    fn drop(&mut self) {
        if let Some(start) = self.start {
            self.site.finish(start);
        }
    }
}

/// Hooks for graphyte's own benchmarks (graphyte-benches), which measure
/// the registry directly. Not part of the API.
pub mod bench {
    use super::registry;
    use crate::line::LineFormat;
    use crate::timestamp::Timestamp;

    /// Drains the global registry as the interval thread does at the end
    /// of the interval that started at `ts`, into `out` (no prefix, no
    /// tags); returns the number of lines.
    pub fn drain(ts: u64, out: &mut Vec<u8>) -> usize {
        registry().drain(Timestamp::from(ts), &LineFormat::default(), out, false)
    }

    /// The global registry's series: live now, and refused so far.
    pub fn series() -> (u64, u64) {
        let count = registry().count();
        (count.live, count.refused)
    }

    /// A weak reference to the series the global registry holds under
    /// `name` now, if any: what tests use to see a removed series freed.
    pub fn watch(name: &str) -> Option<Watch> {
        registry().watch(name).map(Watch)
    }

    /// A series watched by [`watch`]: says whether it still exists.
    #[derive(Debug, Clone)]
    pub struct Watch(crate::aggregate::WeakSeries);

    impl Watch {
        /// Whether the series still exists (a `Weak` that upgrades).
        pub fn alive(&self) -> bool {
            self.0.holders() > 0
        }

        /// How many hold it: the registry (while it is live) and each
        /// handle to it (`metrics` handles, call sites).
        pub fn holders(&self) -> usize {
            self.0.holders()
        }

        /// Whether both watch the same series (not only the same name).
        pub fn same(&self, other: &Watch) -> bool {
            self.0.same(&other.0)
        }
    }
}

#[cfg(all(test, feature = "macros"))]
mod tests {
    use super::registry;
    use crate::global::{global, Mode};

    // The expansions name `::graphyte::__private`: that resolves inside
    // this crate too (`extern crate self as graphyte`).
    #[crate::timed("unit.timed")]
    fn instrumented(n: u64) -> u64 {
        crate::count!("unit.count", n);
        crate::count!("unit.count", 1);
        crate::gauge!("unit.gauge", n);
        n * 2
    }

    /// The only unit test that sets the mode (the others use registries of
    /// their own and do not depend on it).
    #[test]
    fn call_sites_feed_the_series_of_their_name() {
        assert_eq!(instrumented(3), 6, "before init: no effect");
        assert!(!global().has_clock(), "the clock is not read before init");
        global().set_mode(Mode::Aggregate);
        assert_eq!(instrumented(4), 8);
        assert_eq!(instrumented(5), 10);
        let dynamic = String::from("unit.count");
        super::count_dyn(&dynamic, 100u8);
        global().set_mode(Mode::Off);
        assert_eq!(instrumented(6), 12, "off again: no effect");

        assert_eq!(
            registry().counter("unit.count").unwrap().take(),
            4 + 1 + 5 + 1 + 100
        );
        assert_eq!(registry().gauge("unit.gauge").unwrap().get(), Some(5.0));
        let mut buckets = Vec::new();
        let taken = registry().timer("unit.timed").unwrap().take(&mut buckets);
        assert_eq!(taken.count, 2);
        assert!(taken.min <= taken.max && taken.max <= taken.sum);
    }
}
