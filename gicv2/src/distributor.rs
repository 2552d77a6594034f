//! The distributor (GICD) register decode (IHI 0048B 4.3, Table 4-1).
//!
//! Bit-per-interrupt registers (IGROUPR, IS/ICENABLER, IS/ICPENDR,
//! IS/ICACTIVER) cover 32 ids per word; IPRIORITYR and ITARGETSR one byte
//! per id; ICFGR two bits per id. Bits and bytes for ids this GIC does not
//! implement are RAZ/WI (IHI 0048B 4.3.5 and following), and so is every
//! offset with no register behind it. Word 0 of each banked register (ids
//! 0-31) shows the accessing CPU's own SGIs and PPIs.

use crate::access::{self, Width};
use crate::regs::{gicd, IntId, IntKind, GICD_FRAME_SIZE as FRAME_SIZE, SGI_COUNT};
use crate::state::IrqState;
use crate::{Frame, Gicv2, GICD_CTLR_ENABLE_GRP0, GICD_CTLR_ENABLE_GRP1};

/// The frame, as [`Event::Ignored`](crate::Event::Ignored) names it.
const GICD: Frame = Frame::Distributor;

/// GICD_IIDR: ProductID 0, variant 0, revision 0, implementer 0x43B
/// (IHI 0048B 4.3.3; the JEP106 code QEMU's model also reports).
pub(super) const GICD_IIDR_VALUE: u32 = 0x43B;

/// The identification block at 0xFD0-0xFFC (IHI 0048B 4.3.18): PIDR4-7,
/// PIDR0-3, CIDR0-3, one byte in each word. PIDR2 bits [7:4] = 2 says GICv2;
/// these are the GIC-400's values, which QEMU's GICv2 also reports.
const ID_REGS: [u32; 12] = [
    0x04, 0x00, 0x00, 0x00, // PIDR4-7
    0x90, 0xB4, 0x2B, 0x00, // PIDR0-3
    0x0D, 0xF0, 0x05, 0xB1, // CIDR0-3
];

/// GICD_SGIR.TargetListFilter values (IHI 0048B 4.3.15, Table 4-21).
const SGIR_FILTER_LIST: u32 = 0;
const SGIR_FILTER_OTHERS: u32 = 1;
const SGIR_FILTER_SELF: u32 = 2;

/// The bit-per-interrupt registers, by what a set bit in a write does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BitReg {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

impl Gicv2 {
    /// A guest load from the distributor frame, made by CPU `cpu`.
    pub fn distributor_read(&mut self, cpu: usize, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if cpu >= self.cpus.len() {
            let reason = "distributor read from absent CPU (RAZ)";
            self.ignored(cpu, GICD, offset, data.len(), false, reason);
            return;
        }
        match access::width(offset, data.len()) {
            Some(Width::Word) => {
                let value = self.gicd_read_word(cpu, offset);
                access::fill(data, value);
            }
            Some(Width::Byte) if byte_accessible(offset) => {
                let value = self.gicd_read_byte(cpu, offset);
                access::fill(data, u32::from(value));
            }
            _ => self.ignored(cpu, GICD, offset, data.len(), false, access::BAD_SIZE),
        }
    }

    /// A guest store to the distributor frame, made by CPU `cpu`.
    pub fn distributor_write(&mut self, cpu: usize, offset: u64, data: &[u8]) {
        if cpu >= self.cpus.len() {
            let reason = "distributor write from absent CPU (ignored)";
            self.ignored(cpu, GICD, offset, data.len(), true, reason);
            return;
        }
        match access::width(offset, data.len()) {
            Some(Width::Word) => self.gicd_write_word(cpu, offset, access::value(data)),
            Some(Width::Byte) if byte_accessible(offset) => {
                self.gicd_write_byte(cpu, offset, (access::value(data) & 0xFF) as u8);
            }
            _ => self.ignored(cpu, GICD, offset, data.len(), true, access::BAD_SIZE),
        }
    }

