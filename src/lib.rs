//! Test-only package: carries the workspace's integration tests (`tests/`),
//! examples (`examples/`) and compiles the README's examples as doctests.
#![doc = include_str!("../README.md")]
