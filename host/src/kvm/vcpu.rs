//! The vCPU run loop: one per vCPU thread, and it only runs the vCPU.
//!
//! ```text
//!  loop:
//!    stop requested?                     → leave (the probe may look at the timer)
//!    apply this vCPU's IRQ/FIQ lines     → KVM_IRQ_LINE, only on a change
//!    KVM_RUN                             → Exit (copied out of kvm_run)
//!    exit::serve(exit, timer levels)     → levels into the GIC model first, then
//!                                          the exit (MMIO to the bus, PSCI events)
//!    an access to nothing?               → KVM_SET_VCPU_EVENTS: external abort
//!    another vCPU's line now stale?      → kick its thread (owner-thread rule)
//! ```
//!
//! Serving is a plain function ([`crate::exit::serve`]); what is left here is
//! the part that needs KVM: entering the guest, reading `kvm_run`, and the
//! `KVM_IRQ_LINE` calls. The probe `P` watches; with [`crate::probe::NoProbe`]
//! its calls compile to nothing.
//!
//! **Who calls KVM_IRQ_LINE.** With [`Injection::OwnerThread`] (the
//! default) this thread only ever sets *its own* vCPU's lines, just before
//! it re-enters; a change it causes for another vCPU is left to that
//! vCPU's thread, which it kicks. With [`Injection::CrossThread`] it sets
//! every vCPU's changed lines itself, the scheme that loses interrupts on
//! current kernels (docs/smp.md).
//!
//! **An access to nothing.** When [`crate::exit::serve`] answers an MMIO
//! exit (or an access KVM could not decode, KVM_EXIT_ARM_NISV) with
//! [`Served::InjectAbort`], the loop sets `ext_dabt_pending` with
//! `KVM_SET_VCPU_EVENTS` before it re-enters (`inject_external_abort`).
//! KVM builds a synchronous external abort from the trap it still holds:
//! ESR_EL1 = data abort (EC 0x25 from EL1), DFSC 0b010000, IL = 1, and
//! FAR_EL1 = the faulting virtual address the hardware reported in
//! FAR_EL2 (arch/arm64/kvm/inject_fault.c); at the next `KVM_RUN` the
//! guest enters its vector with ELR_EL1 = the faulting instruction. That
//! instruction must not complete, as on hardware: no register written, PC
//! not moved on. KVM completes a pending MMIO exit at the start of every
//! `KVM_RUN` whose `kvm_run.exit_reason` still reads KVM_EXIT_MMIO
//! (arch/arm64/kvm/mmio.c, `kvm_handle_mmio_return`); since the fix "KVM:
//! arm64: Don't retire aborted MMIO instruction" (2024: 6.12 and the
//! stable releases) it skips that while a synchronous exception is
//! pending, and before it, it completed the access under the abort. Even
//! with the fix, a `KVM_RUN` that returns at once (`immediate_exit`, set by
//! a kick that lands after the injection) commits the pending exception,
//! PC to the vector, and returns with `exit_reason` untouched, so the
//! `KVM_RUN` after it would complete the aborted access and advance PC
//! past the vector's first instruction. So the loop also sets
//! `exit_reason` to KVM_EXIT_UNKNOWN once the abort is pending: there is
//! then no MMIO completion to skip, on any kernel.

use kvm_bindings::{kvm_vcpu_events, KVM_EXIT_ARM_NISV, KVM_EXIT_UNKNOWN};
use kvm_ioctls::{VcpuExit, VcpuFd};

use uirq_abi::exit::STATUS_REGISTER;

use super::control::Control;
use super::regs::{cpu_irq_field, get_core_reg, timer_regs, CoreReg, KVM_REG_ESR_EL1};
use super::vm::Vm;
use super::{ioctl, kick, KvmError};
use crate::exit::{
    self, classify_run_failure, Exit, ExitError, ExternalAbort, Machine, RunFailure, Served, Stop,
    VcpuState, ISS_WNR,
};
use crate::irqchip::{Injection, UserGic};
use crate::probe::{Line, Probe};

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
    /// The run was stopped from outside this vCPU (another vCPU ended it,
    /// `--timeout`, Ctrl-C).
    Stopped,
}

