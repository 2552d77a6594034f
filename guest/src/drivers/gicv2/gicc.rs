//! GICC: a GICv2 CPU interface (IHI 0048B, 4.4 "CPU interface register
//! descriptions").
//!
//! Each core has its own CPU interface, at the same address for every core.
//! It passes the distributor's best pending interrupt on to the core as an
//! IRQ when that interrupt's priority is *higher* (numerically lower) than
//! both the priority mask (`PMR`) and the running priority (the priority of
//! the interrupt the core is handling now, if any) (3.3).
//!
//! The handler's side of the conversation is two registers:
//!
//! 1. read `IAR`: returns the interrupt id (and, for an SGI, the CPU that
//!    sent it) and marks the interrupt active; or returns 1023 when there is
//!    nothing to acknowledge after all ("spurious", e.g. another core took it
//!    or the device lowered its line) (4.4.4);
//! 2. write that same value to `EOIR` once the device has been dealt with:
//!    the running priority drops and the interrupt becomes inactive (4.4.5).

use crate::drivers::mmio::{RawFrame, ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{
    interfaces::{ReadWriteable, Readable, Writeable},
    register_bitfields, register_structs,
};

use super::{IntId, IntKind, Priority, LOWEST_PRIORITY};
use uirq_abi::layout::GICC_SIZE;

register_bitfields! {
    u32,

    /// CPU Interface Control Register (4.4.1). Only the fields this driver
    /// uses; their positions are those of a GIC without the Security
    /// Extensions and of the Non-secure view of one with them.
    pub CTLR [
        /// End-of-interrupt mode: 0 means an `EOIR` write both drops the
        /// priority and deactivates; 1 splits the deactivation into `DIR`.
        /// (Bit 9 is EOImodeNS in the Non-secure view; this driver keeps 0.)
        EOImode OFFSET(9) NUMBITS(1) [],
        /// Signal the group's interrupts as FIQ instead of IRQ (bit 3, only
        /// without the Security Extensions; this driver keeps 0 = IRQ).
        FIQEn OFFSET(3) NUMBITS(1) [],
        /// Signal interrupts to the core. (Group 0 without the Security
        /// Extensions, Group 1 in the Non-secure view with them: either way
        /// the group this firmware's interrupts are in.)
        Enable OFFSET(0) NUMBITS(1) []
    ],

    /// Interrupt Priority Mask Register (4.4.2).
    pub PMR [
        /// Only interrupts with a priority value lower than this are
        /// signalled.
        Priority OFFSET(0) NUMBITS(8) []
    ],

    /// Binary Point Register (4.4.3).
    pub BPR [
        /// Splits the priority into group priority (which decides
        /// preemption) and subpriority. Writing 0 selects the smallest value
        /// the implementation supports.
        BinaryPoint OFFSET(0) NUMBITS(3) []
    ],

    /// The layout shared by IAR, EOIR, HPPIR and DIR (4.4.4, 4.4.5).
    pub IAR [
        /// For SGIs: the CPU that requested the interrupt; else 0.
        CPUID OFFSET(10) NUMBITS(3) [],
        /// The interrupt id, or 1020-1023 for the special ids.
        InterruptID OFFSET(0) NUMBITS(10) []
    ],

    /// CPU Interface Identification Register (4.4.14).
    pub IIDR [
        /// Product identifier.
        ProductID OFFSET(20) NUMBITS(12) [],
        /// The GIC architecture version: 0x2 for GICv2.
        ArchitectureVersion OFFSET(16) NUMBITS(4) [],
        /// Revision of the product.
        Revision OFFSET(12) NUMBITS(4) [],
        /// JEP106 code of the implementer (0x43B is Arm).
        Implementer OFFSET(0) NUMBITS(12) []
    ]
}

register_structs! {
    /// A CPU interface's 8 KiB register frame (IHI 0048B, Table 4-2).
    /// Every offset is checked against `uirq_abi::gicv2::gicc` by a unit
    /// test.
    #[allow(non_snake_case)]
    pub RegisterBlock {
        (0x0000 => CTLR: ReadWrite<u32, CTLR::Register>),
        (0x0004 => PMR: ReadWrite<u32, PMR::Register>),
        (0x0008 => BPR: ReadWrite<u32, BPR::Register>),
        /// Reading acknowledges: it has a side effect.
        (0x000C => IAR: ReadOnly<u32, IAR::Register>),
        (0x0010 => EOIR: WriteOnly<u32, IAR::Register>),
        /// Running priority: that of the highest-priority active interrupt.
        (0x0014 => RPR: ReadOnly<u32, PMR::Register>),
        /// Highest priority pending interrupt, without acknowledging it.
        (0x0018 => HPPIR: ReadOnly<u32, IAR::Register>),
        /// The Aliased (Group 1) registers, Security Extensions only.
        (0x001C => ABPR: ReadWrite<u32, BPR::Register>),
        (0x0020 => AIAR: ReadOnly<u32, IAR::Register>),
        (0x0024 => AEOIR: WriteOnly<u32, IAR::Register>),
        (0x0028 => AHPPIR: ReadOnly<u32, IAR::Register>),
        (0x002C => _reserved0),
        (0x00D0 => APR: [ReadWrite<u32>; 4]),
        (0x00E0 => NSAPR: [ReadWrite<u32>; 4]),
        (0x00F0 => _reserved1),
        (0x00FC => IIDR: ReadOnly<u32, IIDR::Register>),
        (0x0100 => _reserved2),
        /// Deactivate, for EOImode = 1 ([`Gicc::deactivate`]).
        (0x1000 => DIR: WriteOnly<u32, IAR::Register>),
        (0x1004 => @END),
    }
}

/// An interrupt this CPU has acknowledged and not yet ended.
///
/// Only [`Gicc::acknowledge`] makes one, and only
/// [`Gicc::end_of_interrupt`] takes it, by value: the type system sees to it
/// that every acknowledged interrupt is ended at most once, with exactly the
/// value `IAR` returned (which for an SGI includes the source CPU, as `EOIR`
/// requires). It is deliberately neither `Clone` nor `Copy`.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "an acknowledged interrupt stays active until it is passed to Gicc::end_of_interrupt"]
pub struct Acknowledged {
    iar: u32,
    id: IntId,
}

impl Acknowledged {
    /// The interrupt that was acknowledged.
    pub fn id(&self) -> IntId {
        self.id
    }

    /// The whole value `GICC_IAR` returned (id and, for an SGI, source).
    pub fn iar(&self) -> u32 {
        self.iar
    }

    /// For an SGI, the CPU interface that sent it (`IAR.CPUID`).
    pub fn source_cpu(&self) -> Option<u32> {
        match self.id.kind() {
            IntKind::Sgi => Some(IAR::CPUID.read(self.iar)),
            IntKind::Ppi | IntKind::Spi => None,
        }
    }
}

/// An interrupt whose priority has been dropped (`GICC_EOIR` with
/// `GICC_CTLR.EOImode` = 1) but that is still active until
/// [`Gicc::deactivate`] writes `GICC_DIR` (3.2.1, 4.4.15).
#[derive(Debug, PartialEq, Eq)]
pub struct Dropped {
    iar: u32,
    id: IntId,
}

impl Dropped {
    /// The interrupt that is still active.
    pub fn id(&self) -> IntId {
        self.id
    }
}

/// What `GICC_IIDR` says about the CPU interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GiccIidr {
    /// The whole register.
    pub raw: u32,
    /// JEP106 code of the implementer.
    pub implementer: u32,
    /// Product identifier.
    pub product_id: u32,
    /// GIC architecture version (2 for a GICv2).
    pub architecture_version: u32,
    /// Revision.
    pub revision: u32,
}

