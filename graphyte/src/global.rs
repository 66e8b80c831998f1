//! The process-wide sender behind [`init`] and [`send`], in the manner of
//! `log::set_logger`: set once, read with one atomic load. It also decides
//! what the macros do (see [`aggregate`](crate::aggregate)): `init` sets
//! their mode and, in interval mode, hands the sender the tick hook that
//! sends their aggregates; `shutdown` turns them synchronous.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::aggregate::{self, registry, Mode};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::queue::TickHook;
use crate::sender::{Sender, StopHook};
use crate::stats::Stats;
use crate::timestamp::Timestamp;
use crate::value::Value;

static GLOBAL: OnceLock<Sender> = OnceLock::new();

/// Configures the process-wide sender. Call it once, early in `main`.
///
/// Takes a [`Config`] or anything that converts into one, such as a host
/// name. Returns [`Error::AlreadyInitialized`] if called a second time
/// (the first configuration stays), or the configuration's error.
///
/// It also turns on the macros (`count!`, `gauge!`, `#[timed]`), which do
/// nothing before: with an [interval](Config::interval) they aggregate and
/// the interval thread sends their totals once per interval; without one
/// they send a line per call. It calibrates the clock `#[timed]` reads
/// (typically a millisecond, at most 200 ms), so that no timed call pays
/// for it.
///
/// ```no_run
/// # fn main() -> Result<(), graphyte::Error> {
/// graphyte::init("graphite.example.com")?;      // synchronous, port 2003
/// graphyte::send("foo.bar", 42)?;              // "foo.bar 42 <now>\n"
/// graphyte::shutdown()?;                       // at exit
/// # Ok(()) }
/// ```
pub fn init(config: impl Into<Config>) -> Result<()> {
    if GLOBAL.get().is_some() {
        return Err(Error::AlreadyInitialized);
    }
    crate::__private::prepare_clock();
    // The hook drains the macros' registry only once this sender is the
    // global one: a sender that lost a race with another `init` is dropped,
    // and its last tick must not take the winner's aggregates.
    let active = Arc::new(AtomicBool::new(false));
    let hook: TickHook = {
        let active = Arc::clone(&active);
        Box::new(move |start, format, buf| {
            if active.load(Ordering::Acquire) {
                registry().drain(start, format, buf, false)
            } else {
                0
            }
        })
    };
    let config = config.into();
    let interval = config.interval;
    // Once the sender has stopped (shutdown, or a direct stop): later macro
    // calls go synchronous, and what calls made while the interval thread
    // delivered its last report added is sent now, as that interval's totals.
    let on_stop: StopHook = {
        let active = Arc::clone(&active);
        Box::new(move |format, buf| {
            if !active.load(Ordering::Acquire) {
                return 0;
            }
            let was_aggregating = aggregate::mode() == Mode::Aggregate;
            aggregate::set_mode(Mode::Sync);
            match interval {
                Some(interval) if was_aggregating => {
                    registry().drain(crate::queue::interval_start(interval), format, buf, true)
                }
                _ => 0,
            }
        })
    };
    let sender = Sender::build(config, Some(hook), Some(on_stop))?;
    // A racing init may have won meanwhile; ours is then dropped (and stopped).
    GLOBAL.set(sender).map_err(|_| Error::AlreadyInitialized)?;
    active.store(true, Ordering::Release);
    aggregate::set_mode(match interval {
        Some(_) => Mode::Aggregate,
        None => Mode::Sync,
    });
    Ok(())
}

/// The process-wide sender, if [`init`] was called.
#[inline]
pub fn sender() -> Option<&'static Sender> {
    GLOBAL.get()
}

fn global() -> Result<&'static Sender> {
    GLOBAL.get().ok_or(Error::NotInitialized)
}

/// Sends `name value <now>` through the global sender. See [`Sender::send`].
pub fn send<V: Value>(name: &str, value: V) -> Result<()> {
    global()?.send(name, value)
}

/// Sends with an explicit timestamp through the global sender. See [`Sender::send_at`].
pub fn send_at<V: Value>(name: &str, value: V, timestamp: impl Into<Timestamp>) -> Result<()> {
    global()?.send_at(name, value, timestamp)
}

/// Sends with tags through the global sender. See [`Sender::send_tagged`].
pub fn send_tagged<V: Value>(name: &str, value: V, tags: &[(&str, &str)]) -> Result<()> {
    global()?.send_tagged(name, value, tags)
}

/// Sends with tags and a timestamp through the global sender. See [`Sender::send_tagged_at`].
pub fn send_tagged_at<V: Value>(
    name: &str,
    value: V,
    tags: &[(&str, &str)],
    timestamp: impl Into<Timestamp>,
) -> Result<()> {
    global()?.send_tagged_at(name, value, tags, timestamp)
}

/// Delivers everything the global sender has queued. See [`Sender::flush`].
pub fn flush() -> Result<()> {
    global()?.flush()
}

/// Stops the global sender's background thread after delivering everything
/// queued, including what the macros aggregated in the interval in
/// progress. Call it before `main` returns: statics are never dropped, so
/// without it lines queued in the last interval are lost. Later sends, and
/// later macro calls, are synchronous. The same as
/// `graphyte::sender().unwrap().stop()`; see [`Sender::stop`].
///
/// Macro calls made on other threads *while* `shutdown` runs are recorded
/// either in the last interval or synchronously, with one exception: a call
/// that read the mode just before the switch to synchronous and updates its
/// aggregate just after the final drain (a window of a few nanoseconds, so
/// only if that thread is preempted exactly there) is not sent. Closing that
/// window would cost every macro call a second atomic operation; stop the
/// threads that use the macros first if every last call matters.
pub fn shutdown() -> Result<()> {
    global()?.stop()
}

/// The global sender's counters. See [`Sender::stats`].
pub fn stats() -> Result<Stats> {
    Ok(global()?.stats())
}
