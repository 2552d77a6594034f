//! The vCPU run loop: where timer levels, MMIO exits and the IRQ line meet.
//!
//! One pass of the loop, after each return from `KVM_RUN`:
//!
//! 1. **Timer levels first.** `kvm_run.s.regs.device_irq_level` holds the
//!    current output of the virtual and physical timers. Any change goes
//!    into the GIC model as the level of PPI 27 / PPI 30 *before* the exit is
//!    served: when a guest handler silences the timer and then writes
//!    GICC_EOIR, the EOIR exit carries the lowered level, and the model must
//!    see it before the EOI, or it would find the level-sensitive interrupt
//!    still asserted and make it pending again.
//! 2. **The exit.** MMIO goes to the bus (GIC frames, UART); PSCI
//!    SYSTEM_OFF ends the run with the status the guest left in `x4`.
//!    An EINTR return means only a level changed, or another thread kicked
//!    this one.
//! 3. **The IRQ line.** If the model's output for this CPU changed,
//!    `KVM_IRQ_LINE` raises or lowers the vCPU's IRQ input. Only this thread
//!    ever calls it for its vCPU (cross-thread calls lose interrupts on
//!    current kernels).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use kvm_bindings::{
    kvm_regs, user_pt_regs, KVM_ARM_DEV_EL1_PTIMER, KVM_ARM_DEV_EL1_VTIMER, KVM_ARM_IRQ_CPU_FIQ,
    KVM_ARM_IRQ_CPU_IRQ, KVM_ARM_IRQ_TYPE_CPU, KVM_ARM_IRQ_TYPE_SHIFT, KVM_ARM_IRQ_VCPU_SHIFT,
    KVM_REG_ARM64, KVM_REG_ARM_CORE, KVM_REG_SIZE_U64, KVM_SYSTEM_EVENT_CRASH,
    KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{VcpuExit, VcpuFd, VmFd};

use uirq_abi::bench::{Phase, MARKER_BASE, MARKER_SIZE};
use uirq_abi::exit::STATUS_REGISTER;
use uirq_abi::gicv2::{gicc, PTIMER, VTIMER};
use uirq_abi::layout::GICC_BASE;

use super::vm::{Irqchip, Vm};
use super::{clock, ioctl, kick, KvmError};
use crate::bench::IrqTimeline;
use crate::bus::{lock, Access, Bus};
use crate::devices::gicv2::Gicv2;
use crate::diagnose::StoppedTimer;

/// How the guest's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// PSCI SYSTEM_OFF, with the status the guest put in
    /// `uirq_abi::exit::STATUS_REGISTER`.
    PoweredOff {
        /// The guest's status (see `uirq_abi::exit::Status`).
        status: u64,
    },
    /// PSCI SYSTEM_RESET: the guest asked to be restarted.
    Reset,
    /// KVM reported a guest crash (PSCI or an unrecoverable state).
    Crashed,
    /// Another thread asked the loop to stop (the VMM's `--timeout`).
    Stopped,
}

/// Exits and ioctls counted by the loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Returns from `KVM_RUN` of any kind.
    pub exits: u64,
    /// MMIO loads served.
    pub mmio_reads: u64,
    /// MMIO stores served.
    pub mmio_writes: u64,
    /// MMIO accesses no device claimed.
    pub mmio_unclaimed: u64,
    /// EINTR returns (a timer level report or a kick).
    pub interrupted: u64,
    /// EINTR returns that carried a timer level change.
    pub level_reports: u64,
    /// Timer level changes forwarded to the GIC model.
    pub level_changes: u64,
    /// `KVM_IRQ_LINE` calls made.
    pub irq_line_calls: u64,
}

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
fn cpu_irq_field(vcpu_index: usize, fiq: bool) -> u32 {
    let line = if fiq {
        KVM_ARM_IRQ_CPU_FIQ
    } else {
        KVM_ARM_IRQ_CPU_IRQ
    };
    (KVM_ARM_IRQ_TYPE_CPU << KVM_ARM_IRQ_TYPE_SHIFT)
        | ((vcpu_index as u32 & 0xFF) << KVM_ARM_IRQ_VCPU_SHIFT)
        | line
}

