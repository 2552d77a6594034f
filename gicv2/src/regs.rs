//! The GICv2 register map: frame sizes, register offsets, interrupt ids and
//! the architectural name of every register.
//!
//! The offsets are those of the ARM Generic Interrupt Controller
//! Architecture Specification v2 (ARM IHI 0048B), Table 4-1 (distributor)
//! and Table 4-2 (CPU interface). This module needs no allocator and no
//! feature: a bare-metal driver uses it as well as a model does.
//!
//! # Register names
//!
//! [`name`] answers the name IHI 0048B prints in those tables for the
//! register an offset falls in. A register that is one of an array keeps
//! the specification's trailing `n` (`GICD_IPRIORITYRn`), so that every
//! name is a `&'static str`; [`register`] gives the same register with its
//! index, and its `Display` prints the indexed name (`GICD_IPRIORITYR8`).

use core::fmt;

/// Size of the distributor frame: 4 KiB (IHI 0048B Table 4-1 ends at
/// 0xFFC).
pub const GICD_FRAME_SIZE: u64 = 0x1000;

/// Size of the CPU interface frame: 8 KiB, because GICC_DIR sits alone at
/// 0x1000 in the second page (IHI 0048B Table 4-2).
pub const GICC_FRAME_SIZE: u64 = 0x2000;

/// Which of the two register frames an access is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// The distributor (GICD), shared by every CPU (IHI 0048B 4.3).
    Distributor,
    /// A CPU interface (GICC); each CPU sees its own at the same address
    /// (IHI 0048B 4.4).
    CpuInterface,
}

impl Frame {
    /// The frame's size in bytes.
    pub const fn size(self) -> u64 {
        match self {
            Frame::Distributor => GICD_FRAME_SIZE,
            Frame::CpuInterface => GICC_FRAME_SIZE,
        }
    }

    /// `"GICD"` or `"GICC"`, the prefix of the frame's register names.
    pub const fn prefix(self) -> &'static str {
        match self {
            Frame::Distributor => "GICD",
            Frame::CpuInterface => "GICC",
        }
    }
}

/// Distributor (GICD) register offsets, IHI 0048B Table 4-1.
pub mod gicd {
    /// Distributor Control Register.
    pub const CTLR: u64 = 0x000;
    /// Interrupt Controller Type Register (read-only).
    pub const TYPER: u64 = 0x004;
    /// Distributor Implementer Identification Register (read-only).
    pub const IIDR: u64 = 0x008;
    /// Interrupt Group Registers, one bit per interrupt.
    pub const IGROUPR: u64 = 0x080;
    /// Interrupt Set-Enable Registers, one bit per interrupt.
    pub const ISENABLER: u64 = 0x100;
    /// Interrupt Clear-Enable Registers, one bit per interrupt.
    pub const ICENABLER: u64 = 0x180;
    /// Interrupt Set-Pending Registers, one bit per interrupt.
    pub const ISPENDR: u64 = 0x200;
    /// Interrupt Clear-Pending Registers, one bit per interrupt.
    pub const ICPENDR: u64 = 0x280;
    /// Interrupt Set-Active Registers, one bit per interrupt.
    pub const ISACTIVER: u64 = 0x300;
    /// Interrupt Clear-Active Registers, one bit per interrupt.
    pub const ICACTIVER: u64 = 0x380;
    /// Interrupt Priority Registers, one byte per interrupt.
    pub const IPRIORITYR: u64 = 0x400;
    /// Interrupt Processor Targets Registers, one byte per interrupt.
    pub const ITARGETSR: u64 = 0x800;
    /// Interrupt Configuration Registers, two bits per interrupt.
    pub const ICFGR: u64 = 0xC00;
    /// Non-secure Access Control Registers (Security Extensions only).
    pub const NSACR: u64 = 0xE00;
    /// Software Generated Interrupt Register (write-only).
    pub const SGIR: u64 = 0xF00;
    /// SGI Clear-Pending Registers, one byte per SGI.
    pub const CPENDSGIR: u64 = 0xF10;
    /// SGI Set-Pending Registers, one byte per SGI.
    pub const SPENDSGIR: u64 = 0xF20;
    /// First identification register (PIDR4); the block runs to 0xFFC.
    pub const IDREGS: u64 = 0xFD0;
    /// Peripheral ID2 Register: bits `[7:4]` give the architecture version.
    pub const PIDR2: u64 = 0xFE8;
}

