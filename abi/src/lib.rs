//! What the guest firmware and the VMM must agree on, written down once.
//!
//! Both sides depend on this crate, so a number that crosses the boundary
//! between them (an address, a register offset, an interrupt id, a boot
//! argument, an exit status) has exactly one definition:
//!
//! - [`layout`]: the guest physical memory map (QEMU `virt` compatible).
//! - [`gicv2`]: the GICv2 register offsets and interrupt-id ranges (the
//!   `uirq-gicv2` crate's register map, re-exported) and the ids the
//!   generic timer is wired to.
//! - [`boot`]: how the VMM tells the firmware which program to run.
//! - [`exit`]: how the firmware tells the VMM whether it succeeded.
//! - [`psci`]: the PSCI function ids the firmware calls.
//! - [`bench`](mod@bench): the latency benchmark's result buffer and phase markers.
//! - [`bench_dump`]: the benchmark's result buffer as console lines, for
//!   a VMM that cannot read guest memory (QEMU).
//! - `bench_json` (feature `json`, for the VMM and xtask only): the
//!   benchmark's JSON documents, the VMM's run reports and xtask's output.
//! - [`report`]: how the harness's lines (the L1 init's, the VMM's reports)
//!   are told from the guest's on a shared console.
#![no_std]

#[cfg(feature = "json")]
extern crate alloc;

pub mod bench;
pub mod bench_dump;
#[cfg(feature = "json")]
pub mod bench_json;
pub mod boot;
pub mod exit;
pub mod gicv2;
pub mod layout;
pub mod psci;
pub mod report;
