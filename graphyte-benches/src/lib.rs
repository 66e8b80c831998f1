//! The benchmarks of graphyte: `benches/micro.rs` (criterion, against
//! baselines and the metrics and cadence crates) and `benches/throughput.rs`
//! (end to end over loopback TCP, the Python graphyte, memory). Run them with
//! `./scripts/bench` from the repository root; BENCHMARKS.md has the figures.
//! This library is empty: a package needs a target besides its benches.
