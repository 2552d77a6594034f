//! What the model tells a VMM about itself: the life of an interrupt
//! (pending, acknowledged, priority dropped, deactivated; IHI 0048B 3.2.4,
//! Figure 3-1) and the guest accesses it ignored.
//!
//! The crate logs nothing. A VMM that wants warnings for a misbehaving
//! guest, a trace of every interrupt or counters installs an [`Observer`]
//! with [`Gicv2::set_observer`](crate::Gicv2::set_observer); the model calls
//! it synchronously, inside the access or line change that caused the
//! event, in the order the events happen. With no observer installed the
//! model builds no event: each costs one branch.

use alloc::boxed::Box;
use core::fmt;

use crate::regs::{Frame, IntId};

/// Receives the model's [`Event`]s.
///
/// It runs inside the model's call, under whatever lock the VMM holds on
/// the model, so it should be quick: record, count or queue, and do the
/// slow work elsewhere.
pub trait Observer: Send {
    /// Called once per event.
    fn event(&mut self, event: &Event);
}

/// Something that happened in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The interrupt became pending (from a line level, GICD_ISPENDR,
    /// GICD_SGIR or GICD_SPENDSGIR). `cpu` is the CPU whose banked copy
    /// (SGI/PPI) became pending, None for an SPI; `source` is the sending
    /// CPU for an SGI.
    ///
    /// An SGI pending from one source that becomes pending from another as
    /// well is reported again: in the N-N model each source's SGI is an
    /// interrupt of its own (IHI 0048B 1.4.3). A level-sensitive interrupt
    /// whose line is high stays pending after acknowledge (active and
    /// pending) and is not reported again.
    Pending {
        /// The interrupt.
        id: IntId,
        /// The CPU interface whose banked copy became pending (SGIs and
        /// PPIs), `None` for an SPI.
        cpu: Option<usize>,
        /// The CPU that sent an SGI; `None` for other interrupts.
        source: Option<usize>,
    },
    /// A GICC_IAR/GICC_AIAR read returned `id` (not 1020-1023) to `cpu`:
    /// pending to active (IHI 0048B 4.4.4).
    Acknowledged {
        /// The acknowledging CPU.
        cpu: usize,
        /// The interrupt.
        id: IntId,
        /// The CPU that sent an SGI (IAR bits `[12:10]`); `None` for other
        /// interrupts.
        source: Option<usize>,
    },
    /// A GICC_EOIR/AEOIR write dropped the running priority of `id` on
    /// `cpu` (IHI 0048B 3.3.2, 4.4.5).
    PriorityDropped {
        /// The CPU whose running priority dropped.
        cpu: usize,
        /// The interrupt the write named.
        id: IntId,
    },
    /// `id` became inactive on `cpu` (EOIR with EOImode 0, or GICC_DIR;
    /// IHI 0048B 4.4.5, 4.4.15).
    Deactivated {
        /// The CPU that ended it.
        cpu: usize,
        /// The interrupt.
        id: IntId,
    },
    /// A guest access the model answered as read-as-zero / write-ignored,
    /// or otherwise ignored, and why.
    Ignored {
        /// The accessing CPU (possibly one the GIC does not have).
        cpu: usize,
        /// The frame accessed.
        frame: Frame,
        /// The offset in the frame (possibly beyond it).
        offset: u64,
        /// The access size in bytes.
        size: usize,
        /// A store rather than a load.
        write: bool,
        /// Why, as one sentence ("unsupported access size or alignment
        /// (RAZ/WI)").
        reason: &'static str,
    },
    /// A line level the VMM drove ([`Gicv2::set_ppi_level`],
    /// [`Gicv2::set_spi_level`]) that names no input of this GIC (an id of
    /// the wrong kind, an SPI it does not implement, an absent CPU), and
    /// was ignored.
    ///
    /// [`Gicv2::set_ppi_level`]: crate::Gicv2::set_ppi_level
    /// [`Gicv2::set_spi_level`]: crate::Gicv2::set_spi_level
    LevelIgnored {
        /// The CPU named for a PPI; `None` for an SPI.
        cpu: Option<usize>,
        /// The interrupt named.
        id: IntId,
        /// The level driven.
        level: bool,
        /// Why, as one sentence.
        reason: &'static str,
    },
}

/// The model's observer, if any. It holds no state of the GIC, so a clone
/// of the model gets none (an observer is not `Clone`, and a clone that is
/// only tried, as the fuzzing checks do, must not report what it does),
/// and it takes no part in comparing two models.
#[derive(Default)]
pub(crate) struct ObserverSlot(pub(crate) Option<Box<dyn Observer>>);

impl Clone for ObserverSlot {
    fn clone(&self) -> Self {
        Self(None)
    }
}

impl PartialEq for ObserverSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ObserverSlot {}

impl fmt::Debug for ObserverSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Some(_) => "Some(<observer>)",
            None => "None",
        })
    }
}
