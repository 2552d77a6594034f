//! `ptimer`: the EL1 physical timer (`CNTP_*`) interrupts through PPI 30.
//!
//! The same comparator as the virtual timer, against the physical count,
//! wired to PPI 14 = interrupt id 30 (`uirq_abi::gicv2::PTIMER`). Under KVM
//! the guest's `CNTP_*` accesses are emulated by KVM, which reports the
//! emulated timer's output to a userspace irqchip in `device_irq_level`
//! bit 1, next to the virtual timer's bit 0; the VMM feeds it to the model
//! as PPI 30's level.
//!
//! Checks: exactly one interrupt, id 30, not before its deadline (on the
//! physical count); in the handler the timer condition holds, PPI 30 is
//! active at its priority; afterwards nothing pending or active.

use core::sync::atomic::{AtomicU64, Ordering};

use uirq_abi::gicv2::PTIMER;
use uirq_guest::drivers::{gicv2::Acknowledged, timer::PhysicalTimer};

use super::common::{self, EXIT, IDLE};
use crate::board;

const PRIORITY: u8 = 0x80;
const DELAY_US: u64 = 2_000;

/// `CNTPCT_EL0` when the handler ran.
static HANDLER_PCT: AtomicU64 = AtomicU64::new(0);

pub fn run() -> ! {
    let (gicd, gicc) = common::setup();
    common::enable(&gicd, PTIMER, PRIORITY);

    let timer = PhysicalTimer;
    let deadline = timer.arm_after(common::us(DELAY_US));

    let taken = common::wait_with_irqs(100 * DELAY_US, || common::entries() >= 1);
    check!(
        taken,
        "no PPI 30 within {} us of a {DELAY_US} us physical-timer deadline",
        100 * DELAY_US
    );
    common::irq_window(10 * DELAY_US);

    common::expect_log(&[PTIMER.raw(), EXIT | PTIMER.raw()]);
    let at = HANDLER_PCT.load(Ordering::Relaxed);
    check!(
        at >= deadline,
        "handled {} ticks before the deadline",
        deadline - at
    );
    check!(!gicd.is_pending(PTIMER), "PPI 30 still pending");
    check!(!gicd.is_active(PTIMER), "PPI 30 still active after EOI");
    check_eq!(gicc.running_priority(), IDLE, "GICC_RPR after EOI");
    common::pass()
}

pub fn on_irq(irq: Acknowledged, _entry_ticks: u64) {
    let (gicd, gicc) = (board::gicd(), board::gicc());
    let timer = PhysicalTimer;
    HANDLER_PCT.store(timer.now(), Ordering::Relaxed);
    check_eq!(irq.id(), PTIMER, "acknowledged id");
    check!(
        timer.is_firing(),
        "CNTP_CTL_EL0.ISTATUS clear in the handler"
    );
    check!(
        gicd.is_active(PTIMER),
        "PPI 30 not active after acknowledge"
    );
    check_eq!(gicc.running_priority(), PRIORITY, "GICC_RPR in the handler");
    timer.disable();
    gicc.end_of_interrupt(irq);
}
