//! Creating the VM: KVM handle, capability checks, guest RAM, devices,
//! vCPUs.

use std::io::Write;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use kvm_bindings::{
    kvm_arm_counter_offset, kvm_enable_cap, kvm_userspace_memory_region, kvm_vcpu_init,
    KVM_ARM_VCPU_POWER_OFF, KVM_ARM_VCPU_PSCI_0_2, KVM_CAP_ARM_INJECT_EXT_DABT,
    KVM_CAP_ARM_NISV_TO_USER, KVM_CAP_ARM_USER_IRQ, KVM_CAP_COUNTER_OFFSET,
};
use kvm_ioctls::{DeviceFd, Kvm, VcpuFd, VmFd};
use vm_memory::{Address, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};
use vmm_sys_util::ioctl::ioctl_with_ref;

use uirq_abi::bench::{MARKER_BASE, MARKER_SIZE};
use uirq_abi::gicv2::IntId;
use uirq_abi::layout::{
    GICC_BASE, GICC_SIZE, GICD_BASE, GICD_SIZE, RAM_BASE, UART_BASE, UART_SIZE, UART_SPI,
};
use uirq_gicv2::{GicConfig, Gicv2};

use super::regs::{set_core_reg, spi_irq_field, CoreReg, KVM_REG_ARM_TIMER_CNT};
use super::{ioctl, KvmError};
use crate::bus::Bus;
use crate::devices::gic_log::GicLog;
use crate::devices::irq_line::IrqLine;
use crate::devices::marker::Marker;
use crate::devices::pl011::Pl011;
use crate::exit::Unmapped;
use crate::irqchip::{CpuInterfaceFrame, DistributorFrame, GicSpi, UserGic};
use crate::memory::{self, GuestRam};

/// Which interrupt controller serves the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Irqchip {
    /// The project's GICv2 model in this process (no vGIC in the kernel).
    User,
    /// KVM's in-kernel vGICv2 (the baseline for comparisons).
    Kernel,
}

impl Irqchip {
    /// `user` or `kernel`.
    pub const fn name(self) -> &'static str {
        match self {
            Irqchip::User => "user",
            Irqchip::Kernel => "kernel",
        }
    }
}

/// SPIs the GIC offers (either irqchip): one block of 32.
const NUM_SPIS: u32 = 32;

/// What the VM is made of.
pub struct VmConfig {
    /// The KVM device to open (normally `/dev/kvm`).
    pub kvm_device: std::path::PathBuf,
    /// Which interrupt controller to use.
    pub irqchip: Irqchip,
    /// What vCPU 0 boots: the firmware or a boot-protocol payload, and its
    /// entry registers.
    pub boot: crate::boot::Boot,
    /// Guest RAM size in bytes.
    pub ram_size: u64,
    /// Number of vCPUs (1 to 8, the GICv2 limit). vCPU 0 starts at the
    /// image's entry; the others start powered off, for PSCI CPU_ON.
    pub cpus: usize,
    /// Where the guest's UART output goes.
    pub console: Box<dyn Write + Send>,
    /// How a guest access to an address no device claims is answered.
    pub unmapped: Unmapped,
    /// Another observer of the userspace GIC model's events, after the
    /// log (a trace's; `crate::probes::trace`).
    pub gic_observer: Option<Box<dyn uirq_gicv2::Observer>>,
}