/// The run loop of one vCPU.
pub struct VcpuLoop<'a, P: Probe> {
    cpu: usize,
    vcpu: VcpuFd,
    vm: &'a Vm,
    control: &'a Control,
    injection: Injection,
    /// Timer levels and counters.
    pub state: VcpuState,
    /// The probe watching this vCPU.
    pub probe: P,
}

impl<'a, P: Probe> VcpuLoop<'a, P> {
    /// A loop for vCPU `cpu` of `vm`.
    pub fn new(
        cpu: usize,
        vcpu: VcpuFd,
        vm: &'a Vm,
        control: &'a Control,
        injection: Injection,
        probe: P,
    ) -> Self {
        Self {
            cpu,
            vcpu,
            vm,
            control,
            injection,
            state: VcpuState::default(),
            probe,
        }
    }

    /// Runs the vCPU until the guest powers off, resets or crashes, or until
    /// the run is stopped. Must be called on the thread that will run it to
    /// the end (kicks are signals to this thread).
    pub fn run(&mut self) -> Result<Outcome, KvmError> {
        self.control.register_current_thread(self.cpu);
        kick::publish(self.vcpu.get_kvm_run());
        let result = self.run_inner();
        kick::publish(std::ptr::null_mut());
        result
    }

    fn gic(&self) -> Option<&'a UserGic> {
        self.vm.gic.as_deref()
    }

    fn run_inner(&mut self) -> Result<Outcome, KvmError> {
        loop {
            if self.control.stopping() {
                let timer = if self.probe.wants_stopped_timer() {
                    // Best effort: the diagnosis is a bonus, the stop is
                    // what counts.
                    timer_regs(&self.vcpu).ok()
                } else {
                    None
                };
                self.probe.stopped(self.cpu, timer);
                return Ok(Outcome::Stopped);
            }
            self.control.clear_kick(self.cpu);
            self.apply_lines()?;
            self.probe.reenter(self.cpu);

            let mut exit = self.enter()?;
            // A kick may have set immediate_exit; it is consumed now.
            self.vcpu.set_kvm_immediate_exit(0);
            self.probe.exit(self.cpu, &exit);
            let levels = self.timer_levels();
            let machine = Machine {
                bus: &self.vm.bus,
                gic: self.gic(),
                unmapped: self.vm.unmapped,
            };
            let served = exit::serve(
                self.cpu,
                &mut exit,
                levels,
                &mut self.state,
                machine,
                &mut self.probe,
            )?;
            self.probe.served(self.cpu, &exit);
            match (served, &exit) {
                (Served::Stop(stop), _) => return self.stopped_by_guest(stop),
                // Not completed: nothing is handed back for a load, and no
                // device saw the access, so no line changed.
                (Served::InjectAbort(abort), _) => self.inject_external_abort(abort)?,
                (Served::Resume, Exit::MmioRead { len, data, .. }) => {
                    self.complete_read(&data[..*len]);
                    self.kick_stale_others();
                }
                (Served::Resume, Exit::MmioWrite { .. }) => self.kick_stale_others(),
                (Served::Resume, _) => {}
            }
        }
    }

    /// One `KVM_RUN`, with what the exit needs copied out of `kvm_run`.
    fn enter(&mut self) -> Result<Exit, KvmError> {
        Ok(match self.vcpu.run() {
            Ok(VcpuExit::MmioRead(addr, data)) => Exit::read(addr, data.len()),
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                let len = data.len().min(8);
                let mut copy = [0u8; 8];
                copy[..len].copy_from_slice(&data[..len]);
                Exit::MmioWrite {
                    addr,
                    len,
                    data: copy,
                }
            }
            Ok(VcpuExit::SystemEvent(kind, _)) => Exit::SystemEvent(kind),
            Ok(VcpuExit::Intr) => Exit::Interrupted,
            Ok(VcpuExit::FailEntry(reason, host_cpu)) => Exit::FailEntry { reason, host_cpu },
            Ok(VcpuExit::InternalError) => Exit::InternalError {
                suberror: self.internal_suberror(),
            },
            // kvm-ioctls 0.25 has no variant for KVM_EXIT_ARM_NISV.
            Ok(VcpuExit::Unsupported(KVM_EXIT_ARM_NISV)) => self.undecodable_mmio(),
            Ok(other) => Exit::Other(format!("{other:?}")),
            Err(e) => match classify_run_failure(e.errno()) {
                // With a userspace irqchip, a timer level change that needs
                // reporting makes KVM_RUN fail with EINTR (kvm-ioctls
                // returns it as an error, not as VcpuExit::Intr); so does a
                // kick.
                RunFailure::Interrupted => Exit::Interrupted,
                RunFailure::UndecodableMmio => {
                    let pc = get_core_reg(&self.vcpu, CoreReg::Pc).unwrap_or(0);
                    return Err(ExitError::UndecodableMmio { cpu: self.cpu, pc }.into());
                }
                RunFailure::Other => {
                    return Err(KvmError::Ioctl {
                        step: "KVM_RUN",
                        source: e,
                    })
                }
            },
        })
    }

    /// `kvm_run.internal.suberror` after a KVM_EXIT_INTERNAL_ERROR.
    fn internal_suberror(&mut self) -> u32 {
        let run = self.vcpu.get_kvm_run();
        // SAFETY: the exit was KVM_EXIT_INTERNAL_ERROR, so `internal` is the
        // active member of the exit union; any u32 is valid.
        unsafe { run.__bindgen_anon_1.internal.suberror }
    }

    /// `kvm_run.arm_nisv` after a KVM_EXIT_ARM_NISV.
    fn undecodable_mmio(&mut self) -> Exit {
        let run = self.vcpu.get_kvm_run();
        // SAFETY: the exit was KVM_EXIT_ARM_NISV, so `arm_nisv` is the active
        // member of the exit union; any pair of u64 is valid.
        let nisv = unsafe { run.__bindgen_anon_1.arm_nisv };
        Exit::UndecodableMmio {
            addr: nisv.fault_ipa,
            iss: nisv.esr_iss,
        }
    }

    /// Makes a synchronous external abort pending for the access this vCPU
    /// exited on (see the module docs for what KVM does with it), then
    /// corrects its syndrome's WnR bit for a store: KVM builds the ESR
    /// without it (`inject_abt64`), while hardware reports a store's
    /// abort with WnR = 1 (Arm ARM D17.2.37, "WnR, bit [6]"). The ESR is
    /// already in the vCPU's ESR_EL1 when the ioctl returns and the
    /// exception is only entered at the next `KVM_RUN`, so a
    /// `KVM_SET_ONE_REG` in between is what the guest sees
    /// (Documentation/virt/kvm/api.rst, KVM_SET_VCPU_EVENTS: "userspace can
    /// still emulate all Arm exceptions by manipulating individual
    /// registers using the KVM_SET_ONE_REG API").
    fn inject_external_abort(&mut self, abort: ExternalAbort) -> Result<(), KvmError> {
        let mut events = kvm_vcpu_events::default();
        events.exception.ext_dabt_pending = 1;
        self.vcpu
            .set_vcpu_events(&events)
            .map_err(super::ioctl("KVM_SET_VCPU_EVENTS (external abort)"))?;
        // Nothing left to complete (see the module docs).
        self.vcpu.get_kvm_run().exit_reason = KVM_EXIT_UNKNOWN;
        if abort.write {
            let mut bytes = [0u8; 8];
            self.vcpu
                .get_one_reg(KVM_REG_ESR_EL1, &mut bytes)
                .map_err(super::ioctl("KVM_GET_ONE_REG (ESR_EL1)"))?;
            let esr = u64::from_le_bytes(bytes);
            // Only a data abort's syndrome has a WnR bit (EC 0x24, 0x25).
            if matches!(esr >> 26 & 0x3F, 0x24 | 0x25) && esr & ISS_WNR == 0 {
                self.vcpu
                    .set_one_reg(KVM_REG_ESR_EL1, &(esr | ISS_WNR).to_le_bytes())
                    .map_err(super::ioctl("KVM_SET_ONE_REG (ESR_EL1)"))?;
            }
        }
        tracing::trace!(
            cpu = self.cpu,
            addr = format_args!("{:#x}", abort.addr),
            write = abort.write,
            "external abort injected"
        );
        Ok(())
    }

    /// The timer output levels KVM left in `kvm_run` with this return.
    fn timer_levels(&mut self) -> u64 {
        if self.vm.gic.is_none() {
            return 0;
        }
        let run = self.vcpu.get_kvm_run();
        // SAFETY: `s` is a union of `kvm_sync_regs` and padding; on arm64 the
        // kernel writes `regs.device_irq_level` on every return from
        // KVM_RUN when the irqchip is in userspace, and any bit pattern is a
        // valid u64.
        unsafe { run.s.regs.device_irq_level }
    }

    /// Hands the value of a served MMIO load back to KVM, which writes it
    /// into the guest's destination register on the next KVM_RUN.
    fn complete_read(&mut self, data: &[u8]) {
        let run = self.vcpu.get_kvm_run();
        // SAFETY: this return from KVM_RUN was KVM_EXIT_MMIO, so `mmio` is
        // the active member of the exit union.
        let mmio = unsafe { &mut run.__bindgen_anon_1.mmio };
        let n = data.len().min(mmio.data.len());
        mmio.data[..n].copy_from_slice(&data[..n]);
    }

    fn stopped_by_guest(&mut self, stop: Stop) -> Result<Outcome, KvmError> {
        Ok(match stop {
            Stop::PowerOff => Outcome::PoweredOff {
                status: get_core_reg(&self.vcpu, CoreReg::X(STATUS_REGISTER))?,
            },
            Stop::Reset => Outcome::Reset,
            Stop::Crash => Outcome::Crashed,
        })
    }

    /// Brings KVM's view of the lines up to date before re-entering: this
    /// vCPU's own (owner-thread rule), or every vCPU's (cross-thread).
    fn apply_lines(&mut self) -> Result<(), KvmError> {
        let Some(gic) = self.gic() else {
            return Ok(());
        };
        let vm = &self.vm.fd;
        let (cpu, probe, stats) = (self.cpu, &mut self.probe, &mut self.state.stats);
        let mut set = |target: usize, line: Line, level: bool| -> Result<(), KvmError> {
            probe.irq_line(target, line, level);
            vm.set_irq_line(cpu_irq_field(target, line), level)
                .map_err(ioctl("KVM_IRQ_LINE"))?;
            probe.irq_line_done(target);
            exit::count(&mut stats.irq_line_calls);
            Ok(())
        };
        match self.injection {
            Injection::OwnerThread => {
                for (line, level) in gic.take_own(cpu).iter() {
                    set(cpu, line, level)?;
                }
                Ok(())
            }
            Injection::CrossThread => gic.deliver_all(set),
        }
    }

    /// After an access that may have changed other vCPUs' outputs (an SGI,
    /// an SPI's routing, enable or priority): kick the threads whose lines
    /// KVM has not heard yet (owner-thread rule only).
    fn kick_stale_others(&mut self) {
        if self.injection != Injection::OwnerThread {
            return;
        }
        let Some(gic) = self.gic() else { return };
        if gic.num_cpus() < 2 {
            return;
        }
        for target in gic.stale_others(self.cpu).iter() {
            if self.control.kick_for_lines(target) {
                exit::count(&mut self.state.stats.kicks_sent);
                self.probe.kicked(self.cpu, target);
            }
        }
    }
}