/// A GICv2 CPU interface: the calling core's.
pub struct Gicc {
    regs: &'static RegisterBlock,
}

impl Gicc {
    /// A driver for the CPU interface whose registers start at `base`.
    ///
    /// # Safety
    ///
    /// - `base` must be the address of a GICv2 CPU interface frame (or of
    ///   8 KiB of memory standing in for one), 4-byte aligned, present for the
    ///   rest of the program.
    /// - Nothing else may hold a Rust reference to that memory that assumes
    ///   it does not change; several `Gicc`s for the same frame are fine, as
    ///   every access is a single volatile load or store.
    pub unsafe fn new(base: usize) -> Self {
        // SAFETY: the caller promises a live, aligned 8 KiB register frame.
        // Every field of `RegisterBlock` is a tock-registers cell accessed
        // with volatile operations only.
        let regs = unsafe { &*(base as *const RegisterBlock) };
        Self { regs }
    }

    /// Lets every interrupt through the priority mask and enables the
    /// interface:
    ///
    /// - `PMR` = 0xFF: the lowest mask, so any priority other than 0xFF is
    ///   signalled (an implementation with fewer priority bits reads back
    ///   e.g. 0xF8; the comparison still works) (4.4.2);
    /// - `BPR` = 0: all priority bits are group priority (as many preemption
    ///   levels as implemented; this firmware does not nest interrupts);
    /// - `CTLR`: enable, IRQ not FIQ, `EOIR` both drops priority and
    ///   deactivates (EOImode 0).
    pub fn init(&self) {
        self.regs
            .PMR
            .write(PMR::Priority.val(LOWEST_PRIORITY.into()));
        self.regs.BPR.write(BPR::BinaryPoint.val(0));
        self.regs
            .CTLR
            .write(CTLR::Enable::SET + CTLR::FIQEn::CLEAR + CTLR::EOImode::CLEAR);
    }