    fn gicd_read_word(&mut self, cpu: usize, offset: u64) -> u32 {
        if byte_accessible(offset) {
            // The byte registers read as four independent bytes. `offset` is
            // below the frame size, so `offset + i` cannot overflow.
            return (0..4u64).fold(0, |v, i| {
                v | u32::from(self.gicd_read_byte(cpu, offset + i)) << (8 * i)
            });
        }
        match offset {
            gicd::CTLR => self.gicd_ctlr,
            gicd::TYPER => self.typer(),
            gicd::IIDR => GICD_IIDR_VALUE,
            o if (gicd::IGROUPR..gicd::IPRIORITYR).contains(&o) => {
                let (reg, index) = bit_reg(o);
                self.read_bits(cpu, reg, index)
            }
            o if (gicd::ICFGR..gicd::ICFGR + 0x100).contains(&o) => {
                self.read_icfgr(cpu, ((o - gicd::ICFGR) / 4) as u32)
            }
            gicd::SGIR => {
                let reason = "read of write-only GICD_SGIR (RAZ)";
                self.ignored(cpu, GICD, offset, 4, false, reason);
                0
            }
            o if (gicd::IDREGS..FRAME_SIZE).contains(&o) => {
                let i = ((o - gicd::IDREGS) / 4) as usize;
                ID_REGS.get(i).copied().unwrap_or(0)
            }
            o => {
                self.ignored(cpu, GICD, o, 4, false, access::UNMAPPED);
                0
            }
        }
    }

    fn gicd_write_word(&mut self, cpu: usize, offset: u64, value: u32) {
        if byte_accessible(offset) {
            for (i, byte) in (0..4u64).zip(value.to_le_bytes()) {
                self.gicd_write_byte(cpu, offset + i, byte);
            }
            return;
        }
        match offset {
            // IHI 0048B 4.3.1: without the Security Extensions, bit 0 enables
            // Group 0 and bit 1 Group 1 forwarding; the rest is reserved.
            gicd::CTLR => self.gicd_ctlr = value & (GICD_CTLR_ENABLE_GRP0 | GICD_CTLR_ENABLE_GRP1),
            o if (gicd::IGROUPR..gicd::IPRIORITYR).contains(&o) => {
                let (reg, index) = bit_reg(o);
                self.write_bits(cpu, reg, index, value);
            }
            o if (gicd::ICFGR..gicd::ICFGR + 0x100).contains(&o) => {
                self.write_icfgr(cpu, ((o - gicd::ICFGR) / 4) as u32, value);
            }
            gicd::SGIR => self.write_sgir(cpu, value),
            gicd::TYPER | gicd::IIDR => {
                let reason = "write to read-only GICD register (ignored)";
                self.ignored(cpu, GICD, offset, 4, true, reason);
            }
            o if (gicd::IDREGS..FRAME_SIZE).contains(&o) => {
                let reason = "write to GICD identification register (ignored)";
                self.ignored(cpu, GICD, o, 4, true, reason);
            }
            o => self.ignored(cpu, GICD, o, 4, true, access::UNMAPPED),
        }
    }

    /// GICD_TYPER (IHI 0048B 4.3.2): ITLinesNumber [4:0], CPUNumber [7:5]
    /// (number of interfaces minus one), SecurityExtn [10] = 0, LSPI = 0.
    fn typer(&self) -> u32 {
        let cpus = (self.cpus.len().saturating_sub(1) & 0x7) as u32;
        (self.config.it_lines_number() & 0x1F) | cpus << 5
    }

    /// One byte of IPRIORITYR, ITARGETSR, CPENDSGIR or SPENDSGIR.
    fn gicd_read_byte(&self, cpu: usize, offset: u64) -> u8 {
        match offset {
            // IHI 0048B 4.3.11: one priority byte per id; all 8 bits are
            // implemented.
            o if (gicd::IPRIORITYR..gicd::ITARGETSR).contains(&o) => self
                .byte_irq(o - gicd::IPRIORITYR)
                .and_then(|id| self.irqs.get(cpu, id))
                .map_or(0, |irq| irq.priority),
            o if (gicd::ITARGETSR..gicd::ICFGR).contains(&o) => {
                match self.byte_irq(o - gicd::ITARGETSR) {
                    // IHI 0048B 4.3.12: RAZ/WI on a uniprocessor GIC.
                    _ if self.cpus.len() == 1 => 0,
                    None => 0,
                    // Banked ids read as the accessing CPU's own bit.
                    Some(id) if id.is_private() => 1u8 << (cpu & 7),
                    Some(id) => self.irqs.spi_targets(id),
                }
            }
            // IHI 0048B 4.3.16, 4.3.17: one byte per SGI, one bit per
            // source CPU, for the SGIs pending at the accessing CPU.
            o if (gicd::CPENDSGIR..gicd::SPENDSGIR).contains(&o) => {
                sgi_of(o - gicd::CPENDSGIR).map_or(0, |id| self.irqs.sgi_sources(cpu, id))
            }
            o if (gicd::SPENDSGIR..gicd::SPENDSGIR + 0x10).contains(&o) => {
                sgi_of(o - gicd::SPENDSGIR).map_or(0, |id| self.irqs.sgi_sources(cpu, id))
            }
            _ => 0,
        }
    }