/// What one `KVM_RUN` return asks of the loop, with the borrow of the
/// `kvm_run` page released so the timer levels can be read first.
enum Exit {
    MmioRead {
        addr: u64,
        len: usize,
    },
    MmioWrite {
        addr: u64,
        data: [u8; 8],
        len: usize,
    },
    SystemEvent(u32),
    Interrupted,
    Unexpected(String),
}

/// Number of benchmark phases (`uirq_abi::bench::Phase`).
pub const PHASES: usize = 5;

/// The run loop of vCPU `index`.
pub struct VcpuLoop<'a> {
    index: usize,
    vcpu: &'a mut VcpuFd,
    vm: &'a VmFd,
    bus: &'a Bus,
    gic: Arc<Mutex<Gicv2>>,
    irqchip: Irqchip,
    phase: Arc<AtomicU32>,
    timebase_offset: i64,
    timer_levels: u64,
    irq_line: bool,
    fiq_line: bool,
    /// What happened so far.
    pub stats: Stats,
    /// The same, split by the benchmark phase that was current at each exit.
    pub phase_stats: [Stats; PHASES],
    /// With `record_timeline`: the VMM's view of each virtual-timer
    /// interrupt of the benchmark's vtimer phase.
    pub timeline: Vec<IrqTimeline>,
    record_timeline: bool,
    current: Option<IrqTimeline>,
    finish_current: bool,
    t_return: u64,
    /// `t_return` of the last exit that reported the virtual timer rising.
    vtimer_rose_at: Option<u64>,
    /// The virtual timer's state when the loop was stopped.
    pub stopped_timer: Option<StoppedTimer>,
}

impl<'a> VcpuLoop<'a> {
    /// A loop for vCPU 0 of `vm`. With `record_timeline`, the loop
    /// timestamps each virtual-timer interrupt of the benchmark's vtimer
    /// phase (user irqchip only).
    pub fn new(vm: &'a mut Vm, record_timeline: bool) -> Self {
        Self {
            index: 0,
            vcpu: &mut vm.vcpu,
            vm: &vm.fd,
            bus: &vm.bus,
            gic: vm.gic.clone(),
            irqchip: vm.irqchip,
            phase: vm.phase.clone(),
            timebase_offset: vm.timebase_offset,
            timer_levels: 0,
            irq_line: false,
            fiq_line: false,
            stats: Stats::default(),
            phase_stats: [Stats::default(); PHASES],
            timeline: Vec::new(),
            record_timeline: record_timeline && vm.irqchip == Irqchip::User,
            current: None,
            finish_current: false,
            t_return: 0,
            vtimer_rose_at: None,
            stopped_timer: None,
        }
    }

    /// The VMM's clock on the guest's timebase.
    fn now(&self) -> u64 {
        clock::now().wrapping_add(self.timebase_offset as u64)
    }

    /// Applies `f` to the total and to the current phase's counters.
    fn count(&mut self, phase: usize, f: impl Fn(&mut Stats)) {
        f(&mut self.stats);
        f(&mut self.phase_stats[phase]);
    }

    /// Runs the guest until it powers off, resets or crashes, or until
    /// `stop` is set (and the thread kicked).
    pub fn run(&mut self, stop: &AtomicBool) -> Result<Outcome, KvmError> {
        kick::publish(self.vcpu.get_kvm_run());
        let result = self.run_inner(stop);
        kick::publish(std::ptr::null_mut());
        result
    }