/// CPU interface (GICC) register offsets, IHI 0048B Table 4-2.
pub mod gicc {
    /// CPU Interface Control Register.
    pub const CTLR: u64 = 0x0000;
    /// Interrupt Priority Mask Register.
    pub const PMR: u64 = 0x0004;
    /// Binary Point Register.
    pub const BPR: u64 = 0x0008;
    /// Interrupt Acknowledge Register (read-only; reading it has effects).
    pub const IAR: u64 = 0x000C;
    /// End of Interrupt Register (write-only).
    pub const EOIR: u64 = 0x0010;
    /// Running Priority Register (read-only).
    pub const RPR: u64 = 0x0014;
    /// Highest Priority Pending Interrupt Register (read-only).
    pub const HPPIR: u64 = 0x0018;
    /// Aliased Binary Point Register.
    pub const ABPR: u64 = 0x001C;
    /// Aliased Interrupt Acknowledge Register.
    pub const AIAR: u64 = 0x0020;
    /// Aliased End of Interrupt Register.
    pub const AEOIR: u64 = 0x0024;
    /// Aliased Highest Priority Pending Interrupt Register.
    pub const AHPPIR: u64 = 0x0028;
    /// Active Priorities Registers (four words).
    pub const APR: u64 = 0x00D0;
    /// Non-secure Active Priorities Registers (four words).
    pub const NSAPR: u64 = 0x00E0;
    /// CPU Interface Identification Register (read-only).
    pub const IIDR: u64 = 0x00FC;
    /// Deactivate Interrupt Register (write-only), used with EOImode = 1.
    pub const DIR: u64 = 0x1000;
}

/// Number of SGIs: ids 0..=15 (IHI 0048B, 2.2.1).
pub const SGI_COUNT: u32 = 16;
/// Number of PPIs: ids 16..=31.
pub const PPI_COUNT: u32 = 16;
/// First SPI id.
pub const SPI_BASE: u32 = 32;
/// Largest interrupt id a GICv2 can implement (ITLinesNumber = 31 gives
/// 1020 interrupt ids, 0..=1019).
pub const MAX_INTID: u32 = 1019;
/// The id IAR returns when nothing can be acknowledged (IHI 0048B, 3.2.5).
pub const SPURIOUS: u32 = 1023;

/// An interrupt id in the range a GICv2 can implement (0..=1019).
///
/// The constructors check the range of each kind, so a value of this type is
/// always a real interrupt id: code that takes an `IntId` never has to check
/// for 1020..=1023 or for an SGI number above 15.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IntId(u32);

/// What kind of interrupt an id names (IHI 0048B, 2.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntKind {
    /// Software generated, ids 0-15, banked per CPU.
    Sgi,
    /// Private peripheral, ids 16-31, banked per CPU.
    Ppi,
    /// Shared peripheral, ids 32-1019.
    Spi,
}

impl IntId {
    /// SGI number `n` (0..=15).
    pub const fn sgi(n: u32) -> Option<Self> {
        if n < SGI_COUNT {
            Some(Self(n))
        } else {
            None
        }
    }

    /// PPI number `n` (0..=15), interrupt id `16 + n`.
    pub const fn ppi(n: u32) -> Option<Self> {
        if n < PPI_COUNT {
            Some(Self(SGI_COUNT + n))
        } else {
            None
        }
    }

    /// SPI number `n` (0..=987), interrupt id `32 + n`.
    pub const fn spi(n: u32) -> Option<Self> {
        if n <= MAX_INTID - SPI_BASE {
            Some(Self(SPI_BASE + n))
        } else {
            None
        }
    }

