//! A GICv2 interrupt controller in plain Rust: the distributor and one CPU
//! interface per vCPU, as ARM IHI 0048B (GIC architecture specification,
//! version 2.0) describes them, without the Security Extensions and without
//! the virtualization extensions, for a VMM that keeps its interrupt
//! controller in userspace. No KVM, no bus, no logging, `no_std`.
//!
//! ```
//! use uirq_gicv2::regs::{gicc, gicd, IntId};
//! use uirq_gicv2::{GicConfig, Gicv2};
//!
//! let mut gic = Gicv2::new(GicConfig { num_cpus: 2, num_spis: 32 }).unwrap();
//! let timer = IntId::ppi(11).unwrap(); // interrupt 27
//! gic.distributor_write(0, gicd::CTLR, &1u32.to_le_bytes());
//! gic.distributor_write(0, gicd::ISENABLER, &(1u32 << 27).to_le_bytes());
//! gic.cpu_interface_write(0, gicc::CTLR, &1u32.to_le_bytes());
//! gic.cpu_interface_write(0, gicc::PMR, &0xFFu32.to_le_bytes());
//! gic.set_ppi_level(0, timer, true);
//! assert!(gic.irq_line(0));
//! let mut iar = [0u8; 4];
//! gic.cpu_interface_read(0, gicc::IAR, &mut iar);
//! assert_eq!(u32::from_le_bytes(iar), 27);
//! ```
//!
//! # The crate
//!
//! - [`regs`], always available and allocation-free: the register map
//!   (offsets, frame sizes, the range-checked [`regs::IntId`]) and the
//!   architectural name of each register ([`regs::name`]). A bare-metal
//!   driver can depend on the crate with `default-features = false` for
//!   this alone.
//! - With the default feature `model` (which needs `alloc`): [`Gicv2`],
//!   built from a [`GicConfig`]; its inputs are MMIO accesses per CPU on
//!   the two frames ([`Gicv2::distributor_read`], [`Gicv2::distributor_write`],
//!   [`Gicv2::cpu_interface_read`], [`Gicv2::cpu_interface_write`]) and
//!   line levels ([`Gicv2::set_ppi_level`], [`Gicv2::set_spi_level`]); its
//!   outputs are each CPU's [`Gicv2::irq_line`] and [`Gicv2::fiq_line`].
//! - An [`Observer`] installed with [`Gicv2::set_observer`] sees the model's
//!   [`Event`]s: interrupts becoming pending, acknowledged, their priority
//!   dropped, deactivated, and every guest access the model ignored and
//!   why. The crate logs nothing itself; what to do with those events
//!   (rate-limited warnings, a trace) is the VMM's choice.
//!
//! # What the hardware does
//!
//! - **Interrupt ids** (IHI 0048B 2.2.1): SGIs 0-15 are raised by software
//!   through GICD_SGIR, PPIs 16-31 are private to one CPU (the generic timer
//!   is PPI 27), SPIs 32-1019 are shared and routed by GICD_ITARGETSR.
//!   SGI and PPI state is *banked*: each CPU interface sees its own copy at
//!   the same distributor offsets. 1020-1023 are special; 1023 is what an
//!   acknowledge returns when nothing can be taken (IHI 0048B 3.2.5).
//! - **States** (IHI 0048B 1.4.1, 3.2.4): inactive, pending, active, active
//!   and pending. A level-sensitive interrupt is pending while its input is
//!   high; an edge-triggered one latches a rising edge (GICD_ICFGR,
//!   IHI 0048B 4.3.13).
//! - **Distributor** (IHI 0048B 4.3): per-interrupt enable, pending, active,
//!   group, priority, targets and trigger mode; forwards, for each CPU, the
//!   highest-priority pending interrupt of an enabled group.
//! - **CPU interface** (IHI 0048B 4.4): signals that interrupt on the CPU's
//!   IRQ (or FIQ) line if its priority is higher than the priority mask
//!   (GICC_PMR, 3.3.3) and its group priority higher than the running
//!   priority (3.3.2, preemption). Reading GICC_IAR acknowledges it (pending
//!   to active, running priority raised); writing GICC_EOIR drops the
//!   priority and, with GICC_CTLR.EOImode = 0, deactivates it. With
//!   EOImode = 1 the deactivation is a separate write to GICC_DIR
//!   (IHI 0048B 3.2.1).
//! - **Grouping without the Security Extensions** (IHI 0048B 3.4): GICv2
//!   still has Group 0 and Group 1. GICD_CTLR and GICC_CTLR enable each
//!   group; Group 0 goes out on FIQ when GICC_CTLR.FIQEn is set, otherwise
//!   on IRQ, and Group 1 always on IRQ. GICC_IAR takes Group 1 interrupts
//!   only with GICC_CTLR.AckCtl set (it answers 1022 otherwise); the aliased
//!   registers (GICC_AIAR, AEOIR, AHPPIR, ABPR) are the Group 1 view, as in
//!   QEMU's GICv2.
//!
//! # How this model is built
//!
//! The inputs are line levels ([`Gicv2::set_ppi_level`],
//! [`Gicv2::set_spi_level`]) and MMIO accesses on the two frames; the
//! outputs are [`Gicv2::irq_line`] and [`Gicv2::fiq_line`], which the VMM
//! forwards to the vCPU's inputs when they change (`KVM_IRQ_LINE`, on
//! KVM). The lines are computed from the state
//! on every call, never cached, so they cannot go stale. Every guest access,
//! whatever its offset and size, is answered without panicking: unsupported
//! sizes and reserved offsets read as zero and ignore writes, and the
//! observer, if there is one, is told with an [`Event::Ignored`].
//!
//! # What it does not model
//!
//! - The Security Extensions: GICD_TYPER.SecurityExtn reads 0 (IHI 0048B
//!   4.3.2), there is no Secure or Non-secure view of any register, and
//!   GICD_NSACRn are reserved. A VM's guest runs in one security state.
//! - The virtualization extensions (IHI 0048B Chapter 5): no GICH or GICV
//!   frames, no list registers. A VMM that wants to hand a guest a GICv2
//!   through them uses the kernel's vGIC instead.
//! - Priority bits: all 8 are implemented, so GICC_BPR's minimum is 0.
//! - SGI enables: the GICD_ISENABLER0 bits of SGIs read as one and ignore
//!   writes (IMPLEMENTATION DEFINED, IHI 0048B 4.3.5).
//!
//! # Files
//!
//! | file | holds |
//! |---|---|
//! | `regs.rs` | the register map, interrupt ids, register names |
//! | `observer.rs` | [`Observer`], [`Event`] |
//! | `config.rs` | [`GicConfig`], [`ConfigError`] |
//! | `state.rs` | per-interrupt state, banked per CPU for SGIs/PPIs |
//! | `priority.rs` | group priority, active priorities, running priority |
//! | `distributor.rs` | GICD register decode |
//! | `cpu_interface.rs` | GICC register decode, acknowledge, EOI, DIR |
//! | `access.rs` | access-size rules (IHI 0048B 4.1.4) |
//! | `fuzzing.rs` | input decoder and invariant checks shared by the fuzz target, the corpus test and the property tests (public, hidden from the documentation) |

