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
//! say) keeps the first and logs the conflict once. The idle timeout and
//! the series bound apply: an idle series stops being sent, and past
//! `max_series` new keys are refused and counted. Handles given out by the
//! recorder hold their series, as the macros' call sites do: an idle
//! series is not freed while a handle for it lives (the recorder keeps one
//! per key), so `max_series` is what bounds their memory.
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

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

use self::handles::{CounterHandle, GaugeHandle, HistogramHandle};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::global::global;
use crate::sync::{read, write};

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
#[derive(Default)]
pub struct GraphyteRecorder {
    counters: Handles<CounterHandle>,
    gauges: Handles<GaugeHandle>,
    histograms: Handles<HistogramHandle>,
}

impl std::fmt::Debug for GraphyteRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphyteRecorder").finish_non_exhaustive()
    }
}

/// `metrics` keys carry their hash: use it as it is.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `Key` (it writes its hash with `write_u64`); a
        // fallback that still hashes.
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

const SHARDS: usize = 16;

type Map<H> = HashMap<Key, Arc<H>, BuildHasherDefault<KeyHasher>>;

/// One handle per key, in shards picked by the key's hash.
struct Handles<H> {
    shards: Box<[RwLock<Map<H>>]>,
}

impl<H> Default for Handles<H> {
    fn default() -> Handles<H> {
        Handles {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }
}

impl<H> Handles<H> {
    /// The handle of `key`, made by `make` from the key's Graphite name on
    /// first use (`None`: the series was refused; nothing is kept).
    #[inline]
    fn get(&self, key: &Key, make: impl FnOnce(&str) -> Option<H>) -> Option<Arc<H>> {
        let shard = &self.shards[(key.get_hash() >> 60) as usize % SHARDS];
        if let Some(handle) = read(shard).get(key) {
            return Some(Arc::clone(handle));
        }
        self.make(shard, key, make)
    }

    #[cold]
    fn make(
        &self,
        shard: &RwLock<Map<H>>,
        key: &Key,
        make: impl FnOnce(&str) -> Option<H>,
    ) -> Option<Arc<H>> {
        let named = names::graphite_name(key.name(), key.labels().map(|l| (l.key(), l.value())));
        if named.changed {
            global().registry().report_once(
                &named.name,
                format_args!(
                    "metrics key {key} is sent as {:?}: what Graphite cannot store was replaced",
                    named.name
                ),
            );
        }
        let handle = Arc::new(make(&named.name)?);
        let mut shard = write(shard);
        Some(Arc::clone(shard.entry(key.clone()).or_insert(handle)))
    }
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
        self.counters
            .get(key, |name| {
                let series = global().registry().counter(name)?;
                Some(CounterHandle { series })
            })
            .map_or_else(Counter::noop, Counter::from_arc)
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        self.gauges
            .get(key, |name| {
                let series = global().registry().gauge(name)?;
                Some(GaugeHandle { series })
            })
            .map_or_else(Gauge::noop, Gauge::from_arc)
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        self.histograms
            .get(key, |name| {
                let series = global().registry().distribution(name)?;
                Some(HistogramHandle { series })
            })
            .map_or_else(Histogram::noop, Histogram::from_arc)
    }
}
