//! Shared helpers for the integration tests in `tests/`; include with
//! `mod support;`.
//!
//! - [`CarbonServer`]: a real, throw-away carbon-cache on loopback ports,
//!   and a reader for the whisper files it writes;
//! - [`LineListener`] / [`UdpListener`]: plain loopback sinks that record
//!   the exact bytes a client sends (the TCP one can stall or read slowly);
//! - [`faults`]: timing, a watchdog, signals and accounting for the fault tests.
//!
//! Carbon comes from the virtualenv that `./scripts/test` sets up (see
//! [`carbon`]). Without it, [`CarbonServer::start_or_skip`] skips loudly,
//! unless `GRAPHYTE_REQUIRE_CARBON=1`.

// Each test file includes this module and uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod carbon;
pub mod faults;
pub mod listener;
pub mod rng;
pub mod sha256;
pub mod whisper;

pub use carbon::CarbonServer;
pub use listener::{LineListener, UdpListener};

use std::time::{SystemTime, UNIX_EPOCH};

/// The current Unix time in whole seconds.
pub fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs() as u32
}
