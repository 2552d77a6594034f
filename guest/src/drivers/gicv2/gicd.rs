//! GICD: the GICv2 distributor (IHI 0048B, 4.3 "Distributor register
//! descriptions").
//!
//! One distributor serves every core. Per interrupt it keeps an enable bit
//! (`ISENABLER`/`ICENABLER`), a pending bit (`ISPENDR`/`ICPENDR`), an active
//! bit (`ISACTIVER`/`ICACTIVER`), a priority byte (`IPRIORITYR`), a byte of
//! target CPUs (`ITARGETSR`) and two configuration bits (`ICFGR`).
//!
//! The set/clear register pairs are *write-1-to-act*: writing 1 to a bit of
//! `ISENABLER` enables that interrupt, writing 1 to the same bit of
//! `ICENABLER` disables it, and zeros change nothing. So enabling one
//! interrupt is a single write of one bit, never a read-modify-write, and
//! cannot disturb its 31 neighbours (4.3.5, 4.3.6).

use crate::drivers::mmio::{RawFrame, ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{
    interfaces::{ReadWriteable, Readable, Writeable},
    register_bitfields, register_structs,
};

use super::{IntId, IntKind, Priority, DEFAULT_PRIORITY};
use uirq_abi::{
    gicv2::{MAX_INTID, SPI_BASE},
    layout::GICD_SIZE,
};

register_bitfields! {
    u32,

    /// Distributor Control Register (4.3.1).
    pub CTLR [
        /// Forward pending interrupts to the CPU interfaces. (With the
        /// Security Extensions, the Non-secure view of this bit enables
        /// Group 1; without them, as here, it enables Group 0, which is
        /// where every interrupt starts.)
        Enable OFFSET(0) NUMBITS(1) []
    ],

    /// Interrupt Controller Type Register, read-only (4.3.2).
    pub TYPER [
        /// Shared peripheral interrupt lines (LSPIs) when the Security
        /// Extensions are implemented.
        LSPI OFFSET(11) NUMBITS(5) [],
        /// Whether the GIC implements the Security Extensions.
        SecurityExtn OFFSET(10) NUMBITS(1) [],
        /// Number of CPU interfaces minus one.
        CPUNumber OFFSET(5) NUMBITS(3) [],
        /// The GIC supports 32 * (ITLinesNumber + 1) interrupt ids, capped at
        /// 1020.
        ITLinesNumber OFFSET(0) NUMBITS(5) []
    ],

    /// Distributor Implementer Identification Register, read-only (4.3.3).
    pub IIDR [
        /// Product identifier chosen by the implementer.
        ProductID OFFSET(24) NUMBITS(8) [],
        /// Major revision of the product.
        Variant OFFSET(16) NUMBITS(4) [],
        /// Minor revision of the product.
        Revision OFFSET(12) NUMBITS(4) [],
        /// JEP106 code of the implementer (0x43B is Arm).
        Implementer OFFSET(0) NUMBITS(12) []
    ],

    /// Software Generated Interrupt Register, write-only (4.3.15).
    pub SGIR [
        /// 0b00: the CPUs in `CPUTargetList`; 0b01: all but the requester;
        /// 0b10: only the requester.
        TargetListFilter OFFSET(24) NUMBITS(2) [
            List = 0b00,
            AllOthers = 0b01,
            Myself = 0b10
        ],
        /// One bit per CPU interface.
        CPUTargetList OFFSET(16) NUMBITS(8) [],
        /// Security Extensions only: which group the SGI must belong to.
        NSATT OFFSET(15) NUMBITS(1) [],
        /// The SGI to raise, 0-15.
        SGIINTID OFFSET(0) NUMBITS(4) []
    ]
}

register_structs! {
    /// The distributor's 4 KiB register frame (IHI 0048B, Table 4-1).
    ///
    /// Word 0 of each one-bit-per-interrupt array, bytes 0..32 of
    /// `IPRIORITYR` and `ITARGETSR`, and word 0..2 of `ICFGR` cover SGIs and
    /// PPIs and are *banked*: each CPU sees its own copy. The rest is shared.
    /// Every offset is checked against `uirq_abi::gicv2::gicd` by a unit test.
    #[allow(non_snake_case)]
    pub RegisterBlock {
        (0x000 => CTLR: ReadWrite<u32, CTLR::Register>),
        (0x004 => TYPER: ReadOnly<u32, TYPER::Register>),
        (0x008 => IIDR: ReadOnly<u32, IIDR::Register>),
        (0x00C => _reserved0),
        /// Group of each interrupt (0 or 1); left at its reset value 0.
        (0x080 => IGROUPR: [ReadWrite<u32>; 32]),
        /// Write 1 to enable interrupt `32 * word + bit`.
        (0x100 => ISENABLER: [ReadWrite<u32>; 32]),
        /// Write 1 to disable interrupt `32 * word + bit`.
        (0x180 => ICENABLER: [ReadWrite<u32>; 32]),
        /// Write 1 to make an interrupt pending.
        (0x200 => ISPENDR: [ReadWrite<u32>; 32]),
        /// Write 1 to clear a pending interrupt.
        (0x280 => ICPENDR: [ReadWrite<u32>; 32]),
        /// Write 1 to make an interrupt active.
        (0x300 => ISACTIVER: [ReadWrite<u32>; 32]),
        /// Write 1 to deactivate an interrupt.
        (0x380 => ICACTIVER: [ReadWrite<u32>; 32]),
        /// One priority byte per interrupt; byte-accessible (4.3.11).
        (0x400 => IPRIORITYR: [ReadWrite<u8>; 1020]),
        (0x7FC => _reserved1),
        /// One byte of target CPUs per interrupt; byte-accessible (4.3.12).
        (0x800 => ITARGETSR: [ReadWrite<u8>; 1020]),
        (0xBFC => _reserved2),
        /// Two bits per interrupt; bit 1 of each pair: 0 level, 1 edge.
        (0xC00 => ICFGR: [ReadWrite<u32>; 64]),
        /// Non-secure access control (Security Extensions only).
        (0xD00 => _reserved3),
        (0xE00 => NSACR: [ReadWrite<u32>; 64]),
        (0xF00 => SGIR: WriteOnly<u32, SGIR::Register>),
        (0xF04 => _reserved4),
        /// One byte per SGI: write 1s to clear pending sources.
        (0xF10 => CPENDSGIR: [ReadWrite<u8>; 16]),
        /// One byte per SGI: write 1s to set pending sources.
        (0xF20 => SPENDSGIR: [ReadWrite<u8>; 16]),
        (0xF30 => _reserved5),
        /// Identification registers PIDR4..PIDR7, PIDR0..PIDR3, CIDR0..CIDR3.
        (0xFD0 => IDREGS: [ReadOnly<u32>; 12]),
        (0x1000 => @END),
    }
}

/// What `GICD_TYPER` says about this GIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicdType {
    /// Number of CPU interfaces (1-8).
    pub cpu_count: u32,
    /// The raw ITLinesNumber field.
    pub it_lines_number: u32,
    /// Number of interrupt ids the distributor implements, counting SGIs and
    /// PPIs: `32 * (ITLinesNumber + 1)`, at most 1020.
    pub interrupt_count: u32,
    /// Whether the Security Extensions are implemented.
    pub security_extensions: bool,
}