    /// The id `raw` if it is 0..=1019; `None` for the special ids
    /// 1020..=1023 and anything larger.
    pub const fn new(raw: u32) -> Option<Self> {
        if raw <= MAX_INTID {
            Some(Self(raw))
        } else {
            None
        }
    }

    /// The id as a number.
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// Which of SGI, PPI or SPI this id is.
    pub const fn kind(self) -> IntKind {
        if self.0 < SGI_COUNT {
            IntKind::Sgi
        } else if self.0 < SPI_BASE {
            IntKind::Ppi
        } else {
            IntKind::Spi
        }
    }

    /// True for SGIs and PPIs, whose state is banked per CPU interface.
    pub const fn is_private(self) -> bool {
        self.0 < SPI_BASE
    }
}

/// GIC architecture version reported in GICD_PIDR2 bits `[7:4]` for GICv2.
pub const PIDR2_ARCH_GICV2: u32 = 0x2 << 4;

/// One register of the map: its architectural name and, for a register
/// that is one of an array, its index (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Register {
    name: &'static str,
    index: Option<u32>,
}

impl Register {
    /// The name as IHI 0048B prints it in Tables 4-1 and 4-2: an array keeps
    /// its trailing `n` (`GICD_ISENABLERn`).
    pub const fn name(self) -> &'static str {
        self.name
    }

    /// Which register of its array this is (`Some(1)` for
    /// GICD_ISENABLER1), or `None` for a register that stands alone.
    pub const fn index(self) -> Option<u32> {
        self.index
    }
}

impl fmt::Display for Register {
    /// The indexed name: `GICD_ISENABLER1`, or `GICC_IAR`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}{i}", self.name.trim_end_matches('n')),
            None => f.write_str(self.name),
        }
    }
}

/// A row of Table 4-1 or 4-2: `count` 32-bit registers from `offset`.
struct Row {
    offset: u64,
    count: u64,
    name: &'static str,
}

const fn one(offset: u64, name: &'static str) -> Row {
    Row {
        offset,
        count: 1,
        name,
    }
}

const fn array(offset: u64, count: u64, name: &'static str) -> Row {
    Row {
        offset,
        count,
        name,
    }
}

/// IHI 0048B Table 4-1. The bit-per-interrupt arrays have 32 registers
/// (1024 ids), IPRIORITYR and ITARGETSR 255 (ids 0-1019; the word at
/// 0x7FC and 0xBFC is reserved), ICFGR 64 and NSACR 64. The identification
/// block (4.3.18) is named as the GIC-400 names it; its PIDR2 holds ArchRev.
const GICD_ROWS: &[Row] = &[
    one(gicd::CTLR, "GICD_CTLR"),
    one(gicd::TYPER, "GICD_TYPER"),
    one(gicd::IIDR, "GICD_IIDR"),
    array(gicd::IGROUPR, 32, "GICD_IGROUPRn"),
    array(gicd::ISENABLER, 32, "GICD_ISENABLERn"),
    array(gicd::ICENABLER, 32, "GICD_ICENABLERn"),
    array(gicd::ISPENDR, 32, "GICD_ISPENDRn"),
    array(gicd::ICPENDR, 32, "GICD_ICPENDRn"),
    array(gicd::ISACTIVER, 32, "GICD_ISACTIVERn"),
    array(gicd::ICACTIVER, 32, "GICD_ICACTIVERn"),
    array(gicd::IPRIORITYR, 255, "GICD_IPRIORITYRn"),
    array(gicd::ITARGETSR, 255, "GICD_ITARGETSRn"),
    array(gicd::ICFGR, 64, "GICD_ICFGRn"),
    array(gicd::NSACR, 64, "GICD_NSACRn"),
    one(gicd::SGIR, "GICD_SGIR"),
    array(gicd::CPENDSGIR, 4, "GICD_CPENDSGIRn"),
    array(gicd::SPENDSGIR, 4, "GICD_SPENDSGIRn"),
    one(0xFD0, "GICD_PIDR4"),
    one(0xFD4, "GICD_PIDR5"),
    one(0xFD8, "GICD_PIDR6"),
    one(0xFDC, "GICD_PIDR7"),
    one(0xFE0, "GICD_PIDR0"),
    one(0xFE4, "GICD_PIDR1"),
    one(gicd::PIDR2, "GICD_PIDR2"),
    one(0xFEC, "GICD_PIDR3"),
    one(0xFF0, "GICD_CIDR0"),
    one(0xFF4, "GICD_CIDR1"),
    one(0xFF8, "GICD_CIDR2"),
    one(0xFFC, "GICD_CIDR3"),
];