    fn gicd_write_byte(&mut self, cpu: usize, offset: u64, value: u8) {
        let cpu_mask = self.config.cpu_mask();
        match offset {
            o if (gicd::IPRIORITYR..gicd::ITARGETSR).contains(&o) => {
                if let Some(irq) = self
                    .byte_irq(o - gicd::IPRIORITYR)
                    .and_then(|id| self.irqs.get_mut(cpu, id))
                {
                    irq.priority = value;
                }
            }
            o if (gicd::ITARGETSR..gicd::ICFGR).contains(&o) => {
                // IHI 0048B 4.3.12: read-only for SGIs and PPIs, RAZ/WI on a
                // uniprocessor GIC, bits for absent CPU interfaces RAZ/WI.
                if let Some(id) = self.byte_irq(o - gicd::ITARGETSR) {
                    if !id.is_private() && self.cpus.len() > 1 {
                        self.irqs.set_spi_targets(id, value & cpu_mask);
                    }
                }
            }
            o if (gicd::CPENDSGIR..gicd::SPENDSGIR).contains(&o) => {
                if let Some(id) = sgi_of(o - gicd::CPENDSGIR) {
                    let s = self.irqs.sgi_sources(cpu, id);
                    self.irqs.set_sgi_sources(cpu, id, s & !value);
                }
            }
            o if (gicd::SPENDSGIR..gicd::SPENDSGIR + 0x10).contains(&o) => {
                if let Some(id) = sgi_of(o - gicd::SPENDSGIR) {
                    let s = self.irqs.sgi_sources(cpu, id);
                    let added = value & cpu_mask & !s;
                    self.irqs.set_sgi_sources(cpu, id, s | added);
                    for source in (0..8).filter(|b| added & (1 << b) != 0) {
                        self.emit_pending(cpu, id, Some(source));
                    }
                }
            }
            _ => {}
        }
    }

    /// The implemented id a byte register's byte `n` belongs to.
    fn byte_irq(&self, n: u64) -> Option<IntId> {
        self.irqs.implemented(u32::try_from(n).ok()?)
    }

    /// Reads bit-register word `index` (ids `32 * index ..`).
    fn read_bits(&self, cpu: usize, reg: BitReg, index: u32) -> u32 {
        let mut value = 0;
        for bit in 0..32 {
            let Some(id) = self.irqs.implemented(index * 32 + bit) else {
                continue;
            };
            let Some(irq) = self.irqs.get(cpu, id) else {
                continue;
            };
            let set = match reg {
                BitReg::Group => irq.group1,
                BitReg::SetEnable | BitReg::ClearEnable => irq.enabled,
                BitReg::SetPending | BitReg::ClearPending => self.irqs.pending(cpu, id),
                BitReg::SetActive | BitReg::ClearActive => irq.active,
            };
            value |= u32::from(set) << bit;
        }
        value
    }

    /// Writes bit-register word `index`: IGROUPR takes every bit; the
    /// set/clear registers act on the bits written as 1 and ignore zeros
    /// (IHI 0048B 4.3.4 to 4.3.10).
    fn write_bits(&mut self, cpu: usize, reg: BitReg, index: u32, value: u32) {
        for bit in 0..32 {
            let one = value & (1 << bit) != 0;
            if reg != BitReg::Group && !one {
                continue;
            }
            let Some(id) = self.irqs.implemented(index * 32 + bit) else {
                continue;
            };
            let sgi = id.kind() == IntKind::Sgi;
            let Some(irq) = self.irqs.get_mut(cpu, id) else {
                continue;
            };
            match reg {
                BitReg::Group => irq.group1 = one,
                // IHI 0048B 4.3.5, 4.3.6: SGI enables are IMPLEMENTATION
                // DEFINED; here they are RAO/WI. 4.3.7, 4.3.8: in GICv2 SGI
                // pending state is set and cleared via GICD_SPENDSGIR and
                // GICD_CPENDSGIR, so these SGI bits are WI.
                BitReg::SetEnable
                | BitReg::ClearEnable
                | BitReg::SetPending
                | BitReg::ClearPending
                    if sgi => {}
                BitReg::SetEnable => irq.enabled = true,
                BitReg::ClearEnable => irq.enabled = false,
                // A level-sensitive interrupt set pending by software stays
                // pending until acknowledged or cleared, whatever the line
                // does; clearing leaves it pending while the line is high.
                BitReg::SetPending => {
                    let was_pending = irq.pending();
                    irq.latched = true;
                    if !was_pending {
                        self.emit_pending(cpu, id, None);
                    }
                }
                BitReg::ClearPending => irq.latched = false,
                BitReg::SetActive => irq.active = true,
                BitReg::ClearActive => irq.active = false,
            }
        }
    }