/// What `GICD_IIDR` says about who made this GIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicdIidr {
    /// The whole register.
    pub raw: u32,
    /// JEP106 code of the implementer (0x43B is Arm).
    pub implementer: u32,
    /// Product identifier.
    pub product_id: u32,
    /// Major revision.
    pub variant: u32,
    /// Minor revision.
    pub revision: u32,
}

/// Which CPU interfaces an SGI goes to (`GICD_SGIR.TargetListFilter`,
/// 4.3.15, Table 4-21).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgiTarget {
    /// The CPU interfaces whose bits are set (bit n = CPU interface n).
    List(u8),
    /// Every CPU interface except the one that writes `GICD_SGIR`.
    AllOthers,
    /// Only the CPU interface that writes `GICD_SGIR`.
    Myself,
}

/// How an interrupt's input is sensed (`GICD_ICFGR`, 4.3.13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Pending while the input is asserted (the generic timer, most SPIs).
    Level,
    /// Pending from a rising edge until acknowledged (always, for SGIs).
    Edge,
}

/// The GICv2 distributor.
pub struct Gicd {
    regs: &'static RegisterBlock,
}

impl Gicd {
    /// A driver for the distributor whose registers start at `base`.
    ///
    /// # Safety
    ///
    /// - `base` must be the address of a GICv2 distributor frame (or of 4 KiB
    ///   of memory standing in for one), 4-byte aligned, mapped (or, with the
    ///   MMU off, simply present) for the rest of the program.
    /// - Nothing else may hold a Rust reference to that memory that assumes
    ///   it does not change; several `Gicd`s for the same frame are fine, as
    ///   every access is a single volatile load or store.
    pub unsafe fn new(base: usize) -> Self {
        // SAFETY: the caller promises a live, aligned 4 KiB register frame.
        // Every field of `RegisterBlock` is a tock-registers cell accessed
        // with volatile operations only.
        let regs = unsafe { &*(base as *const RegisterBlock) };
        Self { regs }
    }

