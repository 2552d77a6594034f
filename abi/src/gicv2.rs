//! GICv2 facts both sides use: register offsets and interrupt ids.
//!
//! The offsets are those of the ARM Generic Interrupt Controller Architecture
//! Specification v2 (ARM IHI 0048B), Table 4-1 (distributor) and Table 4-2
//! (CPU interface). The guest's `register_structs!` maps are checked against
//! these numbers by unit tests; the VMM's model decodes accesses with them.

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
    /// Peripheral ID2 Register: bits \[7:4\] give the architecture version.
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

/// PPI 11: the EL1 virtual timer (interrupt id 27). This is the
/// architecture's recommended wiring (Arm BSA) and QEMU `virt`'s.
pub const VTIMER: IntId = match IntId::ppi(11) {
    Some(id) => id,
    None => panic!(),
};

/// PPI 14: the EL1 physical timer (interrupt id 30).
pub const PTIMER: IntId = match IntId::ppi(14) {
    Some(id) => id,
    None => panic!(),
};

/// GIC architecture version reported in GICD_PIDR2 bits \[7:4\] for GICv2.
pub const PIDR2_ARCH_GICV2: u32 = 0x2 << 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_ids_are_the_virt_board_wiring() {
        assert_eq!(VTIMER.raw(), 27);
        assert_eq!(PTIMER.raw(), 30);
        assert_eq!(VTIMER.kind(), IntKind::Ppi);
    }

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
}