/// A created VM, ready to run its vCPUs.
pub struct Vm {
    /// The KVM VM file descriptor (for KVM_IRQ_LINE).
    pub fd: Arc<VmFd>,
    /// The vCPUs, by index; the run takes them out, one to each thread.
    pub vcpus: Vec<VcpuFd>,
    /// The MMIO bus with the GIC frames and the UART.
    pub bus: Bus,
    /// The userspace interrupt controller, shared with the bus's GIC
    /// frames; `None` with KVM's in-kernel vGIC.
    pub gic: Option<Arc<UserGic>>,
    /// The UART, shared with the bus (the console input feeds it).
    pub uart: Arc<Mutex<Pl011>>,
    /// Guest RAM; kept alive as long as KVM maps it.
    pub ram: GuestRam,
    /// The benchmark phase the firmware last announced.
    pub phase: Arc<AtomicU32>,
    /// Which interrupt controller serves the guest.
    pub irqchip: Irqchip,
    /// The in-kernel vGIC, when `irqchip` is `Kernel`.
    pub vgic: Option<DeviceFd>,
    /// Add this to the VMM's counter to get the guest's (0 when KVM let the
    /// VMM zero the guest's counter offset).
    pub timebase_offset: i64,
    /// How the timebases were aligned, for reports.
    pub timebase: String,
    /// How a guest access to an address no device claims is answered.
    pub unmapped: Unmapped,
}

// KVM_ARM_SET_COUNTER_OFFSET (Documentation/virt/kvm/api.rst, 4.138):
// _IOW(KVMIO, 0xb5, struct kvm_arm_counter_offset). kvm-ioctls has no
// wrapper for it.
mod ioctl_numbers {
    #![allow(missing_docs)]
    use kvm_bindings::{kvm_arm_counter_offset, KVMIO};
    use vmm_sys_util::ioctl_iow_nr;

    ioctl_iow_nr!(
        KVM_ARM_SET_COUNTER_OFFSET,
        KVMIO,
        0xb5,
        kvm_arm_counter_offset
    );
}
use ioctl_numbers::KVM_ARM_SET_COUNTER_OFFSET;

/// Puts the guest's counter on the VMM's timebase: zero the VM's counter
/// offset where KVM offers it (before any vCPU runs), so guest CNTVCT_EL0
/// equals the host count the VMM reads. Returns a description.
fn zero_counter_offset(kvm: &Kvm, fd: &VmFd) -> Option<String> {
    if kvm.check_extension_raw(KVM_CAP_COUNTER_OFFSET.into()) <= 0 {
        return None;
    }
    let arg = kvm_arm_counter_offset {
        counter_offset: 0,
        reserved: 0,
    };
    // SAFETY: the ioctl reads a kvm_arm_counter_offset from the pointer,
    // which is valid for the duration of the call.
    let rc = unsafe { ioctl_with_ref(fd, KVM_ARM_SET_COUNTER_OFFSET(), &arg) };
    (rc == 0).then(|| "guest counter offset set to 0 (KVM_ARM_SET_COUNTER_OFFSET)".to_string())
}

/// Without KVM_ARM_SET_COUNTER_OFFSET: estimate the offset by reading the
/// guest's count between two reads of the VMM's clock.
fn measure_counter_offset(vcpu: &VcpuFd) -> Result<(i64, String), KvmError> {
    let mut bytes = [0u8; 8];
    let before = super::clock::now();
    vcpu.get_one_reg(KVM_REG_ARM_TIMER_CNT, &mut bytes)
        .map_err(ioctl("KVM_GET_ONE_REG (guest counter)"))?;
    let after = super::clock::now();
    let guest = u64::from_le_bytes(bytes);
    let mid = before + (after - before) / 2;
    let offset = guest.wrapping_sub(mid) as i64;
    Ok((
        offset,
        format!(
            "offset measured with KVM_GET_ONE_REG (uncertainty {} ticks)",
            (after - before) / 2
        ),
    ))
}

/// `KVM_GET_API_VERSION`'s answer from every KVM since Linux 2.6.22.
pub const KVM_API_VERSION: i32 = 12;

/// Opens the KVM device (normally `/dev/kvm`), checks that it is KVM, and
/// that the kernel supports a userspace irqchip.
pub fn open_kvm(device: &std::path::Path) -> Result<Kvm, KvmError> {
    let kvm = open_device(device)?;
    if kvm.check_extension_raw(KVM_CAP_ARM_USER_IRQ.into()) <= 0 {
        return Err(KvmError::NoUserIrq);
    }
    Ok(kvm)
}