    fn run_inner(&mut self, stop: &AtomicBool) -> Result<Outcome, KvmError> {
        loop {
            if stop.load(Ordering::Acquire) {
                // Best effort: the diagnosis is a bonus, the stop is what counts.
                self.stopped_timer = self.stopped_timer().ok();
                return Ok(Outcome::Stopped);
            }
            self.account_vmm_time();
            let exit = self.enter()?;
            self.t_return = self.now();
            // A kick may have set immediate_exit; it is consumed now.
            self.vcpu.set_kvm_immediate_exit(0);
            // Exits are counted against the benchmark phase that was current
            // when they happened; the marker writes themselves go to Idle, so
            // a measurement's counts hold only its own samples' exits.
            let phase = match exit {
                Exit::MmioWrite { addr, .. }
                    if (MARKER_BASE..MARKER_BASE + MARKER_SIZE).contains(&addr) =>
                {
                    Phase::Idle as usize
                }
                _ => (self.phase.load(Ordering::Acquire) as usize).min(PHASES - 1),
            };
            self.count(phase, |s| s.exits += 1);

            let level_changed = self.irqchip == Irqchip::User && self.sync_timer_levels(phase);
            if let Some(c) = self.current.as_mut() {
                c.exits += 1;
            }
            match exit {
                Exit::MmioRead { addr, len } => self.mmio_read(phase, addr, len),
                Exit::MmioWrite { addr, data, len } => {
                    self.count(phase, |s| s.mmio_writes += 1);
                    if addr == GICC_BASE + gicc::EOIR {
                        let t = self.now();
                        if let Some(c) = self.current.as_mut() {
                            c.eoi = t;
                            self.finish_current = true;
                        }
                    }
                    if self.bus.write(self.index, addr, &data[..len]) == Access::Unclaimed {
                        self.count(phase, |s| s.mmio_unclaimed += 1);
                    }
                }
                Exit::Interrupted => {
                    self.count(phase, |s| s.interrupted += 1);
                    if level_changed {
                        self.count(phase, |s| s.level_reports += 1);
                    }
                }
                Exit::SystemEvent(kind) => return self.system_event(kind),
                Exit::Unexpected(what) => {
                    tracing::warn!(vcpu = self.index, exit = %what, "unexpected exit from KVM_RUN, resuming");
                }
            }
            if self.irqchip == Irqchip::User {
                self.update_cpu_lines()?;
            }
        }
    }

    /// The virtual timer as the loop leaves it on a stop: its control and
    /// compare registers, and whether its level rose on the last exit (the
    /// one the stop's kick caused).
    fn stopped_timer(&self) -> Result<StoppedTimer, KvmError> {
        let read = |id| -> Result<u64, KvmError> {
            let mut bytes = [0u8; 8];
            self.vcpu
                .get_one_reg(id, &mut bytes)
                .map_err(ioctl("KVM_GET_ONE_REG (guest timer)"))?;
            Ok(u64::from_le_bytes(bytes))
        };
        Ok(StoppedTimer {
            ctl: read(KVM_REG_ARM_TIMER_CTL)?,
            cval: read(KVM_REG_ARM_TIMER_CVAL)?,
            rose_on_stop_exit: self.vtimer_rose_at.filter(|&t| t == self.t_return),
        })
    }

    /// Charges the time since `KVM_RUN` last returned to the interrupt being
    /// timed, and files it once its EOI has been served.
    fn account_vmm_time(&mut self) {
        if self.current.is_none() {
            return;
        }
        let t = self.now();
        if let Some(c) = self.current.as_mut() {
            c.vmm_ticks += t.wrapping_sub(self.t_return);
        }
        if self.finish_current {
            self.finish_current = false;
            if let Some(c) = self.current.take() {
                self.timeline.push(c);
            }
        }
    }

