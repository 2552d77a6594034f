//! Watching a run without changing it: the probe interface.
//!
//! The vCPU loop only runs a vCPU. Everything that *observes* a run (the
//! benchmark's per-phase exit accounting and timeline, the diagnosis of a
//! guest that had to be stopped, a trace exporter) is a [`Probe`]: the loop
//! calls it at a few fixed points and never looks at what it records.
//!
//! ```text
//!   ┌──────────────▶ KVM_RUN ──────────────┐
//!   │                                      ▼
//!   │ reenter()                  exit(cpu, &Exit)        KVM_RUN returned
//!   │                            timer_level(..)         a timer output changed
//!   │                            (the exit is served)
//!   │                            served(cpu, &Exit)      with a load's value
//!   └─── irq_line(..) ◀──────────────────────────        an IRQ/FIQ input changed
//! ```
//!
//! Every method has an empty default body, and the loop is generic over the
//! probe type, so with [`NoProbe`] the calls compile to nothing: a run that
//! watches nothing pays nothing. One probe value belongs to one vCPU thread
//! (no locking); the caller gets them all back when the run ends and merges
//! what it needs.

use crate::exit::Exit;

/// A timer output KVM reports in `kvm_run.s.regs.device_irq_level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// The EL1 virtual timer (PPI 27).
    Virtual,
    /// The EL1 physical timer (PPI 30).
    Physical,
}

/// One of a vCPU's two interrupt inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// The IRQ input (HCR_EL2.VI for a guest).
    Irq,
    /// The FIQ input (HCR_EL2.VF).
    Fiq,
}

/// The virtual timer's registers, read when a run is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerRegs {
    /// CNTV_CTL_EL0.
    pub ctl: u64,
    /// CNTV_CVAL_EL0.
    pub cval: u64,
}

/// Hooks the vCPU loop calls. All default to doing nothing.
pub trait Probe: Send {
    /// `KVM_RUN` returned on `cpu` with `exit` (before it is served).
    #[inline(always)]
    fn exit(&mut self, cpu: usize, exit: &Exit) {
        let _ = (cpu, exit);
    }

    /// The exit last passed to [`Probe::exit`] was served: for an MMIO
    /// load, `exit` now holds the value the guest will read. Not called
    /// when serving it ended the run with an error.
    #[inline(always)]
    fn served(&mut self, cpu: usize, exit: &Exit) {
        let _ = (cpu, exit);
    }

    /// The loop is forwarding a change of `timer`'s output on `cpu` to the
    /// GIC model (while serving the exit last passed to [`Probe::exit`]);
    /// the model takes it right after this returns.
    #[inline(always)]
    fn timer_level(&mut self, cpu: usize, timer: Timer, level: bool) {
        let _ = (cpu, timer, level);
    }

    /// The loop is about to call `KVM_IRQ_LINE` to set `cpu`'s `line` to
    /// `level`; [`Probe::irq_line_done`] follows when the call returned.
    #[inline(always)]
    fn irq_line(&mut self, cpu: usize, line: Line, level: bool) {
        let _ = (cpu, line, level);
    }

    /// The `KVM_IRQ_LINE` announced by [`Probe::irq_line`] returned.
    #[inline(always)]
    fn irq_line_done(&mut self, cpu: usize) {
        let _ = cpu;
    }

    /// The thread of `cpu` found another vCPU's line out of date and kicked
    /// that vCPU's thread to apply it.
    #[inline(always)]
    fn kicked(&mut self, cpu: usize, target: usize) {
        let _ = (cpu, target);
    }

    /// `cpu` is about to re-enter `KVM_RUN`.
    #[inline(always)]
    fn reenter(&mut self, cpu: usize) {
        let _ = cpu;
    }

    /// Whether the loop should read the virtual timer's registers for
    /// [`Probe::stopped`] when the run is stopped from outside.
    #[inline(always)]
    fn wants_stopped_timer(&self) -> bool {
        false
    }

    /// The run was stopped from outside (`--timeout`, Ctrl-C, another vCPU
    /// ending it); `timer` is the virtual timer as the loop left it, when
    /// [`Probe::wants_stopped_timer`] asked for it and it could be read.
    #[inline(always)]
    fn stopped(&mut self, cpu: usize, timer: Option<TimerRegs>) {
        let _ = (cpu, timer);
    }
}

/// The probe that watches nothing: the default, and free.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProbe;

impl Probe for NoProbe {}

/// Two probes at once: each hook calls both, `A` first.
impl<A: Probe, B: Probe> Probe for (A, B) {
    fn exit(&mut self, cpu: usize, exit: &Exit) {
        self.0.exit(cpu, exit);
        self.1.exit(cpu, exit);
    }
    fn served(&mut self, cpu: usize, exit: &Exit) {
        self.0.served(cpu, exit);
        self.1.served(cpu, exit);
    }
    fn timer_level(&mut self, cpu: usize, timer: Timer, level: bool) {
        self.0.timer_level(cpu, timer, level);
        self.1.timer_level(cpu, timer, level);
    }
    fn irq_line(&mut self, cpu: usize, line: Line, level: bool) {
        self.0.irq_line(cpu, line, level);
        self.1.irq_line(cpu, line, level);
    }
    fn irq_line_done(&mut self, cpu: usize) {
        self.0.irq_line_done(cpu);
        self.1.irq_line_done(cpu);
    }
    fn kicked(&mut self, cpu: usize, target: usize) {
        self.0.kicked(cpu, target);
        self.1.kicked(cpu, target);
    }
    fn reenter(&mut self, cpu: usize) {
        self.0.reenter(cpu);
        self.1.reenter(cpu);
    }
    fn wants_stopped_timer(&self) -> bool {
        self.0.wants_stopped_timer() || self.1.wants_stopped_timer()
    }
    fn stopped(&mut self, cpu: usize, timer: Option<TimerRegs>) {
        self.0.stopped(cpu, timer);
        self.1.stopped(cpu, timer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Count(Vec<&'static str>);
    impl Probe for Count {
        fn exit(&mut self, _: usize, _: &Exit) {
            self.0.push("exit");
        }
        fn reenter(&mut self, _: usize) {
            self.0.push("reenter");
        }
        fn wants_stopped_timer(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_pair_calls_both_in_order_and_no_probe_is_zero_sized() {
        let mut pair = (Count::default(), Count::default());
        pair.exit(0, &Exit::Interrupted);
        pair.reenter(0);
        assert_eq!(pair.0 .0, ["exit", "reenter"]);
        assert_eq!(pair.1 .0, ["exit", "reenter"]);
        assert!(pair.wants_stopped_timer());
        assert!(!NoProbe.wants_stopped_timer());
        assert_eq!(std::mem::size_of::<NoProbe>(), 0);
    }
}
