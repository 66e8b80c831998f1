//! Shared helpers for the integration tests in `tests/`; include with
//! `mod support;`.
//!
//! - [`CarbonServer`]: a real, throw-away carbon-cache on loopback ports,
//!   and a reader for the whisper files it writes;
//! - [`LineListener`] / [`UdpListener`]: plain loopback sinks that record
//!   the exact bytes a client sends (the TCP one can stall or read slowly);
//! - [`faults`]: timing, a watchdog, signals and accounting for the fault tests;
//! - [`child`]: the one harness every server above runs on (start, wait until
//!   ready, retry on a port clash, log printed on failure, killed on drop and
//!   with the test); [`relay`] (carbon-c-relay) and [`vm`] (VictoriaMetrics).
//!
//! Carbon comes from the virtualenv that `./scripts/test` sets up (see
//! [`carbon`]). Without it, [`CarbonServer::start_or_skip`] skips loudly,
//! unless `GRAPHYTE_REQUIRE_CARBON=1`.
//!
//! One rule for every test that cannot run on this machine (no carbon, no
//! IPv6 loopback, no way to make a host that never answers): [`skip`]. It
//! fails the test, with the reason, under `GRAPHYTE_REQUIRE_CARBON=1` (which
//! `./scripts/test` sets), and otherwise prints a loud `*** SKIPPED` line,
//! which `./scripts/test` also treats as a failure.

// Each test file includes this module and uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod carbon;
pub mod child;
pub mod faults;
pub mod listener;
pub mod relay;
pub mod rng;
pub mod sha256;
pub mod sys;
pub mod vm;
pub mod whisper;

pub use carbon::CarbonServer;
pub use listener::{LineListener, UdpListener};

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Env var that turns every skip into a failure (set by ./scripts/test).
pub const REQUIRE_ENV: &str = "GRAPHYTE_REQUIRE_CARBON";

/// Whether a test that cannot run must fail instead of skipping.
pub fn skips_fail() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// The one rule for a test that cannot run here (`why`, with what would
/// make it run): panics under `GRAPHYTE_REQUIRE_CARBON=1`; otherwise writes
/// `*** SKIPPED: ...` to the real stderr (past the test harness's capture,
/// so it shows even though the test passes) and returns, and the caller
/// returns too. `./scripts/test` fails if any test printed that line.
pub fn skip(why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    if skips_fail() {
        panic!("{REQUIRE_ENV}=1 and test `{test}` cannot run: {why}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "*** SKIPPED: test `{test}` did not run: {why} ***"
    );
}

/// `Some(value)`, or `None` after [`skip`] with the error.
pub fn or_skip<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            skip(&format!("{what}: {e}"));
            None
        }
    }
}

/// The current Unix time in whole seconds.
pub fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs() as u32
}
