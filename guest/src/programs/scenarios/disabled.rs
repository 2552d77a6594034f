//! `disabled`: with forwarding off at the distributor (`GICD_CTLR`, 4.3.1)
//! or signalling off at the CPU interface (`GICC_CTLR`, 4.4.1), nothing
//! reaches the core.
//!
//! In each case SPI 42, enabled at priority 0x80, is made pending: the
//! distributor still records it (`GICD_ISPENDR`), but the core's IRQ input
//! stays low, `GICC_IAR` answers 1023 (4.4.4) and leaves it pending,
//! `GICC_HPPIR` answers 1023 too (an interrupt of a group that is not
//! enabled is not considered; with the group disabled at the CPU interface
//! the register returns 1023 — the `GICC_HPPIR` description), and an IRQ
//! window takes nothing. Turning the half back on delivers it, once.

use uirq_guest::drivers::gicv2::{Acknowledged, Gicc, Gicd};

use super::common::{self, EXIT, SPI_A, SPURIOUS};
use crate::board;

fn check_nothing_signalled(gicd: &Gicd, gicc: &Gicc, what: &str) {
    gicd.set_pending(SPI_A);
    check!(
        gicd.is_pending(SPI_A),
        "{what}: SPI 42 not recorded pending"
    );
    check!(!common::signalled(), "{what}: IRQ signalled");
    check_eq!(
        gicc.acknowledge_or_special().map(|a| a.iar()),
        Err(SPURIOUS),
        "{what}: GICC_IAR"
    );
    check!(gicd.is_pending(SPI_A), "{what}: the IAR read took SPI 42");
    check_eq!(gicc.highest_pending(), SPURIOUS, "{what}: GICC_HPPIR");
    let before = common::entries();
    common::irq_window(5_000);
    check_eq!(common::entries(), before, "{what}: interrupts taken");
}

fn check_delivered(expected: usize, what: &str) {
    check!(common::signalled(), "{what}: SPI 42 not signalled");
    let taken = common::wait_with_irqs(50_000, || common::entries() >= expected);
    check!(taken, "{what}: SPI 42 not taken");
}

pub fn run() -> ! {
    let (gicd, gicc) = common::setup();
    common::enable(&gicd, SPI_A, 0x80);

    gicd.set_forwarding(false);
    check_nothing_signalled(&gicd, &gicc, "distributor disabled");
    gicd.set_forwarding(true);
    check_delivered(1, "distributor re-enabled");

    gicc.set_enabled(false);
    check_nothing_signalled(&gicd, &gicc, "CPU interface disabled");
    gicc.set_enabled(true);
    check_delivered(2, "CPU interface re-enabled");

    common::irq_window(2_000);
    let a = SPI_A.raw();
    common::expect_log(&[a, EXIT | a, a, EXIT | a]);
    common::pass()
}

pub fn on_irq(irq: Acknowledged, _entry_ticks: u64) {
    check_eq!(irq.id(), SPI_A, "acknowledged id");
    board::gicc().end_of_interrupt(irq);
}