    /// One `KVM_RUN`, with what the exit needs copied out of `kvm_run`.
    fn enter(&mut self) -> Result<Exit, KvmError> {
        Ok(match self.vcpu.run() {
            Ok(VcpuExit::MmioRead(addr, data)) => Exit::MmioRead {
                addr,
                len: data.len().min(8),
            },
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                let len = data.len().min(8);
                let mut copy = [0u8; 8];
                copy[..len].copy_from_slice(&data[..len]);
                Exit::MmioWrite {
                    addr,
                    data: copy,
                    len,
                }
            }
            Ok(VcpuExit::SystemEvent(kind, _)) => Exit::SystemEvent(kind),
            Ok(VcpuExit::Intr) => Exit::Interrupted,
            // With a userspace irqchip, a timer level change that needs
            // reporting makes KVM_RUN fail with EINTR (kvm-ioctls returns it
            // as an error, not as VcpuExit::Intr); so does a kick.
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Exit::Interrupted,
            Ok(other) => Exit::Unexpected(format!("{other:?}")),
            Err(e) => {
                return Err(KvmError::Ioctl {
                    step: "KVM_RUN",
                    source: e,
                })
            }
        })
    }

    /// Reads the timer output levels KVM left in `kvm_run` and forwards the
    /// ones that changed to the GIC model as PPI levels. Returns whether any
    /// changed.
    fn sync_timer_levels(&mut self, phase: usize) -> bool {
        let run = self.vcpu.get_kvm_run();
        // SAFETY: `s` is a union of `kvm_sync_regs` and padding; on arm64 the
        // kernel writes `regs.device_irq_level` on every return from
        // KVM_RUN when the irqchip is in userspace, and any bit pattern is a
        // valid u64.
        let levels = unsafe { run.s.regs.device_irq_level };
        let changed = levels ^ self.timer_levels;
        if changed == 0 {
            return false;
        }
        self.timer_levels = levels;
        let vtimer = u64::from(KVM_ARM_DEV_EL1_VTIMER);
        if changed & levels & vtimer != 0 {
            self.vtimer_rose_at = Some(self.t_return);
        }
        if self.record_timeline
            && phase == Phase::Vtimer as usize
            && changed & levels & vtimer != 0
            && self.current.is_none()
        {
            self.current = Some(IrqTimeline {
                level_seen: self.t_return,
                ..IrqTimeline::default()
            });
        }
        let gic = self.gic.clone();
        let mut gic = lock(&gic);
        for (bit, ppi) in [
            (KVM_ARM_DEV_EL1_VTIMER, VTIMER),
            (KVM_ARM_DEV_EL1_PTIMER, PTIMER),
        ] {
            let bit = u64::from(bit);
            if changed & bit != 0 {
                self.count(phase, |s| s.level_changes += 1);
                gic.set_ppi_level(self.index, ppi, levels & bit != 0);
            }
        }
        true
    }

    fn mmio_read(&mut self, phase: usize, addr: u64, len: usize) {
        self.count(phase, |s| s.mmio_reads += 1);
        if addr == GICC_BASE + gicc::IAR {
            let t = self.now();
            if let Some(c) = self.current.as_mut() {
                c.iar = t;
            }
        }
        let mut data = [0u8; 8];
        if self.bus.read(self.index, addr, &mut data[..len]) == Access::Unclaimed {
            self.count(phase, |s| s.mmio_unclaimed += 1);
        }
        let run = self.vcpu.get_kvm_run();
        // SAFETY: this return from KVM_RUN was KVM_EXIT_MMIO, so `mmio` is
        // the active member of the exit union; KVM copies `data[..len]` into
        // the guest's destination register on the next KVM_RUN.
        let mmio = unsafe { &mut run.__bindgen_anon_1.mmio };
        mmio.data[..len].copy_from_slice(&data[..len]);
    }

    fn system_event(&mut self, kind: u32) -> Result<Outcome, KvmError> {
        Ok(match kind {
            KVM_SYSTEM_EVENT_SHUTDOWN => Outcome::PoweredOff {
                status: get_core_reg(self.vcpu, CoreReg::X(STATUS_REGISTER))?,
            },
            KVM_SYSTEM_EVENT_RESET => Outcome::Reset,
            KVM_SYSTEM_EVENT_CRASH => Outcome::Crashed,
            other => {
                tracing::warn!(kind = other, "unknown system event, treating it as a crash");
                Outcome::Crashed
            }
        })
    }

    /// Forwards changes of the model's IRQ/FIQ outputs for this CPU.
    fn update_cpu_lines(&mut self) -> Result<(), KvmError> {
        let (irq, fiq) = {
            let gic = lock(&self.gic);
            (gic.irq_line(self.index), gic.fiq_line(self.index))
        };
        if irq != self.irq_line {
            let t = self.now();
            if let Some(c) = self.current.as_mut() {
                if irq && c.irq_line == 0 {
                    c.irq_line = t;
                }
            }
            self.vm
                .set_irq_line(cpu_irq_field(self.index, false), irq)
                .map_err(ioctl("KVM_IRQ_LINE"))?;
            let done = self.now();
            if let Some(c) = self.current.as_mut() {
                c.irq_line_ticks += done.wrapping_sub(t);
            }
            self.irq_line = irq;
            self.stats.irq_line_calls += 1;
        }
        if fiq != self.fiq_line {
            self.vm
                .set_irq_line(cpu_irq_field(self.index, true), fiq)
                .map_err(ioctl("KVM_IRQ_LINE"))?;
            self.fiq_line = fiq;
            self.stats.irq_line_calls += 1;
        }
        Ok(())
    }
}
