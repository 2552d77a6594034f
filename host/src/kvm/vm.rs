//! Creating the VM: KVM handle, capability checks, guest RAM, devices, vCPU.

use std::io::Write;
use std::sync::{Arc, Mutex};

use kvm_bindings::{
    kvm_userspace_memory_region, kvm_vcpu_init, KVM_ARM_VCPU_PSCI_0_2, KVM_CAP_ARM_USER_IRQ,
};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use vm_memory::{Address, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use uirq_abi::layout::{
    GICC_BASE, GICC_SIZE, GICD_BASE, GICD_SIZE, RAM_BASE, UART_BASE, UART_SIZE,
};

use super::{ioctl, KvmError};
use crate::bus::Bus;
use crate::devices::gicv2::{CpuInterfaceFrame, DistributorFrame, GicConfig, Gicv2};
use crate::devices::pl011::Pl011;
use crate::memory::{self, GuestRam};

/// What the VM is made of.
pub struct VmConfig {
    /// The flat firmware image, loaded at RAM base.
    pub image: Vec<u8>,
    /// Guest RAM size in bytes.
    pub ram_size: u64,
    /// Values for x0, x1, x2 at entry (see `uirq_abi::boot`).
    pub boot_args: [u64; 3],
    /// Where the guest's UART output goes.
    pub console: Box<dyn Write + Send>,
}

/// A created VM, ready to run its vCPU.
pub struct Vm {
    /// The KVM VM file descriptor (for KVM_IRQ_LINE).
    pub fd: VmFd,
    /// The one vCPU.
    pub vcpu: VcpuFd,
    /// The MMIO bus with the GIC frames and the UART.
    pub bus: Bus,
    /// The interrupt controller, shared with the bus's GIC frames.
    pub gic: Arc<Mutex<Gicv2>>,
    /// Guest RAM; kept alive as long as KVM maps it.
    pub ram: GuestRam,
}

/// Opens `/dev/kvm` and checks that the kernel supports a userspace irqchip.
pub fn open_kvm() -> Result<Kvm, KvmError> {
    let kvm = Kvm::new().map_err(KvmError::NoKvm)?;
    if kvm.check_extension_raw(KVM_CAP_ARM_USER_IRQ.into()) <= 0 {
        return Err(KvmError::NoUserIrq);
    }
    Ok(kvm)
}

/// Builds the VM: RAM with the image, the devices on the bus, one vCPU
/// initialised with PSCI 0.2 and the boot registers set.
pub fn create(kvm: &Kvm, config: VmConfig) -> Result<Vm, KvmError> {
    let fd = kvm.create_vm().map_err(ioctl("KVM_CREATE_VM"))?;

    let ram = memory::create_ram(config.ram_size)?;
    let entry = memory::load_image(&ram, config.ram_size, &config.image)?;
    for (slot, region) in ram.iter().enumerate() {
        let host = ram
            .get_host_address(region.start_addr())
            .map_err(memory::MemoryError::Access)?;
        let mem_region = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().raw_value(),
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the region is a live mmap owned by `ram`, which the
        // returned `Vm` keeps for as long as the VM exists.
        unsafe { fd.set_user_memory_region(mem_region) }
            .map_err(ioctl("KVM_SET_USER_MEMORY_REGION"))?;
    }
    debug_assert_eq!(
        ram.iter().next().map(|r| r.start_addr()),
        Some(GuestAddress(RAM_BASE))
    );

    // No KVM_CREATE_DEVICE for a vGIC: that is what puts the irqchip in
    // userspace. The GIC model answers the two GIC frames instead.
    let gic = Arc::new(Mutex::new(Gicv2::new(GicConfig {
        num_cpus: 1,
        num_spis: 32,
    })?));
    let mut bus = Bus::new();
    bus.insert(
        "gicd",
        GICD_BASE,
        GICD_SIZE,
        Arc::new(Mutex::new(DistributorFrame(gic.clone()))),
    )?;
    bus.insert(
        "gicc",
        GICC_BASE,
        GICC_SIZE,
        Arc::new(Mutex::new(CpuInterfaceFrame(gic.clone()))),
    )?;
    bus.insert(
        "uart",
        UART_BASE,
        UART_SIZE,
        Arc::new(Mutex::new(Pl011::new(config.console))),
    )?;

    let vcpu = fd.create_vcpu(0).map_err(ioctl("KVM_CREATE_VCPU"))?;
    let mut init = kvm_vcpu_init::default();
    fd.get_preferred_target(&mut init)
        .map_err(ioctl("KVM_ARM_PREFERRED_TARGET"))?;
    // PSCI 0.2 gives the guest SYSTEM_OFF, which KVM turns into a
    // KVM_EXIT_SYSTEM_EVENT for the VMM.
    init.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
    vcpu.vcpu_init(&init).map_err(ioctl("KVM_ARM_VCPU_INIT"))?;

    // KVM_ARM_VCPU_INIT leaves the vCPU at EL1h with DAIF masked and the MMU
    // off; only the PC and the boot arguments need setting.
    super::vcpu::set_core_reg(&vcpu, super::vcpu::CoreReg::Pc, entry)?;
    for (n, value) in config.boot_args.into_iter().enumerate() {
        super::vcpu::set_core_reg(&vcpu, super::vcpu::CoreReg::X(n as u8), value)?;
    }

    Ok(Vm {
        fd,
        vcpu,
        bus,
        gic,
        ram,
    })
}
