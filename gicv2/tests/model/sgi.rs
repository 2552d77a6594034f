//! Software generated interrupts: GICD_SGIR filters, per-source pending
//! state, and the SGI pending registers.

use uirq_gicv2::regs::{gicc, gicd, SPURIOUS};

use super::*;

/// GICD_SGIR value: filter, target list, SGI id (IHI 0048B Table 4-21).
fn sgir(filter: u32, targets: u8, sgi: u32) -> u32 {
    filter << 24 | u32::from(targets) << 16 | sgi
}

fn sgi_gic(num_cpus: usize) -> Gicv2 {
    let mut g = gic(num_cpus, 0);
    firmware_init(&mut g);
    g
}

// IHI 0048B 4.3.15: TargetListFilter 0 sends to the CPUs in the list;
// 4.4.4: the acknowledge reports the sending CPU in bits [12:10].
#[test]
fn sgi_to_a_target_list_reports_its_source() {
    let mut g = sgi_gic(4);
    dw(&mut g, 2, gicd::SGIR, sgir(0, 0b0011, 5));
    assert!(g.irq_line(0) && g.irq_line(1));
    assert!(!g.irq_line(2) && !g.irq_line(3));
    assert_eq!(ack(&mut g, 1), 5 | 2 << 10);
    assert_eq!(cr(&mut g, 0, gicc::HPPIR), 5 | 2 << 10);
    assert!(g.irq_line(0), "banked: CPU 0's copy is still pending");
    eoi(&mut g, 1, 5 | 2 << 10);
    assert!(!g.irq_line(1));
}

// IHI 0048B 1.4.3 (N-N model), 4.4.4: the same SGI from two sources is two
// interrupts; each acknowledge takes one source, lowest CPU id first.
#[test]
fn one_sgi_from_two_sources() {
    let mut g = sgi_gic(3);
    dw(&mut g, 2, gicd::SGIR, sgir(0, 0b001, 3));
    dw(&mut g, 1, gicd::SGIR, sgir(0, 0b001, 3));
    assert_eq!(drb(&mut g, 0, gicd::SPENDSGIR + 3), 0b110);
    assert_eq!(ack(&mut g, 0), 3 | 1 << 10);
    assert_eq!(drb(&mut g, 0, gicd::SPENDSGIR + 3), 0b100);
    assert!(bit(&mut g, 0, gicd::ISPENDR, 3), "active and pending");
    assert!(!g.irq_line(0), "the SGI is active");
    eoi(&mut g, 0, 3 | 1 << 10);
    assert!(g.irq_line(0));
    assert_eq!(ack(&mut g, 0), 3 | 2 << 10);
    eoi(&mut g, 0, 3 | 2 << 10);
    assert_eq!(ack(&mut g, 0), SPURIOUS);
}

// IHI 0048B 4.3.15: filter 1 is every CPU but the sender, filter 2 only the
// sender; filter 3 is reserved (ignored here); targets beyond the
// implemented CPU interfaces are dropped.
#[test]
fn sgir_filters() {
    let mut g = sgi_gic(3);
    dw(&mut g, 1, gicd::SGIR, sgir(1, 0, 7));
    assert!(g.irq_line(0) && !g.irq_line(1) && g.irq_line(2));

    let mut g = sgi_gic(3);
    dw(&mut g, 1, gicd::SGIR, sgir(2, 0b101, 7));
    assert!(!g.irq_line(0) && g.irq_line(1) && !g.irq_line(2));
    assert_eq!(ack(&mut g, 1), 7 | 1 << 10);

    let mut g = sgi_gic(3);
    let before = g.clone();
    dw(&mut g, 0, gicd::SGIR, sgir(3, 0xFF, 7));
    assert_eq!(g, before, "reserved filter ignored");

    dw(&mut g, 0, gicd::SGIR, sgir(0, 0xFF, 7));
    assert!(g.irq_line(0) && g.irq_line(1) && g.irq_line(2));
    assert_eq!(dr(&mut g, 0, gicd::SGIR), 0, "write-only");
}

// IHI 0048B 4.3.16, 4.3.17: SPENDSGIR/CPENDSGIR hold one byte per SGI, one
// bit per source CPU, for the accessing CPU; bits for absent CPUs are
// RAZ/WI; byte and word accesses both work.
#[test]
fn sgi_pending_registers() {
    let mut g = sgi_gic(2);
    dwb(&mut g, 1, gicd::SPENDSGIR + 9, 0xFF);
    assert_eq!(drb(&mut g, 1, gicd::SPENDSGIR + 9), 0b11);
    assert_eq!(dr(&mut g, 1, gicd::CPENDSGIR + 8), 0b11 << 8);
    assert_eq!(drb(&mut g, 0, gicd::SPENDSGIR + 9), 0, "banked");
    assert!(bit(&mut g, 1, gicd::ISPENDR, 9));
    assert!(g.irq_line(1));
    dw(&mut g, 1, gicd::CPENDSGIR + 8, 0b01 << 8);
    assert_eq!(drb(&mut g, 1, gicd::SPENDSGIR + 9), 0b10);
    assert_eq!(ack(&mut g, 1), 9 | 1 << 10);
}

// IHI 0048B 4.3.7, 4.3.8: in GICv2, SGI pending state is not changed through
// ISPENDR0/ICPENDR0 (those bits are WI), only through the SGI registers.
#[test]
fn ispendr_does_not_touch_sgis() {
    let mut g = sgi_gic(1);
    dw(&mut g, 0, gicd::ISPENDR, 0xFFFF);
    assert_eq!(dr(&mut g, 0, gicd::ISPENDR), 0);
    dw(&mut g, 0, gicd::SGIR, sgir(2, 0, 1));
    dw(&mut g, 0, gicd::ICPENDR, 0xFFFF);
    assert_eq!(dr(&mut g, 0, gicd::ISPENDR), 1 << 1);
}
