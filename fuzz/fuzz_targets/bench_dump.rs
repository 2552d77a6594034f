//! Arbitrary console text as the benchmark's buffer dump, which the
//! firmware prints under QEMU and xtask reads back: decoded, re-encoded,
//! rebuilt into a buffer and summarised, checked.
//!
//! The decoder and the checks live in the VMM's library
//! (`uirq_host::fuzzing::bench_dump`), so that `cargo test` replays this
//! target's corpus with exactly the same code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uirq_host::fuzzing::bench_dump;

fuzz_target!(|data: &[u8]| bench_dump::run(data));
