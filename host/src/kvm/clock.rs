//! The VMM's clock for the benchmark timeline: the same generic timer the
//! guest reads.
//!
//! Linux lets userspace read CNTVCT_EL0 (CNTKCTL_EL1.EL0VCTEN). On a VHE
//! host (the L1 kernel here, and every recent arm64 KVM host) the virtual
//! offset does not apply to the host's own EL0 reads, so this is the
//! physical count; a VM whose counter offset is zero (see
//! `super::vm::create`) reads the same count as CNTVCT_EL0. Host
//! and guest timestamps can then be subtracted directly.

/// The current counter value. The ISB keeps the read from being taken
/// early, before the instructions that precede it (Arm ARM, "Reading the
/// counter": reads of CNTVCT_EL0 can occur speculatively and out of order).
#[inline]
pub fn now() -> u64 {
    let value: u64;
    // SAFETY: reading CNTVCT_EL0 has no side effects and touches no memory;
    // Linux enables EL0 access to the virtual counter on arm64.
    unsafe {
        core::arch::asm!("isb", "mrs {v}, cntvct_el0", v = out(reg) value, options(nomem, nostack, preserves_flags));
    }
    value
}

/// Added to [`now`] to get the guest's count (0 when KVM let the VMM zero
/// the guest's counter offset).
static GUEST_OFFSET: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Sets the offset from the VMM's count to the guest's (once, when the VM
/// is created).
pub fn set_guest_offset(offset: i64) {
    GUEST_OFFSET.store(offset, std::sync::atomic::Ordering::Relaxed);
}

/// The current count on the guest's timebase, for probes.
pub fn guest_now() -> u64 {
    now().wrapping_add(GUEST_OFFSET.load(std::sync::atomic::Ordering::Relaxed) as u64)
}

/// The counter's frequency in Hz (CNTFRQ_EL0, readable at EL0 on Linux; the
/// guest reads the same value).
pub fn frequency() -> u64 {
    let value: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects and touches no memory.
    unsafe {
        core::arch::asm!("mrs {v}, cntfrq_el0", v = out(reg) value, options(nomem, nostack, preserves_flags));
    }
    value
}
