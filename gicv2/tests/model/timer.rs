//! The path the project's firmware uses: the virtual timer on PPI 27,
//! Group 0, acknowledged with GICC_IAR and completed with GICC_EOIR.

use uirq_gicv2::regs::{gicc, gicd, SPURIOUS};

use super::*;

/// PPI 11, interrupt 27: the EL1 virtual timer as the Arm BSA and QEMU's
/// `virt` board wire it.
const VTIMER: IntId = match IntId::ppi(11) {
    Some(id) => id,
    None => panic!(),
};

/// The firmware's set-up: GICD_CTLR = 1, GICC_CTLR = 1, PMR = 0xFF, PPI 27
/// priority 0xA0, enabled through GICD_ISENABLER0.
fn timer_gic() -> Gicv2 {
    let mut g = gic(1, 32);
    firmware_init(&mut g);
    set_priority(&mut g, 0, 27, 0xA0);
    dw(&mut g, 0, gicd::ISENABLER, 1 << 27);
    g
}

// IHI 0048B 3.2.4 (Figure 3-1) and 4.4.4/4.4.5: the line is acknowledged,
// the device lowers its output in the handler, EOIR completes it, and it is
// not signalled again.
#[test]
fn timer_fires_is_acknowledged_and_completed() {
    let mut g = timer_gic();
    assert!(!g.irq_line(0), "nothing pending yet");

    g.set_ppi_level(0, VTIMER, true);
    assert!(g.irq_line(0), "an enabled, pending PPI 27 raises IRQ");
    assert!(!g.fiq_line(0), "Group 0 goes to IRQ while FIQEn = 0");
    assert_eq!(cr(&mut g, 0, gicc::HPPIR), 27);

    assert_eq!(ack(&mut g, 0), 27);
    assert!(!g.irq_line(0), "acknowledge takes the line down");
    assert_eq!(cr(&mut g, 0, gicc::RPR), 0xA0, "running priority is 27's");
    assert!(bit(&mut g, 0, gicd::ISACTIVER, 27), "active");
    assert!(
        bit(&mut g, 0, gicd::ISPENDR, 27),
        "active and pending: the level-sensitive line is still high"
    );

    g.set_ppi_level(0, VTIMER, false); // the handler silences the timer
    assert!(!bit(&mut g, 0, gicd::ISPENDR, 27));
    eoi(&mut g, 0, 27);
    assert!(!g.irq_line(0), "not signalled again");
    assert!(!bit(&mut g, 0, gicd::ISACTIVER, 27), "deactivated");
    assert_eq!(cr(&mut g, 0, gicc::RPR), 0xFF, "idle again");
    assert_eq!(ack(&mut g, 0), SPURIOUS);
}

// IHI 0048B 3.2.4: a level-sensitive interrupt whose input is still asserted
// when it is deactivated goes back to pending and is signalled again.
#[test]
fn level_still_high_after_eoi_is_signalled_again() {
    let mut g = timer_gic();
    g.set_ppi_level(0, VTIMER, true);
    assert_eq!(ack(&mut g, 0), 27);
    assert!(!g.irq_line(0));
    eoi(&mut g, 0, 27);
    assert!(g.irq_line(0), "still asserted, so pending again");
    assert_eq!(ack(&mut g, 0), 27);
    g.set_ppi_level(0, VTIMER, false);
    eoi(&mut g, 0, 27);
    assert!(!g.irq_line(0));
}

// IHI 0048B 4.3.5: the enable bit only gates forwarding; the interrupt
// becomes pending while disabled and is signalled once enabled.
#[test]
fn pending_while_disabled_is_signalled_on_enable() {
    let mut g = gic(1, 0);
    firmware_init(&mut g);
    g.set_ppi_level(0, VTIMER, true);
    assert!(!g.irq_line(0), "disabled");
    assert!(bit(&mut g, 0, gicd::ISPENDR, 27), "but pending");
    enable(&mut g, 0, 27);
    assert!(g.irq_line(0));
    dw(&mut g, 0, gicd::ICENABLER, 1 << 27);
    assert!(!g.irq_line(0), "ICENABLER stops forwarding");
    assert_eq!(ack(&mut g, 0), SPURIOUS);
}

// IHI 0048B 4.3.1 and 4.4.1: with the distributor or the CPU interface
// disabled nothing is signalled, and IAR answers 1023.
#[test]
fn distributor_and_cpu_interface_enables_gate_the_line() {
    let mut g = timer_gic();
    g.set_ppi_level(0, VTIMER, true);
    dw(&mut g, 0, gicd::CTLR, 0);
    assert!(!g.irq_line(0));
    assert_eq!(ack(&mut g, 0), SPURIOUS);
    dw(&mut g, 0, gicd::CTLR, 1);
    cw(&mut g, 0, gicc::CTLR, 0);
    assert!(!g.irq_line(0));
    assert_eq!(ack(&mut g, 0), SPURIOUS);
    cw(&mut g, 0, gicc::CTLR, 1);
    assert!(g.irq_line(0));
}

// IHI 0048B 4.3.13: an edge-triggered interrupt latches a rising edge; an
// edge while it is active makes it active and pending, so it is taken
// again after EOI.
#[test]
fn edge_triggered_ppi_latches_edges() {
    let mut g = timer_gic();
    dw(&mut g, 0, gicd::ICFGR + 4, 0b10 << (2 * (27 - 16)));
    assert_eq!(dr(&mut g, 0, gicd::ICFGR + 4), 0b10 << 22);

    g.set_ppi_level(0, VTIMER, true);
    g.set_ppi_level(0, VTIMER, false);
    assert!(g.irq_line(0), "the edge was latched");
    assert_eq!(ack(&mut g, 0), 27);
    assert!(
        !bit(&mut g, 0, gicd::ISPENDR, 27),
        "acknowledge consumed it"
    );
    eoi(&mut g, 0, 27);
    assert!(!g.irq_line(0), "one edge, one interrupt");

    g.set_ppi_level(0, VTIMER, true);
    assert_eq!(ack(&mut g, 0), 27);
    g.set_ppi_level(0, VTIMER, false);
    g.set_ppi_level(0, VTIMER, true); // a second edge while active
    assert!(!g.irq_line(0), "active, so not signalled yet");
    eoi(&mut g, 0, 27);
    assert!(g.irq_line(0), "the second edge is still pending");
}

// The model's input API: only PPIs go through set_ppi_level, only
// implemented SPIs through set_spi_level; a CPU out of range is ignored.
#[test]
fn wrong_ids_and_cpus_on_the_line_inputs_are_ignored() {
    let mut g = timer_gic();
    let before = g.clone();
    g.set_ppi_level(0, id(5), true);
    g.set_ppi_level(0, id(40), true);
    g.set_ppi_level(1, VTIMER, true);
    g.set_ppi_level(usize::MAX, VTIMER, true);
    g.set_spi_level(VTIMER, true);
    g.set_spi_level(id(64), true); // only 32 SPIs: ids 32-63
    assert_eq!(g, before);
    assert!(!g.irq_line(1) && !g.irq_line(usize::MAX));
}
