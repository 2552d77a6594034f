//! GICC behaviour: spurious, priority mask, preemption, binary point,
//! EOImode, grouping, and the identification register.

use uirq_gicv2::regs::{gicc, gicd, SPURIOUS};

use super::*;

/// One CPU, 32 SPIs, firmware set-up, SPIs 32..=35 enabled.
fn spi_gic() -> Gicv2 {
    let mut g = gic(1, 32);
    firmware_init(&mut g);
    dw(&mut g, 0, gicd::ISENABLER + 4, 0xF);
    g
}

/// Makes SPI `raw` pending with GICD_ISPENDR.
fn set_pending(g: &mut Gicv2, raw: u32) {
    dw(
        g,
        0,
        gicd::ISPENDR + 4 * u64::from(raw / 32),
        1 << (raw % 32),
    );
}

// IHI 0048B 3.2.5 and 4.4.4: with nothing pending, IAR and HPPIR answer the
// spurious id 1023, and the running priority reads idle (4.4.6).
#[test]
fn nothing_pending_is_spurious_1023() {
    let mut g = spi_gic();
    assert_eq!(ack(&mut g, 0), SPURIOUS);
    assert_eq!(cr(&mut g, 0, gicc::HPPIR), SPURIOUS);
    assert_eq!(cr(&mut g, 0, gicc::RPR), 0xFF);
    assert!(!g.irq_line(0));
    // IHI 0048B 4.4.5: writing 1023 to EOIR is ignored.
    eoi(&mut g, 0, SPURIOUS);
    assert_eq!(cr(&mut g, 0, gicc::RPR), 0xFF);
}

// IHI 0048B 3.3.3 and 4.4.2: an interrupt is signalled only if its priority
// is strictly higher (numerically lower) than GICC_PMR; PMR 0 at reset
// masks everything.
#[test]
fn priority_mask_filters() {
    let mut g = gic(1, 32);
    dw(&mut g, 0, gicd::CTLR, 1);
    cw(&mut g, 0, gicc::CTLR, 1);
    enable(&mut g, 0, 32);
    set_priority(&mut g, 0, 32, 0x80);
    set_pending(&mut g, 32);
    assert_eq!(cr(&mut g, 0, gicc::PMR), 0, "reset value");
    assert!(!g.irq_line(0), "PMR 0 masks all");
    cw(&mut g, 0, gicc::PMR, 0x80);
    assert!(!g.irq_line(0), "equal priority is masked");
    assert_eq!(ack(&mut g, 0), SPURIOUS);
    assert_eq!(cr(&mut g, 0, gicc::HPPIR), SPURIOUS);
    cw(&mut g, 0, gicc::PMR, 0x81);
    assert!(g.irq_line(0));
    assert_eq!(cr(&mut g, 0, gicc::PMR), 0x81, "all 8 bits implemented");
    assert_eq!(ack(&mut g, 0), 32);
}

// IHI 0048B 3.3: the highest priority pending interrupt is taken first;
// among equal priorities this model takes the lowest id.
#[test]
fn highest_priority_then_lowest_id() {
    let mut g = spi_gic();
    for (raw, prio) in [(32, 0x80), (33, 0x40), (34, 0x40), (35, 0xC0)] {
        set_priority(&mut g, 0, raw, prio);
        set_pending(&mut g, raw);
    }
    assert_eq!(cr(&mut g, 0, gicc::HPPIR), 33);
    cw(&mut g, 0, gicc::BPR, 7); // no preemption: take them one at a time
    for expected in [33, 34, 32, 35] {
        assert_eq!(ack(&mut g, 0), expected);
        eoi(&mut g, 0, expected);
    }
    assert_eq!(ack(&mut g, 0), SPURIOUS);
}

