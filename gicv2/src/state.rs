//! Per-interrupt state: enable, pending, active, group, priority, trigger
//! mode, input line and (for SPIs) targets.
//!
//! IHI 0048B 1.4.1 gives each interrupt one of four states (inactive,
//! pending, active, active and pending). This model stores the inputs of
//! that state instead of the state itself:
//!
//! - `latched` is the pending latch: set by a rising edge of an
//!   edge-triggered input or by a write to GICD_ISPENDR, cleared by
//!   acknowledge or GICD_ICPENDR (IHI 0048B 4.3.7, 4.3.8).
//! - `line` is the input level. A level-sensitive interrupt is pending while
//!   its line is high, whatever the latch says, so after acknowledge it is
//!   "active and pending" while the device still asserts it, and is signalled
//!   again once deactivated (IHI 0048B 3.2.4, Figure 3-1).
//!
//! SGIs and PPIs are banked: each CPU interface has its own copy
//! (IHI 0048B 2.2.1). SGI pending state is further split by the CPU that
//! sent the SGI, because acknowledge reports the source (IHI 0048B 4.4.4),
//! and each source's SGI is a separate interrupt in the N-N model
//! (IHI 0048B 1.4.3). SPIs use the 1-N model: one pending and one active
//! bit shared by all CPUs.

use alloc::{vec, vec::Vec};

use crate::regs::{IntId, IntKind, SGI_COUNT, SPI_BASE};

/// Number of banked ids per CPU: SGIs 0-15 and PPIs 16-31.
const PRIVATE_IDS: usize = SPI_BASE as usize;

/// The state of one interrupt (one CPU's copy, for SGIs and PPIs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct IrqState {
    /// GICD_ISENABLER / GICD_ICENABLER: the distributor forwards it.
    pub(super) enabled: bool,
    /// Pending latch: edge seen or GICD_ISPENDR written, not yet consumed.
    pub(super) latched: bool,
    /// Acknowledged and not yet deactivated.
    pub(super) active: bool,
    /// Current level of the input line (PPIs and SPIs).
    pub(super) line: bool,
    /// GICD_ICFGR Int_config[1]: edge-triggered rather than level-sensitive.
    pub(super) edge: bool,
    /// GICD_IGROUPR: Group 1 rather than Group 0.
    pub(super) group1: bool,
    /// GICD_IPRIORITYR: lower is more urgent. All 8 bits are implemented.
    pub(super) priority: u8,
}

impl IrqState {
    /// Pending, for a PPI or SPI: latched, or a level-sensitive line high.
    pub(crate) fn pending(&self) -> bool {
        self.latched || (!self.edge && self.line)
    }

    /// Drives the input line: a rising edge latches an edge-triggered
    /// interrupt; a level-sensitive one follows the line by itself.
    pub(super) fn set_line(&mut self, level: bool) {
        if level && !self.line && self.edge {
            self.latched = true;
        }
        self.line = level;
    }
}

/// One CPU interface's banked SGIs and PPIs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Banked {
    irqs: [IrqState; PRIVATE_IDS],
    /// For each SGI, one bit per source CPU that has it pending here.
    sgi_sources: [u8; SGI_COUNT as usize],
}

impl Banked {
    fn new() -> Self {
        let mut irqs: [IrqState; PRIVATE_IDS] = Default::default();
        for sgi in irqs.iter_mut().take(SGI_COUNT as usize) {
            // IHI 0048B 4.3.13: SGIs are always edge-triggered. 4.3.5: whether
            // SGIs can be disabled is IMPLEMENTATION DEFINED; here they are
            // permanently enabled (the GICD_ISENABLER0 bits are RAO/WI).
            sgi.edge = true;
            sgi.enabled = true;
        }
        Self {
            irqs,
            sgi_sources: [0; SGI_COUNT as usize],
        }
    }
}

/// One SPI: its state and its GICD_ITARGETSR byte.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Spi {
    state: IrqState,
    targets: u8,
}

/// Every interrupt's state, banked where the architecture banks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct IrqTable {
    banked: Vec<Banked>,
    spis: Vec<Spi>,
}

impl IrqTable {
    /// All interrupts inactive, disabled, Group 0, priority 0,
    /// level-sensitive (SGIs: edge, enabled), SPIs targeting no CPU: the
    /// reset values of IHI 0048B Table 4-1.
    pub(super) fn new(num_cpus: usize, num_spis: u32) -> Self {
        Self {
            banked: (0..num_cpus).map(|_| Banked::new()).collect(),
            spis: vec![Spi::default(); num_spis as usize],
        }
    }

    /// Number of implemented ids (32 + number of SPIs).
    pub(super) fn num_ids(&self) -> u32 {
        // At most 988 SPIs, so this cannot overflow.
        SPI_BASE + self.spis.len() as u32
    }

    /// `raw` as an id, if this GIC implements it.
    pub(super) fn implemented(&self, raw: u32) -> Option<IntId> {
        IntId::new(raw).filter(|id| id.raw() < self.num_ids())
    }

    /// `cpu`'s view of interrupt `id`; `None` if either is out of range.
    pub(super) fn get(&self, cpu: usize, id: IntId) -> Option<&IrqState> {
        if id.is_private() {
            self.banked.get(cpu)?.irqs.get(id.raw() as usize)
        } else {
            let spi = self.spis.get(spi_index(id))?;
            (cpu < self.banked.len()).then_some(&spi.state)
        }
    }

