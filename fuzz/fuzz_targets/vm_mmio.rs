//! Arbitrary bytes as a VM's worth of guest MMIO accesses on any vCPU,
//! timer level reports, device SPI changes and UART input, served through
//! the vCPU loop's exit handling and checked step by step.
//!
//! The decoder and the checks live in the VMM's library
//! (`uirq_host::fuzzing::vm_mmio`), so that `cargo test` replays this
//! target's corpus with exactly the same code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uirq_host::fuzzing::vm_mmio;

fuzz_target!(|data: &[u8]| vm_mmio::run(data));
