//! graphyte as a recorder of the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`): what libraries and services record with
//! `metrics::counter!`, `gauge!` and `histogram!` goes to Graphite, through
//! the same registry, aggregation and sender as graphyte's own macros.
//!
//! ```no_run
//! fn main() -> Result<(), graphyte::Error> {
//!     graphyte::metrics::install(
//!         graphyte::Config::new("graphite.example.com")
//!             .prefix("myapp")
//!             .interval(std::time::Duration::from_secs(10)),
//!     )?;
//!     metrics::counter!("http.requests", "method" => "GET").increment(1);
//!     metrics::gauge!("queue.depth").set(12.0);
//!     metrics::histogram!("http.latency_ms").record(3.5);
//!     graphyte::shutdown()
//! }
//! ```
//!
//! # What is sent
//!
//! | `metrics` call | interval mode, every interval | synchronous mode, or after `shutdown` |
//! |---|---|---|
//! | `counter.increment(n)` | `NAME SUM` (`0` if no calls), like `graphyte::count!` | `NAME n` per call |
//! | `counter.absolute(v)` | `NAME V`, the latest value (a cumulative total) | `NAME v` per call |
//! | `gauge.set(v)`, `.increment(d)`, `.decrement(d)` | `NAME LATEST`, once set | `NAME v` per call (the value after it) |
//! | `histogram.record(v)` | `NAME.count N`; if `N > 0` also `.sum`, `.min`, `.max`, `.mean` and the [percentiles](crate::Config::percentiles) (`.p50`, `.p90`, `.p99` by default) | `NAME v` per call |
//!
//! Before [`install`] (or [`init`](crate::init) when the recorder was
//! installed otherwise) nothing is sent, as for the macros. Histograms are
//! in the unit recorded, not converted: any finite `f64`, zero and
//! negatives included; count, sum, min and max are exact and the
//! percentiles within 1 % (0.4 % in practice) of the exact nearest-rank
//! value. NaN and the infinities are dropped and logged once per series,
//! like gauges'. A counter used with both `increment` and `absolute` sends
//! the latest absolute value from the first `absolute` on.
//!
//! A `metrics::counter!("x")` and a `graphyte::count!("x")` are the same
//! series; a name used as two kinds of series (a counter and a histogram,
//! say) keeps the first and logs the conflict once.
//!
//! # Idle label sets, and the bound
//!
//! The recorder keeps nothing of its own per key: a key is turned into
//! its Graphite name and looked up in the registry, which holds one series
//! per name (keys that clean up to the same name, or list the same labels
//! in another order, are one series). A counter is also filed under the
//! first key that named it (a weak reference the registry drops with the
//! series, one per series), so that a `counter!` call with a key seen
//! before finds its counter by the key's hash, the name checked against
//! the key without being written. A series that sees no update for the
//! [idle timeout](crate::Config::idle_timeout) stops being sent and is
//! removed from the registry, its memory freed once no handle to it is
//! left; a handle that is kept and updated later moves its update into a
//! live series of the same name, so the update is sent, never lost. At
//! most [`max_series`](crate::Config::max_series) series are live (the
//! macros' and the facade's together); past that a new name is refused:
//! the handle records nothing, the refusal is counted in
//! `stats().series_refused` and logged at most once a minute. Expired
//! series free their place.
//!
//! `describe_*` calls are accepted and ignored: Graphite keeps no units or
//! descriptions.
//!
//! # Names and labels
//!
//! A key's name becomes the metric path, its labels Graphite tags in
//! Carbon's canonical order, with the sender's prefix and default tags as
//! for every line. A facade call never fails; what Graphite cannot store
//! is replaced, and each name that had to be changed is logged once:
//!
//! * **path**: every character other than `A-Z a-z 0-9 - _ : # .` becomes
//!   `_`, as carbon-c-relay rewrites paths; repeated dots become one,
//!   leading and trailing dots go; an empty name becomes `_`;
//! * **label keys**: whitespace, control characters, `;`, `!`, `^` and `=`
//!   become `_`; an empty key becomes `_`; `name`, Graphite's own tag for
//!   the path (carbon would merge the series), becomes `_name`;
//! * **label values**: whitespace, control characters and `;` become `_`,
//!   a leading `~` becomes `_`; a label with an empty value is left out;
//! * a label key given twice: the later value wins.
//!
//! No name can make a second line or a line Carbon would drop.

