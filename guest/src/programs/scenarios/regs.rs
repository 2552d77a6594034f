//! `regs`: the register rules software can rely on (IHI 0048B chapter 4).
//!
//! - `GICD_TYPER`, `GICD_IIDR`, `GICD_PIDR2` and `GICC_IIDR` are read-only:
//!   a write changes nothing (4.3.2, 4.3.3, 4.3.18, 4.4.14);
//!   `GICD_PIDR2[7:4]` and `GICC_IIDR[19:16]` say architecture version 2.
//! - Bits and bytes of interrupts beyond `32 * (ITLinesNumber + 1)` are
//!   RAZ/WI (4.3.2, 4.3.5).
//! - `GICD_ITARGETSR0-7` (SGIs, PPIs) are read-only and read as the reading
//!   CPU's own bit; on a uniprocessor GIC every `ITARGETSR` is RAZ/WI
//!   (4.3.12).
//! - `GICD_ICFGR0` (SGIs) is read-only (4.3.13).
//! - `GICD_IPRIORITYR` is byte-accessible (4.1.4, 4.3.11): four byte writes
//!   make one word, and a byte read sees one field of a word write.
//! - `GICD_SPENDSGIR`/`GICD_CPENDSGIR` are byte-accessible, one byte per
//!   SGI, one bit per source CPU, and both read the same pending state
//!   (4.3.16, 4.3.17).
//! - Priority fields keep their implemented high bits only, at least four
//!   (16 levels, 3.3); `GICC_PMR` implements the same bits (4.4.2), and its
//!   bits [31:8] are reserved.

use uirq_abi::gicv2::gicc;
use uirq_abi::gicv2::gicd::{
    CPENDSGIR, ICENABLER, ICFGR, IIDR, IPRIORITYR, ISENABLER, ISPENDR, ITARGETSR, PIDR2, SPENDSGIR,
    TYPER,
};
use uirq_guest::drivers::mmio::RawFrame;

use super::common::{self, SPI_A};

/// Writes the complement of a read-only word and checks it did not change.
fn read_only(frame: &RawFrame, offset: u64, name: &str) -> u32 {
    let offset = offset as usize;
    let before = frame.read32(offset).unwrap_or(0);
    frame.write32(offset, !before);
    check_eq!(
        frame.read32(offset).unwrap_or(0),
        before,
        "{name} after a write"
    );
    before
}

/// The priority field bits an implementation keeps, from a byte that was
/// written with 0xFF: n high bits set, the rest zero.
fn implemented_bits(value: u8, what: &str) -> u32 {
    let bits = value.leading_ones();
    check!(
        bits >= 4 && u32::from(value) == (0xFFu32 << (8 - bits)) & 0xFF,
        "{what} reads {value:#x} after writing 0xff: not 4 to 8 high bits"
    );
    bits
}

