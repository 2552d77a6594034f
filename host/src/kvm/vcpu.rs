//! The vCPU run loop: one per vCPU thread, and it only runs the vCPU.
//!
//! ```text
//!  loop:
//!    stop requested?                     → leave (the probe may look at the timer)
//!    apply this vCPU's IRQ/FIQ lines     → KVM_IRQ_LINE, only on a change
//!    KVM_RUN                             → Exit (copied out of kvm_run)
//!    exit::serve(exit, timer levels)     → levels into the GIC model first, then
//!                                          the exit (MMIO to the bus, PSCI events)
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

use kvm_ioctls::{VcpuExit, VcpuFd};

use uirq_abi::exit::STATUS_REGISTER;

use super::control::Control;
use super::regs::{cpu_irq_field, get_core_reg, timer_regs, CoreReg};
use super::vm::Vm;
use super::{ioctl, kick, KvmError};
use crate::exit::{
    self, classify_run_failure, Exit, ExitError, Machine, RunFailure, Served, Stop, VcpuState,
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
            };
            let served = exit::serve(
                self.cpu,
                &mut exit,
                levels,
                &mut self.state,
                machine,
                &mut self.probe,
            )?;
            match (served, &exit) {
                (Served::Stop(stop), _) => return self.stopped_by_guest(stop),
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
            stats.irq_line_calls += 1;
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
                self.state.stats.kicks_sent += 1;
                self.probe.kicked(self.cpu, target);
            }
        }
    }
}