    /// Acknowledges the highest-priority pending interrupt by reading
    /// `GICC_IAR`; `None` when the GIC answers with a special id (1023,
    /// "spurious": nothing to acknowledge, and nothing to end).
    pub fn acknowledge(&self) -> Option<Acknowledged> {
        let iar = self.regs.IAR.get();
        let id = IntId::new(IAR::InterruptID.read(iar))?;
        Some(Acknowledged { iar, id })
    }

    /// Ends an interrupt: writes the value `IAR` returned to `GICC_EOIR`,
    /// which drops the running priority and deactivates it.
    ///
    /// For a level-sensitive interrupt, silence the device first: if its
    /// line is still high, the interrupt becomes pending again at once.
    pub fn end_of_interrupt(&self, interrupt: Acknowledged) {
        self.regs.EOIR.set(interrupt.iar);
    }

    /// Reads `GICC_IAR`: `Ok` with the acknowledged interrupt, or `Err`
    /// with the special id the GIC answered instead (1023: nothing to
    /// acknowledge; 1022: only a Group 1 interrupt is pending, 3.2.5).
    pub fn acknowledge_or_special(&self) -> Result<Acknowledged, u32> {
        let iar = self.regs.IAR.get();
        let raw = IAR::InterruptID.read(iar);
        match IntId::new(raw) {
            Some(id) => Ok(Acknowledged { iar, id }),
            None => Err(raw),
        }
    }

    /// With `GICC_CTLR.EOImode` = 1: writes `GICC_EOIR`, which only drops
    /// the running priority; the interrupt stays active (so it cannot be
    /// taken again) until [`Gicc::deactivate`] (3.2.1, 4.4.5).
    pub fn drop_priority(&self, interrupt: Acknowledged) -> Dropped {
        self.regs.EOIR.set(interrupt.iar);
        Dropped {
            iar: interrupt.iar,
            id: interrupt.id,
        }
    }

    /// With `GICC_CTLR.EOImode` = 1: writes `GICC_DIR`, which deactivates
    /// an interrupt whose priority was dropped (4.4.15).
    pub fn deactivate(&self, interrupt: Dropped) {
        self.regs.DIR.set(interrupt.iar);
    }

    /// Selects how an interrupt ends (`GICC_CTLR.EOImode`, 4.4.1):
    /// `false`, `GICC_EOIR` drops priority and deactivates; `true`,
    /// `GICC_EOIR` only drops priority and `GICC_DIR` deactivates.
    pub fn set_split_eoi(&self, split: bool) {
        self.regs.CTLR.modify(CTLR::EOImode.val(split.into()));
    }

    /// Turns signalling to the core on or off (`GICC_CTLR.Enable`, 4.4.1).
    pub fn set_enabled(&self, on: bool) {
        self.regs.CTLR.modify(CTLR::Enable.val(on.into()));
    }

    /// Sets the priority mask (`GICC_PMR`, 4.4.2): only interrupts with a
    /// priority value *lower* than `mask` are signalled.
    pub fn set_priority_mask(&self, mask: Priority) {
        self.regs.PMR.write(PMR::Priority.val(mask.into()));
    }

