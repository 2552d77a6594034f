//! The uirq VMM as a library: everything except the command line.
//!
//! The split follows what can be tested where:
//!
//! - [`bench`](mod@bench) decodes the benchmark's result buffer and computes
//!   statistics.
//! - [`diagnose`] explains a guest that had to be stopped (a kernel that
//!   does not wake a vCPU in WFI for its timer).
//! - [`bus`], [`devices`] and [`memory`] are plain Rust with no KVM in them.
//!   They build and are unit-tested on any machine, and they are what a
//!   hostile guest talks to, so they are also property-tested and fuzzed.
//! - `kvm` (aarch64 only) is the glue to the kernel: it creates the VM
//!   without a vGIC, runs the vCPU, and turns exits into calls on the bus and
//!   on the GIC model.
#![deny(missing_docs)]

pub mod bench;
pub mod bus;
pub mod devices;
pub mod diagnose;
#[cfg(target_arch = "aarch64")]
pub mod kvm;
pub mod memory;
