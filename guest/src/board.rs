//! The machine this firmware runs on: where its devices are.
//!
//! The addresses come from `uirq_abi::layout`, the memory map the VMM builds
//! (QEMU `virt` compatible). These three functions are the only place the
//! firmware turns an address into a driver, so the `unsafe` of doing so is
//! argued once, here.
//!
//! Why it is sound: the identity map (`uirq_guest::mmu`) maps the first
//! gigabyte, where all these devices are, virtual = physical as
//! Device-nGnRE memory, so these addresses reach the devices as they are and
//! every access is a Device-memory access, made exactly as the program
//! makes it, that the hardware (or the VMM, through an MMIO exit) answers. No Rust object lives
//! there, and the drivers only ever use single volatile loads and stores, so
//! handing out several handles to one device cannot break Rust's aliasing
//! rules.

use uirq_abi::layout::{GICC_BASE, GICD_BASE, UART_BASE};
use uirq_guest::drivers::{
    gicv2::{Gicc, Gicd},
    pl011::Pl011,
};

/// The console UART.
pub fn uart() -> Pl011 {
    // SAFETY: UART_BASE is the PL011 of the memory map; see the module docs.
    unsafe { Pl011::new(UART_BASE as usize) }
}

/// The GIC distributor.
pub fn gicd() -> Gicd {
    // SAFETY: GICD_BASE is the GICv2 distributor of the memory map; see the
    // module docs.
    unsafe { Gicd::new(GICD_BASE as usize) }
}

/// This core's GIC CPU interface.
pub fn gicc() -> Gicc {
    // SAFETY: GICC_BASE is the GICv2 CPU interface of the memory map; see
    // the module docs.
    unsafe { Gicc::new(GICC_BASE as usize) }
}
