//! GICD registers: identification, banking, byte access, routing, trigger
//! configuration, set/clear semantics and RAZ/WI beyond the implemented ids.

use uirq_gicv2::regs::{gicc, gicd, PIDR2_ARCH_GICV2, SPURIOUS};

use super::*;

// IHI 0048B 4.3.2: ITLinesNumber = ids / 32 - 1, CPUNumber = interfaces - 1,
// SecurityExtn = 0. The register is read-only.
#[test]
fn typer_describes_the_configuration() {
    let mut g = gic(4, 64);
    assert_eq!(dr(&mut g, 0, gicd::TYPER), 2 | 3 << 5);
    dw(&mut g, 0, gicd::TYPER, 0xFFFF_FFFF);
    assert_eq!(dr(&mut g, 0, gicd::TYPER), 2 | 3 << 5);
    let mut g = gic(1, 988);
    assert_eq!(dr(&mut g, 0, gicd::TYPER), 31);
    let mut g = gic(8, 0);
    assert_eq!(dr(&mut g, 0, gicd::TYPER), 7 << 5);
}

// IHI 0048B 4.3.3, 4.3.18: IIDR and the identification block are read-only;
// PIDR2 bits [7:4] give the architecture version, 2 for GICv2.
#[test]
fn identification_registers() {
    let mut g = gic(1, 0);
    let pidr2 = dr(&mut g, 0, gicd::PIDR2);
    assert_eq!(pidr2 & 0xF0, PIDR2_ARCH_GICV2);
    dw(&mut g, 0, gicd::PIDR2, 0);
    assert_eq!(dr(&mut g, 0, gicd::PIDR2), pidr2);
    let cidr: Vec<u32> = (0..4).map(|i| dr(&mut g, 0, 0xFF0 + 4 * i)).collect();
    assert_eq!(cidr, [0x0D, 0xF0, 0x05, 0xB1], "the PrimeCell component id");
    let iidr = dr(&mut g, 0, gicd::IIDR);
    dw(&mut g, 0, gicd::IIDR, !iidr);
    assert_eq!(dr(&mut g, 0, gicd::IIDR), iidr);
}

// IHI 0048B 4.3.1: without the Security Extensions GICD_CTLR has
// EnableGrp0 (bit 0) and EnableGrp1 (bit 1); the rest is reserved.
#[test]
fn ctlr_keeps_two_enable_bits() {
    let mut g = gic(1, 0);
    dw(&mut g, 0, gicd::CTLR, 0xFFFF_FFFF);
    assert_eq!(dr(&mut g, 0, gicd::CTLR), 0b11);
}

// IHI 0048B 2.2.1, 4.3.5: word 0 of the enable registers is banked: each CPU
// sees and changes its own PPIs. SGI enables are RAO/WI in this model
// (IMPLEMENTATION DEFINED).
#[test]
fn ppi_enables_are_banked_and_sgis_always_enabled() {
    let mut g = gic(2, 0);
    assert_eq!(dr(&mut g, 0, gicd::ISENABLER), 0xFFFF);
    dw(&mut g, 1, gicd::ISENABLER, 1 << 27);
    assert_eq!(dr(&mut g, 1, gicd::ISENABLER), 0xFFFF | 1 << 27);
    assert_eq!(dr(&mut g, 0, gicd::ISENABLER), 0xFFFF);
    dw(&mut g, 1, gicd::ICENABLER, 0xFFFF_FFFF);
    assert_eq!(dr(&mut g, 1, gicd::ICENABLER), 0xFFFF, "SGIs stay enabled");
}

// IHI 0048B 4.3.11, 4.1.4: IPRIORITYR is byte-accessible, one byte per id,
// all 8 bits implemented; a word access is four byte accesses; the
// registers are banked for ids 0-31.
#[test]
fn priority_bytes_and_words() {
    let mut g = gic(2, 32);
    dwb(&mut g, 0, gicd::IPRIORITYR + 33, 0xAB);
    assert_eq!(dr(&mut g, 0, gicd::IPRIORITYR + 32), 0xAB00);
    dw(&mut g, 0, gicd::IPRIORITYR + 36, 0x1122_3344);
    assert_eq!(drb(&mut g, 0, gicd::IPRIORITYR + 39), 0x11);
    assert_eq!(drb(&mut g, 0, gicd::IPRIORITYR + 36), 0x44);
    assert_eq!(
        drb(&mut g, 1, gicd::IPRIORITYR + 36),
        0x44,
        "SPIs are shared"
    );
    dwb(&mut g, 1, gicd::IPRIORITYR + 27, 0x50);
    assert_eq!(drb(&mut g, 1, gicd::IPRIORITYR + 27), 0x50);
    assert_eq!(drb(&mut g, 0, gicd::IPRIORITYR + 27), 0, "PPIs are banked");
}

