//! The handles the recorder gives out: each holds its series in the
//! registry and updates it with atomics only (one load of the mode, then
//! the series' own atomic operations): no lookup, no lock, no allocation.

use std::sync::Arc;

use metrics::{CounterFn, GaugeFn, HistogramFn};

use crate::__private::{refuse_value, send_now};
use crate::aggregate::{Counter, Distribution, Gauge};
use crate::global::{global, Mode};
use crate::value::check_finite;

/// A `metrics` counter: `increment` adds to the interval's sum;
/// `absolute` sets a cumulative total, sent as the latest value (from the
/// first `absolute` on, increments of that counter are not sent).
pub(super) struct CounterHandle {
    pub(super) series: Arc<Counter>,
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl CounterFn for CounterHandle {
    #[inline]
    fn increment(&self, value: u64) {
        match global().mode() {
            Mode::Aggregate => self.series.add(clamp(value)),
            Mode::Sync => send_now(self.series.name(), value),
            Mode::Off => {}
        }
    }

    #[inline]
    fn absolute(&self, value: u64) {
        match global().mode() {
            Mode::Aggregate => self.series.set_absolute(value),
            Mode::Sync => send_now(self.series.name(), value),
            Mode::Off => {}
        }
    }
}

/// A `metrics` gauge: the latest value each interval.
pub(super) struct GaugeHandle {
    pub(super) series: Arc<Gauge>,
}

impl GaugeHandle {
    /// The value after an update, for a synchronous send.
    fn send_value(&self) {
        if let Some(value) = self.series.get() {
            send_now(self.series.name(), value);
        }
    }
}

impl GaugeFn for GaugeHandle {
    #[inline]
    fn increment(&self, value: f64) {
        self.add(value);
    }

    #[inline]
    fn decrement(&self, value: f64) {
        self.add(-value);
    }

    #[inline]
    fn set(&self, value: f64) {
        let mode = global().mode();
        if mode == Mode::Off {
            return;
        }
        if let Err(reason) = check_finite(value) {
            return refuse_value(self.series.name(), reason);
        }
        self.series.set(value);
        if mode == Mode::Sync {
            self.send_value();
        }
    }
}

impl GaugeHandle {
    #[inline]
    fn add(&self, delta: f64) {
        let mode = global().mode();
        if mode == Mode::Off {
            return;
        }
        if let Err(reason) = check_finite(delta) {
            return refuse_value(self.series.name(), reason);
        }
        self.series.add(delta);
        if mode == Mode::Sync {
            self.send_value();
        }
    }
}

/// A `metrics` histogram: count, sum, min, max, mean and percentiles per
/// interval, in the unit recorded.
pub(super) struct HistogramHandle {
    pub(super) series: Arc<Distribution>,
}

impl HistogramFn for HistogramHandle {
    #[inline]
    fn record(&self, value: f64) {
        let mode = global().mode();
        if mode == Mode::Off {
            return;
        }
        if let Err(reason) = check_finite(value) {
            return refuse_value(self.series.name(), reason);
        }
        match mode {
            Mode::Aggregate => self.series.record(value),
            _ => send_now(self.series.name(), value),
        }
    }

    fn record_many(&self, value: f64, count: usize) {
        for _ in 0..count {
            self.record(value);
        }
    }
}