pub fn run() -> ! {
    let (gicd, gicc) = common::setup();
    let d = gicd.raw();
    let c = gicc.raw();
    let typer = gicd.typer();

    read_only(&d, TYPER, "GICD_TYPER");
    read_only(&d, IIDR, "GICD_IIDR");
    let pidr2 = read_only(&d, PIDR2, "GICD_PIDR2");
    check_eq!((pidr2 >> 4) & 0xF, 2, "GICD_PIDR2.ArchRev");
    let giidr = read_only(&c, gicc::IIDR, "GICC_IIDR");
    check_eq!((giidr >> 16) & 0xF, 2, "GICC_IIDR.ArchitectureVersion");

    // Beyond the implemented interrupts: RAZ/WI.
    let count = typer.interrupt_count as usize;
    if count < 1020 {
        let word = 4 * (count / 32);
        for (base, name) in [(ISENABLER, "GICD_ISENABLER"), (ISPENDR, "GICD_ISPENDR")] {
            d.write32(base as usize + word, u32::MAX);
            check_eq!(
                d.read32(base as usize + word),
                Some(0),
                "{name} word {} (ids {count}.., beyond ITLinesNumber {})",
                count / 32,
                typer.it_lines_number
            );
        }
        d.write32(ICENABLER as usize + word, u32::MAX);
        d.write8(IPRIORITYR as usize + count, 0xFF);
        check_eq!(
            d.read8(IPRIORITYR as usize + count),
            Some(0),
            "GICD_IPRIORITYR byte of id {count}, beyond ITLinesNumber"
        );
    }

    // ITARGETSR: banked bytes read-only, own bit (RAZ on a uniprocessor).
    let own = if typer.cpu_count == 1 {
        0
    } else {
        common::own_bit()
    };
    for id in [0usize, 15, 16, 27, 31] {
        let offset = ITARGETSR as usize + id;
        check_eq!(d.read8(offset), Some(own), "GICD_ITARGETSR byte of id {id}");
        d.write8(offset, !own);
        check_eq!(
            d.read8(offset),
            Some(own),
            "GICD_ITARGETSR byte of id {id} after a write"
        );
    }
    if typer.cpu_count == 1 {
        let offset = ITARGETSR as usize + SPI_A.raw() as usize;
        d.write8(offset, 0xFF);
        check_eq!(
            d.read8(offset),
            Some(0),
            "uniprocessor GICD_ITARGETSR of SPI 42 (RAZ/WI)"
        );
    }

    // ICFGR0: SGIs are edge-triggered, and that cannot be changed.
    let icfgr0 = read_only(&d, ICFGR, "GICD_ICFGR0");
    check_eq!(
        icfgr0 & 0xAAAA_AAAA,
        0xAAAA_AAAA,
        "GICD_ICFGR0 edge bits (SGIs)"
    );

    // IPRIORITYR byte access, ids 40..=43 (one word).
    let word = IPRIORITYR as usize + 40;
    for (i, value) in [0x10u8, 0x20, 0x30, 0x40].into_iter().enumerate() {
        d.write8(word + i, value);
    }
    check_eq!(
        d.read32(word),
        Some(0x4030_2010),
        "GICD_IPRIORITYR word after four byte writes"
    );
    d.write32(word, 0x8070_6050);
    check_eq!(
        d.read8(word + 1),
        Some(0x60),
        "GICD_IPRIORITYR byte of id 41 after a word write"
    );
    check_eq!(
        gicd.priority(SPI_A),
        0x70,
        "GICD_IPRIORITYR of id 42 after a word write"
    );

    // SPENDSGIR / CPENDSGIR byte access, SGI 2.
    let me = common::own_bit();
    d.write8(SPENDSGIR as usize + 2, me);
    check_eq!(
        d.read8(SPENDSGIR as usize + 2),
        Some(me),
        "GICD_SPENDSGIR byte of SGI 2"
    );
    check_eq!(
        d.read32(SPENDSGIR as usize),
        Some(u32::from(me) << 16),
        "GICD_SPENDSGIR0 word"
    );
    check_eq!(
        d.read8(CPENDSGIR as usize + 2),
        Some(me),
        "GICD_CPENDSGIR byte of SGI 2"
    );
    check!(
        d.read32(ISPENDR as usize).unwrap_or(0) & 1 << 2 != 0,
        "SGI 2 set pending by GICD_SPENDSGIR but not in GICD_ISPENDR0"
    );
    d.write8(CPENDSGIR as usize + 2, me);
    check_eq!(
        d.read8(SPENDSGIR as usize + 2),
        Some(0),
        "GICD_SPENDSGIR byte after GICD_CPENDSGIR"
    );
    check_eq!(
        d.read32(ISPENDR as usize).unwrap_or(0) & 1 << 2,
        0,
        "SGI 2 pending after CPENDSGIR"
    );

    // Priority bits: a written 0xFF keeps the implemented high bits.
    let spi_byte = IPRIORITYR as usize + SPI_A.raw() as usize;
    d.write8(spi_byte, 0xFF);
    let prio = d.read8(spi_byte).unwrap_or(0);
    let bits = implemented_bits(prio, "GICD_IPRIORITYR");
    c.write32(gicc::PMR as usize, u32::MAX);
    let pmr = c.read32(gicc::PMR as usize).unwrap_or(0);
    check!(pmr <= 0xFF, "GICC_PMR bits [31:8] not RAZ: {pmr:#x}");
    implemented_bits(pmr as u8, "GICC_PMR");
    check_eq!(
        pmr,
        u32::from(prio),
        "GICC_PMR mask vs GICD_IPRIORITYR mask"
    );
    println!(
        "regs: {} interrupt ids, {} CPU interface(s), {bits} priority bits",
        typer.interrupt_count, typer.cpu_count
    );
    common::pass()
}