/// Opens the KVM device and checks that it is KVM, whatever it offers
/// (`uirq-vmm --probe` reports a KVM without a userspace irqchip too).
pub fn open_device(device: &std::path::Path) -> Result<Kvm, KvmError> {
    use std::os::unix::ffi::OsStrExt;
    let no_kvm = |source| KvmError::NoKvm {
        path: device.display().to_string(),
        source,
    };
    let c_path = std::ffi::CString::new(device.as_os_str().as_bytes())
        .map_err(|_| no_kvm(kvm_ioctls::Error::new(libc::EINVAL)))?;
    let kvm = Kvm::new_with_path(&c_path).map_err(no_kvm)?;
    // Anything openable opens (`/dev/null`, a regular file): only KVM
    // answers this ioctl, and with 12 (Documentation/virt/kvm/api.rst 4.1).
    // Without the check, a wrong device would read as a KVM that lacks
    // every capability.
    let version = kvm.get_api_version();
    if version != KVM_API_VERSION {
        let answer = if version < 0 {
            format!("failed ({})", std::io::Error::last_os_error())
        } else {
            format!("answered {version}")
        };
        return Err(KvmError::NotKvm {
            path: device.display().to_string(),
            answer,
        });
    }
    Ok(kvm)
}

/// Builds the VM: RAM with the image, the devices on the bus, the vCPUs
/// initialised with PSCI 0.2 (all but vCPU 0 powered off) and vCPU 0's boot
/// registers set.
pub fn create(kvm: &Kvm, config: VmConfig) -> Result<Vm, KvmError> {
    let fd = kvm.create_vm().map_err(ioctl("KVM_CREATE_VM"))?;
    let zeroed = zero_counter_offset(kvm, &fd);
    external_aborts(&fd, config.unmapped)?;

    let ram = memory::create_ram(config.ram_size)?;
    config.boot.write_to(&ram)?;
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

    // With the userspace irqchip there is no KVM_CREATE_DEVICE for a vGIC:
    // that is what puts the irqchip in userspace. The GIC model answers the
    // two GIC frames instead.
    let fd = Arc::new(fd);
    let mut bus = Bus::new();
    let uart_spi = IntId::spi(UART_SPI).expect("the UART's SPI is a valid SPI number");
    let (gic, vgic, uart_irq): (_, _, Box<dyn IrqLine>) = match config.irqchip {
        Irqchip::User => {
            let mut model = Gicv2::new(GicConfig {
                num_cpus: config.cpus,
                num_spis: NUM_SPIS,
            })?;
            // The model logs nothing itself: the guest's misuse of the GIC
            // becomes warnings here, a few per cause; a trace sees every
            // event after that.
            let log = match config.gic_observer {
                Some(next) => GicLog::with_next(next),
                None => GicLog::new(),
            };
            model.set_observer(Some(Box::new(log)));
            let gic = Arc::new(UserGic::new(model));
            let dist = Arc::new(Mutex::new(DistributorFrame(gic.clone())));
            let cpu = Arc::new(Mutex::new(CpuInterfaceFrame(gic.clone())));
            bus.insert("gicd", GICD_BASE, GICD_SIZE, dist)?;
            bus.insert("gicc", GICC_BASE, GICC_SIZE, cpu)?;
            let line = Box::new(GicSpi::new(gic.clone(), uart_spi));
            (Some(gic), None, line)
        }
        Irqchip::Kernel => {
            let vgic = super::vgic::create(&fd, 32 + NUM_SPIS)?;
            let line = Box::new(KernelSpi {
                vm: fd.clone(),
                intid: uart_spi.raw(),
            });
            (None, Some(vgic), line)
        }
    };
    let uart = Arc::new(Mutex::new(Pl011::new(config.console, uart_irq)));
    bus.insert("uart", UART_BASE, UART_SIZE, uart.clone())?;
    let phase = Arc::new(AtomicU32::new(0));
    let marker = Arc::new(Mutex::new(Marker::new(phase.clone())));
    bus.insert("bench-marker", MARKER_BASE, MARKER_SIZE, marker)?;

    let mut init = kvm_vcpu_init::default();
    fd.get_preferred_target(&mut init)
        .map_err(ioctl("KVM_ARM_PREFERRED_TARGET"))?;
    // PSCI 0.2 gives the guest CPU_ON and SYSTEM_OFF: KVM implements CPU_ON
    // itself and turns SYSTEM_OFF into a KVM_EXIT_SYSTEM_EVENT.
    init.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
    let mut vcpus = Vec::with_capacity(config.cpus);
    for index in 0..config.cpus {
        let vcpu = fd
            .create_vcpu(index as u64)
            .map_err(ioctl("KVM_CREATE_VCPU"))?;
        let mut init = init;
        if index > 0 {
            // Secondaries wait, powered off, for the guest's PSCI CPU_ON
            // (Documentation/virt/kvm/api.rst, KVM_ARM_VCPU_INIT).
            init.features[0] |= 1 << KVM_ARM_VCPU_POWER_OFF;
        }
        vcpu.vcpu_init(&init).map_err(ioctl("KVM_ARM_VCPU_INIT"))?;
        vcpus.push(vcpu);
    }
    if let Some(dev) = &vgic {
        super::vgic::init(dev)?;
    }
    let (timebase_offset, timebase) = match zeroed {
        Some(how) => (0, how),
        None => measure_counter_offset(&vcpus[0])?,
    };

    // KVM_ARM_VCPU_INIT leaves the vCPU at EL1h with DAIF masked and the MMU
    // off; only the PC and the boot arguments need setting.
    set_core_reg(&vcpus[0], CoreReg::Pc, config.boot.entry)?;
    for (n, value) in config.boot.regs.into_iter().enumerate() {
        set_core_reg(&vcpus[0], CoreReg::X(n as u8), value)?;
    }

    Ok(Vm {
        fd,
        vcpus,
        bus,
        gic,
        uart,
        ram,
        phase,
        irqchip: config.irqchip,
        vgic,
        timebase_offset,
        timebase,
        unmapped: config.unmapped,
    })
}

