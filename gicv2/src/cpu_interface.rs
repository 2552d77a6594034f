//! The CPU interface (GICC): per-CPU control, priority mask, binary point,
//! acknowledge, end of interrupt and deactivation (IHI 0048B 4.4).
//!
//! Only aligned 32-bit accesses are supported (IHI 0048B 4.1.4). The frame
//! is 8 KiB: GICC_DIR sits alone at 0x1000 in the second page.

use crate::access::{self, Width};
use crate::priority::{self, ActivePriorities, APR_REGS, MIN_ABPR, MIN_BPR};
use crate::regs::{gicc, IntId, IntKind, GICC_FRAME_SIZE as FRAME_SIZE, SPURIOUS};
use crate::{Candidate, Event, Frame, Gicv2};

/// The frame, as [`Event::Ignored`] names it.
const GICC: Frame = Frame::CpuInterface;

/// GICC_CTLR.EnableGrp0 (IHI 0048B 4.4.1).
const CTLR_ENABLE_GRP0: u32 = 1 << 0;
/// GICC_CTLR.EnableGrp1.
const CTLR_ENABLE_GRP1: u32 = 1 << 1;
/// GICC_CTLR.AckCtl: GICC_IAR may acknowledge Group 1 interrupts.
const CTLR_ACK_CTL: u32 = 1 << 2;
/// GICC_CTLR.FIQEn: Group 0 is signalled on FIQ.
const CTLR_FIQ_EN: u32 = 1 << 3;
/// GICC_CTLR.CBPR: GICC_BPR sets the binary point for both groups.
const CTLR_CBPR: u32 = 1 << 4;
/// GICC_CTLR.EOImodeS: EOIR only drops priority; DIR deactivates. Without
/// the Security Extensions this is the EOImode bit for every access.
const CTLR_EOIMODE: u32 = 1 << 9;
/// Bits of GICC_CTLR that hold a value: EnableGrp0/1, AckCtl, FIQEn, CBPR,
/// the four bypass-disable bits, EOImodeS and EOImodeNS (IHI 0048B 4.4.1).
/// The bypass-disable bits and EOImodeNS are stored but have no effect: a
/// VM has no bypass path and no Non-secure state.
const CTLR_WRITABLE: u32 = 0x7FF;

/// Interrupt id reported when the highest-priority pending interrupt is
/// Group 1 and GICC_IAR may not take it (IHI 0048B 3.2.5, 4.4.4).
const GROUP1_ONLY: u32 = 1022;

/// GICC_IIDR: ProductID 0, architecture version 2, revision 0, implementer
/// 0x43B (IHI 0048B 4.4.14; the JEP106 code QEMU's model also reports).
pub(super) const GICC_IIDR_VALUE: u32 = (0x2 << 16) | 0x43B;

/// One CPU interface's registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CpuInterface {
    ctlr: u32,
    pmr: u8,
    bpr: u8,
    abpr: u8,
    active: ActivePriorities,
}

impl CpuInterface {
    /// Reset state: disabled, priority mask 0 (masks everything), smallest
    /// binary points, nothing active (IHI 0048B Table 4-2).
    pub(super) fn new() -> Self {
        Self {
            ctlr: 0,
            pmr: 0,
            bpr: MIN_BPR,
            abpr: MIN_ABPR,
            active: ActivePriorities::default(),
        }
    }

    /// GICC_CTLR enables signalling of this group.
    pub(super) fn group_enabled(&self, group1: bool) -> bool {
        let bit = if group1 {
            CTLR_ENABLE_GRP1
        } else {
            CTLR_ENABLE_GRP0
        };
        self.ctlr & bit != 0
    }

    /// GICC_CTLR.FIQEn.
    pub(super) fn fiq_en(&self) -> bool {
        self.ctlr & CTLR_FIQ_EN != 0
    }

    /// GICC_PMR.
    pub(super) fn pmr(&self) -> u8 {
        self.pmr
    }

    /// The group priority of `priority` for this interface's binary points:
    /// Group 1 uses GICC_ABPR unless CBPR makes GICC_BPR common
    /// (IHI 0048B 3.3.4, 4.4.3, 4.4.8).
    pub(super) fn group_priority(&self, priority: u8, group1: bool) -> u8 {
        let shift = if group1 && self.ctlr & CTLR_CBPR == 0 {
            self.abpr
        } else {
            self.bpr.saturating_add(1)
        };
        priority::group_priority(priority, shift)
    }

