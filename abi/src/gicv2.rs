//! GICv2 facts both sides use: the architectural register map, and how this
//! machine wires the generic timer to it.
//!
//! The register map (offsets of IHI 0048B Tables 4-1 and 4-2, frame sizes,
//! the range-checked [`IntId`]) is the `uirq-gicv2` crate's [`regs`]
//! module, re-exported here so that the firmware and the VMM name it as
//! `uirq_abi::gicv2::...` and there is one definition. The guest's
//! `register_structs!` maps are checked against these numbers by unit
//! tests; the VMM's model decodes accesses with them. What is this
//! machine's choice rather than the architecture's (which PPI the timers
//! use) is defined below.
//!
//! [`regs`]: uirq_gicv2::regs

pub use uirq_gicv2::regs::*;

/// PPI 11: the EL1 virtual timer (interrupt id 27). This is the
/// architecture's recommended wiring (Arm BSA) and QEMU `virt`'s.
pub const VTIMER: IntId = match IntId::ppi(11) {
    Some(id) => id,
    None => panic!(),
};

/// PPI 14: the EL1 physical timer (interrupt id 30).
pub const PTIMER: IntId = match IntId::ppi(14) {
    Some(id) => id,
    None => panic!(),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_ids_are_the_virt_board_wiring() {
        assert_eq!(VTIMER.raw(), 27);
        assert_eq!(PTIMER.raw(), 30);
        assert_eq!(VTIMER.kind(), IntKind::Ppi);
        assert_eq!(PTIMER.kind(), IntKind::Ppi);
    }
}
