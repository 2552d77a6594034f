//! The uirq guest firmware's library: drivers and pure logic.
//!
//! Everything here builds for `aarch64-unknown-none` (where the firmware in
//! `main.rs` uses it) *and* for the build machine, where `cargo test --lib`
//! runs the unit tests: the drivers are exercised against fake register
//! memory, and the arithmetic and statistics are plain functions.
//!
//! - [`drivers::gicv2`]: the GICv2 distributor and CPU interface.
//! - [`drivers::timer`]: the EL1 virtual timer of the Arm generic timer.
//! - [`drivers::pl011`]: the PL011 UART, for output.
//! - [`stats`]: lock-free recording in an interrupt handler, min/median/max.
//! - [`report`]: the timer program's verdict and its summary line.
//! - [`drivers::marker`], [`bench`](mod@bench): the latency benchmark's phase marker,
//!   argument and sample checks, and result-buffer writer.
//! - [`esr`]: decoding the syndrome of an exception, expected or not.
//! - [`chaos`]: the `chaos` program's random number generator and the
//!   operations it draws.
//! - [`mmu`]: the identity map and the MMU register values every core
//!   loads before anything else.
//! - [`psci_codes`]: PSCI function ids and return codes (starting other
//!   cores).
//! - [`ipi`]: the `ipi-stress` program's shares, targets, verdict and
//!   summary line.
//! - [`image_header`]: the arm64 `Image` header that begins the firmware
//!   image, so that loaders of the Linux boot protocol start it.
//! - [`devicetree`]: reading the device tree such a loader passes in `x0`
//!   (the GIC, the UART, the CPUs, the program on the command line) and
//!   comparing it with the compiled-in memory map.
#![cfg_attr(not(test), no_std)]

pub mod drivers {
    //! Device drivers. Each one's registers are declared once, with
    //! tock-registers, and reached through one `unsafe fn new(base)`; every
    //! method after that is safe.
    pub mod gicv2;
    pub mod marker;
    pub mod mmio;
    pub mod pl011;
    pub mod timer;
}
pub mod bench;
pub mod chaos;
pub mod devicetree;
pub mod esr;
pub mod image_header;
pub mod ipi;
pub mod mmu;
pub mod psci_codes;
pub mod report;
pub mod stats;

#[cfg(test)]
mod fake_mmio;
