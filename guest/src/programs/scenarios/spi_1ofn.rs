//! `spi-1ofn` (2 or more cores): an SPI that targets several cores is
//! handled by exactly one of them (IHI 0048B 1.4.3 "Models for handling
//! interrupts": a GICv2 uses the 1-N model for SPIs; 3.2.3: when one
//! processor acknowledges the interrupt, it is no longer pending for the
//! others, and "any other processor that reads its GICC_IAR ... receives
//! a spurious interrupt ID").
//!
//! SPI 43 targets cores 0 and 1 (`GICD_ITARGETSR` = 0b11) and is made
//! pending; both open an IRQ window at once. Exactly one log may hold
//! `+43 -43`; the other is empty, or holds the spurious acknowledge (`!1023`)
//! of a core that was interrupted too but lost the race to `GICC_IAR`.
//!
//! QEMU 7.2's GICv2 fails this: both cores acknowledge the interrupt, the
//! N-N behaviour (see docs/qemu-gicv2-deviations.md).

use uirq_abi::boot::{Program, MAX_CPUS};
use uirq_guest::drivers::gicv2::Acknowledged;

use super::{
    common::{self, EXIT, SPECIAL, SPI_B, SPURIOUS},
    cores,
};
use crate::board;

pub fn run() -> ! {
    let (gicd, _) = common::setup();
    let n = cores::start(Program::SpiOneOfN);

    common::enable(&gicd, SPI_B, 0x80);
    gicd.set_targets(SPI_B, 0b11);
    check_eq!(gicd.targets(SPI_B), 0b11, "GICD_ITARGETSR of SPI 43");
    gicd.set_pending(SPI_B);
    // Each of the two waits for one entry, which only one will get: the
    // window's timeout bounds the loser's wait.
    let mut expected = [0; MAX_CPUS];
    expected[0] = 1;
    expected[1] = 1;
    cores::window(n, expected);

    let b = SPI_B.raw();
    let took = |core| common::log_of(core) == [b, EXIT | b][..];
    let takers = (0..n).filter(|&c| took(c)).count();
    check!(
        takers == 1,
        "SPI 43, targeted at cores 0 and 1, was taken {takers} times (core 0 {:?}, core 1 {:?}): \
         a GICv2 gives an SPI to one target only (the 1-N model, IHI 0048B 1.4.3)",
        common::log_of(0),
        common::log_of(1)
    );
    for core in 0..n {
        let log = common::log_of(core);
        check!(
            took(core) || log == [][..] || log == [SPECIAL | SPURIOUS][..],
            "core {core}'s log {log:?} after SPI 43"
        );
    }
    check!(!gicd.is_pending(SPI_B), "SPI 43 still pending at the end");
    check!(!gicd.is_active(SPI_B), "SPI 43 still active at the end");
    common::pass()
}

pub fn on_irq(irq: Acknowledged, _entry_ticks: u64) {
    board::gicc().end_of_interrupt(irq);
}