/// IHI 0048B Table 4-2.
const GICC_ROWS: &[Row] = &[
    one(gicc::CTLR, "GICC_CTLR"),
    one(gicc::PMR, "GICC_PMR"),
    one(gicc::BPR, "GICC_BPR"),
    one(gicc::IAR, "GICC_IAR"),
    one(gicc::EOIR, "GICC_EOIR"),
    one(gicc::RPR, "GICC_RPR"),
    one(gicc::HPPIR, "GICC_HPPIR"),
    one(gicc::ABPR, "GICC_ABPR"),
    one(gicc::AIAR, "GICC_AIAR"),
    one(gicc::AEOIR, "GICC_AEOIR"),
    one(gicc::AHPPIR, "GICC_AHPPIR"),
    array(gicc::APR, 4, "GICC_APRn"),
    array(gicc::NSAPR, 4, "GICC_NSAPRn"),
    one(gicc::IIDR, "GICC_IIDR"),
    one(gicc::DIR, "GICC_DIR"),
];

/// The register that byte `offset` of `frame` belongs to, or `None` for a
/// reserved or IMPLEMENTATION DEFINED offset, or one past the frame.
///
/// Any byte of a register names it: 0x401 is byte 1 of GICD_IPRIORITYR0,
/// the byte that holds interrupt 1's priority.
pub fn register(frame: Frame, offset: u64) -> Option<Register> {
    let rows = match frame {
        Frame::Distributor => GICD_ROWS,
        Frame::CpuInterface => GICC_ROWS,
    };
    let word = offset & !3;
    rows.iter().find_map(|row| {
        let n = word.checked_sub(row.offset)? / 4;
        (n < row.count).then_some(Register {
            name: row.name,
            // A row has at most 255 registers.
            index: (row.count > 1).then_some(n as u32),
        })
    })
}