// IHI 0048B 4.1.4: only IPRIORITYR, ITARGETSR, CPENDSGIR and SPENDSGIR take
// byte accesses; other registers and halfword/doubleword/unaligned accesses
// are RAZ/WI in this model.
#[test]
fn unsupported_sizes_are_raz_wi() {
    let mut g = gic(1, 32);
    dwb(&mut g, 0, gicd::CTLR, 1);
    assert_eq!(dr(&mut g, 0, gicd::CTLR), 0, "byte write to CTLR ignored");
    dw(&mut g, 0, gicd::CTLR, 1);
    assert_eq!(drb(&mut g, 0, gicd::CTLR), 0, "byte read of CTLR is zero");
    g.distributor_write(0, gicd::IPRIORITYR + 32, &[1, 2]);
    g.distributor_write(0, gicd::IPRIORITYR + 32, &[1, 2, 3, 4, 5, 6, 7, 8]);
    g.distributor_write(0, gicd::IPRIORITYR + 33, &[1, 2, 3, 4]); // unaligned
    assert_eq!(dr(&mut g, 0, gicd::IPRIORITYR + 32), 0);
    let mut h = [0xFFu8; 2];
    g.distributor_read(0, gicd::TYPER, &mut h);
    assert_eq!(h, [0, 0]);
}

// IHI 0048B 4.3.12: ITARGETSR for SGIs and PPIs is read-only and reads as
// the accessing CPU's own bit; SPI target bits for absent CPU interfaces
// are RAZ/WI.
#[test]
fn targets_banked_read_only_and_masked() {
    let mut g = gic(3, 32);
    assert_eq!(dr(&mut g, 2, gicd::ITARGETSR), 0x0404_0404);
    assert_eq!(dr(&mut g, 1, gicd::ITARGETSR + 28), 0x0202_0202);
    dw(&mut g, 1, gicd::ITARGETSR + 28, 0x0101_0101);
    assert_eq!(dr(&mut g, 1, gicd::ITARGETSR + 28), 0x0202_0202);
    dwb(&mut g, 0, gicd::ITARGETSR + 32, 0xFF);
    assert_eq!(drb(&mut g, 0, gicd::ITARGETSR + 32), 0b111);
    dw(&mut g, 0, gicd::ITARGETSR + 36, 0x0403_0201);
    assert_eq!(
        dr(&mut g, 2, gicd::ITARGETSR + 36),
        0x0403_0201 & 0x0707_0707
    );
}

// IHI 0048B 4.3.12: in a uniprocessor implementation ITARGETSR is RAZ/WI
// and every SPI goes to the one CPU.
#[test]
fn uniprocessor_targets_are_raz_wi() {
    let mut g = gic(1, 32);
    assert_eq!(dr(&mut g, 0, gicd::ITARGETSR), 0);
    dw(&mut g, 0, gicd::ITARGETSR + 32, 0x0101_0101);
    assert_eq!(dr(&mut g, 0, gicd::ITARGETSR + 32), 0);
    firmware_init(&mut g);
    enable(&mut g, 0, 40);
    g.set_spi_level(id(40), true);
    assert_eq!(ack(&mut g, 0), 40);
}

// IHI 0048B 4.3.12, 1.4.3: an SPI goes only to the CPUs in its target list;
// with several targets (1-N model) once one CPU acknowledges it, it is no
// longer pending for the others.
#[test]
fn spi_routing_and_one_of_n() {
    let mut g = gic(2, 32);
    firmware_init(&mut g);
    enable(&mut g, 0, 32);
    g.set_spi_level(id(32), true);
    assert!(!g.irq_line(0) && !g.irq_line(1), "targets no CPU yet");
    dwb(&mut g, 0, gicd::ITARGETSR + 32, 0b10);
    assert!(!g.irq_line(0));
    assert!(g.irq_line(1));
    dwb(&mut g, 0, gicd::ITARGETSR + 32, 0b11);
    assert!(g.irq_line(0) && g.irq_line(1));
    assert_eq!(ack(&mut g, 0), 32);
    assert!(!g.irq_line(1), "CPU 0 took it");
    assert_eq!(ack(&mut g, 1), SPURIOUS);
    assert!(bit(&mut g, 1, gicd::ISACTIVER, 32), "active is shared");
    g.set_spi_level(id(32), false);
    eoi(&mut g, 0, 32);
    assert!(!g.irq_line(0) && !g.irq_line(1));
}

// IHI 0048B 4.3.13: ICFGR0 (SGIs) is read-only, all edge-triggered; other
// fields take bit [2F+1] (edge) and keep bit [2F] reserved.
#[test]
fn icfgr_rules() {
    let mut g = gic(1, 32);
    assert_eq!(dr(&mut g, 0, gicd::ICFGR), 0xAAAA_AAAA);
    dw(&mut g, 0, gicd::ICFGR, 0);
    assert_eq!(dr(&mut g, 0, gicd::ICFGR), 0xAAAA_AAAA);
    assert_eq!(
        dr(&mut g, 0, gicd::ICFGR + 4),
        0,
        "PPIs reset level-sensitive"
    );
    dw(&mut g, 0, gicd::ICFGR + 8, 0xFFFF_FFFF);
    assert_eq!(dr(&mut g, 0, gicd::ICFGR + 8), 0xAAAA_AAAA);
}

