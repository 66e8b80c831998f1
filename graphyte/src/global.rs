//! The process-wide state behind [`init`], [`send`] and the macros, in one
//! [`Global`] value: the global sender (set once, read with one atomic
//! load, in the manner of `log::set_logger`), the macros' mode (what a
//! `count!` call does now), the aggregation registry they feed, and the clock
//! `#[timed]` reads. `init` is serialised: a call that loses a race never
//! builds a sender. The registry reaches the sender only as a
//! [`LineSource`]: the interval thread asks it for each interval's lines.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::aggregate::{Registry, SeriesCount};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::line::LineFormat;
use crate::metric::Metric;
use crate::report::LineSource;
use crate::sender::Sender;
use crate::stats::Stats;
use crate::sync::lock;
use crate::timestamp::Timestamp;
use crate::value::Value;

/// What a macro call does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Mode {
    /// Before `init`: nothing.
    Off = 0,
    /// Interval mode: aggregate, for the interval thread to send.
    Aggregate = 1,
    /// Synchronous mode (no interval, or after a stop): one line per call.
    Sync = 2,
}

/// Everything process-wide.
pub(crate) struct Global {
    sender: OnceLock<Sender>,
    /// A [`Mode`], read by every macro call.
    mode: AtomicU8,
    registry: OnceLock<Registry>,
    clock: OnceLock<quanta::Clock>,
    /// Held by `init` from its check to its end.
    init: Mutex<()>,
}

static GLOBAL: Global = Global {
    sender: OnceLock::new(),
    mode: AtomicU8::new(Mode::Off as u8),
    registry: OnceLock::new(),
    clock: OnceLock::new(),
    init: Mutex::new(()),
};

/// The process-wide state.
#[inline(always)]
pub(crate) fn global() -> &'static Global {
    &GLOBAL
}

impl Global {
    /// The macros' mode: one atomic load.
    #[inline(always)]
    pub(crate) fn mode(&self) -> Mode {
        match self.mode.load(Ordering::Acquire) {
            1 => Mode::Aggregate,
            2 => Mode::Sync,
            _ => Mode::Off,
        }
    }

    /// Sets the macros' mode (at `init` and when the sender stops).
    pub(crate) fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Release);
    }

    /// The registry of the macros' series.
    #[inline]
    pub(crate) fn registry(&self) -> &Registry {
        self.registry.get_or_init(Registry::default)
    }

    /// The clock `#[timed]` reads: the CPU's time-stamp counter where it is
    /// invariant, else the OS monotonic clock (quanta decides). Calibrated
    /// on first use (from about a millisecond up to 200 ms).
    #[inline]
    pub(crate) fn clock(&self) -> &quanta::Clock {
        self.clock.get_or_init(quanta::Clock::new)
    }

    /// Sets the clock, if it was not set up yet.
    pub(crate) fn set_clock(&self, clock: quanta::Clock) -> bool {
        self.clock.set(clock).is_ok()
    }

    /// Whether the clock was set up (by `init`, a timed call or a mock).
    #[cfg(test)]
    pub(crate) fn has_clock(&self) -> bool {
        self.clock.get().is_some()
    }
}

/// The macros' aggregates, as a source of lines for the global sender.
struct MacroLines;

impl LineSource for MacroLines {
    fn series(&self) -> SeriesCount {
        GLOBAL.registry().count()
    }

    fn interval_lines(&self, start: Timestamp, format: &LineFormat, out: &mut Vec<u8>) -> usize {
        GLOBAL.registry().drain(start, format, out, false)
    }