/// Checks that KVM can make a synchronous external abort pending for the
/// access a vCPU exited on (`KVM_SET_VCPU_EVENTS` with `ext_dabt_pending`,
/// KVM_CAP_ARM_INJECT_EXT_DABT, Linux 5.5), which `--unmapped abort`
/// needs; and where it can, asks KVM to report MMIO it cannot decode as
/// KVM_EXIT_ARM_NISV (KVM_CAP_ARM_NISV_TO_USER, enabled per VM) so that it
/// too is answered with that abort instead of failing `KVM_RUN` with
/// ENOSYS (which still ends the run where the kernel lacks either).
fn external_aborts(fd: &VmFd, unmapped: Unmapped) -> Result<(), KvmError> {
    let can_inject = fd.check_extension_raw(KVM_CAP_ARM_INJECT_EXT_DABT.into()) > 0;
    if unmapped == Unmapped::Abort && !can_inject {
        return Err(KvmError::NoExternalAbort);
    }
    if !can_inject || fd.check_extension_raw(KVM_CAP_ARM_NISV_TO_USER.into()) <= 0 {
        return Ok(());
    }
    let cap = kvm_enable_cap {
        cap: KVM_CAP_ARM_NISV_TO_USER,
        ..Default::default()
    };
    if let Err(e) = fd.enable_cap(&cap) {
        // Not fatal: undecodable MMIO then ends the run, as without it.
        tracing::warn!("KVM_ENABLE_CAP(KVM_CAP_ARM_NISV_TO_USER) failed: {e}");
    }
    Ok(())
}

/// The PL011's interrupt wired to KVM's in-kernel vGIC: `KVM_IRQ_LINE`
/// with the SPI's interrupt id.
struct KernelSpi {
    vm: Arc<VmFd>,
    intid: u32,
}

impl IrqLine for KernelSpi {
    fn set_level(&self, level: bool) {
        if let Err(e) = self.vm.set_irq_line(spi_irq_field(self.intid), level) {
            crate::limited!(
                warn,
                intid = self.intid,
                "KVM_IRQ_LINE for a device SPI failed: {e}"
            );
        }
    }
}
