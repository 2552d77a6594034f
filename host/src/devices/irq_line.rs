//! A device's interrupt output.
//!
//! A device model does not know which interrupt controller it is wired to,
//! or whether that controller lives in this process or in the kernel: it
//! holds an [`IrqLine`] and sets the level of its output, as a peripheral
//! drives a wire. The VMM decides what is at the other end: an SPI of the
//! userspace GIC model (`crate::irqchip::GicSpi`), or KVM's in-kernel vGIC
//! through `KVM_IRQ_LINE` (`crate::kvm::vm`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The wire from a device's interrupt output to an interrupt controller.
pub trait IrqLine: Send + Sync {
    /// Drives the wire to `level` (devices here are level-sensitive, so the
    /// controller sees the level, not a pulse).
    fn set_level(&self, level: bool);
}

/// A wire to nothing, for devices used where no interrupt is wanted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unconnected;

impl IrqLine for Unconnected {
    fn set_level(&self, _level: bool) {}
}

/// A wire whose level can be read back, and which counts how often it was
/// driven: for tests of device models.
#[derive(Clone, Debug, Default)]
pub struct Probed {
    level: Arc<AtomicBool>,
}

impl Probed {
    /// The level last driven.
    pub fn level(&self) -> bool {
        self.level.load(Ordering::SeqCst)
    }
}

impl IrqLine for Probed {
    fn set_level(&self, level: bool) {
        self.level.store(level, Ordering::SeqCst);
    }
}