    /// The sender stopped (shutdown, or a direct stop): later macro calls go
    /// synchronous, and what calls made while the interval thread delivered
    /// its last report added is sent now, as that interval's totals.
    fn final_lines(
        &self,
        start: Option<Timestamp>,
        format: &LineFormat,
        out: &mut Vec<u8>,
    ) -> usize {
        let was_aggregating = GLOBAL.mode() == Mode::Aggregate;
        GLOBAL.set_mode(Mode::Sync);
        match start {
            Some(start) if was_aggregating => GLOBAL.registry().drain(start, format, out, true),
            _ => 0,
        }
    }
}

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
    let _serial = lock(&GLOBAL.init);
    if GLOBAL.sender.get().is_some() {
        return Err(Error::AlreadyInitialized);
    }
    GLOBAL.clock();
    let mut config = config.into();
    let mode = match config.interval {
        Some(_) => Mode::Aggregate,
        None => Mode::Sync,
    };
    if let Some(problem) = config.problem() {
        return Err(Error::InvalidConfig(problem));
    }
    let registry = GLOBAL.registry();
    registry.configure(config.max_series, config.idle_timeout);
    registry.set_quantiles(&config.percentiles);
    config.source = Some(Arc::new(MacroLines));
    let sender = Sender::new(config)?;
    if GLOBAL.sender.set(sender).is_err() {
        // Only `init` sets it, and only under the lock held here.
        return Err(Error::AlreadyInitialized);
    }
    GLOBAL.set_mode(mode);
    exit::deliver_at_exit();
    Ok(())
}

/// Delivery at normal process exit, for programs that do not call
/// [`shutdown`]: statics are never dropped, so without this the lines
/// queued and the macros' interval in progress would be lost silently.
///
/// Two exits are not normal ones. In a child forked after `init` only the
/// forking thread exists: the interval thread, and whatever locks it held,
/// belong to the parent, so the handler does nothing there (the parent
/// still delivers). And when the process exits on the interval thread
/// itself (its transport or a logger called `std::process::exit`), that
/// thread cannot write what is queued or wait for itself: the handler only
/// says, without taking a lock, how many lines are lost.
mod exit {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::{Mode, GLOBAL};
    use crate::error::Error;
    use crate::log_limit::LineCount;

    extern "C" {
        /// The C library's exit handlers: run by `exit`, which is how a
        /// Rust program ends when `main` returns or `std::process::exit`
        /// is called (not on `abort`, a signal, or a panic that aborts).
        fn atexit(handler: extern "C" fn()) -> std::os::raw::c_int;
    }

    /// The process that called `init`: a child forked later has another id.
    static INIT_PID: AtomicU32 = AtomicU32::new(0);

    /// Registers [`at_exit`] (once per process).
    pub(super) fn deliver_at_exit() {
        INIT_PID.store(std::process::id(), Ordering::Release);
        // SAFETY: `at_exit` is a plain `extern "C" fn()` that never unwinds
        // (it catches panics); registering it has no other requirement.
        if unsafe { atexit(at_exit) } != 0 {
            log::warn!(target: "graphyte", "could not register the exit handler: call graphyte::shutdown() before main returns, or queued metrics are lost at exit");
        }
    }

    extern "C" fn at_exit() {
        // A child forked after `init`: nothing here is safe to touch (not
        // even the logger, whose lock another thread of the parent may
        // have held at the fork).
        if std::process::id() != INIT_PID.load(Ordering::Acquire) {
            return;
        }
        // A panic must not unwind into the C library.
        let _ = std::panic::catch_unwind(stop_global);
    }

    /// Stops the global sender unless the program did; says what could not
    /// be delivered.
    fn stop_global() {
        let Some(sender) = GLOBAL.sender.get() else {
            return;
        };
        if sender.on_interval_thread() {
            // Whatever the thread was doing (a write, a report, a log
            // record) it may hold the locks a stop takes, and it is the
            // thread a stop would wait for: count, log and return.
            let in_progress = if GLOBAL.mode() == Mode::Aggregate {
                "; the macros' interval in progress is lost too"
            } else {
                ""
            };
            log::warn!(target: "graphyte", "at exit: {} not delivered: the process exited on graphyte's interval thread (from its transport or a logger), which cannot write them{in_progress}", LineCount(sender.queued()));
            return;
        }
        if sender.is_stopped() {
            return;
        }
        match sender.stop() {
            Ok(()) => {
                log::debug!(target: "graphyte", "delivered everything at exit (graphyte::shutdown() was not called)")
            }
            Err(Error::Undelivered { pending, reason }) => {
                log::warn!(target: "graphyte", "at exit: {} not delivered: {reason} (graphyte::shutdown() was not called)", LineCount(pending))
            }
            Err(e) => {
                log::warn!(target: "graphyte", "at exit: {e} (graphyte::shutdown() was not called)")
            }
        }
    }
}