    /// `GICC_HPPIR` (4.4.7): the id (and, for an SGI, the source CPU in
    /// bits \[12:10\]) of the highest-priority pending interrupt, without
    /// acknowledging it; 1023 when there is none to report.
    pub fn highest_pending(&self) -> u32 {
        self.regs.HPPIR.get()
    }

    /// The interrupt `GICC_HPPIR` reports, or `None` for a special id
    /// (1023: nothing pending).
    pub fn highest_pending_id(&self) -> Option<IntId> {
        IntId::new(self.regs.HPPIR.read(IAR::InterruptID))
    }

    /// The whole frame by offset, for checking the rules the typed map
    /// cannot express (writes to read-only registers).
    pub fn raw(&self) -> RawFrame {
        // SAFETY: `new`'s caller promised a live CPU interface frame at this
        // address, and a GICv2 CPU interface frame is GICC_SIZE bytes.
        unsafe {
            RawFrame::new(
                self.regs as *const RegisterBlock as usize,
                GICC_SIZE as usize,
            )
        }
    }

    /// The running priority (`GICC_RPR`): 0xFF when no interrupt is active.
    pub fn running_priority(&self) -> Priority {
        // The field is 8 bits wide, so the conversion cannot truncate.
        self.regs.RPR.read(PMR::Priority) as Priority
    }

    /// The priority mask as the GIC stored it (`GICC_PMR`).
    pub fn priority_mask(&self) -> Priority {
        self.regs.PMR.read(PMR::Priority) as Priority
    }

    /// The CPU interface's identification, `GICC_IIDR` (4.4.14).
    pub fn iidr(&self) -> GiccIidr {
        let iidr = self.regs.IIDR.extract();
        GiccIidr {
            raw: iidr.get(),
            implementer: iidr.read(IIDR::Implementer),
            product_id: iidr.read(IIDR::ProductID),
            architecture_version: iidr.read(IIDR::ArchitectureVersion),
            revision: iidr.read(IIDR::Revision),
        }
    }
}

#[cfg(test)]
mod tests {
    use core::mem::offset_of;

    use super::*;
    use crate::fake_mmio::FakeMmio;
    use uirq_abi::gicv2::{gicc, SPURIOUS, VTIMER};

    type Fake = FakeMmio<2048>;

    fn gicc(fake: &Fake) -> Gicc {
        // SAFETY: the fake is 8 KiB of leaked, aligned host memory.
        unsafe { Gicc::new(fake.base()) }
    }

    #[test]
    fn register_offsets_match_the_abi() {
        let at = |offset: usize| offset as u64;
        assert_eq!(at(offset_of!(RegisterBlock, CTLR)), gicc::CTLR);
        assert_eq!(at(offset_of!(RegisterBlock, PMR)), gicc::PMR);
        assert_eq!(at(offset_of!(RegisterBlock, BPR)), gicc::BPR);
        assert_eq!(at(offset_of!(RegisterBlock, IAR)), gicc::IAR);
        assert_eq!(at(offset_of!(RegisterBlock, EOIR)), gicc::EOIR);
        assert_eq!(at(offset_of!(RegisterBlock, RPR)), gicc::RPR);
        assert_eq!(at(offset_of!(RegisterBlock, HPPIR)), gicc::HPPIR);
        assert_eq!(at(offset_of!(RegisterBlock, ABPR)), gicc::ABPR);
        assert_eq!(at(offset_of!(RegisterBlock, AIAR)), gicc::AIAR);
        assert_eq!(at(offset_of!(RegisterBlock, AEOIR)), gicc::AEOIR);
        assert_eq!(at(offset_of!(RegisterBlock, AHPPIR)), gicc::AHPPIR);
        assert_eq!(at(offset_of!(RegisterBlock, APR)), gicc::APR);
        assert_eq!(at(offset_of!(RegisterBlock, NSAPR)), gicc::NSAPR);
        assert_eq!(at(offset_of!(RegisterBlock, IIDR)), gicc::IIDR);
        assert_eq!(at(offset_of!(RegisterBlock, DIR)), gicc::DIR);
        assert_eq!(core::mem::size_of::<RegisterBlock>(), 0x1004);
    }