// IHI 0048B 3.3.2: a pending interrupt preempts the active one only if its
// group priority is strictly higher than the running priority; EOI drops
// the running priority back to the interrupted level (3.2.1, 4.4.6).
#[test]
fn preemption_by_strictly_higher_group_priority() {
    let mut g = spi_gic();
    set_priority(&mut g, 0, 32, 0x80);
    set_priority(&mut g, 0, 33, 0x40);
    set_priority(&mut g, 0, 34, 0x40);
    set_pending(&mut g, 32);
    assert_eq!(ack(&mut g, 0), 32);
    assert_eq!(cr(&mut g, 0, gicc::RPR), 0x80);

    set_pending(&mut g, 33);
    assert!(g.irq_line(0), "0x40 preempts 0x80");
    assert_eq!(ack(&mut g, 0), 33);
    assert_eq!(cr(&mut g, 0, gicc::RPR), 0x40);

    set_pending(&mut g, 34);
    assert!(!g.irq_line(0), "equal priority does not preempt");
    assert_eq!(ack(&mut g, 0), SPURIOUS);
    assert_eq!(
        cr(&mut g, 0, gicc::HPPIR),
        34,
        "HPPIR ignores the running priority"
    );

    eoi(&mut g, 0, 33);
    assert_eq!(
        cr(&mut g, 0, gicc::RPR),
        0x80,
        "back to the interrupted level"
    );
    assert!(g.irq_line(0), "34 now preempts 32");
    assert_eq!(ack(&mut g, 0), 34);
    eoi(&mut g, 0, 34);
    eoi(&mut g, 0, 32);
    assert_eq!(cr(&mut g, 0, gicc::RPR), 0xFF);
    assert!(!g.irq_line(0));
}

// IHI 0048B 3.3.4: the binary point splits priority into group priority and
// subpriority; only the group priority counts for preemption.
#[test]
fn binary_point_groups_priorities() {
    let mut g = spi_gic();
    set_priority(&mut g, 0, 32, 0x88);
    set_priority(&mut g, 0, 33, 0x80);
    cw(&mut g, 0, gicc::BPR, 3); // group priority bits [7:4]
    assert_eq!(cr(&mut g, 0, gicc::BPR), 3);
    set_pending(&mut g, 32);
    assert_eq!(ack(&mut g, 0), 32);
    assert_eq!(cr(&mut g, 0, gicc::RPR), 0x80, "the group priority of 0x88");
    set_pending(&mut g, 33);
    assert!(!g.irq_line(0), "same group priority 0x80: no preemption");

    cw(&mut g, 0, gicc::BPR, 0); // group priority bits [7:1]
    eoi(&mut g, 0, 32);
    set_pending(&mut g, 32);
    assert_eq!(ack(&mut g, 0), 33, "0x80 is taken first anyway");
    eoi(&mut g, 0, 33);
    assert_eq!(ack(&mut g, 0), 32);
    assert_eq!(cr(&mut g, 0, gicc::RPR), 0x88);
    dw(&mut g, 0, gicd::ISPENDR + 4, 1 << 1);
    assert!(g.irq_line(0), "with BPR 0, 0x80 preempts 0x88");
}

// IHI 0048B 4.4.3, 4.4.8: the binary points have minimum values (0 for
// GICC_BPR, 1 for GICC_ABPR with 8 priority bits); smaller writes read back
// as the minimum.
#[test]
fn binary_point_minimums() {
    let mut g = spi_gic();
    assert_eq!(cr(&mut g, 0, gicc::BPR), 0);
    assert_eq!(cr(&mut g, 0, gicc::ABPR), 1);
    cw(&mut g, 0, gicc::ABPR, 0);
    assert_eq!(cr(&mut g, 0, gicc::ABPR), 1);
    cw(&mut g, 0, gicc::ABPR, 0xFFFF_FFF5);
    assert_eq!(cr(&mut g, 0, gicc::ABPR), 5);
    cw(&mut g, 0, gicc::BPR, 0xFFFF_FFFF);
    assert_eq!(cr(&mut g, 0, gicc::BPR), 7);
}

// IHI 0048B 3.2.1, 4.4.5, 4.4.15: with GICC_CTLR.EOImode = 1, EOIR only
// drops the priority; the interrupt stays active until GICC_DIR.
#[test]
fn eoimode_split_with_dir() {
    let mut g = spi_gic();
    cw(&mut g, 0, gicc::CTLR, 1 | 1 << 9);
    set_priority(&mut g, 0, 32, 0x80);
    set_priority(&mut g, 0, 33, 0x90);
    g.set_spi_level(id(32), true);
    assert_eq!(ack(&mut g, 0), 32);
    eoi(&mut g, 0, 32);
    assert_eq!(cr(&mut g, 0, gicc::RPR), 0xFF, "priority dropped");
    assert!(bit(&mut g, 0, gicd::ISACTIVER, 32), "but still active");
    assert!(!g.irq_line(0), "an active interrupt is not signalled again");

    set_pending(&mut g, 33);
    assert!(g.irq_line(0), "lower priority work can run after the drop");
    assert_eq!(ack(&mut g, 0), 33);
    eoi(&mut g, 0, 33);
    cw(&mut g, 0, gicc::DIR, 33);

    cw(&mut g, 0, gicc::DIR, 32);
    assert!(!bit(&mut g, 0, gicd::ISACTIVER, 32), "DIR deactivates");
    assert!(
        g.irq_line(0),
        "the line is still high, so 32 is pending again"
    );
}