    /// The facts in `GICD_TYPER` (4.3.2).
    pub fn typer(&self) -> GicdType {
        let typer = self.regs.TYPER.extract();
        let it_lines_number = typer.read(TYPER::ITLinesNumber);
        GicdType {
            cpu_count: typer.read(TYPER::CPUNumber) + 1,
            it_lines_number,
            interrupt_count: (32 * (it_lines_number + 1)).min(MAX_INTID + 1),
            security_extensions: typer.is_set(TYPER::SecurityExtn),
        }
    }

    /// `GICD_TYPER` as it reads, undecoded: a single distributor read with
    /// no side effect, which the latency benchmark times.
    pub fn typer_raw(&self) -> u32 {
        self.regs.TYPER.get()
    }

    /// The implementer's identification, `GICD_IIDR` (4.3.3).
    pub fn iidr(&self) -> GicdIidr {
        let iidr = self.regs.IIDR.extract();
        GicdIidr {
            raw: iidr.get(),
            implementer: iidr.read(IIDR::Implementer),
            product_id: iidr.read(IIDR::ProductID),
            variant: iidr.read(IIDR::Variant),
            revision: iidr.read(IIDR::Revision),
        }
    }

    /// The calling CPU's own bit for `ITARGETSR`.
    ///
    /// The first eight `ITARGETSR` words are banked and read-only: each
    /// byte returns the bit of the CPU that reads it (4.3.12). On a
    /// uniprocessor GIC every `ITARGETSR` is RAZ/WI, so this is 0 there, and
    /// writing it back to the SPIs' targets is harmless.
    pub fn own_target_mask(&self) -> u8 {
        self.regs.ITARGETSR[0].get()
    }

    /// Puts the distributor in a known state and turns it on:
    ///
    /// 1. stop forwarding interrupts while reconfiguring;
    /// 2. for the SGIs and PPIs (this CPU's banked copy) and for every
    ///    implemented SPI: disable, clear pending and active, and give the
    ///    [`DEFAULT_PRIORITY`];
    /// 3. route every SPI to this CPU and make it level-sensitive;
    /// 4. forward again.
    ///
    /// Interrupts stay in Group 0, which a GIC without the Security
    /// Extensions signals as IRQ (not FIQ) while `GICC_CTLR.FIQEn` is 0.
    /// SGI and PPI configuration (`ICFGR0`/`ICFGR1`) is left as the hardware
    /// set it: SGIs are always edge-triggered and whether PPIs can be
    /// reconfigured is IMPLEMENTATION DEFINED (4.3.13).
    pub fn init(&self) {
        let regs = self.regs;
        regs.CTLR.write(CTLR::Enable::CLEAR);

        let count = self.typer().interrupt_count as usize;
        let words = count.div_ceil(32);
        for word in 0..words {
            regs.ICENABLER[word].set(u32::MAX);
            regs.ICPENDR[word].set(u32::MAX);
            regs.ICACTIVER[word].set(u32::MAX);
        }
        for priority in &regs.IPRIORITYR[..count] {
            priority.set(DEFAULT_PRIORITY);
        }

        let spis = SPI_BASE as usize..count;
        let own = self.own_target_mask();
        for target in &regs.ITARGETSR[spis.clone()] {
            target.set(own);
        }
        // Sixteen interrupts per ICFGR word; 0 in every pair = level-sensitive.
        for config in &regs.ICFGR[spis.start / 16..count.div_ceil(16)] {
            config.set(0);
        }

        regs.CTLR.write(CTLR::Enable::SET);
    }

    /// Puts the calling CPU's *banked* part of the distributor in a known
    /// state, and nothing else: its SGIs and PPIs (ids 0-31) disabled, not
    /// pending (SGIs from every source, through `GICD_CPENDSGIRn`, 4.3.16),
    /// not active, at the [`DEFAULT_PRIORITY`].
    ///
    /// This is what a core that starts after the distributor was set up
    /// does for itself: [`Gicd::init`] resets the shared state (and its own
    /// banked copy) once, and the other cores cannot reach each other's
    /// banked registers (4.1.4), so each resets its own.
    pub fn init_private(&self) {
        let regs = self.regs;
        regs.ICENABLER[0].set(u32::MAX);
        regs.ICPENDR[0].set(u32::MAX);
        for sources in &regs.CPENDSGIR {
            sources.set(u8::MAX);
        }
        regs.ICACTIVER[0].set(u32::MAX);
        for priority in &regs.IPRIORITYR[..SPI_BASE as usize] {
            priority.set(DEFAULT_PRIORITY);
        }
    }

    /// Word index and bit mask of `id` in a one-bit-per-interrupt array.
    fn bit(id: IntId) -> (usize, u32) {
        let raw = id.raw();
        ((raw / 32) as usize, 1 << (raw % 32))
    }