    #[test]
    fn init_opens_the_mask_and_enables() {
        let fake = Fake::new();
        fake.set_word(gicc::CTLR, 1 << 3 | 1 << 9); // FIQEn, EOImode: cleared
        fake.set_word(gicc::BPR, 3);
        gicc(&fake).init();
        assert_eq!(fake.word(gicc::PMR), 0xFF);
        assert_eq!(fake.word(gicc::BPR), 0);
        assert_eq!(fake.word(gicc::CTLR), 1);
    }

    #[test]
    fn acknowledge_then_end_writes_back_what_iar_returned() {
        let fake = Fake::new();
        fake.set_word(gicc::IAR, VTIMER.raw());
        let gicc = gicc(&fake);
        let ack = gicc.acknowledge().expect("not spurious");
        assert_eq!(ack.id(), VTIMER);
        assert_eq!(ack.source_cpu(), None);
        gicc.end_of_interrupt(ack);
        assert_eq!(fake.word(gicc::EOIR), VTIMER.raw());
    }

    #[test]
    fn an_sgi_keeps_its_source_cpu_through_eoi() {
        let fake = Fake::new();
        let iar = (3 << 10) | 5; // SGI 5 from CPU 3
        fake.set_word(gicc::IAR, iar);
        let gicc = gicc(&fake);
        let ack = gicc.acknowledge().unwrap();
        assert_eq!(ack.id(), IntId::sgi(5).unwrap());
        assert_eq!(ack.source_cpu(), Some(3));
        gicc.end_of_interrupt(ack);
        assert_eq!(fake.word(gicc::EOIR), iar);
    }

    #[test]
    fn split_eoi_writes_eoir_then_dir_with_the_iar_value() {
        let fake = Fake::new();
        let iar = (1 << 10) | 3;
        fake.set_word(gicc::IAR, iar);
        let gicc = gicc(&fake);
        let ack = gicc.acknowledge_or_special().unwrap();
        assert_eq!(ack.iar(), iar);
        let dropped = gicc.drop_priority(ack);
        assert_eq!(fake.word(gicc::EOIR), iar);
        assert_eq!(fake.word(gicc::DIR), 0, "not deactivated yet");
        assert_eq!(dropped.id(), IntId::sgi(3).unwrap());
        gicc.deactivate(dropped);
        assert_eq!(fake.word(gicc::DIR), iar);
    }

    #[test]
    fn control_bits_mask_and_hppir() {
        let fake = Fake::new();
        let gicc = gicc(&fake);
        gicc.set_enabled(true);
        gicc.set_split_eoi(true);
        assert_eq!(fake.word(gicc::CTLR), 1 | 1 << 9);
        gicc.set_enabled(false);
        assert_eq!(fake.word(gicc::CTLR), 1 << 9);
        gicc.set_priority_mask(0x80);
        assert_eq!(fake.word(gicc::PMR), 0x80);
        fake.set_word(gicc::HPPIR, 0x42A);
        assert_eq!(gicc.highest_pending(), 0x42A);
        assert_eq!(gicc.raw().read32(gicc::HPPIR as usize), Some(0x42A));
        assert_eq!(gicc.raw().read32(0x2000), None, "outside the 8 KiB frame");
    }

    #[test]
    fn special_ids_are_not_interrupts() {
        for special in [1020, 1021, 1022, SPURIOUS] {
            let fake = Fake::new();
            fake.set_word(gicc::IAR, special);
            fake.set_word(gicc::EOIR, 0xDEAD);
            assert_eq!(gicc(&fake).acknowledge(), None);
            assert_eq!(gicc(&fake).acknowledge_or_special(), Err(special));
            assert_eq!(fake.word(gicc::EOIR), 0xDEAD, "nothing to end");
        }
    }

    #[test]
    fn iidr_and_priorities_are_decoded() {
        let fake = Fake::new();
        fake.set_word(gicc::IIDR, 0x0202_143B);
        fake.set_word(gicc::RPR, 0xFF);
        fake.set_word(gicc::PMR, 0xF8);
        let gicc = gicc(&fake);
        assert_eq!(
            gicc.iidr(),
            GiccIidr {
                raw: 0x0202_143B,
                implementer: 0x43B,
                product_id: 0x020,
                architecture_version: 2,
                revision: 1,
            }
        );
        assert_eq!(gicc.running_priority(), 0xFF);
        assert_eq!(gicc.priority_mask(), 0xF8);
    }
}
