//! `sgi-sources` (2 or more cores): one SGI pending at one core from two
//! sources at once is two interrupts, acknowledged one after the other,
//! each with its own source (IHI 0048B 1.4.3 "Models for handling
//! interrupts": SGIs use the N-N model, and the GIC keeps their pending
//! state per source; 4.3.17 `GICD_SPENDSGIRn`; 4.4.4 `GICC_IAR.CPUID`).
//!
//! 1. Core 0 sends SGI 7 to itself; core 1 sends SGI 7 to core 0. With
//!    IRQs masked on core 0, `GICD_SPENDSGIR` shows both sources pending.
//! 2. The first `GICC_IAR` read returns SGI 7 from one source (which one
//!    first is the GIC's choice) and leaves the other pending.
//! 3. While that one is active, a second `GICC_IAR` returns 1023: the other
//!    has the same priority as the running priority, not a higher one
//!    (3.3.1, 4.4.4).
//! 4. After `GICC_EOIR` (with the first value, source included), `GICC_IAR`
//!    returns SGI 7 from the other source; after its EOI nothing is
//!    pending.

use uirq_abi::boot::Program;
use uirq_guest::drivers::gicv2::{Acknowledged, SgiTarget};

use super::{
    common::{self, sgi, SPURIOUS},
    cores,
};
use crate::board;

pub fn run() -> ! {
    let (gicd, gicc) = common::setup();
    let n = cores::start(Program::SgiSources);
    let s7 = sgi(7);
    cores::enable_everywhere(n, &[s7], 0x80);

    check!(gicd.send_sgi(SgiTarget::Myself, s7), "SGI 7 from core 0");
    cores::on(1, |_| {
        check!(
            board::gicd().send_sgi(SgiTarget::List(0b1), sgi(7)),
            "SGI 7 from core 1"
        );
    });
    check_eq!(
        gicd.sgi_pending_sources(s7),
        0b11,
        "GICD_SPENDSGIR for SGI 7 with both sources pending"
    );
    check!(common::signalled(), "SGI 7 pending but IRQ not signalled");

    let first = acknowledge(&gicc, "first");
    let a = first.source_cpu().unwrap_or(u32::MAX);
    check!(a <= 1, "first SGI 7 from core {a}");
    let b = 1 - a;
    check_eq!(
        gicd.sgi_pending_sources(s7),
        1 << b,
        "GICD_SPENDSGIR after acknowledging SGI 7 from core {a}"
    );
    check_eq!(
        gicc.acknowledge_or_special().map(|i| i.iar()),
        Err(SPURIOUS),
        "GICC_IAR while SGI 7 from core {a} is active (same priority)"
    );
    gicc.end_of_interrupt(first);

    let second = acknowledge(&gicc, "second");
    check_eq!(second.source_cpu(), Some(b), "source of the second SGI 7");
    gicc.end_of_interrupt(second);
    check_eq!(gicd.sgi_pending_sources(s7), 0, "GICD_SPENDSGIR at the end");
    check_eq!(gicc.highest_pending(), SPURIOUS, "GICC_HPPIR at the end");
    check_eq!(
        common::log_len(),
        0,
        "IRQ exceptions taken with IRQs masked"
    );
    common::pass()
}

fn acknowledge(gicc: &uirq_guest::drivers::gicv2::Gicc, which: &str) -> Acknowledged {
    match gicc.acknowledge_or_special() {
        Ok(irq) if irq.id() == sgi(7) => irq,
        Ok(irq) => common::fail(format_args!(
            "{which} GICC_IAR: interrupt {} instead of SGI 7",
            irq.id().raw()
        )),
        Err(special) => common::fail(format_args!("{which} GICC_IAR: {special}")),
    }
}