    /// GICD_ICFGR word `index` (IHI 0048B 4.3.13): bit [2F+1] of each field
    /// is 1 for edge-triggered. Bit [2F] is reserved in GICv2 (RAZ here).
    /// ICFGR0 (SGIs) reads as all edge and is read-only.
    fn read_icfgr(&self, cpu: usize, index: u32) -> u32 {
        let mut value = 0;
        for field in 0..16 {
            let edge = self
                .irqs
                .implemented(index * 16 + field)
                .and_then(|id| self.irqs.get(cpu, id))
                .is_some_and(|irq: &IrqState| irq.edge);
            value |= u32::from(edge) << (2 * field + 1);
        }
        value
    }

    /// Whether PPIs are programmable is IMPLEMENTATION DEFINED
    /// (IHI 0048B 4.3.13); this model lets software program each CPU's PPIs,
    /// as QEMU does. They reset to level-sensitive, which the timer needs.
    fn write_icfgr(&mut self, cpu: usize, index: u32, value: u32) {
        if index == 0 {
            return; // SGIs: always edge-triggered, read-only.
        }
        for field in 0..16 {
            if let Some(irq) = self
                .irqs
                .implemented(index * 16 + field)
                .and_then(|id| self.irqs.get_mut(cpu, id))
            {
                irq.edge = value & (1 << (2 * field + 1)) != 0;
            }
        }
    }

    /// GICD_SGIR write (IHI 0048B 4.3.15): make SGI `SGIINTID` pending from
    /// this CPU at the CPUs the filter picks. Targets that do not exist are
    /// dropped; filter value 3 is reserved and the write is ignored.
    fn write_sgir(&mut self, cpu: usize, value: u32) {
        let Some(id) = IntId::sgi(value & (SGI_COUNT - 1)) else {
            return;
        };
        let cpu_mask = self.config.cpu_mask();
        let own = 1u8 << (cpu & 7);
        let targets = match (value >> 24) & 0x3 {
            SGIR_FILTER_LIST => ((value >> 16) & 0xFF) as u8,
            SGIR_FILTER_OTHERS => !own,
            SGIR_FILTER_SELF => own,
            _ => {
                let reason = "GICD_SGIR with reserved filter (ignored)";
                self.ignored(cpu, GICD, gicd::SGIR, 4, true, reason);
                return;
            }
        } & cpu_mask;
        for target in 0..self.cpus.len() {
            if targets & (1 << target) != 0 {
                let s = self.irqs.sgi_sources(target, id);
                self.irqs.set_sgi_sources(target, id, s | own);
                if s & own == 0 {
                    self.emit_pending(target, id, Some(cpu));
                }
            }
        }
    }
}

/// The byte-organised registers: IPRIORITYR, ITARGETSR (0x400-0xBFF) and
/// CPENDSGIR, SPENDSGIR (0xF10-0xF2F), IHI 0048B 4.1.4.
fn byte_accessible(offset: u64) -> bool {
    (gicd::IPRIORITYR..gicd::ICFGR).contains(&offset)
        || (gicd::CPENDSGIR..gicd::SPENDSGIR + 0x10).contains(&offset)
}

/// Which bit register an offset in 0x080-0x3FF is, and its word index.
fn bit_reg(offset: u64) -> (BitReg, u32) {
    let (reg, base) = match offset {
        o if o < gicd::ISENABLER => (BitReg::Group, gicd::IGROUPR),
        o if o < gicd::ICENABLER => (BitReg::SetEnable, gicd::ISENABLER),
        o if o < gicd::ISPENDR => (BitReg::ClearEnable, gicd::ICENABLER),
        o if o < gicd::ICPENDR => (BitReg::SetPending, gicd::ISPENDR),
        o if o < gicd::ISACTIVER => (BitReg::ClearPending, gicd::ICPENDR),
        o if o < gicd::ICACTIVER => (BitReg::SetActive, gicd::ISACTIVER),
        _ => (BitReg::ClearActive, gicd::ICACTIVER),
    };
    // Each block is 0x80 bytes, so the index is at most 31.
    (reg, (offset.saturating_sub(base) / 4) as u32)
}

/// The SGI a CPENDSGIR/SPENDSGIR byte offset (0..16) stands for.
fn sgi_of(n: u64) -> Option<IntId> {
    IntId::sgi(u32::try_from(n).ok()?)
}
