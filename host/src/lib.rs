//! The uirq VMM as a library: everything except the command line.
//!
//! The split follows what can be tested where:
//!
//! - [`bench`](mod@bench) decodes the benchmark's result buffer and computes
//!   statistics.
//! - [`bus`], [`devices`] and [`memory`] are plain Rust with no KVM in them.
//!   They build and are unit-tested on any machine, and they are what a
//!   hostile guest talks to, so they are also property-tested and fuzzed.
//! - [`irqchip`] shares the GIC model between vCPU threads and keeps, per
//!   CPU, the IRQ/FIQ levels KVM last heard: who must call `KVM_IRQ_LINE`,
//!   and whom to kick.
//! - [`console`] makes the VMM's standard input the guest's serial input:
//!   the terminal in raw mode for the run, and a thread that feeds the
//!   UART's receive FIFO.
//! - [`exit`] serves one exit from `KVM_RUN` as a plain function of the exit
//!   and the device state, so exit handling is tested without KVM.
//! - [`probe`] is the interface through which a run is watched, and
//!   [`probes`] the watchers: the benchmark's accounting, and the diagnosis
//!   of a guest that had to be stopped (a kernel that does not wake a vCPU in
//!   WFI for its timer).
//! - [`fuzzing`] decodes fuzzer bytes into runs of the whole MMIO bus and of
//!   the benchmark decoder, with their invariants (the cargo-fuzz targets in
//!   `fuzz/` and the corpus replay tests share it).
//! - [`host_kernel`] is what `uirq-vmm --probe` reports about the host
//!   kernel (release, KVM capabilities, whether a vCPU in WFI wakes for its
//!   timer) and the start-up decision to kick vCPUs where it does not.
//! - [`ratelimit`] keeps the log lines a guest can trigger (an access
//!   nothing claims, a GIC register misused) to a few per cause.
//! - [`seccomp`] is the sandbox: each thread's system-call allowlist, and
//!   the report of a call outside it.
//! - `kvm` (aarch64 only) is the glue to the kernel: it creates the VM
//!   without a vGIC, runs one thread per vCPU, and turns exits into calls on
//!   the bus and on the GIC model.
#![deny(missing_docs)]

pub mod bench;
pub mod boot;
pub mod bus;
pub mod console;
pub mod devices;
pub mod exit;
pub mod fuzzing;
pub mod host_kernel;
pub mod irqchip;
#[cfg(target_arch = "aarch64")]
pub mod kvm;
pub mod memory;
pub mod probe;
pub mod probes;
pub mod ratelimit;
pub mod seccomp;
