//! Arbitrary bytes as a GIC configuration and a sequence of guest accesses
//! and line changes, checked step by step.
//!
//! The decoder and the checks live in the model's crate
//! (`uirq_gicv2::fuzzing`), so that `cargo test` replays this target's
//! corpus with exactly the same code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uirq_gicv2::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::run(data));
