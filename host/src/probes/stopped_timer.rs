//! Explaining a guest that had to be stopped.
//!
//! Linux before commit 4ce98bf0865c ("Wake-up from WFI when irqchip is in
//! userspace"; in 6.12.88 and later, and in later 6.1 stable releases) does
//! not wake a vCPU blocked in WFI when its timer fires while the irqchip is
//! in userspace: KVM never returns to report the level, so a guest that
//! waits for its timer with WFI sleeps until something else kicks the
//! vCPU. When `--timeout` does that kick, the level report finally arrives,
//! long after the deadline. That signature is what [`missed_wakeup`] looks
//! for, so the VMM can name the kernel bug instead of only saying "timeout".
//!
//! [`StoppedTimerProbe`] gathers the evidence during the run: when the
//! virtual timer's level last rose, and whether that was on the very exit
//! the stop caused; the loop hands it the timer registers at the stop.

use crate::exit::Exit;
use crate::probe::{Probe, Timer, TimerRegs};

/// CNTV_CTL_EL0.ENABLE.
const CTL_ENABLE: u64 = 1 << 0;
/// CNTV_CTL_EL0.IMASK.
const CTL_IMASK: u64 = 1 << 1;

/// What the VMM knows about the virtual timer when it stopped the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoppedTimer {
    /// The guest's CNTV_CTL_EL0.
    pub ctl: u64,
    /// The guest's CNTV_CVAL_EL0 (the deadline).
    pub cval: u64,
    /// When the VMM last saw the timer level rise, on the guest's timebase,
    /// if that happened on the very exit the stop caused.
    pub rose_on_stop_exit: Option<u64>,
}

/// If the guest's virtual timer had fired more than `tolerance` ticks
/// before KVM reported it, and the report only came with the exit the stop
/// forced, returns how late the report was (in ticks).
pub fn missed_wakeup(t: &StoppedTimer, tolerance: u64) -> Option<u64> {
    let armed = t.ctl & CTL_ENABLE != 0 && t.ctl & CTL_IMASK == 0;
    let seen = t.rose_on_stop_exit?;
    let late = seen.checked_sub(t.cval)?;
    (armed && late > tolerance).then_some(late)
}

/// The probe that records what [`missed_wakeup`] needs, on one vCPU.
pub struct StoppedTimerProbe {
    now: fn() -> u64,
    exits: u64,
    /// (exit number, time) of the last exit that reported the virtual
    /// timer rising.
    rose: Option<(u64, u64)>,
    /// What the stop left, once stopped.
    pub stopped: Option<StoppedTimer>,
}

impl StoppedTimerProbe {
    /// A probe that timestamps with `now` (the counter, on the guest's
    /// timebase).
    pub fn new(now: fn() -> u64) -> Self {
        Self {
            now,
            exits: 0,
            rose: None,
            stopped: None,
        }
    }
}

impl Probe for StoppedTimerProbe {
    fn exit(&mut self, _cpu: usize, _exit: &Exit) {
        crate::exit::count(&mut self.exits);
    }

    fn timer_level(&mut self, _cpu: usize, timer: Timer, level: bool) {
        if timer == Timer::Virtual && level {
            self.rose = Some((self.exits, (self.now)()));
        }
    }

    fn wants_stopped_timer(&self) -> bool {
        true
    }

    fn stopped(&mut self, _cpu: usize, timer: Option<TimerRegs>) {
        self.stopped = timer.map(|t| StoppedTimer {
            ctl: t.ctl,
            cval: t.cval,
            rose_on_stop_exit: self
                .rose
                .filter(|&(exit, _)| exit == self.exits)
                .map(|(_, at)| at),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> u64 {
        9_000
    }

    // The level that rose on the last exit before the stop counts; one that
    // rose earlier, and was followed by other exits, does not.
    #[test]
    fn the_probe_keeps_only_a_rise_on_the_stop_exit() {
        let regs = Some(TimerRegs {
            ctl: ARMED,
            cval: 1_000,
        });
        let mut p = StoppedTimerProbe::new(clock);
        p.exit(0, &Exit::Interrupted);
        p.timer_level(0, Timer::Virtual, true);
        p.stopped(0, regs);
        assert_eq!(p.stopped.unwrap().rose_on_stop_exit, Some(9_000));
        assert_eq!(missed_wakeup(&p.stopped.unwrap(), 100), Some(8_000));

        let mut p = StoppedTimerProbe::new(clock);
        p.exit(0, &Exit::Interrupted);
        p.timer_level(0, Timer::Virtual, true);
        p.exit(0, &Exit::Interrupted);
        p.stopped(0, regs);
        assert_eq!(p.stopped.unwrap().rose_on_stop_exit, None);
        let mut p = StoppedTimerProbe::new(clock);
        p.exit(0, &Exit::Interrupted);
        p.timer_level(0, Timer::Physical, true);
        p.stopped(0, regs);
        assert_eq!(p.stopped.unwrap().rose_on_stop_exit, None);
    }

    const ARMED: u64 = CTL_ENABLE;

    fn stopped(ctl: u64, cval: u64, rose: Option<u64>) -> StoppedTimer {
        StoppedTimer {
            ctl,
            cval,
            rose_on_stop_exit: rose,
        }
    }

    #[test]
    fn a_level_that_only_arrives_with_the_stop_long_after_the_deadline_is_a_missed_wakeup() {
        assert_eq!(
            missed_wakeup(&stopped(ARMED, 1_000, Some(9_000)), 100),
            Some(8_000)
        );
    }

    #[test]
    fn timely_reports_masked_or_disabled_timers_and_other_stops_are_not() {
        // Reported on time (within the tolerance).
        assert_eq!(
            missed_wakeup(&stopped(ARMED, 1_000, Some(1_050)), 100),
            None
        );
        // The level did not rise on the stop's exit: the guest hung otherwise.
        assert_eq!(missed_wakeup(&stopped(ARMED, 1_000, None), 100), None);
        // Timer masked or disabled: no interrupt was due.
        assert_eq!(
            missed_wakeup(&stopped(CTL_ENABLE | CTL_IMASK, 1_000, Some(9_000)), 100),
            None
        );
        assert_eq!(missed_wakeup(&stopped(0, 1_000, Some(9_000)), 100), None);
        // Deadline still in the future.
        assert_eq!(
            missed_wakeup(&stopped(ARMED, 10_000, Some(9_000)), 100),
            None
        );
    }
}
