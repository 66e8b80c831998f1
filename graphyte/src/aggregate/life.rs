//! Whether a series is pinned (a literal call site holds it, so it is never
//! removed) or retired (removed from the registry because it was idle), and
//! the protocol that lets a drain free an idle series while `metrics`
//! handles to it still exist, without losing an update made through one.
//!
//! # The protocol
//! A handle's update is two steps, both `SeqCst`:
//! * **U1** apply the update to the series (an atomic write that the
//!   series' `has_pending` reads: the counter's sum, the gauge's or
//!   distribution's `touched` flag);
//! * **U2** load `retired`; if it is set, take what the series holds
//!   (the counter's sum, the distribution's buckets) and move it into the
//!   live series of the same name, which the registry finds or makes.
//!
//! A drain removes an idle series under its shard's write lock, so no
//! lookup can find it meanwhile, in three steps, all `SeqCst`:
//! * **D1** set `retired`;
//! * **D2** read `has_pending`;
//! * **D3** if something is pending, clear `retired` and keep the series
//!   (it was updated after the drain looked at it: the next drain sends
//!   it); otherwise remove it from the index. The series is freed when the
//!   last handle to it goes.
//!
//! Why nothing is lost: all six steps are in one total order. If U1 comes
//! before D2, D2 sees it and the series is kept with the update in it. If
//! U1 comes after D2, then D1 came before U2 too, and U2 sees `retired`
//! (unless D3 cleared it, in which case the series is kept and still holds
//! the update), so the updater moves the update itself. A mover that finds
//! the same series still in the index (D3 kept it) moves nothing. Movers
//! take with atomic swaps, so two of them never move the same value.
//!
//! The test `every_interleaving_of_updates_and_a_removal_loses_nothing`
//! below runs every interleaving of these steps (the drain's as
//! [`Retirement`](super::drain::Retirement) makes them, the updates as the
//! `metrics` handles make them) for two handle updaters, a lookup updater
//! and a drain; `tests/expiry_stress.rs` runs the real thing on threads.

use std::sync::atomic::{AtomicU8, Ordering};

const PINNED: u8 = 1;
const RETIRED: u8 = 2;

/// A series' pinned and retired flags.
#[derive(Debug, Default)]
pub(crate) struct Life(AtomicU8);

impl Life {
    /// Marks it held by a literal call site: never removed.
    pub(crate) fn pin(&self) {
        if self.0.load(Ordering::Relaxed) & PINNED == 0 {
            self.0.fetch_or(PINNED, Ordering::Relaxed);
        }
    }

    /// Its flags, read plainly (for [`Series::warm`](super::Series::warm)).
    #[inline]
    pub(crate) fn bits(&self) -> u8 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn pinned(&self) -> bool {
        self.0.load(Ordering::Relaxed) & PINNED != 0
    }

    /// D1.
    pub(crate) fn retire(&self) {
        self.0.fetch_or(RETIRED, Ordering::SeqCst);
    }

    /// D3, when the series is kept.
    pub(crate) fn keep(&self) {
        self.0.fetch_and(!RETIRED, Ordering::SeqCst);
    }

    /// U2: whether the drain removed (or is removing) it.
    #[inline]
    pub(crate) fn retired(&self) -> bool {
        self.0.load(Ordering::SeqCst) & RETIRED != 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::drain::Retirement;
    use super::super::{Counter, Distribution, Registry, Series};
    use crate::line::LineFormat;
    use crate::sync::write;
    use crate::timestamp::Timestamp;

    /// Who makes the next step of a schedule.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Actor {
        /// A handle's update: U1, U2, and the move if U2 saw `retired`.
        Handle(usize),
        /// `count!` with a non-literal name: one step under the read lock.
        Lookup,
        /// The drain removing the series: D1, D2, D3 under the write lock.
        Drain,
    }

