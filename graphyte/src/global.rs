//! The process-wide sender behind [`init`] and [`send`], in the manner of
//! `log::set_logger`: set once, read with one atomic load.

use std::sync::OnceLock;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::sender::Sender;
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
    let sender = Sender::new(config)?;
    // A racing init may have won meanwhile; ours is then dropped (and stopped).
    GLOBAL.set(sender).map_err(|_| Error::AlreadyInitialized)
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
/// queued. Call it before `main` returns: statics are never dropped, so
/// without it lines queued in the last interval are lost. Later sends are
/// synchronous. See [`Sender::stop`].
pub fn shutdown() -> Result<()> {
    global()?.stop()
}

/// The global sender's counters. See [`Sender::stats`].
pub fn stats() -> Result<Stats> {
    Ok(global()?.stats())
}