// IHI 0048B 4.4.15: GICC_DIR with EOImode = 0 is UNPREDICTABLE; this model
// ignores it. And with EOImode = 0, EOIR both drops and deactivates.
#[test]
fn dir_is_ignored_with_eoimode_0() {
    let mut g = spi_gic();
    set_pending(&mut g, 32);
    assert_eq!(ack(&mut g, 0), 32);
    cw(&mut g, 0, gicc::DIR, 32);
    assert!(bit(&mut g, 0, gicd::ISACTIVER, 32));
    eoi(&mut g, 0, 32);
    assert!(!bit(&mut g, 0, gicd::ISACTIVER, 32));
}

// IHI 0048B 4.4.5: EOIR for an id that is not implemented, or when nothing
// is active, changes nothing.
#[test]
fn stray_eois_change_nothing() {
    let mut g = spi_gic();
    set_pending(&mut g, 32);
    let idle = g.clone();
    eoi(&mut g, 0, 32);
    eoi(&mut g, 0, 1000);
    assert_eq!(g, idle, "nothing active: ignored");
    assert_eq!(ack(&mut g, 0), 32);
    let acked = g.clone();
    eoi(&mut g, 0, 1000); // unimplemented id
    eoi(&mut g, 0, 1022);
    eoi(&mut g, 0, 33); // not active (EOImode 0)
    assert_eq!(g, acked);
}

// IHI 0048B 4.4.12: the active priorities registers hold one bit per active
// preemption level (bit n = group priority n << 1 with 8 priority bits).
#[test]
fn active_priorities_registers() {
    let mut g = spi_gic();
    set_priority(&mut g, 0, 32, 0xA0);
    set_pending(&mut g, 32);
    assert_eq!(ack(&mut g, 0), 32);
    // 0xA0 >> 1 = 80 = word 2, bit 16.
    assert_eq!(cr(&mut g, 0, gicc::APR + 8), 1 << 16);
    assert_eq!(cr(&mut g, 0, gicc::APR), 0);
    assert_eq!(cr(&mut g, 0, gicc::NSAPR + 8), 0, "Group 0 is not in NSAPR");
    eoi(&mut g, 0, 32);
    assert_eq!(cr(&mut g, 0, gicc::APR + 8), 0);
    // Restoring a saved value sets the running priority.
    cw(&mut g, 0, gicc::APR, 1 << 3);
    assert_eq!(cr(&mut g, 0, gicc::RPR), 6);
}

// IHI 0048B 3.4, 4.4.1, 4.4.4: Group 1 needs EnableGrp1 in both GICD_CTLR
// and GICC_CTLR; GICC_IAR answers 1022 for it unless AckCtl is set; the
// aliased GICC_AIAR/AEOIR/AHPPIR are the Group 1 view.
#[test]
fn group1_interrupts_and_the_aliased_registers() {
    let mut g = spi_gic();
    dw(&mut g, 0, gicd::IGROUPR + 4, 1); // SPI 32 is Group 1
    assert_eq!(dr(&mut g, 0, gicd::IGROUPR + 4), 1);
    set_pending(&mut g, 32);
    assert!(!g.irq_line(0), "Group 1 forwarding is off");
    dw(&mut g, 0, gicd::CTLR, 0b11);
    assert!(
        !g.irq_line(0),
        "Group 1 signalling is off at the CPU interface"
    );
    cw(&mut g, 0, gicc::CTLR, 0b11);
    assert!(g.irq_line(0));
    assert!(!g.fiq_line(0), "Group 1 always goes to IRQ");

    assert_eq!(cr(&mut g, 0, gicc::HPPIR), 1022);
    assert_eq!(ack(&mut g, 0), 1022, "AckCtl = 0");
    assert!(g.irq_line(0), "1022 acknowledges nothing");
    assert_eq!(cr(&mut g, 0, gicc::AHPPIR), 32);
    assert_eq!(cr(&mut g, 0, gicc::AIAR), 32);
    assert_eq!(
        cr(&mut g, 0, gicc::NSAPR),
        1,
        "priority 0 active in Group 1"
    );
    assert_eq!(cr(&mut g, 0, gicc::APR), 0);
    cw(&mut g, 0, gicc::AEOIR, 32);
    assert!(!bit(&mut g, 0, gicd::ISACTIVER, 32));
    assert_eq!(cr(&mut g, 0, gicc::RPR), 0xFF);

    cw(&mut g, 0, gicc::CTLR, 0b111); // AckCtl
    set_pending(&mut g, 32);
    assert_eq!(ack(&mut g, 0), 32, "with AckCtl, IAR takes Group 1 too");
    assert_eq!(cr(&mut g, 0, gicc::NSAPR), 1, "in the Group 1 priorities");
    eoi(&mut g, 0, 32);
    assert!(
        !bit(&mut g, 0, gicd::ISACTIVER, 32),
        "plain EOIR completes it"
    );
    assert_eq!(cr(&mut g, 0, gicc::RPR), 0xFF);
}