/// The process-wide sender, if [`init`] was called.
#[inline]
pub fn sender() -> Option<&'static Sender> {
    GLOBAL.sender.get()
}

fn global_sender() -> Result<&'static Sender> {
    GLOBAL.sender.get().ok_or(Error::NotInitialized)
}

/// Sends `name value <now>` through the global sender. See [`Sender::send`].
pub fn send<V: Value>(name: &str, value: V) -> Result<()> {
    global_sender()?.send(name, value)
}

/// Sends with an explicit timestamp through the global sender. See [`Sender::send_at`].
pub fn send_at<V: Value>(name: &str, value: V, timestamp: impl Into<Timestamp>) -> Result<()> {
    global_sender()?.send_at(name, value, timestamp)
}

/// Sends with tags through the global sender. See [`Sender::send_tagged`].
pub fn send_tagged<V: Value, K: AsRef<str>, T: AsRef<str>>(
    name: &str,
    value: V,
    tags: &[(K, T)],
) -> Result<()> {
    global_sender()?.send_tagged(name, value, tags)
}

/// Sends with tags and a timestamp through the global sender. See [`Sender::send_tagged_at`].
pub fn send_tagged_at<V: Value, K: AsRef<str>, T: AsRef<str>>(
    name: &str,
    value: V,
    tags: &[(K, T)],
    timestamp: impl Into<Timestamp>,
) -> Result<()> {
    global_sender()?.send_tagged_at(name, value, tags, timestamp)
}

/// A handle for sending `name` through the global sender over and over, the
/// name validated and rendered once. See [`Sender::metric`] and [`Metric`].
///
/// ```no_run
/// fn main() -> Result<(), graphyte::Error> {
///     graphyte::init("graphite.example.com")?;
///     let latency = graphyte::metric("api.latency_ms")?;
///     for ms in [12.5, 9.0, 17.25] {
///         latency.send(ms)?;
///     }
///     graphyte::shutdown()
/// }
/// ```
pub fn metric(name: &str) -> Result<Metric> {
    global_sender()?.metric(name)
}

/// Delivers everything the global sender has queued. See [`Sender::flush`].
pub fn flush() -> Result<()> {
    global_sender()?.flush()
}

/// Stops the global sender's background thread after delivering everything
/// queued, including what the macros aggregated in the interval in
/// progress, for at most the timeout. Later sends, and later macro calls,
/// are synchronous. The same as `graphyte::sender().unwrap().stop()`; see
/// [`Sender::stop`].
///
/// Call it at the end of `main` to see the outcome. If the program ends
/// without it, an exit handler that [`init`] registers does the same when
/// `main` returns or [`std::process::exit`] is called, and logs (target
/// `graphyte`, WARN) how many lines it could not deliver. Nothing runs on
/// `abort`, on a signal that kills the process, or on a panic when
/// `panic = "abort"`: lines still queued then are lost. The handler does
/// nothing in a child process forked after `init` (the interval thread
/// exists only in the parent, which still delivers), and when the process
/// exits on graphyte's interval thread (a [`Transport`](crate::Transport)
/// or a logger calling `std::process::exit`) it only logs the WARN: that
/// thread cannot deliver.
///
/// Macro calls made on other threads *while* `shutdown` runs are recorded
/// either in the last interval or synchronously, with one exception: a call
/// that read the mode just before the switch to synchronous and updates its
/// aggregate just after the final drain (a window of a few nanoseconds, so
/// only if that thread is preempted exactly there) is not sent. Closing that
/// window would cost every macro call a second atomic operation; stop the
/// threads that use the macros first if every last call matters.
pub fn shutdown() -> Result<()> {
    global_sender()?.stop()
}

/// The global sender's counters. See [`Sender::stats`].
pub fn stats() -> Result<Stats> {
    Ok(global_sender()?.stats())
}