    /// Lets the distributor forward `id` (`GICD_ISENABLERn`, 4.3.5).
    pub fn enable(&self, id: IntId) {
        let (word, mask) = Self::bit(id);
        self.regs.ISENABLER[word].set(mask);
    }

    /// Stops the distributor forwarding `id` (`GICD_ICENABLERn`, 4.3.6).
    pub fn disable(&self, id: IntId) {
        let (word, mask) = Self::bit(id);
        self.regs.ICENABLER[word].set(mask);
    }

    /// Whether `id` is enabled (both register sets read the enable state).
    pub fn is_enabled(&self, id: IntId) -> bool {
        let (word, mask) = Self::bit(id);
        self.regs.ISENABLER[word].get() & mask != 0
    }

    /// Whether `id` is pending (`GICD_ISPENDRn` reads the pending state).
    pub fn is_pending(&self, id: IntId) -> bool {
        let (word, mask) = Self::bit(id);
        self.regs.ISPENDR[word].get() & mask != 0
    }

    /// Sets the priority of `id` with a single byte write, which
    /// `IPRIORITYR` allows (4.3.11), so the three neighbours sharing its word
    /// are untouched.
    pub fn set_priority(&self, id: IntId, priority: Priority) {
        self.regs.IPRIORITYR[id.raw() as usize].set(priority);
    }

    /// The priority of `id` as the GIC stores it (unimplemented low bits
    /// read as zero).
    pub fn priority(&self, id: IntId) -> Priority {
        self.regs.IPRIORITYR[id.raw() as usize].get()
    }

    /// Sends SGI `sgi` to the calling CPU only: one `GICD_SGIR` write with
    /// `TargetListFilter` = 0b10, "the requesting CPU" (4.3.15), so the
    /// target list is ignored and no CPU id needs to be known.
    ///
    /// Returns `false`, and writes nothing, when `sgi` is not an SGI (0-15).
    pub fn send_sgi_to_self(&self, sgi: IntId) -> bool {
        if sgi.kind() != IntKind::Sgi {
            return false;
        }
        self.regs
            .SGIR
            .write(SGIR::TargetListFilter::Myself + SGIR::SGIINTID.val(sgi.raw()));
        true
    }
}

impl Gicd {
    /// Turns forwarding to the CPU interfaces on or off (`GICD_CTLR`,
    /// 4.3.1). While off, interrupts still become pending, but none reaches
    /// a CPU interface.
    pub fn set_forwarding(&self, on: bool) {
        self.regs.CTLR.modify(CTLR::Enable.val(on.into()));
    }

    /// Whether the distributor forwards interrupts (`GICD_CTLR.Enable`).
    pub fn is_forwarding(&self) -> bool {
        self.regs.CTLR.is_set(CTLR::Enable)
    }

    /// Makes `id` pending by software (`GICD_ISPENDRn`, 4.3.7): for a PPI or
    /// SPI exactly as if its input had fired. SGIs are made pending with
    /// [`Gicd::send_sgi`] or [`Gicd::set_sgi_pending_sources`] instead; their
    /// `ISPENDR` bits ignore writes in GICv2.
    pub fn set_pending(&self, id: IntId) {
        let (word, mask) = Self::bit(id);
        self.regs.ISPENDR[word].set(mask);
    }

    /// Clears the pending state of `id` (`GICD_ICPENDRn`, 4.3.8). A
    /// level-sensitive interrupt whose input is still asserted stays
    /// pending.
    pub fn clear_pending(&self, id: IntId) {
        let (word, mask) = Self::bit(id);
        self.regs.ICPENDR[word].set(mask);
    }

    /// Makes `id` active by software (`GICD_ISACTIVERn`, 4.3.9), as a
    /// hypervisor or a state restore would. An active interrupt is not
    /// forwarded again until it is deactivated.
    pub fn set_active(&self, id: IntId) {
        let (word, mask) = Self::bit(id);
        self.regs.ISACTIVER[word].set(mask);
    }

    /// Deactivates `id` by software (`GICD_ICACTIVERn`, 4.3.10).
    pub fn clear_active(&self, id: IntId) {
        let (word, mask) = Self::bit(id);
        self.regs.ICACTIVER[word].set(mask);
    }

    /// Whether `id` is active (`GICD_ISACTIVERn` reads the active state).
    pub fn is_active(&self, id: IntId) -> bool {
        let (word, mask) = Self::bit(id);
        self.regs.ISACTIVER[word].get() & mask != 0
    }