mod handles;
mod names;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::global::global;

/// Does what [`graphyte::init`](crate::init) does, and installs a
/// [`GraphyteRecorder`] as the global `metrics` recorder.
///
/// Returns [`Error::InvalidConfig`] if another `metrics` recorder was
/// installed already (graphyte is then not initialized), or what `init`
/// returns. If `init` fails, the recorder stays installed and records
/// nothing until a later `graphyte::init` succeeds.
pub fn install(config: impl Into<Config>) -> Result<()> {
    metrics::set_global_recorder(GraphyteRecorder::new())
        .map_err(|_| Error::InvalidConfig("a metrics recorder is installed already".to_owned()))?;
    crate::init(config)
}

/// The `metrics` recorder that feeds graphyte's registry (the one
/// [`install`] installs), for programs that compose recorders (layers,
/// fanout) and install the result themselves; graphyte sends what it
/// records once [`graphyte::init`](crate::init) is called.
///
/// ```
/// let recorder = graphyte::metrics::GraphyteRecorder::new();
/// metrics::with_local_recorder(&recorder, || {
///     metrics::counter!("jobs.done").increment(1); // recorded; sent after graphyte::init
/// });
/// ```
///
/// It holds no state: every recorder feeds the one registry.
#[derive(Default)]
pub struct GraphyteRecorder {
    _private: (),
}

impl std::fmt::Debug for GraphyteRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphyteRecorder").finish_non_exhaustive()
    }
}

/// The series of `key`, got by `get` from the key's Graphite name (`None`:
/// refused; nothing is kept). A name that had to be changed is logged
/// once, when its series is made.
#[inline]
fn series<T>(key: &Key, get: impl FnOnce(&str) -> Option<(T, bool)>) -> Option<T> {
    names::with_graphite_name(
        key.name(),
        key.labels().map(|l| (l.key(), l.value())),
        |name, changed| {
            let (series, made) = get(name)?;
            if made && changed {
                report_changed(key, name);
            }
            Some(series)
        },
    )
}

#[cold]
fn report_changed(key: &Key, name: &str) {
    global().registry().report_once(
        name,
        format_args!(
            "metrics key {key} is sent as {name:?}: what Graphite cannot store was replaced"
        ),
    );
}

impl GraphyteRecorder {
    /// A recorder feeding graphyte's registry.
    pub fn new() -> GraphyteRecorder {
        GraphyteRecorder::default()
    }
}

impl Recorder for GraphyteRecorder {
    fn describe_counter(&self, _key: KeyName, _unit: Option<Unit>, _description: SharedString) {}

    fn describe_gauge(&self, _key: KeyName, _unit: Option<Unit>, _description: SharedString) {}

    fn describe_histogram(&self, _key: KeyName, _unit: Option<Unit>, _description: SharedString) {}

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        let registry = global().registry();
        // A key seen before: found by its own hash, its name checked
        // against the counter's without being written.
        let labels = || key.labels().map(|l| (l.key(), l.value()));
        if let Some(counter) = registry.counter_by_key(key.get_hash(), |name| {
            names::key_is_name(name, key.name(), labels())
        }) {
            return Counter::from_arc(counter);
        }
        let counter = series(key, |name| registry.expiring_counter(name).ok());
        match counter {
            Some(counter) => {
                registry.file_key(key.get_hash(), &counter);
                Counter::from_arc(counter)
            }
            None => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        series(key, |name| {
            global().registry().expiring_gauge(name, None).ok()
        })
        .map_or_else(Gauge::noop, Gauge::from_arc)
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        series(key, |name| {
            global().registry().expiring_distribution(name).ok()
        })
        .map_or_else(Histogram::noop, Histogram::from_arc)
    }
}