/// The architectural name of the register at `offset` of `frame`, as
/// IHI 0048B prints it (`"GICC_IAR"`, `"GICD_ISENABLERn"`); `None` where
/// no register is. [`register`] gives the index within an array too.
pub fn name(frame: Frame, offset: u64) -> Option<&'static str> {
    register(frame, offset).map(Register::name)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;

    use super::*;

    #[test]
    fn constructors_check_their_ranges() {
        assert_eq!(IntId::sgi(15).map(IntId::raw), Some(15));
        assert_eq!(IntId::sgi(16), None);
        assert_eq!(IntId::ppi(15).map(IntId::raw), Some(31));
        assert_eq!(IntId::ppi(16), None);
        assert_eq!(IntId::spi(0).map(IntId::raw), Some(32));
        assert_eq!(IntId::spi(987).map(IntId::raw), Some(1019));
        assert_eq!(IntId::spi(988), None);
        assert_eq!(IntId::new(1019).map(IntId::raw), Some(1019));
        assert_eq!(IntId::new(SPURIOUS), None);
        assert_eq!(IntId::new(1020), None);
    }

    #[test]
    fn kinds_and_banking() {
        assert_eq!(IntId::new(0).unwrap().kind(), IntKind::Sgi);
        assert_eq!(IntId::new(16).unwrap().kind(), IntKind::Ppi);
        assert_eq!(IntId::new(32).unwrap().kind(), IntKind::Spi);
        assert!(IntId::new(31).unwrap().is_private());
        assert!(!IntId::new(32).unwrap().is_private());
    }

    // IHI 0048B Tables 4-1 and 4-2: every named offset of the map.
    #[test]
    fn names_of_single_registers() {
        use Frame::{CpuInterface as C, Distributor as D};
        assert_eq!(name(C, gicc::IAR), Some("GICC_IAR"));
        assert_eq!(name(C, gicc::EOIR), Some("GICC_EOIR"));
        assert_eq!(name(C, gicc::DIR), Some("GICC_DIR"));
        assert_eq!(name(C, gicc::IIDR), Some("GICC_IIDR"));
        assert_eq!(name(D, gicd::CTLR), Some("GICD_CTLR"));
        assert_eq!(name(D, gicd::SGIR), Some("GICD_SGIR"));
        assert_eq!(name(D, gicd::PIDR2), Some("GICD_PIDR2"));
        assert_eq!(name(D, gicd::IDREGS), Some("GICD_PIDR4"));
        assert_eq!(name(D, 0xFFC), Some("GICD_CIDR3"));
        // The same offset means different registers in the two frames.
        assert_eq!(name(D, 0x000C), None);
        assert_eq!(name(C, 0x000C), Some("GICC_IAR"));
    }

    #[test]
    fn arrays_keep_their_n_and_carry_an_index() {
        use Frame::{CpuInterface as C, Distributor as D};
        assert_eq!(name(D, gicd::ISENABLER + 4), Some("GICD_ISENABLERn"));
        let r = register(D, gicd::ISENABLER + 4).unwrap();
        assert_eq!(r.index(), Some(1));
        assert_eq!(format!("{r}"), "GICD_ISENABLER1");
        // Byte 0x41B holds interrupt 27's priority: GICD_IPRIORITYR6.
        let r = register(D, gicd::IPRIORITYR + 27).unwrap();
        assert_eq!(format!("{r}"), "GICD_IPRIORITYR6");
        assert_eq!(
            format!("{}", register(D, 0xBF8).unwrap()),
            "GICD_ITARGETSR254"
        );
        assert_eq!(format!("{}", register(C, 0xEC).unwrap()), "GICC_NSAPR3");
        assert_eq!(format!("{}", register(C, gicc::PMR).unwrap()), "GICC_PMR");
        assert_eq!(register(C, gicc::PMR).unwrap().index(), None);
    }

    // Reserved and IMPLEMENTATION DEFINED offsets, and offsets past the
    // frame, name nothing.
    #[test]
    fn holes_have_no_name() {
        use Frame::{CpuInterface as C, Distributor as D};
        for offset in [0x00C, 0x07C, 0x7FC, 0xBFC, 0xD00, 0xF04, 0xF30, 0xFCC] {
            assert_eq!(name(D, offset), None, "GICD {offset:#x}");
        }
        for offset in [0x2C, 0x40, 0xCC, 0xF0, 0x1004, 0x1FFC] {
            assert_eq!(name(C, offset), None, "GICC {offset:#x}");
        }
        assert_eq!(name(D, GICD_FRAME_SIZE), None);
        assert_eq!(name(C, GICC_FRAME_SIZE), None);
        assert_eq!(name(C, u64::MAX), None);
    }

    // IHI 0048B Tables 4-1 and 4-2: GICD ends at 0xFFC, GICC_DIR is at
    // 0x1000 of an 8 KiB frame.
    #[test]
    fn frame_sizes() {
        assert_eq!(Frame::Distributor.size(), 4096);
        assert_eq!(Frame::CpuInterface.size(), 8192);
        const { assert!(gicc::DIR < GICC_FRAME_SIZE && gicc::DIR >= 0x1000) };
        const { assert!(gicd::PIDR2 < GICD_FRAME_SIZE) };
    }
}