    /// A handle updater's progress.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Handle {
        Apply,
        Check,
        Move,
        Done,
    }

    /// One run of a schedule on a fresh registry, on the kind of series
    /// `K` (counters, distributions).
    trait Kind {
        fn make(r: &Registry) -> Series;
        /// U1 of handle `i` (each handle adds its own amount).
        fn apply(series: &Series, i: usize);
        /// The move after U2 saw `retired`.
        fn moved(r: &Registry, series: &Series);
        /// The lookup updater's one step.
        fn lookup(r: &Registry);
        /// What every update added, and what the registry's drain sent.
        fn expected() -> f64;
        fn sent(lines: &str) -> f64;
        /// What is left in a series no longer in the registry.
        fn stranded(series: &Series) -> f64;
    }

    const AMOUNTS: [i64; 2] = [1, 2];
    const LOOKUP: i64 = 4;

    struct Counters;

    impl Kind for Counters {
        fn make(r: &Registry) -> Series {
            Series::Counter(r.expiring_counter("c").unwrap().0)
        }
        fn apply(series: &Series, i: usize) {
            let Series::Counter(c) = series else {
                unreachable!()
            };
            c.add_tracked(AMOUNTS[i]);
        }
        fn moved(r: &Registry, series: &Series) {
            let Series::Counter(c) = series else {
                unreachable!()
            };
            r.move_counter(c);
        }
        fn lookup(r: &Registry) {
            r.add_to_counter("c", LOOKUP);
        }
        fn expected() -> f64 {
            (AMOUNTS.iter().sum::<i64>() + LOOKUP) as f64
        }
        fn sent(lines: &str) -> f64 {
            lines
                .lines()
                .filter_map(|l| l.strip_prefix("c "))
                .map(|rest| rest.split(' ').next().unwrap().parse::<f64>().unwrap())
                .sum()
        }
        fn stranded(series: &Series) -> f64 {
            let Series::Counter(c) = series else {
                unreachable!()
            };
            c.take() as f64
        }
    }

    struct Distributions;

    fn distribution(series: &Series) -> &Distribution {
        let Series::Distribution(d) = series else {
            unreachable!()
        };
        d
    }

    impl Kind for Distributions {
        fn make(r: &Registry) -> Series {
            Series::Distribution(r.expiring_distribution("d").unwrap().0)
        }
        fn apply(series: &Series, i: usize) {
            distribution(series).record(AMOUNTS[i] as f64);
        }
        fn moved(r: &Registry, series: &Series) {
            r.move_distribution(distribution(series));
        }
        fn lookup(r: &Registry) {
            // Distributions have no lookup path: a handle asked for anew.
            let (d, _) = r.expiring_distribution("d").unwrap();
            d.record(LOOKUP as f64);
            if d.life.retired() {
                r.move_distribution(&d);
            }
        }
        fn expected() -> f64 {
            // The count of values recorded.
            3.0
        }
        fn sent(lines: &str) -> f64 {
            lines
                .lines()
                .filter_map(|l| l.strip_prefix("d.count "))
                .map(|rest| rest.split(' ').next().unwrap().parse::<f64>().unwrap())
                .sum()
        }
        fn stranded(series: &Series) -> f64 {
            distribution(series).take(&mut Vec::new()).count as f64
        }
    }

    /// Runs `schedule` (as far as its actors can go) on a fresh registry;
    /// returns the actors that could make the next step, and, once none
    /// can, checks that every update was sent exactly once.
    fn run<K: Kind>(schedule: &[Actor]) -> Vec<Actor> {
        let r = Registry::default();
        r.configure(100, Duration::from_secs(10));
        let series = K::make(&r);
        // The drain looked and found it idle: it retires it now.
        let shard = r.shard(series.name());
        let mut retirement = Some(Retirement::new(series.clone()));
        let mut guard = None;
        let mut drain_done = false;
        let mut handles = [Handle::Apply; 2];
        let mut lookup_done = false;
        for &actor in schedule {
            match actor {
                Actor::Handle(i) => {
                    handles[i] = match handles[i] {
                        Handle::Apply => {
                            K::apply(&series, i);
                            Handle::Check
                        }
                        Handle::Check if series.life().retired() => Handle::Move,
                        Handle::Check => Handle::Done,
                        Handle::Move => {
                            K::moved(&r, &series);
                            Handle::Done
                        }
                        Handle::Done => unreachable!(),
                    }
                }
                Actor::Lookup => {
                    K::lookup(&r);
                    lookup_done = true;
                }
                Actor::Drain => {
                    let index = guard.get_or_insert_with(|| write(shard));
                    let r2 = retirement.as_mut().unwrap();
                    if r2.step(index, &r.live).is_some() {
                        guard = None;
                        retirement = None;
                        drain_done = true;
                    }
                }
            }
        }
        let locked = guard.is_some();
        let mut next = Vec::new();
        if !drain_done {
            next.push(Actor::Drain);
        }
        for (i, h) in handles.iter().enumerate() {
            // The move looks the name up: not while the drain holds the lock.
            if *h != Handle::Done && !(*h == Handle::Move && locked) {
                next.push(Actor::Handle(i));
            }
        }
        if !lookup_done && !locked {
            next.push(Actor::Lookup);
        }
        if next.is_empty() {
            let format = LineFormat::default();
            let mut out = Vec::new();
            r.drain(Timestamp::from(200), &format, &mut out, false);
            let text = String::from_utf8(out).unwrap();
            let in_registry = r.watch(series.name()).is_some_and(|w| {
                w.same(&match &series {
                    Series::Counter(c) => super::super::WeakSeries::Counter(Arc::downgrade(c)),
                    Series::Distribution(d) => {
                        super::super::WeakSeries::Distribution(Arc::downgrade(d))
                    }
                    _ => unreachable!(),
                })
            });
            let stranded = if in_registry {
                0.0
            } else {
                K::stranded(&series)
            };
            assert_eq!(
                (K::sent(&text), stranded),
                (K::expected(), 0.0),
                "schedule {schedule:?}: sent {text:?}"
            );
            assert_eq!(r.live.load(Ordering::Relaxed), 1, "{schedule:?}");
        }
        next
    }

    /// Every schedule, depth first; returns how many ran to the end.
    fn explore<K: Kind>(schedule: &mut Vec<Actor>) -> usize {
        let next = run::<K>(schedule);
        if next.is_empty() {
            return 1;
        }
        let mut complete = 0;
        for actor in next {
            schedule.push(actor);
            complete += explore::<K>(schedule);
            schedule.pop();
        }
        complete
    }

    #[test]
    fn every_interleaving_of_updates_and_a_removal_loses_nothing() {
        let counters = explore::<Counters>(&mut Vec::new());
        let distributions = explore::<Distributions>(&mut Vec::new());
        // Two handles of 2 or 3 steps, one lookup, a drain of 3 steps: the
        // schedules number in the thousands (a count that checks that the
        // exploration did branch).
        assert!(counters > 1000, "{counters} schedules");
        assert!(distributions > 1000, "{distributions} schedules");
    }

    #[test]
    fn a_pinned_series_is_never_retired() {
        let r = Registry::default();
        let c: Arc<Counter> = r.counter("lit").unwrap();
        let mut retirement = Retirement::new(Series::Counter(Arc::clone(&c)));
        let mut index = write(r.shard("lit"));
        assert_eq!(retirement.step(&mut index, &r.live), Some(false));
        assert!(!c.life.retired());
    }
}