// IHI 0048B 4.4.9: the Group 1 view never acknowledges Group 0.
#[test]
fn aliased_acknowledge_does_not_take_group0() {
    let mut g = spi_gic();
    set_pending(&mut g, 32);
    assert_eq!(cr(&mut g, 0, gicc::AIAR), SPURIOUS);
    assert_eq!(cr(&mut g, 0, gicc::AHPPIR), SPURIOUS);
    assert!(g.irq_line(0));
    assert_eq!(ack(&mut g, 0), 32);
    cw(&mut g, 0, gicc::AEOIR, 32);
    assert!(bit(&mut g, 0, gicd::ISACTIVER, 32), "AEOIR ignores Group 0");
}

// IHI 0048B 3.4, 4.4.1: with GICC_CTLR.FIQEn, Group 0 is signalled on FIQ.
#[test]
fn fiq_enable_moves_group0_to_fiq() {
    let mut g = spi_gic();
    cw(&mut g, 0, gicc::CTLR, 1 | 1 << 3);
    set_pending(&mut g, 32);
    assert!(g.fiq_line(0));
    assert!(!g.irq_line(0));
    assert_eq!(ack(&mut g, 0), 32);
    assert!(!g.fiq_line(0));
}

// IHI 0048B 4.4.1, 4.4.14: GICC_CTLR keeps its defined bits; GICC_IIDR says
// architecture version 2 and is read-only; IAR, RPR and HPPIR ignore writes.
#[test]
fn control_and_identification() {
    let mut g = spi_gic();
    cw(&mut g, 0, gicc::CTLR, 0xFFFF_FFFF);
    assert_eq!(cr(&mut g, 0, gicc::CTLR), 0x7FF);
    cw(&mut g, 0, gicc::CTLR, 1);
    let iidr = cr(&mut g, 0, gicc::IIDR);
    assert_eq!(iidr >> 16 & 0xF, 2, "architecture version GICv2");
    cw(&mut g, 0, gicc::IIDR, 0);
    assert_eq!(cr(&mut g, 0, gicc::IIDR), iidr);
    set_pending(&mut g, 32);
    cw(&mut g, 0, gicc::IAR, 0);
    cw(&mut g, 0, gicc::RPR, 0);
    assert_eq!(cr(&mut g, 0, gicc::RPR), 0xFF);
    assert!(g.irq_line(0), "a write to IAR acknowledges nothing");
    assert_eq!(cr(&mut g, 0, gicc::EOIR), 0, "write-only reads as zero");
    assert!(g.irq_line(0));
}

// IHI 0048B 4.1.4: CPU interface registers are word-only; a byte or
// halfword read of GICC_IAR must not acknowledge anything.
#[test]
fn sub_word_accesses_are_raz_wi() {
    let mut g = spi_gic();
    set_pending(&mut g, 32);
    let mut b = [0xFFu8; 1];
    g.cpu_interface_read(0, gicc::IAR, &mut b);
    assert_eq!(b, [0]);
    let mut h = [0xFFu8; 2];
    g.cpu_interface_read(0, gicc::IAR, &mut h);
    assert_eq!(h, [0, 0]);
    let mut d = [0xFFu8; 8];
    g.cpu_interface_read(0, gicc::IAR, &mut d);
    assert_eq!(d, [0; 8]);
    assert!(g.irq_line(0), "still pending");
    g.cpu_interface_write(0, gicc::PMR, &[0x10]);
    assert_eq!(cr(&mut g, 0, gicc::PMR), 0xFF, "byte write ignored");
}