    /// Raises SGI `sgi` at the CPU interfaces `target` names
    /// (`GICD_SGIR`, 4.3.15). Each target sees it with the writer's CPU
    /// number in `GICC_IAR.CPUID`. Returns `false`, and writes nothing,
    /// when `sgi` is not an SGI.
    pub fn send_sgi(&self, target: SgiTarget, sgi: IntId) -> bool {
        if sgi.kind() != IntKind::Sgi {
            return false;
        }
        let (filter, list) = match target {
            SgiTarget::List(list) => (SGIR::TargetListFilter::List, list),
            SgiTarget::AllOthers => (SGIR::TargetListFilter::AllOthers, 0),
            SgiTarget::Myself => (SGIR::TargetListFilter::Myself, 0),
        };
        self.regs
            .SGIR
            .write(filter + SGIR::CPUTargetList.val(list.into()) + SGIR::SGIINTID.val(sgi.raw()));
        true
    }

    /// Which source CPUs have SGI `sgi` pending at this CPU, one bit each
    /// (`GICD_SPENDSGIRn`, one byte per SGI, 4.3.17). 0 for a non-SGI.
    pub fn sgi_pending_sources(&self, sgi: IntId) -> u8 {
        match sgi.kind() {
            IntKind::Sgi => self.regs.SPENDSGIR[sgi.raw() as usize].get(),
            IntKind::Ppi | IntKind::Spi => 0,
        }
    }

    /// Makes SGI `sgi` pending at this CPU as if sent by each CPU in
    /// `sources` (a single byte write to `GICD_SPENDSGIRn`, 4.3.17).
    pub fn set_sgi_pending_sources(&self, sgi: IntId, sources: u8) {
        if sgi.kind() == IntKind::Sgi {
            self.regs.SPENDSGIR[sgi.raw() as usize].set(sources);
        }
    }

    /// Clears SGI `sgi`'s pending state from each CPU in `sources`
    /// (a single byte write to `GICD_CPENDSGIRn`, 4.3.16).
    pub fn clear_sgi_pending_sources(&self, sgi: IntId, sources: u8) {
        if sgi.kind() == IntKind::Sgi {
            self.regs.CPENDSGIR[sgi.raw() as usize].set(sources);
        }
    }

    /// Word index and bit shift of `id`'s two-bit field in `GICD_ICFGR`;
    /// bit 1 of the field is the one that matters (1 = edge).
    fn config_field(id: IntId) -> (usize, u32) {
        let raw = id.raw();
        ((raw / 16) as usize, 2 * (raw % 16) + 1)
    }

    /// How `id` is sensed (`GICD_ICFGRn`, 4.3.13).
    pub fn trigger(&self, id: IntId) -> Trigger {
        let (word, shift) = Self::config_field(id);
        if self.regs.ICFGR[word].get() & (1 << shift) != 0 {
            Trigger::Edge
        } else {
            Trigger::Level
        }
    }

    /// Configures `id` as level-sensitive or edge-triggered. `ICFGR` is not
    /// byte-accessible, so this is a read-modify-write of the word, which
    /// leaves the fifteen neighbours as they were. Change an interrupt's
    /// configuration only while it is disabled (4.3.13). SGI fields are
    /// read-only, and whether PPI fields can change is IMPLEMENTATION
    /// DEFINED.
    pub fn set_trigger(&self, id: IntId, trigger: Trigger) {
        let (word, shift) = Self::config_field(id);
        let config = &self.regs.ICFGR[word];
        let old = config.get();
        config.set(match trigger {
            Trigger::Edge => old | 1 << shift,
            Trigger::Level => old & !(1 << shift),
        });
    }

    /// `id`'s target CPUs (`GICD_ITARGETSRn`, one byte per interrupt,
    /// 4.3.12). RAZ on a uniprocessor GIC; for SGIs and PPIs, the reading
    /// CPU's own bit.
    pub fn targets(&self, id: IntId) -> u8 {
        self.regs.ITARGETSR[id.raw() as usize].get()
    }

    /// Routes SPI `id` to the CPU interfaces in `targets` (a single byte
    /// write). Ignored by the GIC for SGIs, PPIs and on a uniprocessor.
    pub fn set_targets(&self, id: IntId, targets: u8) {
        self.regs.ITARGETSR[id.raw() as usize].set(targets);
    }

