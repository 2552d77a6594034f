//! `eoimode`: with `GICC_CTLR.EOImode` = 1 the end of an interrupt is two
//! steps (IHI 0048B 3.2.1, 4.4.5, 4.4.15): the `GICC_EOIR` write only drops
//! the running priority, and the interrupt stays *active* until
//! `GICC_DIR` deactivates it.
//!
//! SPI 42 (0x80) is taken; in its handler, after `EOIR`, `GICC_RPR` is idle
//! (0xFF) while `GICD_ISACTIVER` still shows 42 active. Because the
//! priority dropped, the lower-priority SPI 44 (0xC0), made pending now, is
//! taken inside the handler, though 42 was never deactivated. Then `DIR`
//! deactivates 42. Log: +42 +44 -44 -42.

use uirq_guest::drivers::gicv2::Acknowledged;

use super::common::{self, EXIT, IDLE, SPI_A, SPI_C};
use crate::board;

const A_PRIORITY: u8 = 0x80;
const C_PRIORITY: u8 = 0xC0;

pub fn run() -> ! {
    let (gicd, gicc) = common::setup();
    gicc.set_split_eoi(true);
    common::enable(&gicd, SPI_A, A_PRIORITY);
    common::enable(&gicd, SPI_C, C_PRIORITY);
    gicd.set_pending(SPI_A);
    common::wait_with_irqs(100_000, || common::log_len() >= 4);
    common::irq_window(2_000);

    let (a, c) = (SPI_A.raw(), SPI_C.raw());
    common::expect_log(&[a, c, EXIT | c, EXIT | a]);
    check!(!gicd.is_active(SPI_A), "SPI 42 active after GICC_DIR");
    check!(!gicd.is_active(SPI_C), "SPI 44 active after GICC_DIR");
    check_eq!(gicc.running_priority(), IDLE, "GICC_RPR at the end");
    common::pass()
}

pub fn on_irq(irq: Acknowledged, _entry_ticks: u64) {
    let (gicd, gicc) = (board::gicd(), board::gicc());
    if irq.id() == SPI_A {
        check_eq!(gicc.running_priority(), A_PRIORITY, "GICC_RPR before EOIR");
        let dropped = gicc.drop_priority(irq);
        check_eq!(
            gicc.running_priority(),
            IDLE,
            "GICC_RPR after EOIR (EOImode 1)"
        );
        check!(
            gicd.is_active(SPI_A),
            "SPI 42 deactivated by EOIR although EOImode = 1"
        );
        gicd.set_pending(SPI_C);
        common::wait_with_irqs(50_000, || common::log_len() >= 3);
        check!(
            common::log_len() == 3,
            "SPI 44 not taken while 42 is active after its priority drop: log {:?}",
            common::log()
        );
        check!(
            gicd.is_active(SPI_A),
            "SPI 42 no longer active before GICC_DIR"
        );
        gicc.deactivate(dropped);
        check!(!gicd.is_active(SPI_A), "SPI 42 still active after GICC_DIR");
    } else if irq.id() == SPI_C {
        check_eq!(
            gicc.running_priority(),
            C_PRIORITY,
            "GICC_RPR in the SPI 44 handler"
        );
        let dropped = gicc.drop_priority(irq);
        gicc.deactivate(dropped);
    } else {
        common::unexpected_irq(irq, 0)
    }
}
