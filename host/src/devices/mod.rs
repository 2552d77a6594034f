//! Device models the guest reaches through the MMIO bus.

pub mod gicv2;
pub mod irq_line;
pub mod marker;
pub mod pl011;
