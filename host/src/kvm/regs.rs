//! vCPU registers as KVM names them for `KVM_{GET,SET}_ONE_REG`, and the
//! `KVM_IRQ_LINE` encoding of a vCPU's interrupt inputs.

use kvm_bindings::{
    kvm_regs, user_pt_regs, KVM_ARM_IRQ_CPU_FIQ, KVM_ARM_IRQ_CPU_IRQ, KVM_ARM_IRQ_TYPE_CPU,
    KVM_ARM_IRQ_TYPE_SHIFT, KVM_ARM_IRQ_TYPE_SPI, KVM_ARM_IRQ_VCPU_SHIFT, KVM_REG_ARM64,
    KVM_REG_ARM_CORE, KVM_REG_SIZE_U64,
};
use kvm_ioctls::VcpuFd;

use super::{ioctl, KvmError};
use crate::probe::Line;

/// The ONE_REG id of an arm64 system register (`ARM64_SYS_REG` in
/// arch/arm64/include/uapi/asm/kvm.h).
pub const fn sys_reg_id(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64) -> u64 {
    KVM_REG_ARM64
        | KVM_REG_SIZE_U64
        | (0x0013 << 16)
        | (op0 << 14)
        | (op1 << 11)
        | (crn << 7)
        | (crm << 3)
        | op2
}

/// The guest's CNTV_CTL_EL0 (KVM_REG_ARM_TIMER_CTL).
pub const KVM_REG_ARM_TIMER_CTL: u64 = sys_reg_id(3, 3, 14, 3, 1);
/// The guest's CNTV_CVAL_EL0. KVM names it KVM_REG_ARM_TIMER_CVAL and gives
/// it the encoding (3, 3, 14, 0, 2), which is CNTVCT_EL0's: the uapi swapped
/// CVAL and CNT long ago and keeps them so.
pub const KVM_REG_ARM_TIMER_CVAL: u64 = sys_reg_id(3, 3, 14, 0, 2);
/// The guest's virtual count (KVM_REG_ARM_TIMER_CNT, encoding
/// (3, 3, 14, 3, 2), swapped with CVAL's as above).
pub const KVM_REG_ARM_TIMER_CNT: u64 = sys_reg_id(3, 3, 14, 3, 2);

/// The guest's ESR_EL1, the syndrome of the exception it last took at EL1
/// (Arm ARM D17.2.37; encoding op0 3, op1 0, CRn 5, CRm 2, op2 0).
pub const KVM_REG_ESR_EL1: u64 = sys_reg_id(3, 0, 5, 2, 0);

/// A general-purpose core register, for `KVM_{GET,SET}_ONE_REG`.
#[derive(Clone, Copy, Debug)]
pub enum CoreReg {
    /// `x0`..`x30`.
    X(u8),
    /// The program counter.
    Pc,
}

/// The `KVM_{GET,SET}_ONE_REG` id of a core register: the register's offset
/// in `struct kvm_regs`, in 32-bit words, tagged as a 64-bit arm64 core
/// register (Documentation/virt/kvm/api.rst, "ARM64 core registers").
fn core_reg_id(reg: CoreReg) -> u64 {
    let base = std::mem::offset_of!(kvm_regs, regs);
    let offset = match reg {
        CoreReg::X(n) => {
            base + std::mem::offset_of!(user_pt_regs, regs) + 8 * usize::from(n.min(30))
        }
        CoreReg::Pc => base + std::mem::offset_of!(user_pt_regs, pc),
    };
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | u64::from(KVM_REG_ARM_CORE) | (offset / 4) as u64
}

/// Writes one 64-bit core register of `vcpu`.
pub fn set_core_reg(vcpu: &VcpuFd, reg: CoreReg, value: u64) -> Result<(), KvmError> {
    vcpu.set_one_reg(core_reg_id(reg), &value.to_le_bytes())
        .map_err(ioctl("KVM_SET_ONE_REG"))?;
    Ok(())
}

/// Reads one 64-bit core register of `vcpu`.
pub fn get_core_reg(vcpu: &VcpuFd, reg: CoreReg) -> Result<u64, KvmError> {
    let mut bytes = [0u8; 8];
    vcpu.get_one_reg(core_reg_id(reg), &mut bytes)
        .map_err(ioctl("KVM_GET_ONE_REG"))?;
    Ok(u64::from_le_bytes(bytes))
}

/// The `KVM_IRQ_LINE` irq field for a vCPU's IRQ or FIQ input
/// (Documentation/virt/kvm/api.rst, KVM_IRQ_LINE, "ARM/arm64").
pub fn cpu_irq_field(vcpu_index: usize, line: Line) -> u32 {
    let line = match line {
        Line::Fiq => KVM_ARM_IRQ_CPU_FIQ,
        Line::Irq => KVM_ARM_IRQ_CPU_IRQ,
    };
    (KVM_ARM_IRQ_TYPE_CPU << KVM_ARM_IRQ_TYPE_SHIFT)
        | ((vcpu_index as u32 & 0xFF) << KVM_ARM_IRQ_VCPU_SHIFT)
        | line
}

/// The `KVM_IRQ_LINE` irq field for SPI `intid` of KVM's in-kernel vGIC
/// (Documentation/virt/kvm/api.rst, KVM_IRQ_LINE: type 1, vcpu field
/// ignored, the interrupt id itself in the low 16 bits).
pub fn spi_irq_field(intid: u32) -> u32 {
    (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | (intid & 0xFFFF)
}

/// The guest's virtual timer registers, for the stopped-timer diagnosis.
pub fn timer_regs(vcpu: &VcpuFd) -> Result<crate::probe::TimerRegs, KvmError> {
    let read = |id| -> Result<u64, KvmError> {
        let mut bytes = [0u8; 8];
        vcpu.get_one_reg(id, &mut bytes)
            .map_err(ioctl("KVM_GET_ONE_REG (guest timer)"))?;
        Ok(u64::from_le_bytes(bytes))
    };
    Ok(crate::probe::TimerRegs {
        ctl: read(KVM_REG_ARM_TIMER_CTL)?,
        cval: read(KVM_REG_ARM_TIMER_CVAL)?,
    })
}
