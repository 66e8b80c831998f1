//! What an update through a `metrics` handle does when it finds its series
//! retired (step U2 of the protocol in [`Life`](super::Life)): it moves
//! what the series holds into the live series of the same name, found or
//! made by the registry (within `max_series`: a refused name's update is
//! counted as refused, like any other), and on again if that one was
//! retired meanwhile too.

// Used by the `metrics` recorder's handles.
#![cfg_attr(not(feature = "metrics"), allow(dead_code))]

use std::sync::Arc;

use super::{Counter, Distribution, Gauge, Life, Registry};

/// What a gauge update did, to redo on the live series of a retired one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum GaugeOp {
    Set(f64),
    Add(f64),
}

impl GaugeOp {
    /// Applies it (the value is finite: callers check).
    pub(crate) fn apply(self, gauge: &Gauge) {
        match self {
            GaugeOp::Set(v) => gauge.set(v),
            GaugeOp::Add(d) => gauge.add(d),
        }
    }
}

trait HasLife {
    fn life(&self) -> &Life;
}

impl HasLife for Counter {
    fn life(&self) -> &Life {
        &self.life
    }
}

impl HasLife for Gauge {
    fn life(&self) -> &Life {
        &self.life
    }
}

impl HasLife for Distribution {
    fn life(&self) -> &Life {
        &self.life
    }
}

/// Runs `step` from `retired` to the series it returns, as long as that
/// one is retired too; `step` returns `None` when there is nothing to move
/// on to (the live series is the same one, or the name was refused).
fn move_on<T: HasLife>(retired: &T, mut step: impl FnMut(&T) -> Option<Arc<T>>) {
    let mut next = step(retired);
    while let Some(to) = next {
        if !to.life().retired() {
            return;
        }
        next = step(&to);
    }
}

impl Registry {
    /// Moves what the retired counter holds (its sum since the drain took
    /// it, its absolute value) into the live counter of its name.
    #[cold]
    pub(crate) fn move_counter(&self, retired: &Counter) {
        move_on(retired, |from| {
            let (to, _) = self.expiring_counter(from.name()).ok()?;
            if std::ptr::eq(&*to, from) {
                return None;
            }
            let delta = from.take();
            if delta != 0 {
                to.add_tracked(delta);
            }
            if let Some(value) = from.absolute() {
                to.set_absolute(value);
            }
            Some(to)
        });
    }

    /// Carries a retired gauge on: a live gauge of its name made here
    /// starts at the retired one's latest value (`op` included); one that
    /// exists already gets `op` again.
    #[cold]
    pub(crate) fn move_gauge(&self, retired: &Gauge, op: GaugeOp) {
        move_on(retired, |from| {
            let (to, made) = self.expiring_gauge(from.name(), from.get()).ok()?;
            if std::ptr::eq(&*to, from) {
                return None;
            }
            if !made {
                op.apply(&to);
            }
            Some(to)
        });
    }

    /// Moves what the retired distribution holds into the live one of its
    /// name.
    #[cold]
    pub(crate) fn move_distribution(&self, retired: &Distribution) {
        let mut buckets = Vec::new();
        move_on(retired, |from| {
            let (to, _) = self.expiring_distribution(from.name()).ok()?;
            if std::ptr::eq(&*to, from) {
                return None;
            }
            buckets.clear();
            let taken = from.take(&mut buckets);
            to.absorb(taken, &buckets);
            Some(to)
        });
    }
}