#![no_std]
#![deny(missing_docs)]

#[cfg(feature = "model")]
extern crate alloc;

pub mod regs;

#[cfg(feature = "model")]
mod access;
#[cfg(feature = "model")]
mod config;
#[cfg(feature = "model")]
mod cpu_interface;
#[cfg(feature = "model")]
mod distributor;
#[cfg(feature = "model")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "model")]
mod observer;
#[cfg(feature = "model")]
mod priority;
#[cfg(feature = "model")]
mod state;

pub use regs::Frame;

#[cfg(feature = "model")]
pub use config::{ConfigError, GicConfig, MAX_CPUS, MAX_SPIS};
#[cfg(feature = "model")]
pub use observer::{Event, Observer};

#[cfg(feature = "model")]
use alloc::{boxed::Box, vec, vec::Vec};
#[cfg(feature = "model")]
use cpu_interface::CpuInterface;
#[cfg(feature = "model")]
use observer::ObserverSlot;
#[cfg(feature = "model")]
use regs::{IntId, IntKind};
#[cfg(feature = "model")]
use state::IrqTable;

/// GICD_CTLR.EnableGrp0 (IHI 0048B 4.3.1).
#[cfg(feature = "model")]
const GICD_CTLR_ENABLE_GRP0: u32 = 1 << 0;
/// GICD_CTLR.EnableGrp1 (IHI 0048B 4.3.1).
#[cfg(feature = "model")]
const GICD_CTLR_ENABLE_GRP1: u32 = 1 << 1;