    /// The whole frame by offset, for checking the rules the typed map
    /// cannot express (writes to read-only registers, reserved offsets).
    pub fn raw(&self) -> RawFrame {
        // SAFETY: `new`'s caller promised a live distributor frame at this
        // address, and a GICv2 distributor frame is GICD_SIZE bytes.
        unsafe {
            RawFrame::new(
                self.regs as *const RegisterBlock as usize,
                GICD_SIZE as usize,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use core::mem::offset_of;

    use super::*;
    use crate::fake_mmio::FakeMmio;
    use uirq_abi::gicv2::{gicd, VTIMER};

    type Fake = FakeMmio<1024>;

    fn gicd(fake: &Fake) -> Gicd {
        // SAFETY: the fake is 4 KiB of leaked, aligned host memory.
        unsafe { Gicd::new(fake.base()) }
    }

    #[test]
    fn register_offsets_match_the_abi() {
        let at = |offset: usize| offset as u64;
        assert_eq!(at(offset_of!(RegisterBlock, CTLR)), gicd::CTLR);
        assert_eq!(at(offset_of!(RegisterBlock, TYPER)), gicd::TYPER);
        assert_eq!(at(offset_of!(RegisterBlock, IIDR)), gicd::IIDR);
        assert_eq!(at(offset_of!(RegisterBlock, IGROUPR)), gicd::IGROUPR);
        assert_eq!(at(offset_of!(RegisterBlock, ISENABLER)), gicd::ISENABLER);
        assert_eq!(at(offset_of!(RegisterBlock, ICENABLER)), gicd::ICENABLER);
        assert_eq!(at(offset_of!(RegisterBlock, ISPENDR)), gicd::ISPENDR);
        assert_eq!(at(offset_of!(RegisterBlock, ICPENDR)), gicd::ICPENDR);
        assert_eq!(at(offset_of!(RegisterBlock, ISACTIVER)), gicd::ISACTIVER);
        assert_eq!(at(offset_of!(RegisterBlock, ICACTIVER)), gicd::ICACTIVER);
        assert_eq!(at(offset_of!(RegisterBlock, IPRIORITYR)), gicd::IPRIORITYR);
        assert_eq!(at(offset_of!(RegisterBlock, ITARGETSR)), gicd::ITARGETSR);
        assert_eq!(at(offset_of!(RegisterBlock, ICFGR)), gicd::ICFGR);
        assert_eq!(at(offset_of!(RegisterBlock, NSACR)), gicd::NSACR);
        assert_eq!(at(offset_of!(RegisterBlock, SGIR)), gicd::SGIR);
        assert_eq!(at(offset_of!(RegisterBlock, CPENDSGIR)), gicd::CPENDSGIR);
        assert_eq!(at(offset_of!(RegisterBlock, SPENDSGIR)), gicd::SPENDSGIR);
        assert_eq!(at(offset_of!(RegisterBlock, IDREGS)), gicd::IDREGS);
        // PIDR2 is the seventh identification register (PIDR4..7, PIDR0..2).
        assert_eq!(at(offset_of!(RegisterBlock, IDREGS)) + 6 * 4, gicd::PIDR2);
        assert_eq!(core::mem::size_of::<RegisterBlock>(), 0x1000);
    }

    #[test]
    fn typer_and_iidr_are_decoded() {
        let fake = Fake::new();
        // 3 CPUs, ITLinesNumber 2, Security Extensions.
        fake.set_word(gicd::TYPER, (2 << 5) | (1 << 10) | 2);
        fake.set_word(gicd::IIDR, 0x0102_443B);
        let gicd = gicd(&fake);
        assert_eq!(
            gicd.typer(),
            GicdType {
                cpu_count: 3,
                it_lines_number: 2,
                interrupt_count: 96,
                security_extensions: true,
            }
        );
        assert_eq!(
            gicd.iidr(),
            GicdIidr {
                raw: 0x0102_443B,
                implementer: 0x43B,
                product_id: 0x01,
                variant: 0x2,
                revision: 0x4,
            }
        );
    }

    #[test]
    fn interrupt_count_is_capped_at_1020() {
        let fake = Fake::new();
        fake.set_word(gicd::TYPER, 31);
        assert_eq!(gicd(&fake).typer().interrupt_count, 1020);
    }

    #[test]
    fn init_resets_every_implemented_interrupt_and_enables() {
        let fake = Fake::new();
        fake.set_word(gicd::TYPER, 2); // 96 interrupt ids
        fake.set_word(gicd::ITARGETSR, 0x0101_0101); // banked: "you are CPU 0"
        fake.set_word(gicd::ICFGR + 4, 0x5555_5555); // PPIs: must be left alone
        for word in 2..8 {
            fake.set_word(gicd::ICFGR + 4 * word, 0xFFFF_FFFF);
        }
        gicd(&fake).init();

        assert_eq!(fake.word(gicd::CTLR), 1);
        for word in 0..3 {
            for base in [gicd::ICENABLER, gicd::ICPENDR, gicd::ICACTIVER] {
                assert_eq!(fake.word(base + 4 * word), u32::MAX);
            }
        }
        // Nothing beyond the implemented ids is touched.
        for base in [gicd::ICENABLER, gicd::ICPENDR, gicd::ICACTIVER] {
            assert_eq!(fake.word(base + 4 * 3), 0);
        }
        assert_eq!(fake.word(gicd::ISENABLER), 0, "no enable was written");
        for word in 0..24 {
            assert_eq!(fake.word(gicd::IPRIORITYR + 4 * word), 0xA0A0_A0A0);
        }
        assert_eq!(fake.word(gicd::IPRIORITYR + 4 * 24), 0);
        for word in 8..24 {
            assert_eq!(fake.word(gicd::ITARGETSR + 4 * word), 0x0101_0101);
        }
        assert_eq!(fake.word(gicd::ITARGETSR + 4 * 24), 0);
        assert_eq!(fake.word(gicd::ICFGR + 4), 0x5555_5555);
        for word in 2..6 {
            assert_eq!(fake.word(gicd::ICFGR + 4 * word), 0, "SPIs level-sensitive");
        }
        assert_eq!(fake.word(gicd::ICFGR + 4 * 6), 0xFFFF_FFFF);
    }

    #[test]
    fn init_private_touches_only_the_banked_registers() {
        let fake = Fake::new();
        fake.set_word(gicd::TYPER, 2); // 96 interrupt ids
        fake.set_word(gicd::CTLR, 1);
        gicd(&fake).init_private();

        for base in [gicd::ICENABLER, gicd::ICPENDR, gicd::ICACTIVER] {
            assert_eq!(fake.word(base), u32::MAX, "banked word 0");
            assert_eq!(fake.word(base + 4), 0, "shared words untouched");
        }
        for word in 0..4 {
            assert_eq!(fake.word(gicd::CPENDSGIR + 4 * word), u32::MAX);
        }
        for word in 0..8 {
            assert_eq!(fake.word(gicd::IPRIORITYR + 4 * word), 0xA0A0_A0A0);
        }
        assert_eq!(fake.word(gicd::IPRIORITYR + 4 * 8), 0, "SPI priorities");
        assert_eq!(fake.word(gicd::ITARGETSR + 32), 0, "SPI targets");
        assert_eq!(fake.word(gicd::CTLR), 1, "forwarding left on");
    }

    #[test]
    fn enable_and_disable_write_exactly_one_bit() {
        let fake = Fake::new();
        let gicd = gicd(&fake);
        gicd.enable(VTIMER);
        assert_eq!(fake.word(gicd::ISENABLER), 1 << 27);
        gicd.enable(IntId::spi(8).unwrap()); // id 40
        assert_eq!(fake.word(gicd::ISENABLER + 4), 1 << 8);
        gicd.disable(IntId::new(1019).unwrap());
        assert_eq!(fake.word(gicd::ICENABLER + 4 * 31), 1 << 27);
        assert!(gicd.is_enabled(VTIMER));
        assert!(!gicd.is_pending(VTIMER));
    }

    #[test]
    fn typer_raw_is_the_whole_register() {
        let fake = Fake::new();
        fake.set_word(gicd::TYPER, 0x0000_fce7);
        assert_eq!(gicd(&fake).typer_raw(), 0x0000_fce7);
    }

    #[test]
    fn sgi_to_self_uses_the_self_filter() {
        let fake = Fake::new();
        let gicd = gicd(&fake);
        assert!(gicd.send_sgi_to_self(IntId::sgi(1).unwrap()));
        assert_eq!(fake.word(gicd::SGIR), 0b10 << 24 | 1);
        assert!(gicd.send_sgi_to_self(IntId::sgi(15).unwrap()));
        assert_eq!(fake.word(gicd::SGIR), 0b10 << 24 | 15);
        fake.set_word(gicd::SGIR, 0);
        assert!(!gicd.send_sgi_to_self(VTIMER), "a PPI is not an SGI");
        assert_eq!(fake.word(gicd::SGIR), 0, "nothing written");
    }

    #[test]
    fn pending_and_active_are_single_write_one_bits() {
        let fake = Fake::new();
        let gicd = gicd(&fake);
        let spi = IntId::spi(10).unwrap(); // id 42: word 1, bit 10
        gicd.set_pending(spi);
        assert_eq!(fake.word(gicd::ISPENDR + 4), 1 << 10);
        gicd.clear_pending(spi);
        assert_eq!(fake.word(gicd::ICPENDR + 4), 1 << 10);
        gicd.set_active(spi);
        assert_eq!(fake.word(gicd::ISACTIVER + 4), 1 << 10);
        assert!(gicd.is_active(spi));
        gicd.clear_active(spi);
        assert_eq!(fake.word(gicd::ICACTIVER + 4), 1 << 10);
        assert!(gicd.is_pending(spi), "the fake has no set/clear semantics");
    }

    #[test]
    fn forwarding_toggles_only_the_enable_bit() {
        let fake = Fake::new();
        fake.set_word(gicd::CTLR, 0b10);
        let gicd = gicd(&fake);
        gicd.set_forwarding(true);
        assert_eq!(fake.word(gicd::CTLR), 0b11);
        assert!(gicd.is_forwarding());
        gicd.set_forwarding(false);
        assert_eq!(fake.word(gicd::CTLR), 0b10);
        assert!(!gicd.is_forwarding());
    }

    #[test]
    fn sgir_encodes_filter_targets_and_id() {
        let fake = Fake::new();
        let gicd = gicd(&fake);
        let sgi = IntId::sgi(5).unwrap();
        assert!(gicd.send_sgi(SgiTarget::Myself, sgi));
        assert_eq!(fake.word(gicd::SGIR), 0b10 << 24 | 5);
        assert!(gicd.send_sgi(SgiTarget::AllOthers, sgi));
        assert_eq!(fake.word(gicd::SGIR), 0b01 << 24 | 5);
        assert!(gicd.send_sgi(SgiTarget::List(0b101), IntId::sgi(15).unwrap()));
        assert_eq!(fake.word(gicd::SGIR), 0b101 << 16 | 15);
        fake.set_word(gicd::SGIR, 0xDEAD);
        assert!(!gicd.send_sgi(SgiTarget::Myself, VTIMER));
        assert_eq!(fake.word(gicd::SGIR), 0xDEAD, "a PPI is not an SGI");
    }

    #[test]
    fn sgi_pending_sources_are_one_byte_each() {
        let fake = Fake::new();
        fake.set_word(gicd::SPENDSGIR + 4, 0x0300_0000); // SGI 7 from CPUs 0, 1
        let gicd = gicd(&fake);
        assert_eq!(gicd.sgi_pending_sources(IntId::sgi(7).unwrap()), 0b11);
        gicd.set_sgi_pending_sources(IntId::sgi(2).unwrap(), 0b1);
        assert_eq!(fake.word(gicd::SPENDSGIR), 0x0001_0000);
        gicd.clear_sgi_pending_sources(IntId::sgi(13).unwrap(), 0b1);
        assert_eq!(fake.word(gicd::CPENDSGIR + 12), 0x0000_0100);
        gicd.set_sgi_pending_sources(VTIMER, 0xFF);
        assert_eq!(gicd.sgi_pending_sources(VTIMER), 0);
    }

    #[test]
    fn trigger_is_bit_one_of_a_two_bit_field() {
        let fake = Fake::new();
        fake.set_word(gicd::ICFGR + 8, 0x5555_5555); // ids 32-47, bits 0 only
        let gicd = gicd(&fake);
        let spi = IntId::spi(10).unwrap(); // id 42: word 2, field 10, bit 21
        assert_eq!(gicd.trigger(spi), Trigger::Level);
        gicd.set_trigger(spi, Trigger::Edge);
        assert_eq!(fake.word(gicd::ICFGR + 8), 0x5555_5555 | 1 << 21);
        assert_eq!(gicd.trigger(spi), Trigger::Edge);
        gicd.set_trigger(spi, Trigger::Level);
        assert_eq!(fake.word(gicd::ICFGR + 8), 0x5555_5555);
    }

    #[test]
    fn targets_are_bytes_and_raw_reaches_the_whole_frame() {
        let fake = Fake::new();
        let gicd = gicd(&fake);
        let spi = IntId::spi(1).unwrap(); // id 33
        gicd.set_targets(spi, 0b10);
        assert_eq!(fake.word(gicd::ITARGETSR + 32), 0x0000_0200);
        assert_eq!(gicd.targets(spi), 0b10);
        let raw = gicd.raw();
        assert!(raw.write32(gicd::TYPER as usize, 7));
        assert_eq!(fake.word(gicd::TYPER), 7);
        assert_eq!(raw.read32(0xFFC), Some(0));
        assert_eq!(raw.read32(0x1000), None, "outside the 4 KiB frame");
    }

    #[test]
    fn set_priority_writes_one_byte() {
        let fake = Fake::new();
        // Priorities of ids 24..27, four to a word, little-endian.
        fake.set_word(gicd::IPRIORITYR + 24, 0x1122_3344);
        let gicd = gicd(&fake);
        gicd.set_priority(VTIMER, 0x80);
        assert_eq!(fake.word(gicd::IPRIORITYR + 24), 0x8022_3344);
        assert_eq!(gicd.priority(VTIMER), 0x80);
    }
}
