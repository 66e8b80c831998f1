//! The handles the recorder gives out are the registry's series
//! themselves (`metrics::Counter` wraps an `Arc` of graphyte's counter, and
//! so on): an update is one load of the mode, the series' own atomic
//! operations and one load of its `retired` flag. No lookup, no lock, no
//! allocation, and nothing per handle beyond the `Arc`.
//!
//! A series is freed by the drain once idle even while handles to it
//! exist: the registry drops its reference, and the series goes with the
//! last handle. A handle whose series was retired moves what its update
//! put there into the live series of the same name (found or registered
//! by the registry, within `max_series`), so no update is lost; see the
//! protocol in [`Life`](crate::aggregate::Life). From then on each update
//! through that handle does the same move (a registry lookup): a program
//! that keeps handles gets the registry's speed back by asking the facade
//! for them again.

use metrics::{CounterFn, GaugeFn, HistogramFn};

use crate::__private::{refuse_value, send_now};
use crate::aggregate::{Counter, Distribution, Gauge, GaugeOp, Registry};
use crate::global::{global, Mode};
use crate::value::check_finite;

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[inline]
fn registry() -> &'static Registry {
    global().registry()
}

/// A `metrics` counter: `increment` adds to the interval's sum;
/// `absolute` sets a cumulative total, sent as the latest value (from the
/// first `absolute` on, increments of that counter are not sent).
impl CounterFn for Counter {
    #[inline]
    fn increment(&self, value: u64) {
        match global().mode() {
            Mode::Aggregate => {
                self.add_tracked(clamp(value));
                if self.life.retired() {
                    registry().move_counter(self);
                }
            }
            Mode::Sync => send_now(self.name(), value),
            Mode::Off => {}
        }
    }

    #[inline]
    fn absolute(&self, value: u64) {
        match global().mode() {
            Mode::Aggregate => {
                self.set_absolute(value);
                if self.life.retired() {
                    registry().move_counter(self);
                }
            }
            Mode::Sync => send_now(self.name(), value),
            Mode::Off => {}
        }
    }
}

/// A `metrics` gauge: the latest value each interval.
impl GaugeFn for Gauge {
    #[inline]
    fn increment(&self, value: f64) {
        gauge_update(self, GaugeOp::Add(value));
    }

    #[inline]
    fn decrement(&self, value: f64) {
        gauge_update(self, GaugeOp::Add(-value));
    }

    #[inline]
    fn set(&self, value: f64) {
        gauge_update(self, GaugeOp::Set(value));
    }
}

#[inline]
fn gauge_update(gauge: &Gauge, op: GaugeOp) {
    let mode = global().mode();
    if mode == Mode::Off {
        return;
    }
    let (GaugeOp::Set(v) | GaugeOp::Add(v)) = op;
    if let Err(reason) = check_finite(v) {
        return refuse_value(gauge.name(), reason);
    }
    op.apply(gauge);
    match mode {
        Mode::Sync => {
            if let Some(value) = gauge.get() {
                send_now(gauge.name(), value);
            }
        }
        _ if gauge.life.retired() => registry().move_gauge(gauge, op),
        _ => {}
    }
}

/// A `metrics` histogram: count, sum, min, max, mean and percentiles per
/// interval, in the unit recorded.
impl HistogramFn for Distribution {
    #[inline]
    fn record(&self, value: f64) {
        let mode = global().mode();
        if mode == Mode::Off {
            return;
        }
        if let Err(reason) = check_finite(value) {
            return refuse_value(self.name(), reason);
        }
        match mode {
            Mode::Aggregate => {
                self.record(value);
                if self.life.retired() {
                    registry().move_distribution(self);
                }
            }
            _ => send_now(self.name(), value),
        }
    }

    fn record_many(&self, value: f64, count: usize) {
        for _ in 0..count {
            HistogramFn::record(self, value);
        }
    }
}
