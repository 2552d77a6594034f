//! A GICv2 interrupt controller in plain Rust: the distributor and one CPU
//! interface per vCPU, as ARM IHI 0048B (GIC architecture specification,
//! version 2.0) describes them, without the Security Extensions.
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
//! forwards to KVM when they change. The lines are computed from the state
//! on every call, never cached, so they cannot go stale. Every guest access,
//! whatever its offset and size, is answered without panicking: unsupported
//! sizes and reserved offsets read as zero and ignore writes, with a
//! `tracing` warning.
//!
//! | file | holds |
//! |---|---|
//! | `config.rs` | [`GicConfig`], [`ConfigError`] |
//! | `state.rs` | per-interrupt state, banked per CPU for SGIs/PPIs |
//! | `priority.rs` | group priority, active priorities, running priority |
//! | `distributor.rs` | GICD register decode |
//! | `cpu_interface.rs` | GICC register decode, acknowledge, EOI, DIR |
//! | `access.rs` | access-size rules (IHI 0048B 4.1.4) |
//! | `fuzzing.rs` | input decoder and invariant checks shared by the fuzz target, the corpus test and the property tests |

mod access;
mod config;
mod cpu_interface;
mod distributor;
#[doc(hidden)]
pub mod fuzzing;
mod priority;
mod state;
#[cfg(test)]
mod tests;

use uirq_abi::gicv2::{IntId, IntKind};

pub use config::{ConfigError, GicConfig, MAX_CPUS, MAX_SPIS};

use cpu_interface::CpuInterface;
use state::IrqTable;

/// GICD_CTLR.EnableGrp0 (IHI 0048B 4.3.1).
const GICD_CTLR_ENABLE_GRP0: u32 = 1 << 0;
/// GICD_CTLR.EnableGrp1 (IHI 0048B 4.3.1).
const GICD_CTLR_ENABLE_GRP1: u32 = 1 << 1;

/// The GICv2 model: one distributor and `num_cpus` CPU interfaces.
///
/// Not internally synchronised: the VMM shares it between vCPU threads
/// behind a lock (`crate::irqchip::UserGic`), which also maps its two frames
/// onto the MMIO bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gicv2 {
    config: GicConfig,
    /// GICD_CTLR: the distributor's per-group forwarding enables.
    gicd_ctlr: u32,
    irqs: IrqTable,
    cpus: Vec<CpuInterface>,
}

/// The interrupt a CPU interface would take next, and what it needs to know
/// about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Candidate {
    id: IntId,
    priority: u8,
    group1: bool,
}

impl Gicv2 {
    /// A GIC in its reset state (IHI 0048B Tables 4-1 and 4-2): everything
    /// disabled, inactive, Group 0, priority 0, PMR 0 (all masked).
    pub fn new(config: GicConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            gicd_ctlr: 0,
            irqs: IrqTable::new(config.num_cpus, config.num_spis),
            cpus: vec![CpuInterface::new(); config.num_cpus],
        })
    }

    /// The configuration this GIC was built with.
    pub fn config(&self) -> &GicConfig {
        &self.config
    }

    /// Drive a PPI's input line for one CPU (timer outputs come in here).
    /// Ids that are not PPIs, or cpu out of range: log with tracing::warn
    /// and ignore.
    pub fn set_ppi_level(&mut self, cpu: usize, id: IntId, level: bool) {
        if id.kind() != IntKind::Ppi {
            crate::limited!(
                warn,
                cpu,
                id = id.raw(),
                "GICv2: set_ppi_level on a non-PPI id"
            );
            return;
        }
        match self.irqs.get_mut(cpu, id) {
            Some(irq) => irq.set_line(level),
            None => crate::limited!(
                warn,
                cpu,
                id = id.raw(),
                "GICv2: set_ppi_level on absent CPU"
            ),
        }
    }

    /// Drive an SPI's input line. Ids that are not implemented SPIs are
    /// logged with tracing::warn and ignored.
    pub fn set_spi_level(&mut self, id: IntId, level: bool) {
        if id.kind() != IntKind::Spi {
            crate::limited!(warn, id = id.raw(), "GICv2: set_spi_level on a non-SPI id");
            return;
        }
        // SPI state is shared, so any CPU's view is the same one.
        match self.irqs.get_mut(0, id) {
            Some(irq) => irq.set_line(level),
            None => crate::limited!(
                warn,
                id = id.raw(),
                "GICv2: set_spi_level on unimplemented SPI"
            ),
        }
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
