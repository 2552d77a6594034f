//! `level`: a level-sensitive interrupt whose input is still asserted at
//! the end of interrupt becomes pending again and is taken again
//! (IHI 0048B 3.2.4, Figure 3-1: active and pending → pending on
//! deactivation while the line is high).
//!
//! The virtual timer is armed at "now", so its output is high at once. The
//! handler leaves it firing twice and silences it the third time, so
//! PPI 27 must be taken exactly three times, and inside each handler it is
//! *active and pending* (`GICD_ISACTIVER` and `GICD_ISPENDR` both set) while
//! the timer still asserts it.

use core::sync::atomic::{AtomicU32, Ordering};

use uirq_abi::gicv2::VTIMER;
use uirq_guest::drivers::{gicv2::Acknowledged, timer::VirtualTimer};

use super::common::{self, EXIT, IDLE};
use crate::board;

const PRIORITY: u8 = 0x80;
/// Interrupts taken before the handler silences the timer.
const TIMES: u32 = 3;

static TAKEN: AtomicU32 = AtomicU32::new(0);

pub fn run() -> ! {
    let (gicd, gicc) = common::setup();
    common::enable(&gicd, VTIMER, PRIORITY);
    let timer = VirtualTimer;
    timer.arm_at(timer.now());

    common::wait_with_irqs(200_000, || TAKEN.load(Ordering::Relaxed) >= TIMES);
    common::irq_window(10_000);

    let t = VTIMER.raw();
    common::expect_log(&[t, EXIT | t, t, EXIT | t, t, EXIT | t]);
    check!(
        !gicd.is_pending(VTIMER),
        "PPI 27 pending after the timer was silenced"
    );
    check_eq!(gicc.running_priority(), IDLE, "GICC_RPR at the end");
    common::pass()
}

pub fn on_irq(irq: Acknowledged, _entry_ticks: u64) {
    let (gicd, gicc) = (board::gicd(), board::gicc());
    let timer = VirtualTimer;
    let n = TAKEN.fetch_add(1, Ordering::Relaxed) + 1;
    check_eq!(irq.id(), VTIMER, "acknowledged id");
    check!(timer.is_firing(), "timer not firing at entry {n}");
    check!(gicd.is_active(VTIMER), "PPI 27 not active at entry {n}");
    check!(
        gicd.is_pending(VTIMER),
        "PPI 27 not pending while its line is high (active and pending) at entry {n}"
    );
    if n >= TIMES {
        timer.disable();
    }
    gicc.end_of_interrupt(irq);
}
