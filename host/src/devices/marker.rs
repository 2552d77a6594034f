//! The benchmark's phase marker: one write-only register the firmware
//! writes a `uirq_abi::bench::Phase` number to before each measurement.
//!
//! The vCPU loop reads the current phase (an atomic shared with this
//! device) at every exit, so it can count exits per measurement exactly and
//! record its timeline only while the virtual-timer samples run.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use uirq_abi::bench::Phase;

use crate::bus::MmioDevice;

/// The marker device; `phase` is shared with the vCPU loop.
pub struct Marker {
    phase: Arc<AtomicU32>,
}

impl Marker {
    /// A marker reporting into `phase` (starts at [`Phase::Idle`]).
    pub fn new(phase: Arc<AtomicU32>) -> Self {
        phase.store(Phase::Idle as u32, Ordering::Relaxed);
        Self { phase }
    }
}

impl MmioDevice for Marker {
    fn read(&mut self, _vcpu: usize, _offset: u64, data: &mut [u8]) {
        // Write-only; reads as zero.
        data.fill(0);
    }

    fn write(&mut self, _vcpu: usize, offset: u64, data: &[u8]) {
        if offset != 0 || data.len() != 4 {
            crate::limited!(
                warn,
                offset,
                size = data.len(),
                "bench marker: only a 32-bit write at offset 0 is defined"
            );
            return;
        }
        let value = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        match Phase::from_number(value) {
            Some(p) => self.phase.store(p as u32, Ordering::Release),
            None => crate::limited!(warn, value, "bench marker: unknown phase ignored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_phases_are_published_and_nonsense_ignored() {
        let phase = Arc::new(AtomicU32::new(99));
        let mut m = Marker::new(phase.clone());
        assert_eq!(phase.load(Ordering::Relaxed), Phase::Idle as u32);
        m.write(0, 0, &(Phase::Sgi as u32).to_le_bytes());
        assert_eq!(phase.load(Ordering::Relaxed), Phase::Sgi as u32);
        m.write(0, 0, &77u32.to_le_bytes());
        m.write(0, 4, &(Phase::Done as u32).to_le_bytes());
        m.write(0, 0, &[4]);
        assert_eq!(phase.load(Ordering::Relaxed), Phase::Sgi as u32);
        let mut d = [0xFF; 4];
        m.read(0, 0, &mut d);
        assert_eq!(d, [0; 4]);
    }
}
