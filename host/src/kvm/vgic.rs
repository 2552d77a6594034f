//! KVM's own in-kernel GICv2 ("vGIC"), for the benchmark's baseline.
//!
//! The project's point is the userspace GIC; the in-kernel one exists here
//! only so `--irqchip kernel` can run the same firmware against it and the
//! latency figures can be compared side by side. With it, KVM handles the
//! distributor (GICD accesses still trap, but to the kernel) and maps the
//! CPU interface to the hardware's virtual CPU interface (GICV), so GICC
//! accesses do not trap at all. The timer's PPI goes straight into it; no
//! `device_irq_level` reports reach the VMM.
//! (Documentation/virt/kvm/devices/arm-vgic.rst.)

use kvm_bindings::{
    kvm_create_device, kvm_device_attr, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V2,
    KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL,
    KVM_DEV_ARM_VGIC_GRP_NR_IRQS, KVM_VGIC_V2_ADDR_TYPE_CPU, KVM_VGIC_V2_ADDR_TYPE_DIST,
};
use kvm_ioctls::{DeviceFd, VmFd};

use uirq_abi::layout::{GICC_BASE, GICD_BASE};

use super::{ioctl, KvmError};

/// Creates a vGICv2 with its frames at the same addresses the userspace
/// model uses, and `num_irqs` interrupt ids. Call before creating vCPUs;
/// finish with [`init`] after.
pub fn create(vm: &VmFd, num_irqs: u32) -> Result<DeviceFd, KvmError> {
    let mut dev = kvm_create_device {
        type_: kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V2,
        fd: 0,
        flags: 0,
    };
    let fd = vm
        .create_device(&mut dev)
        .map_err(ioctl("KVM_CREATE_DEVICE (in-kernel vGICv2)"))?;
    for (kind, base) in [
        (KVM_VGIC_V2_ADDR_TYPE_DIST, GICD_BASE),
        (KVM_VGIC_V2_ADDR_TYPE_CPU, GICC_BASE),
    ] {
        let attr = kvm_device_attr {
            group: KVM_DEV_ARM_VGIC_GRP_ADDR,
            attr: u64::from(kind),
            // KVM reads the address through this pointer during the call.
            addr: &base as *const u64 as u64,
            flags: 0,
        };
        fd.set_device_attr(&attr)
            .map_err(ioctl("KVM_SET_DEVICE_ATTR (vGIC frame address)"))?;
    }
    let attr = kvm_device_attr {
        group: KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
        attr: 0,
        addr: &num_irqs as *const u32 as u64,
        flags: 0,
    };
    fd.set_device_attr(&attr)
        .map_err(ioctl("KVM_SET_DEVICE_ATTR (vGIC interrupt count)"))?;
    Ok(fd)
}

/// Initialises the vGIC once every vCPU exists.
pub fn init(dev: &DeviceFd) -> Result<(), KvmError> {
    let attr = kvm_device_attr {
        group: KVM_DEV_ARM_VGIC_GRP_CTRL,
        attr: u64::from(KVM_DEV_ARM_VGIC_CTRL_INIT),
        addr: 0,
        flags: 0,
    };
    dev.set_device_attr(&attr)
        .map_err(ioctl("KVM_SET_DEVICE_ATTR (vGIC init)"))
}
