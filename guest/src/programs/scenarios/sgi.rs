//! `sgi`: software-generated interrupts to the sending core itself
//! (IHI 0048B 4.3.15, `GICD_SGIR`).
//!
//! - Filter 0b10 ("the requesting CPU") sends SGI 3; filter 0b00 with only
//!   this CPU's bit in the target list sends SGI 5. Both become pending
//!   here, from this CPU (`GICD_SPENDSGIRn` shows the source bit, 4.3.17).
//! - Filter 0b01 ("all but the requester") and a target list without this
//!   CPU's bit reach nothing here.
//! - `GICC_HPPIR` reports the higher-priority SGI 5 with the source CPU in
//!   bits [12:10] (4.4.8); the two are taken in priority order, SGI 5 then
//!   SGI 3, each `GICC_IAR` carrying the source CPU id in bits [12:10]
//!   (4.4.4), which `GICC_EOIR` gets back whole.

use uirq_guest::drivers::gicv2::{Acknowledged, SgiTarget};

use super::common::{self, sgi, EXIT};
use crate::board;

pub fn run() -> ! {
    let (gicd, gicc) = common::setup();
    let (s3, s5, s7, s8) = (sgi(3), sgi(5), sgi(7), sgi(8));
    common::enable(&gicd, s3, 0x60);
    common::enable(&gicd, s5, 0x50);
    common::enable(&gicd, s7, 0x50);
    common::enable(&gicd, s8, 0x50);
    let own = common::own_bit();
    let src = common::own_cpu() << 10;

    check!(gicd.send_sgi(SgiTarget::Myself, s3), "SGI 3");
    check_eq!(
        gicd.sgi_pending_sources(s3),
        own,
        "SGI 3 sources after filter 'myself'"
    );
    check!(gicd.is_pending(s3), "SGI 3 not pending in GICD_ISPENDR0");
    check!(gicd.send_sgi(SgiTarget::List(own), s5), "SGI 5");
    check_eq!(
        gicd.sgi_pending_sources(s5),
        own,
        "SGI 5 sources after a list of only this CPU"
    );

    check!(gicd.send_sgi(SgiTarget::AllOthers, s7), "SGI 7");
    check_eq!(
        gicd.sgi_pending_sources(s7),
        0,
        "SGI 7 sources after filter 'all others'"
    );
    check!(gicd.send_sgi(SgiTarget::List(!own), s8), "SGI 8");
    check_eq!(
        gicd.sgi_pending_sources(s8),
        0,
        "SGI 8 sources after a list without this CPU"
    );

    check_eq!(
        gicc.highest_pending(),
        s5.raw() | src,
        "GICC_HPPIR with SGIs 3 and 5 pending"
    );
    check!(common::signalled(), "SGIs pending but IRQ not signalled");

    common::wait_with_irqs(50_000, || common::entries() >= 2);
    common::irq_window(2_000);
    let (e5, e3) = (s5.raw() | src, s3.raw() | src);
    common::expect_log(&[e5, EXIT | e5, e3, EXIT | e3]);
    for s in [s3, s5, s7, s8] {
        check_eq!(
            gicd.sgi_pending_sources(s),
            0,
            "SGI {} sources at the end",
            s.raw()
        );
    }
    common::pass()
}

pub fn on_irq(irq: Acknowledged, _entry_ticks: u64) {
    check_eq!(
        irq.source_cpu(),
        Some(common::own_cpu()),
        "GICC_IAR.CPUID of SGI {}",
        irq.id().raw()
    );
    board::gicc().end_of_interrupt(irq);
}
