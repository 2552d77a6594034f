//! The programs the VMM can ask for (`uirq_abi::boot::Program`).

pub mod bench;
pub mod chaos;
pub mod dt_info;
pub mod echo;
pub mod fault;
pub mod ipi_stress;
pub mod scenarios;
pub mod smp_timer;
pub mod spin;
pub mod timer;
