//! `spi-state`: software access to an SPI's pending and active state
//! (IHI 0048B 4.3.7-4.3.10).
//!
//! - `GICD_ISPENDR` sets pending; both `GICD_ISPENDR` and `GICD_ICPENDR`
//!   read it back; `GICD_ICPENDR` clears it. Likewise `GICD_ISACTIVER` /
//!   `GICD_ICACTIVER` for active.
//! - A disabled interrupt that is pending is not signalled; nor is an
//!   enabled one that is active (an active interrupt is not forwarded
//!   again, 3.2.4). Clearing active then signals it, and it is taken:
//!   `GICD_ISPENDR` alone makes an SPI fire.
//! - The acknowledge clears the software pending state: in the handler the
//!   SPI is active and no longer pending.
//! - Pending cleared before IRQs are unmasked is never taken.

use uirq_abi::gicv2::gicd::{ICACTIVER, ICPENDR};
use uirq_guest::drivers::gicv2::Acknowledged;

use super::common::{self, EXIT, SPI_A};
use crate::board;

const PRIORITY: u8 = 0x80;

pub fn run() -> ! {
    let (gicd, gicc) = common::setup();
    gicd.set_priority(SPI_A, PRIORITY);
    let raw = gicd.raw();
    let word = 4 * (SPI_A.raw() as usize / 32);
    let bit = 1u32 << (SPI_A.raw() % 32);

    gicd.set_pending(SPI_A);
    check!(
        gicd.is_pending(SPI_A),
        "GICD_ISPENDR does not read back pending"
    );
    let icpendr = raw.read32(ICPENDR as usize + word).unwrap_or(0);
    check!(
        icpendr & bit != 0,
        "GICD_ICPENDR does not read back pending ({icpendr:#x})"
    );
    check!(!common::signalled(), "disabled SPI 42 signalled");
    gicd.clear_pending(SPI_A);
    check!(
        !gicd.is_pending(SPI_A),
        "GICD_ICPENDR did not clear pending"
    );

    gicd.set_active(SPI_A);
    check!(
        gicd.is_active(SPI_A),
        "GICD_ISACTIVER does not read back active"
    );
    let icactiver = raw.read32(ICACTIVER as usize + word).unwrap_or(0);
    check!(
        icactiver & bit != 0,
        "GICD_ICACTIVER does not read back active ({icactiver:#x})"
    );
    check!(!common::signalled(), "active, not pending SPI 42 signalled");

    gicd.set_pending(SPI_A);
    gicd.enable(SPI_A);
    check!(!common::signalled(), "active and pending SPI 42 signalled");
    common::irq_window(5_000);
    check_eq!(
        common::entries(),
        0,
        "interrupts taken while SPI 42 was active"
    );

    gicd.clear_active(SPI_A);
    check!(
        !gicd.is_active(SPI_A),
        "GICD_ICACTIVER did not clear active"
    );
    check!(common::signalled(), "SPI 42 not signalled once deactivated");
    common::wait_with_irqs(50_000, || common::entries() >= 1);

    gicd.set_pending(SPI_A);
    check!(
        common::signalled(),
        "SPI 42 not signalled after the second GICD_ISPENDR"
    );
    gicd.clear_pending(SPI_A);
    check!(
        !common::signalled(),
        "SPI 42 still signalled after GICD_ICPENDR"
    );
    common::irq_window(5_000);

    let a = SPI_A.raw();
    common::expect_log(&[a, EXIT | a]);
    check!(
        !gicd.is_pending(SPI_A) && !gicd.is_active(SPI_A),
        "SPI 42 not idle at the end"
    );
    check_eq!(gicc.running_priority(), common::IDLE, "GICC_RPR at the end");
    common::pass()
}

pub fn on_irq(irq: Acknowledged, _entry_ticks: u64) {
    let (gicd, gicc) = (board::gicd(), board::gicc());
    check_eq!(irq.id(), SPI_A, "acknowledged id");
    check!(gicd.is_active(SPI_A), "SPI 42 not active in its handler");
    check!(
        !gicd.is_pending(SPI_A),
        "SPI 42 still pending after acknowledge"
    );
    gicc.end_of_interrupt(irq);
}
