//! The latency benchmark's phase marker: one write-only 32-bit register at
//! `uirq_abi::bench::MARKER_BASE`, which only the uirq VMM implements.
//!
//! Writing a [`Phase`] number there is one MMIO exit, placed outside every
//! measured window. The VMM uses the writes to attribute each exit it serves
//! to a phase of the benchmark (`uirq_abi::bench`).

use crate::drivers::mmio::WriteOnly;
use tock_registers::{interfaces::Writeable, register_structs};
use uirq_abi::bench::Phase;

register_structs! {
    /// The marker frame: one register at offset 0 (the rest of the 4 KiB
    /// frame, `uirq_abi::bench::MARKER_SIZE`, is unused).
    #[allow(non_snake_case)]
    pub RegisterBlock {
        /// Write a [`Phase`] number.
        (0x0 => PHASE: WriteOnly<u32>),
        (0x4 => @END),
    }
}

/// The phase-marker register.
pub struct Marker {
    regs: &'static RegisterBlock,
}

impl Marker {
    /// A driver for the marker register at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be the address of the marker frame (or of 4 bytes of
    /// memory standing in for it), 4-byte aligned, present for the rest of
    /// the program, and not referenced by anything that assumes it does not
    /// change.
    pub unsafe fn new(base: usize) -> Self {
        // SAFETY: the caller promises a live, aligned register; the only
        // field is a tock-registers cell written with a single store.
        let regs = unsafe { &*(base as *const RegisterBlock) };
        Self { regs }
    }

    /// Tells the VMM that `phase` begins now: one 32-bit store.
    pub fn mark(&self, phase: Phase) {
        self.regs.PHASE.set(phase as u32);
    }
}

#[cfg(test)]
mod tests {
    use core::mem::offset_of;

    use super::*;
    use crate::fake_mmio::FakeMmio;

    #[test]
    fn one_register_at_offset_zero() {
        assert_eq!(offset_of!(RegisterBlock, PHASE), 0);
        assert_eq!(core::mem::size_of::<RegisterBlock>(), 4);
        assert!(core::mem::size_of::<RegisterBlock>() as u64 <= uirq_abi::bench::MARKER_SIZE);
    }

    #[test]
    fn mark_writes_the_phase_number() {
        let fake = FakeMmio::<1>::new();
        // SAFETY: the fake is 4 bytes of leaked, aligned host memory.
        let marker = unsafe { Marker::new(fake.base()) };
        for phase in [
            Phase::Idle,
            Phase::Vtimer,
            Phase::Sgi,
            Phase::Mmio,
            Phase::Ipi,
            Phase::Done,
        ] {
            marker.mark(phase);
            assert_eq!(Phase::from_number(fake.word(0)), Some(phase));
        }
    }
}
