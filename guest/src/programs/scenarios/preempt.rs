//! `preempt`: a higher-priority interrupt preempts a running handler; an
//! equal-priority one does not (IHI 0048B 3.3.2, "Preemption").
//!
//! ```text
//!  SPI 42 (0xA0) handler                 SGI 1 (0x40) handler
//!  ─────────────────────                 ────────────────────
//!  RPR = 0xA0
//!  SGIR: SGI 1 to myself, ISPENDR: SPI 43 (0xA0)
//!  unmask IRQs ─────────────────────────▶ RPR = 0x40, SPI 42 still active
//!                                         EOIR ◀─┘
//!  SPI 43 not taken (same group priority: no preemption)
//!  mask, RPR = 0xA0 again, EOIR
//!  ─── return ──▶ SPI 43 taken now
//! ```
//!
//! With `GICC_BPR` = 0 the group priority is bits [7:1] (3.3.4), so 0x40
//! preempts 0xA0 and 0xA0 does not preempt 0xA0. The handler can unmask
//! IRQs because the vector saved `ELR_EL1`/`SPSR_EL1` before calling it
//! (see `common`). The log must be exactly: +42 +1/cpu -1/cpu -42 +43 -43.

use uirq_guest::drivers::gicv2::{Acknowledged, SgiTarget};

use super::common::{self, sgi, EXIT, IDLE, SPI_A, SPI_B};
use crate::board;

const LOW: u8 = 0xA0;
const HIGH: u8 = 0x40;

pub fn run() -> ! {
    let (gicd, gicc) = common::setup();
    let nested = sgi(1);
    common::enable(&gicd, SPI_A, LOW);
    common::enable(&gicd, SPI_B, LOW);
    common::enable(&gicd, nested, HIGH);

    gicd.set_pending(SPI_A);
    common::wait_with_irqs(100_000, || common::entries() >= 3);
    common::irq_window(2_000);

    let src = common::own_cpu() << 10;
    let (a, b, s) = (SPI_A.raw(), SPI_B.raw(), nested.raw() | src);
    common::expect_log(&[a, s, EXIT | s, EXIT | a, b, EXIT | b]);
    check_eq!(gicc.running_priority(), IDLE, "GICC_RPR at the end");
    common::pass()
}

pub fn on_irq(irq: Acknowledged, _entry_ticks: u64) {
    let (gicd, gicc) = (board::gicd(), board::gicc());
    let nested = sgi(1);
    if irq.id() == SPI_A {
        check_eq!(
            gicc.running_priority(),
            LOW,
            "GICC_RPR in the SPI 42 handler"
        );
        check!(gicd.send_sgi(SgiTarget::Myself, nested), "SGI 1 is an SGI");
        gicd.set_pending(SPI_B);
        check!(
            common::signalled(),
            "SGI 1 (priority {HIGH:#x}) not signalled while {LOW:#x} runs"
        );
        // Let the nested interrupt in: SGI 1 preempts, SPI 43 must not.
        common::wait_with_irqs(50_000, || common::entries() >= 2);
        common::irq_window(2_000);
        check!(
            common::entries() == 2,
            "after the IRQ window in the SPI 42 handler: log {:?}",
            common::log()
        );
        check!(
            gicd.is_pending(SPI_B),
            "SPI 43 no longer pending inside the SPI 42 handler"
        );
        check_eq!(
            gicc.running_priority(),
            LOW,
            "GICC_RPR back in the SPI 42 handler"
        );
        gicc.end_of_interrupt(irq);
    } else if irq.id() == nested {
        check_eq!(
            gicc.running_priority(),
            HIGH,
            "GICC_RPR in the nested SGI 1 handler"
        );
        check!(
            gicd.is_active(SPI_A),
            "SPI 42 not active under the nested SGI"
        );
        gicc.end_of_interrupt(irq);
    } else if irq.id() == SPI_B {
        check!(
            !gicd.is_active(SPI_A),
            "SPI 42 still active when SPI 43 runs"
        );
        check_eq!(
            gicc.running_priority(),
            LOW,
            "GICC_RPR in the SPI 43 handler"
        );
        gicc.end_of_interrupt(irq);
    } else {
        common::unexpected_irq(irq, 0)
    }
}