// IHI 0048B 4.3.7, 4.3.8: software can set a level-sensitive interrupt
// pending; it stays pending until acknowledged or cleared. ICPENDR does not
// clear the pending state while the line is asserted.
#[test]
fn set_and_clear_pending_on_level_interrupts() {
    let mut g = gic(1, 32);
    firmware_init(&mut g);
    enable(&mut g, 0, 33);
    dw(&mut g, 0, gicd::ISPENDR + 4, 1 << 1);
    assert!(bit(&mut g, 0, gicd::ICPENDR, 33));
    assert!(g.irq_line(0));
    dw(&mut g, 0, gicd::ICPENDR + 4, 1 << 1);
    assert!(!g.irq_line(0), "cleared");

    dw(&mut g, 0, gicd::ISPENDR + 4, 1 << 1);
    assert_eq!(ack(&mut g, 0), 33);
    assert!(
        !bit(&mut g, 0, gicd::ISPENDR, 33),
        "acknowledge consumed the latch"
    );
    eoi(&mut g, 0, 33);
    assert!(!g.irq_line(0));

    g.set_spi_level(id(33), true);
    dw(&mut g, 0, gicd::ICPENDR + 4, 1 << 1);
    assert!(
        bit(&mut g, 0, gicd::ISPENDR, 33),
        "the line keeps it pending"
    );
    assert!(g.irq_line(0));
}

// IHI 0048B 4.3.9, 4.3.10: software can set and clear the active state; an
// active interrupt is not signalled.
#[test]
fn set_and_clear_active() {
    let mut g = gic(1, 32);
    firmware_init(&mut g);
    enable(&mut g, 0, 34);
    dw(&mut g, 0, gicd::ISACTIVER + 4, 1 << 2);
    assert!(bit(&mut g, 0, gicd::ICACTIVER, 34));
    g.set_spi_level(id(34), true);
    assert!(!g.irq_line(0), "active, not signalled");
    dw(&mut g, 0, gicd::ICACTIVER + 4, 1 << 2);
    assert!(g.irq_line(0));
}

// IHI 0048B 4.3.4 to 4.3.13: bits, bytes and fields of ids beyond the
// implemented ones (here 32 SPIs, ids 0-63) are RAZ/WI.
#[test]
fn raz_wi_beyond_implemented_ids() {
    let mut g = gic(2, 32);
    for base in [
        gicd::IGROUPR,
        gicd::ISENABLER,
        gicd::ISPENDR,
        gicd::ISACTIVER,
    ] {
        dw(&mut g, 0, base + 8, 0xFFFF_FFFF);
        assert_eq!(dr(&mut g, 0, base + 8), 0, "ids 64-95 at {base:#x}");
        dw(&mut g, 0, base + 0x7C, 0xFFFF_FFFF);
        assert_eq!(dr(&mut g, 0, base + 0x7C), 0, "ids 992-1023 at {base:#x}");
    }
    dwb(&mut g, 0, gicd::IPRIORITYR + 64, 0xFF);
    assert_eq!(drb(&mut g, 0, gicd::IPRIORITYR + 64), 0);
    dw(&mut g, 0, gicd::IPRIORITYR + 0x3FC, 0xFFFF_FFFF); // ids 1020-1023
    assert_eq!(dr(&mut g, 0, gicd::IPRIORITYR + 0x3FC), 0);
    dwb(&mut g, 0, gicd::ITARGETSR + 64, 0xFF);
    assert_eq!(drb(&mut g, 0, gicd::ITARGETSR + 64), 0);
    dw(&mut g, 0, gicd::ICFGR + 16, 0xFFFF_FFFF);
    assert_eq!(dr(&mut g, 0, gicd::ICFGR + 16), 0);
    // Reserved and Security-Extensions-only space is RAZ/WI too.
    for offset in [0x00C, 0x040, 0xD00, gicd::NSACR, 0xF04, 0xF30, 0xFCC] {
        dw(&mut g, 0, offset, 0xFFFF_FFFF);
        assert_eq!(dr(&mut g, 0, offset), 0, "offset {offset:#x}");
    }
    assert!(!g.irq_line(0) && !g.irq_line(1));
}

// IHI 0048B 4.3.4: IGROUPR holds the group of each interrupt; word 0 is
// banked per CPU.
#[test]
fn group_registers_are_banked() {
    let mut g = gic(2, 32);
    dw(&mut g, 1, gicd::IGROUPR, 0x8000_0001);
    assert_eq!(dr(&mut g, 1, gicd::IGROUPR), 0x8000_0001);
    assert_eq!(dr(&mut g, 0, gicd::IGROUPR), 0);
    dw(&mut g, 0, gicd::IGROUPR + 4, 0xF0);
    assert_eq!(dr(&mut g, 1, gicd::IGROUPR + 4), 0xF0);
    // The firmware leaves IGROUPR at 0: everything is Group 0.
    let mut fresh = gic(1, 32);
    assert_eq!(dr(&mut fresh, 0, gicd::IGROUPR), 0);
    assert_eq!(cr(&mut fresh, 0, gicc::CTLR), 0);
}
