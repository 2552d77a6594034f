//! `oneshot`: the virtual timer armed once through its down-counter view
//! (`CNTV_TVAL_EL0`) interrupts exactly once.
//!
//! The timer holds its output high from the deadline until software
//! silences it, so "one-shot" is the handler's doing: it disables the timer
//! before the end of interrupt, the line drops, and the level-sensitive
//! PPI 27 does not become pending again (IHI 0048B 3.2.4, Figure 3-1).
//!
//! Checks: one interrupt, id 27, not before its deadline; inside the
//! handler the timer condition holds, PPI 27 is active and `GICC_RPR` is
//! its priority (4.4.6); afterwards it is neither pending nor active and
//! the running priority is idle again; nothing else is taken in ten more
//! periods.

use core::sync::atomic::{AtomicU64, Ordering};

use uirq_abi::gicv2::VTIMER;
use uirq_guest::drivers::{gicv2::Acknowledged, timer::VirtualTimer};

use super::common::{self, EXIT, IDLE};
use crate::board;

const PRIORITY: u8 = 0x80;
/// Microseconds from arming to the deadline.
const DELAY_US: u64 = 2_000;

/// `CNTVCT_EL0` at the vector, for the one interrupt.
static ENTRY_TICKS: AtomicU64 = AtomicU64::new(0);

pub fn run() -> ! {
    let (gicd, gicc) = common::setup();
    common::enable(&gicd, VTIMER, PRIORITY);

    let timer = VirtualTimer;
    let ticks = u32::try_from(common::us(DELAY_US)).unwrap_or(u32::MAX);
    let deadline = timer.arm_in(ticks);

    let taken = common::wait_with_irqs(100 * DELAY_US, || common::entries() >= 1);
    check!(
        taken,
        "no interrupt within {} us of a {DELAY_US} us one-shot",
        100 * DELAY_US
    );
    common::irq_window(10 * DELAY_US);

    common::expect_log(&[VTIMER.raw(), EXIT | VTIMER.raw()]);
    let entry = ENTRY_TICKS.load(Ordering::Relaxed);
    check!(
        entry >= deadline,
        "interrupt taken {} ticks before the deadline",
        deadline - entry
    );
    check!(
        !gicd.is_pending(VTIMER),
        "PPI 27 still pending after the one shot"
    );
    check!(!gicd.is_active(VTIMER), "PPI 27 still active after EOI");
    check_eq!(gicc.running_priority(), IDLE, "GICC_RPR after EOI");
    common::pass()
}

pub fn on_irq(irq: Acknowledged, entry_ticks: u64) {
    let (gicd, gicc) = (board::gicd(), board::gicc());
    let timer = VirtualTimer;
    check_eq!(irq.id(), VTIMER, "acknowledged id");
    check!(
        timer.is_firing(),
        "CNTV_CTL_EL0.ISTATUS clear in the handler"
    );
    check!(
        gicd.is_active(VTIMER),
        "PPI 27 not active after acknowledge"
    );
    check_eq!(gicc.running_priority(), PRIORITY, "GICC_RPR in the handler");
    ENTRY_TICKS.store(entry_ticks, Ordering::Relaxed);
    // One shot: silence the timer before the EOI, so the line is low.
    timer.disable();
    gicc.end_of_interrupt(irq);
}
