//! The two MMIO frames of the GIC as bus devices.
//!
//! The distributor and the CPU interfaces are separate address ranges
//! (IHI 0048B 4.1, Tables 4-1 and 4-2) but one piece of state, so both
//! adapters hold the same `Arc<Mutex<Gicv2>>`. Every CPU interface is
//! reached at the same address; the vCPU index the bus passes in says which
//! one (IHI 0048B 4.1: the CPU interface registers are banked by the
//! accessing processor).

use std::sync::{Arc, Mutex};

use super::Gicv2;
use crate::bus::{lock, MmioDevice};

/// The distributor frame (GICD, 4 KiB) as a bus device.
pub struct DistributorFrame(pub Arc<Mutex<Gicv2>>);

/// The CPU interface frame (GICC, 8 KiB) as a bus device.
pub struct CpuInterfaceFrame(pub Arc<Mutex<Gicv2>>);

impl MmioDevice for DistributorFrame {
    fn read(&mut self, vcpu: usize, offset: u64, data: &mut [u8]) {
        lock(&self.0).distributor_read(vcpu, offset, data);
    }

    fn write(&mut self, vcpu: usize, offset: u64, data: &[u8]) {
        lock(&self.0).distributor_write(vcpu, offset, data);
    }
}

impl MmioDevice for CpuInterfaceFrame {
    fn read(&mut self, vcpu: usize, offset: u64, data: &mut [u8]) {
        lock(&self.0).cpu_interface_read(vcpu, offset, data);
    }

    fn write(&mut self, vcpu: usize, offset: u64, data: &[u8]) {
        lock(&self.0).cpu_interface_write(vcpu, offset, data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Bus;
    use crate::devices::gicv2::GicConfig;
    use uirq_abi::gicv2::{gicc, gicd};

    // IHI 0048B 4.1: the two frames are separate ranges on one GIC; the CPU
    // interface answers for the vCPU that made the access.
    #[test]
    fn both_frames_reach_one_model_through_the_bus() {
        let gic = Arc::new(Mutex::new(
            Gicv2::new(GicConfig {
                num_cpus: 2,
                num_spis: 32,
            })
            .unwrap(),
        ));
        let mut bus = Bus::new();
        bus.insert(
            "gicd",
            0x0800_0000,
            0x1000,
            Arc::new(Mutex::new(DistributorFrame(gic.clone()))),
        )
        .unwrap();
        bus.insert(
            "gicc",
            0x0801_0000,
            0x2000,
            Arc::new(Mutex::new(CpuInterfaceFrame(gic.clone()))),
        )
        .unwrap();

        let mut buf = [0u8; 4];
        bus.read(0, 0x0800_0000 + gicd::TYPER, &mut buf);
        assert_eq!(u32::from_le_bytes(buf) >> 5 & 7, 1, "CPUNumber = 2 - 1");

        bus.write(1, 0x0801_0000 + gicc::PMR, &0xF0u32.to_le_bytes());
        bus.read(1, 0x0801_0000 + gicc::PMR, &mut buf);
        assert_eq!(u32::from_le_bytes(buf), 0xF0);
        bus.read(0, 0x0801_0000 + gicc::PMR, &mut buf);
        assert_eq!(u32::from_le_bytes(buf), 0, "CPU 0's PMR is its own");
        assert!(!lock(&gic).irq_line(0));
    }
}
