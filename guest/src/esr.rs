//! Decoding `ESR_EL1`, the Exception Syndrome Register, for error reports
//! (Arm ARM DDI 0487, "ESR_EL1, Exception Syndrome Register (EL1)").
//!
//! ```text
//!  31      26 25 24                         0
//! ┌──────────┬──┬────────────────────────────┐
//! │    EC    │IL│            ISS             │
//! └──────────┴──┴────────────────────────────┘
//! ```
//!
//! EC (exception class) says what kind of exception it was; ISS is specific
//! to the class. For aborts, ISS bits \[5:0\] are the fault status code.

/// The exception class, `ESR_EL1[31:26]`.
pub fn exception_class(esr: u64) -> u32 {
    ((esr >> 26) & 0x3F) as u32
}

/// EC 0x25: a data abort taken without a change in exception level.
pub const EC_DATA_ABORT_SAME_EL: u32 = 0x25;

/// A data abort's fault status code (DFSC, ISS\[5:0\]) for a synchronous
/// external abort that is not on a translation table walk: what a bus
/// answers for an access no device takes.
pub const DFSC_SYNC_EXTERNAL: u64 = 0b010000;

/// ISS bit 6 of a data abort, WnR: set when a store caused it, clear for a
/// load (Arm ARM D17.2.37, "ISS encoding for an exception from a Data
/// Abort").
pub const WNR: u64 = 1 << 6;

/// Whether `esr` describes a synchronous external abort on a data access
/// taken at the current EL: EC 0x25 with DFSC 0b010000.
pub fn is_sync_external_abort_same_el(esr: u64) -> bool {
    exception_class(esr) == EC_DATA_ABORT_SAME_EL && esr & 0x3F == DFSC_SYNC_EXTERNAL
}

/// A short description of an exception class (the common ones).
pub fn describe_class(ec: u32) -> &'static str {
    match ec {
        0x00 => "unknown reason",
        0x01 => "trapped WFI/WFE",
        0x07 => "SIMD/FP access trapped (CPACR_EL1.FPEN)",
        0x0E => "illegal execution state",
        0x15 => "SVC from AArch64",
        0x16 => "HVC from AArch64",
        0x18 => "trapped MSR/MRS/system instruction",
        0x20 => "instruction abort from a lower EL",
        0x21 => "instruction abort, same EL",
        0x22 => "PC alignment fault",
        0x24 => "data abort from a lower EL",
        0x25 => "data abort, same EL",
        0x26 => "SP alignment fault",
        0x2C => "trapped floating-point exception",
        0x2F => "SError",
        0x3C => "BRK instruction",
        _ => "see the Arm ARM",
    }
}

/// For an abort (EC 0x20, 0x21, 0x24, 0x25), a short description of its
/// fault status code, ISS\[5:0\]; `None` for other classes.
pub fn describe_abort(esr: u64) -> Option<&'static str> {
    if !matches!(exception_class(esr), 0x20 | 0x21 | 0x24 | 0x25) {
        return None;
    }
    Some(match esr & 0x3F {
        0b000000..=0b000011 => "address size fault",
        0b000100..=0b000111 => "translation fault",
        0b001001..=0b001011 => "access flag fault",
        0b001101..=0b001111 => "permission fault",
        0b010000 => "synchronous external abort",
        0b100001 => "alignment fault",
        _ => "other fault",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misaligned_load_with_the_mmu_off() {
        // What QEMU reports for `ldr x0, [x1]` with x1 % 8 == 1 and the MMU
        // off: EC 0x25, IL, ISV clear, DFSC 0b100001.
        let esr = 0x9600_0021;
        assert_eq!(exception_class(esr), 0x25);
        assert_eq!(describe_class(0x25), "data abort, same EL");
        assert_eq!(describe_abort(esr), Some("alignment fault"));
    }

    #[test]
    fn synchronous_external_aborts_are_told_from_other_aborts() {
        // A load from nothing at EL1 (QEMU virt, KVM's injected abort):
        // EC 0x25, IL, DFSC 0b010000; a store adds WnR.
        assert!(is_sync_external_abort_same_el(0x9600_0010));
        assert!(is_sync_external_abort_same_el(0x9600_0010 | WNR));
        assert_eq!(
            describe_abort(0x9600_0050),
            Some("synchronous external abort")
        );
        // An alignment fault, a translation fault, and the same external
        // abort taken from EL0 (EC 0x24) are not.
        assert!(!is_sync_external_abort_same_el(0x9600_0021));
        assert!(!is_sync_external_abort_same_el(0x9600_0005));
        assert!(!is_sync_external_abort_same_el(0x9200_0010));
    }

    #[test]
    fn non_aborts_have_no_fault_status() {
        assert_eq!(describe_abort(0x5600_0000), None); // SVC
        assert_eq!(describe_class(0x3F), "see the Arm ARM");
    }
}