    /// The running priority (IHI 0048B 4.4.6): idle is 0x100.
    pub(super) fn running_priority(&self) -> u16 {
        self.active.running_priority()
    }
}

impl Gicv2 {
    /// A guest load from the CPU interface frame of CPU `cpu`.
    pub fn cpu_interface_read(&mut self, cpu: usize, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if cpu >= self.cpus.len() {
            let reason = "CPU interface read from absent CPU (RAZ)";
            self.ignored(cpu, GICC, offset, data.len(), false, reason);
            return;
        }
        if access::width(offset, data.len()) != Some(Width::Word) {
            self.ignored(cpu, GICC, offset, data.len(), false, access::BAD_SIZE);
            return;
        }
        let value = self.gicc_read_word(cpu, offset);
        access::fill(data, value);
    }

    /// A guest store to the CPU interface frame of CPU `cpu`.
    pub fn cpu_interface_write(&mut self, cpu: usize, offset: u64, data: &[u8]) {
        if cpu >= self.cpus.len() {
            let reason = "CPU interface write from absent CPU (ignored)";
            self.ignored(cpu, GICC, offset, data.len(), true, reason);
            return;
        }
        if access::width(offset, data.len()) != Some(Width::Word) {
            self.ignored(cpu, GICC, offset, data.len(), true, access::BAD_SIZE);
            return;
        }
        self.gicc_write_word(cpu, offset, access::value(data));
    }

    fn gicc_read_word(&mut self, cpu: usize, offset: u64) -> u32 {
        let Some(cpu_if) = self.cpus.get(cpu) else {
            return 0;
        };
        match offset {
            gicc::CTLR => cpu_if.ctlr,
            gicc::PMR => u32::from(cpu_if.pmr),
            gicc::BPR => u32::from(cpu_if.bpr),
            gicc::ABPR => u32::from(cpu_if.abpr),
            // IHI 0048B 4.4.6: 0xFF when no interrupt is active.
            gicc::RPR => u32::from(cpu_if.running_priority().min(0xFF)),
            gicc::IAR => self.acknowledge(cpu, false),
            gicc::AIAR => self.acknowledge(cpu, true),
            gicc::HPPIR => self.hppir(cpu, false),
            gicc::AHPPIR => self.hppir(cpu, true),
            o if (gicc::APR..gicc::APR + 4 * APR_REGS as u64).contains(&o) => {
                apr_index(o, gicc::APR).map_or(0, |i| cpu_if.active.group0[i])
            }
            o if (gicc::NSAPR..gicc::NSAPR + 4 * APR_REGS as u64).contains(&o) => {
                apr_index(o, gicc::NSAPR).map_or(0, |i| cpu_if.active.group1[i])
            }
            gicc::IIDR => GICC_IIDR_VALUE,
            gicc::EOIR | gicc::AEOIR | gicc::DIR => {
                let reason = "read of write-only GICC register (RAZ)";
                self.ignored(cpu, GICC, offset, 4, false, reason);
                0
            }
            o => {
                self.ignored(cpu, GICC, o, 4, false, access::UNMAPPED);
                0
            }
        }
    }

    fn gicc_write_word(&mut self, cpu: usize, offset: u64, value: u32) {
        match offset {
            gicc::EOIR => self.end_of_interrupt(cpu, value, false),
            gicc::AEOIR => self.end_of_interrupt(cpu, value, true),
            gicc::DIR => self.deactivate_write(cpu, value),
            gicc::IAR | gicc::AIAR | gicc::RPR | gicc::HPPIR | gicc::AHPPIR | gicc::IIDR => {
                let reason = "write to read-only GICC register (ignored)";
                self.ignored(cpu, GICC, offset, 4, true, reason);
            }
            o if o < FRAME_SIZE => self.gicc_write_plain(cpu, o, value),
            o => self.ignored(cpu, GICC, o, 4, true, access::UNMAPPED),
        }
    }

