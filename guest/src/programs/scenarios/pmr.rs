//! `pmr`: the priority mask. An interrupt is signalled only if its priority
//! is *higher* (numerically lower) than `GICC_PMR` (IHI 0048B 3.3.2,
//! 4.4.2); an equal one is not.
//!
//! SPI 42 at priority 0x80 is made pending with `PMR` = 0x80: it stays
//! pending in the distributor, the core's IRQ input stays low
//! (`ISR_EL1.I`), `GICC_IAR` answers 1023 without taking it (4.4.4) and an
//! IRQ window takes nothing. Raising the mask to 0x90 lets it through: the
//! input rises and the interrupt is taken, once.

use uirq_guest::drivers::gicv2::Acknowledged;

use super::common::{self, EXIT, SPI_A, SPURIOUS};
use crate::board;

const PRIORITY: u8 = 0x80;

pub fn run() -> ! {
    let (gicd, gicc) = common::setup();
    common::enable(&gicd, SPI_A, PRIORITY);

    gicc.set_priority_mask(PRIORITY);
    check_eq!(gicc.priority_mask(), PRIORITY, "GICC_PMR read back");
    gicd.set_pending(SPI_A);
    check!(
        gicd.is_pending(SPI_A),
        "GICD_ISPENDR did not make SPI 42 pending"
    );
    check!(
        !common::signalled(),
        "SPI 42 at priority {PRIORITY:#x} signalled with GICC_PMR = {PRIORITY:#x}"
    );
    check_eq!(
        gicc.acknowledge_or_special().map(|a| a.iar()),
        Err(SPURIOUS),
        "GICC_IAR with the only pending interrupt masked"
    );
    check!(gicd.is_pending(SPI_A), "the masked IAR read took SPI 42");
    common::irq_window(5_000);
    check_eq!(common::entries(), 0, "interrupts taken while masked");

    gicc.set_priority_mask(PRIORITY + 0x10);
    check!(
        common::signalled(),
        "SPI 42 not signalled after GICC_PMR = {:#x}",
        PRIORITY + 0x10
    );
    let taken = common::wait_with_irqs(50_000, || common::entries() >= 1);
    check!(taken, "SPI 42 not taken after raising GICC_PMR");
    common::irq_window(2_000);
    common::expect_log(&[SPI_A.raw(), EXIT | SPI_A.raw()]);
    check!(!gicd.is_pending(SPI_A), "SPI 42 still pending");
    common::pass()
}

pub fn on_irq(irq: Acknowledged, _entry_ticks: u64) {
    check_eq!(irq.id(), SPI_A, "acknowledged id");
    board::gicc().end_of_interrupt(irq);
}