    /// Mutable form of [`IrqTable::get`].
    pub(super) fn get_mut(&mut self, cpu: usize, id: IntId) -> Option<&mut IrqState> {
        if id.is_private() {
            self.banked.get_mut(cpu)?.irqs.get_mut(id.raw() as usize)
        } else {
            if cpu >= self.banked.len() {
                return None;
            }
            Some(&mut self.spis.get_mut(spi_index(id))?.state)
        }
    }

    /// Pending as `cpu` sees it. An SGI is pending while any source has it
    /// pending (IHI 0048B 4.3.7).
    pub(super) fn pending(&self, cpu: usize, id: IntId) -> bool {
        match id.kind() {
            IntKind::Sgi => self.sgi_sources(cpu, id) != 0,
            IntKind::Ppi | IntKind::Spi => self.get(cpu, id).is_some_and(IrqState::pending),
        }
    }

    /// Whether the distributor forwards `id` to `cpu`: banked interrupts
    /// always go to their own CPU; an SPI goes to the CPUs in its
    /// ITARGETSR byte, or to the only CPU of a uniprocessor GIC, whose
    /// ITARGETSR are RAZ/WI (IHI 0048B 4.3.12).
    pub(super) fn targets(&self, cpu: usize, id: IntId) -> bool {
        if cpu >= self.banked.len() {
            return false;
        }
        if id.is_private() || self.banked.len() == 1 {
            return true;
        }
        self.spis
            .get(spi_index(id))
            .is_some_and(|spi| spi.targets & (1u8 << (cpu & 7)) != 0)
    }

    /// An SPI's GICD_ITARGETSR byte (0 for anything else).
    pub(super) fn spi_targets(&self, id: IntId) -> u8 {
        if id.is_private() {
            return 0;
        }
        self.spis.get(spi_index(id)).map_or(0, |spi| spi.targets)
    }

    /// Sets an SPI's GICD_ITARGETSR byte; ignored for anything else.
    pub(super) fn set_spi_targets(&mut self, id: IntId, targets: u8) {
        if id.is_private() {
            return;
        }
        if let Some(spi) = self.spis.get_mut(spi_index(id)) {
            spi.targets = targets;
        }
    }

    /// Which source CPUs have SGI `id` pending at `cpu` (one bit each).
    pub(super) fn sgi_sources(&self, cpu: usize, id: IntId) -> u8 {
        if id.kind() != IntKind::Sgi {
            return 0;
        }
        self.banked
            .get(cpu)
            .and_then(|b| b.sgi_sources.get(id.raw() as usize))
            .copied()
            .unwrap_or(0)
    }

    /// Replaces the set of sources that have SGI `id` pending at `cpu`.
    pub(super) fn set_sgi_sources(&mut self, cpu: usize, id: IntId, sources: u8) {
        if id.kind() != IntKind::Sgi {
            return;
        }
        if let Some(s) = self
            .banked
            .get_mut(cpu)
            .and_then(|b| b.sgi_sources.get_mut(id.raw() as usize))
        {
            *s = sources;
        }
    }
}

/// Index of an SPI in the SPI table. Callers pass only SPIs; anything else
/// maps to an index past the table (`get` then answers `None`).
fn spi_index(id: IntId) -> usize {
    id.raw()
        .checked_sub(SPI_BASE)
        .map_or(usize::MAX, |n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: u32) -> IntId {
        IntId::new(raw).unwrap()
    }

    // IHI 0048B 3.2.4: a level-sensitive interrupt stays pending while its
    // line is asserted; an edge-triggered one latches the rising edge.
    #[test]
    fn level_follows_line_and_edge_latches() {
        let mut t = IrqTable::new(1, 32);
        let spi = id(40);
        t.get_mut(0, spi).unwrap().set_line(true);
        assert!(t.pending(0, spi));
        t.get_mut(0, spi).unwrap().set_line(false);
        assert!(!t.pending(0, spi));

        t.get_mut(0, spi).unwrap().edge = true;
        t.get_mut(0, spi).unwrap().set_line(true);
        t.get_mut(0, spi).unwrap().set_line(false);
        assert!(t.pending(0, spi), "the edge stays latched");
    }

    // IHI 0048B 2.2.1: SGIs and PPIs are banked per CPU interface.
    #[test]
    fn private_state_is_banked() {
        let mut t = IrqTable::new(2, 0);
        t.get_mut(1, id(27)).unwrap().enabled = true;
        assert!(!t.get(0, id(27)).unwrap().enabled);
        assert!(t.get(1, id(27)).unwrap().enabled);
        assert!(t.get(2, id(27)).is_none());
        assert!(t.get(0, id(32)).is_none(), "no SPIs implemented");
    }

    // IHI 0048B 4.3.12: a uniprocessor GIC routes every SPI to its CPU.
    #[test]
    fn spi_targets() {
        let t = IrqTable::new(1, 32);
        assert!(t.targets(0, id(33)));
        let mut t = IrqTable::new(2, 32);
        assert!(!t.targets(1, id(33)));
        t.set_spi_targets(id(33), 0b10);
        assert!(t.targets(1, id(33)));
        assert!(!t.targets(0, id(33)));
    }
}