/// The GICv2 model: one distributor and `num_cpus` CPU interfaces.
///
/// Not internally synchronised: a VMM shares it between vCPU threads
/// behind a lock of its own, and maps its two frames onto its MMIO bus
/// (the distributor frame is [`regs::GICD_FRAME_SIZE`] bytes, the CPU
/// interface frame [`regs::GICC_FRAME_SIZE`]). The CPU an access comes from
/// is an argument of every access, because the GIC banks registers per CPU
/// interface.
///
/// A clone has the same state and no observer; equality compares the state
/// only.
#[cfg(feature = "model")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gicv2 {
    config: GicConfig,
    /// GICD_CTLR: the distributor's per-group forwarding enables.
    gicd_ctlr: u32,
    irqs: IrqTable,
    cpus: Vec<CpuInterface>,
    observer: ObserverSlot,
}

/// The interrupt a CPU interface would take next, and what it needs to know
/// about it.
#[cfg(feature = "model")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Candidate {
    id: IntId,
    priority: u8,
    group1: bool,
}

#[cfg(feature = "model")]
impl Gicv2 {
    /// A GIC in its reset state (IHI 0048B Tables 4-1 and 4-2): everything
    /// disabled, inactive, Group 0, priority 0, PMR 0 (all masked). No
    /// observer.
    pub fn new(config: GicConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            gicd_ctlr: 0,
            irqs: IrqTable::new(config.num_cpus, config.num_spis),
            cpus: vec![CpuInterface::new(); config.num_cpus],
            observer: ObserverSlot::default(),
        })
    }

    /// The configuration this GIC was built with.
    pub fn config(&self) -> &GicConfig {
        &self.config
    }

    /// Installs `observer` (or removes the one installed, with `None`): it
    /// is called with every [`Event`] from now on, synchronously, inside
    /// the call that caused it. Without an observer an event costs one
    /// branch.
    pub fn set_observer(&mut self, observer: Option<Box<dyn Observer>>) {
        self.observer = ObserverSlot(observer);
    }

    /// Removes the installed observer and returns it, so that a VMM can
    /// wrap it (chain another in front of it) and install it again.
    pub fn take_observer(&mut self) -> Option<Box<dyn Observer>> {
        self.observer.0.take()
    }

    /// Whether an observer is installed.
    pub fn has_observer(&self) -> bool {
        self.observer.0.is_some()
    }

    /// Hands the event `make` builds to the observer; `make` only runs when
    /// there is one.
    #[inline]
    fn emit(&mut self, make: impl FnOnce() -> Event) {
        if let Some(observer) = self.observer.0.as_mut() {
            observer.event(&make());
        }
    }

    /// Reports a guest access answered read-as-zero / write-ignored.
    fn ignored(
        &mut self,
        cpu: usize,
        frame: Frame,
        offset: u64,
        size: usize,
        write: bool,
        reason: &'static str,
    ) {
        self.emit(|| Event::Ignored {
            cpu,
            frame,
            offset,
            size,
            write,
            reason,
        });
    }

    /// Drive a PPI's input line for one CPU (timer outputs come in here).
    /// An id that is not a PPI, or a CPU out of range, is ignored (and
    /// reported as [`Event::LevelIgnored`]).
    pub fn set_ppi_level(&mut self, cpu: usize, id: IntId, level: bool) {
        if id.kind() != IntKind::Ppi {
            self.emit(|| Event::LevelIgnored {
                cpu: Some(cpu),
                id,
                level,
                reason: "set_ppi_level on a non-PPI id",
            });
            return;
        }
        if cpu >= self.cpus.len() {
            self.emit(|| Event::LevelIgnored {
                cpu: Some(cpu),
                id,
                level,
                reason: "set_ppi_level on absent CPU",
            });
            return;
        }
        self.drive_line(cpu, id, level);
    }

    /// Drive an SPI's input line. An id that is not an implemented SPI is
    /// ignored (and reported as [`Event::LevelIgnored`]).
    pub fn set_spi_level(&mut self, id: IntId, level: bool) {
        if id.kind() != IntKind::Spi {
            self.emit(|| Event::LevelIgnored {
                cpu: None,
                id,
                level,
                reason: "set_spi_level on a non-SPI id",
            });
            return;
        }
        if id.raw() >= self.irqs.num_ids() {
            self.emit(|| Event::LevelIgnored {
                cpu: None,
                id,
                level,
                reason: "set_spi_level on unimplemented SPI",
            });
            return;
        }
        // SPI state is shared, so CPU 0's view is every CPU's.
        self.drive_line(0, id, level);
    }

    /// Sets the input line of `cpu`'s view of a PPI or SPI, and reports the
    /// interrupt becoming pending: a level-sensitive one whose line rises,
    /// an edge-triggered one that latches a rising edge (IHI 0048B 3.2.4).
    /// This is the VMM's hot path (a timer level on every exit), so
    /// without an observer it is the line change and one branch.
    fn drive_line(&mut self, cpu: usize, id: IntId, level: bool) {
        if !self.has_observer() {
            if let Some(irq) = self.irqs.get_mut(cpu, id) {
                irq.set_line(level);
            }
            return;
        }
        let before = self.irqs.pending(cpu, id);
        if let Some(irq) = self.irqs.get_mut(cpu, id) {
            irq.set_line(level);
        }
        if !before && self.irqs.pending(cpu, id) {
            self.emit_pending(cpu, id, None);
        }
    }

    /// Reports `id` newly pending at `cpu` (the CPU is dropped for an SPI,
    /// whose state is not banked).
    fn emit_pending(&mut self, cpu: usize, id: IntId, source: Option<usize>) {
        let cpu = id.is_private().then_some(cpu);
        self.emit(|| Event::Pending { id, cpu, source });
    }

    /// The CPU's IRQ output: the VMM calls KVM_IRQ_LINE only when this
    /// changes. False for a CPU out of range.
    pub fn irq_line(&self, cpu: usize) -> bool {
        self.signalled(cpu)
            .is_some_and(|c| !self.goes_to_fiq(cpu, c))
    }

    /// The CPU's FIQ output: a Group 0 interrupt is signalled here instead
    /// of on IRQ when GICC_CTLR.FIQEn is set (IHI 0048B 3.4). False for a
    /// CPU out of range.
    pub fn fiq_line(&self, cpu: usize) -> bool {
        self.signalled(cpu)
            .is_some_and(|c| self.goes_to_fiq(cpu, c))
    }

    fn goes_to_fiq(&self, cpu: usize, c: Candidate) -> bool {
        !c.group1 && self.cpus.get(cpu).is_some_and(CpuInterface::fiq_en)
    }

    /// The highest-priority pending interrupt the distributor forwards to
    /// `cpu`: enabled, pending, not active, targeted at `cpu`, and of a group
    /// both GICD_CTLR and GICC_CTLR enable. Between equal priorities the
    /// architecture lets the implementation choose (IHI 0048B 3.3); this
    /// model takes the lowest id, as QEMU does.
    fn highest_pending(&self, cpu: usize) -> Option<Candidate> {
        let cpu_if = self.cpus.get(cpu)?;
        let mut best: Option<Candidate> = None;
        for raw in 0..self.irqs.num_ids() {
            let Some(id) = IntId::new(raw) else { continue };
            let Some(irq) = self.irqs.get(cpu, id) else {
                continue;
            };
            let group_bit = if irq.group1 {
                GICD_CTLR_ENABLE_GRP1
            } else {
                GICD_CTLR_ENABLE_GRP0
            };
            let eligible = irq.enabled
                && !irq.active
                && self.gicd_ctlr & group_bit != 0
                && cpu_if.group_enabled(irq.group1)
                && self.irqs.pending(cpu, id)
                && self.irqs.targets(cpu, id);
            if eligible && best.is_none_or(|b| irq.priority < b.priority) {
                best = Some(Candidate {
                    id,
                    priority: irq.priority,
                    group1: irq.group1,
                });
            }
        }
        best
    }

    /// [`Gicv2::highest_pending`] if its priority is above the priority
    /// mask (IHI 0048B 3.3.3): what GICC_HPPIR reports.
    fn pending_above_mask(&self, cpu: usize) -> Option<Candidate> {
        let cpu_if = self.cpus.get(cpu)?;
        self.highest_pending(cpu)
            .filter(|c| c.priority < cpu_if.pmr())
    }

    /// The interrupt the CPU interface signals: above the priority mask and
    /// with a group priority higher than the running priority, so that it
    /// preempts whatever is active (IHI 0048B 3.3.2).
    fn signalled(&self, cpu: usize) -> Option<Candidate> {
        let cpu_if = self.cpus.get(cpu)?;
        self.pending_above_mask(cpu).filter(|c| {
            u16::from(cpu_if.group_priority(c.priority, c.group1)) < cpu_if.running_priority()
        })
    }
}
