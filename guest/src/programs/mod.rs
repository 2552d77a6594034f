//! The programs the VMM can ask for (`uirq_abi::boot::Program`).

pub mod bench;
pub mod fault;
pub mod scenarios;
pub mod spin;
pub mod timer;
