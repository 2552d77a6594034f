//! The programs the VMM can ask for (`uirq_abi::boot::Program`).

pub mod fault;
pub mod spin;
pub mod timer;