    /// Writes to the registers that are plain storage.
    fn gicc_write_plain(&mut self, cpu: usize, offset: u64, value: u32) {
        let Some(cpu_if) = self.cpus.get_mut(cpu) else {
            return;
        };
        match offset {
            gicc::CTLR => cpu_if.ctlr = value & CTLR_WRITABLE,
            // IHI 0048B 4.4.2: all 8 priority bits are implemented.
            gicc::PMR => cpu_if.pmr = (value & 0xFF) as u8,
            // IHI 0048B 4.4.3: a value below the minimum reads back as the
            // minimum.
            gicc::BPR => cpu_if.bpr = binary_point(value, MIN_BPR),
            gicc::ABPR => cpu_if.abpr = binary_point(value, MIN_ABPR),
            // IHI 0048B 4.4.12: software writes the APRs only to restore a
            // saved state; this model stores what it is given.
            o if (gicc::APR..gicc::APR + 4 * APR_REGS as u64).contains(&o) => {
                if let Some(r) =
                    apr_index(o, gicc::APR).and_then(|i| cpu_if.active.group0.get_mut(i))
                {
                    *r = value;
                }
            }
            o if (gicc::NSAPR..gicc::NSAPR + 4 * APR_REGS as u64).contains(&o) => {
                if let Some(r) =
                    apr_index(o, gicc::NSAPR).and_then(|i| cpu_if.active.group1.get_mut(i))
                {
                    *r = value;
                }
            }
            o => self.ignored(cpu, GICC, o, 4, true, access::UNMAPPED),
        }
    }

    /// The id GICC_IAR (or, for `alias`, GICC_AIAR) reports for candidate
    /// `c`, or the special id it answers instead (IHI 0048B 4.4.4, 4.4.9):
    /// the Group 1 view never sees Group 0 (1023); the plain view sees
    /// Group 1 only with AckCtl (1022 otherwise).
    fn view(&self, cpu: usize, c: Candidate, alias: bool) -> Result<Candidate, u32> {
        let ack_ctl = self
            .cpus
            .get(cpu)
            .is_some_and(|i| i.ctlr & CTLR_ACK_CTL != 0);
        match (alias, c.group1) {
            (true, false) => Err(SPURIOUS),
            (false, true) if !ack_ctl => Err(GROUP1_ONLY),
            _ => Ok(c),
        }
    }

    /// GICC_HPPIR / GICC_AHPPIR: the highest-priority pending interrupt
    /// above the priority mask, without acknowledging it; the source CPU of
    /// an SGI in bits [12:10] (IHI 0048B 4.4.7, 4.4.11).
    fn hppir(&self, cpu: usize, alias: bool) -> u32 {
        let Some(c) = self.pending_above_mask(cpu) else {
            return SPURIOUS;
        };
        match self.view(cpu, c, alias) {
            Ok(c) => c.id.raw() | self.sgi_source_field(cpu, c.id),
            Err(special) => special,
        }
    }

    /// Bits [12:10] of IAR/HPPIR: the lowest-numbered CPU that has this SGI
    /// pending here; 0 for other interrupts (IHI 0048B 4.4.4).
    fn sgi_source_field(&self, cpu: usize, id: IntId) -> u32 {
        if id.kind() != IntKind::Sgi {
            return 0;
        }
        let sources = self.irqs.sgi_sources(cpu, id);
        (sources.trailing_zeros() & 0x7) << 10
    }

    /// GICC_IAR / GICC_AIAR read: acknowledge the signalled interrupt
    /// (IHI 0048B 3.2.4, 4.4.4). It becomes active (and stays pending if
    /// its level-sensitive line is still high); its group priority becomes
    /// the running priority. Answers 1023 if nothing is signalled.
    fn acknowledge(&mut self, cpu: usize, alias: bool) -> u32 {
        let Some(c) = self.signalled(cpu) else {
            return SPURIOUS;
        };
        let c = match self.view(cpu, c, alias) {
            Ok(c) => c,
            Err(special) => return special,
        };
        let source = self.sgi_source_field(cpu, c.id);
        if c.id.kind() == IntKind::Sgi {
            // N-N model (IHI 0048B 1.4.3): only the reported source's SGI
            // is taken; others stay pending.
            let sources = self.irqs.sgi_sources(cpu, c.id);
            self.irqs
                .set_sgi_sources(cpu, c.id, sources & sources.wrapping_sub(1));
        }
        if let Some(irq) = self.irqs.get_mut(cpu, c.id) {
            irq.latched = false;
            irq.active = true;
        }
        if let Some(cpu_if) = self.cpus.get_mut(cpu) {
            let gp = cpu_if.group_priority(c.priority, c.group1);
            cpu_if.active.activate(c.group1, gp);
        }
        self.emit(|| Event::Acknowledged {
            cpu,
            id: c.id,
            source: (c.id.kind() == IntKind::Sgi).then_some((source >> 10) as usize),
        });
        c.id.raw() | source
    }

