//! Device models the guest reaches through the MMIO bus, and the VMM's
//! observer of the GIC model (the `uirq-gicv2` crate), which turns its
//! events into log lines.

pub mod gic_log;
pub mod irq_line;
pub mod marker;
pub mod pl011;
