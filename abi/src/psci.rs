//! PSCI function ids the firmware uses (Arm DEN 0022, Table 5-2, SMC32).
//!
//! The firmware calls them with `HVC #0`. KVM implements PSCI itself; for
//! SYSTEM_OFF it stops the vCPU and reports `KVM_EXIT_SYSTEM_EVENT` with type
//! `KVM_SYSTEM_EVENT_SHUTDOWN` to the VMM.

/// PSCI_VERSION: returns the implemented version (major << 16 | minor).
pub const PSCI_VERSION: u32 = 0x8400_0000;
/// SYSTEM_OFF: shuts the system down; does not return.
pub const SYSTEM_OFF: u32 = 0x8400_0008;