    /// GICC_EOIR / GICC_AEOIR write (IHI 0048B 4.4.5, 4.4.10): priority drop,
    /// and with EOImode = 0 also deactivation. Writes naming a spurious or
    /// unimplemented id are ignored (IHI 0048B 4.4.5); an EOI with nothing
    /// active, or (EOImode = 0) for an interrupt that is not active, is
    /// UNPREDICTABLE and ignored here. AEOIR ignores Group 0 interrupts.
    fn end_of_interrupt(&mut self, cpu: usize, value: u32, alias: bool) {
        let Some(id) = self.irqs.implemented(value & 0x3FF) else {
            return;
        };
        let Some(irq) = self.irqs.get(cpu, id) else {
            return;
        };
        let (group1, active) = (irq.group1, irq.active);
        let Some(cpu_if) = self.cpus.get_mut(cpu) else {
            return;
        };
        let split = cpu_if.ctlr & CTLR_EOIMODE != 0;
        let refused = if cpu_if.active.is_empty() {
            Some("EOI with no active interrupt (ignored)")
        } else if alias && !group1 {
            Some("AEOIR for a Group 0 interrupt (ignored)")
        } else if !split && !active {
            Some("EOI for an inactive interrupt (ignored)")
        } else {
            cpu_if.active.drop_highest(group1);
            None
        };
        if let Some(reason) = refused {
            let offset = if alias { gicc::AEOIR } else { gicc::EOIR };
            self.ignored(cpu, GICC, offset, 4, true, reason);
            return;
        }
        self.emit(|| Event::PriorityDropped { cpu, id });
        if !split {
            self.deactivate(cpu, id);
        }
    }

    /// GICC_DIR write (IHI 0048B 4.4.15): deactivate, when EOImode = 1.
    /// With EOImode = 0 the write is UNPREDICTABLE; this model ignores it.
    fn deactivate_write(&mut self, cpu: usize, value: u32) {
        let Some(id) = self.irqs.implemented(value & 0x3FF) else {
            return;
        };
        let split = self
            .cpus
            .get(cpu)
            .is_some_and(|i| i.ctlr & CTLR_EOIMODE != 0);
        if !split {
            let reason = "GICC_DIR write with EOImode = 0 (ignored)";
            self.ignored(cpu, GICC, gicc::DIR, 4, true, reason);
            return;
        }
        self.deactivate(cpu, id);
    }

    /// Active to inactive. A level-sensitive interrupt whose line is still
    /// high is then pending again and is signalled anew (IHI 0048B 3.2.4).
    /// Reported only when the interrupt was active: a GICC_DIR for an
    /// inactive interrupt changes nothing.
    fn deactivate(&mut self, cpu: usize, id: IntId) {
        let was_active = self
            .irqs
            .get_mut(cpu, id)
            .is_some_and(|irq| core::mem::replace(&mut irq.active, false));
        if was_active {
            self.emit(|| Event::Deactivated { cpu, id });
        }
    }
}

/// A binary point register's value after a write: 3 bits, raised to the
/// minimum the implemented priority bits allow (IHI 0048B 4.4.3).
fn binary_point(value: u32, min: u8) -> u8 {
    let bp = (value & 0x7) as u8;
    if bp < min {
        min
    } else {
        bp
    }
}

/// Which of four consecutive APR words `offset` names, counting from `base`.
fn apr_index(offset: u64, base: u64) -> Option<usize> {
    let i = usize::try_from(offset.checked_sub(base)? / 4).ok()?;
    (i < APR_REGS).then_some(i)
}
