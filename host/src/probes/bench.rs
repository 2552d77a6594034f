//! The benchmark's view of a run: exits counted per measurement, and the
//! VMM's own timeline of each virtual-timer interrupt.
//!
//! The firmware announces each measurement by writing its
//! `uirq_abi::bench::Phase` number to the marker device, which stores it in
//! an atomic this probe reads at every exit. Exits are charged to the phase
//! that was current when they happened; the marker writes themselves go to
//! `Idle`, so a measurement's counts hold only its own samples' exits.
//!
//! During the `Vtimer` phase the probe also timestamps, on the guest's
//! timebase, each interrupt's way through the VMM ([`IrqTimeline`]): the
//! exit that reported the level, the `KVM_IRQ_LINE` that raised the line,
//! the acknowledge and the EOI, and the time spent outside `KVM_RUN`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use uirq_abi::bench::{Phase, MARKER_BASE, MARKER_SIZE, MAX_SAMPLES};
use uirq_abi::gicv2::gicc;
use uirq_abi::layout::GICC_BASE;

use crate::bench::IrqTimeline;
use crate::exit::{Exit, Stats};
use crate::probe::{Line, Probe, Timer};

/// Phase slots counted (phase numbers at or above this count as the last).
pub const PHASES: usize = 8;

/// Most timeline entries kept: the largest sample count plus the largest
/// warm-up, so a guest that keeps the vtimer phase open forever cannot grow
/// the VMM without bound. The oldest entries go first (the statistics match
/// the last entries to the samples).
pub const TIMELINE_CAP: usize = MAX_SAMPLES as usize + 10_000;

/// The benchmark probe of one vCPU.
pub struct BenchProbe {
    now: fn() -> u64,
    phase: Arc<AtomicU32>,
    record_timeline: bool,
    /// Exits and what they were, by the phase current at each exit.
    pub phase_stats: [Stats; PHASES],
    /// The VMM's timeline of the vtimer phase's interrupts (oldest first).
    pub timeline: VecDeque<IrqTimeline>,
    current_phase: usize,
    level_reported: bool,
    current: Option<IrqTimeline>,
    finish_current: bool,
    t_return: u64,
    t_ioctl: u64,
}

impl BenchProbe {
    /// A probe reading the phase from `phase` and timestamping with `now`
    /// (the counter on the guest's timebase). With `record_timeline` it
    /// keeps the vtimer timeline (userspace irqchip only: with KVM's vGIC
    /// the VMM sees none of it).
    pub fn new(now: fn() -> u64, phase: Arc<AtomicU32>, record_timeline: bool) -> Self {
        Self {
            now,
            phase,
            record_timeline,
            phase_stats: [Stats::default(); PHASES],
            timeline: VecDeque::new(),
            current_phase: 0,
            level_reported: false,
            current: None,
            finish_current: false,
            t_return: 0,
            t_ioctl: 0,
        }
    }

    /// The counts of `phase`.
    pub fn stats(&self, phase: Phase) -> &Stats {
        &self.phase_stats[(phase as usize).min(PHASES - 1)]
    }

    fn push(&mut self, entry: IrqTimeline) {
        if self.timeline.len() == TIMELINE_CAP {
            self.timeline.pop_front();
        }
        self.timeline.push_back(entry);
    }
}

impl Probe for BenchProbe {
    fn exit(&mut self, _cpu: usize, exit: &Exit) {
        self.t_return = (self.now)();
        let marker = |addr: &u64| (MARKER_BASE..MARKER_BASE + MARKER_SIZE).contains(addr);
        self.current_phase = match exit {
            Exit::MmioWrite { addr, .. } if marker(addr) => Phase::Idle as usize,
            _ => (self.phase.load(Ordering::Acquire) as usize).min(PHASES - 1),
        };
        let s = &mut self.phase_stats[self.current_phase];
        s.exits += 1;
        match exit {
            Exit::MmioRead { .. } => s.mmio_reads += 1,
            Exit::MmioWrite { .. } => s.mmio_writes += 1,
            Exit::Interrupted => s.interrupted += 1,
            _ => {}
        }
        let t = self.t_return;
        if let Some(c) = self.current.as_mut() {
            c.exits += 1;
            match exit {
                Exit::MmioRead { addr, .. } if *addr == GICC_BASE + gicc::IAR => c.iar = t,
                Exit::MmioWrite { addr, .. } if *addr == GICC_BASE + gicc::EOIR => {
                    c.eoi = t;
                    self.finish_current = true;
                }
                _ => {}
            }
        }
        // Only an EINTR can be a level report; the first level change
        // during it makes it one.
        self.level_reported = !matches!(exit, Exit::Interrupted);
    }

    fn timer_level(&mut self, _cpu: usize, timer: Timer, level: bool) {
        let s = &mut self.phase_stats[self.current_phase];
        s.level_changes += 1;
        if !self.level_reported {
            // The first level change on an EINTR makes it a level report.
            s.level_reports += 1;
            self.level_reported = true;
        }
        if self.record_timeline
            && timer == Timer::Virtual
            && level
            && self.current_phase == Phase::Vtimer as usize
            && self.current.is_none()
        {
            self.current = Some(IrqTimeline {
                level_seen: self.t_return,
                exits: 1,
                ..IrqTimeline::default()
            });
        }
    }

    fn irq_line(&mut self, _cpu: usize, line: Line, level: bool) {
        self.phase_stats[self.current_phase].irq_line_calls += 1;
        if self.current.is_none() {
            return;
        }
        let t = (self.now)();
        self.t_ioctl = t;
        if let Some(c) = self.current.as_mut() {
            if line == Line::Irq && level && c.irq_line == 0 {
                c.irq_line = t;
            }
        }
    }

    fn irq_line_done(&mut self, _cpu: usize) {
        if let Some(c) = self.current.as_mut() {
            c.irq_line_ticks += (self.now)().wrapping_sub(self.t_ioctl);
        }
    }

    fn reenter(&mut self, _cpu: usize) {
        if self.current.is_none() {
            return;
        }
        let t = (self.now)();
        if let Some(c) = self.current.as_mut() {
            c.vmm_ticks += t.wrapping_sub(self.t_return);
        }
        if self.finish_current {
            self.finish_current = false;
            if let Some(c) = self.current.take() {
                self.push(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        static NOW: Cell<u64> = const { Cell::new(0) };
    }

    fn now() -> u64 {
        NOW.with(|n| {
            let t = n.get() + 10;
            n.set(t);
            t
        })
    }

    fn probe(phase: Phase) -> BenchProbe {
        let p = Arc::new(AtomicU32::new(phase as u32));
        BenchProbe::new(now, p, true)
    }

    // One virtual-timer interrupt as the loop reports it: level report,
    // IRQ line raised, IAR read, line lowered, EOIR write.
    fn one_interrupt(p: &mut BenchProbe) {
        p.exit(0, &Exit::Interrupted);
        p.timer_level(0, Timer::Virtual, true);
        p.irq_line(0, Line::Irq, true);
        p.irq_line_done(0);
        p.reenter(0);
        p.exit(0, &Exit::read(GICC_BASE + gicc::IAR, 4));
        p.irq_line(0, Line::Irq, false);
        p.irq_line_done(0);
        p.reenter(0);
        p.exit(0, &Exit::write(GICC_BASE + gicc::EOIR, 4, 27));
        p.timer_level(0, Timer::Virtual, false);
        p.reenter(0);
    }

    #[test]
    fn an_interrupt_is_timed_from_level_to_eoi_and_its_exits_counted() {
        let mut p = probe(Phase::Vtimer);
        one_interrupt(&mut p);
        assert_eq!(p.timeline.len(), 1);
        let t = p.timeline[0];
        assert_eq!(t.exits, 3);
        assert!(t.level_seen < t.irq_line && t.irq_line < t.iar && t.iar < t.eoi);
        assert!(t.vmm_ticks > 0 && t.irq_line_ticks > 0);
        let s = p.stats(Phase::Vtimer);
        assert_eq!((s.exits, s.mmio_reads, s.mmio_writes), (3, 1, 1));
        assert_eq!((s.interrupted, s.level_reports, s.level_changes), (1, 1, 2));
        assert_eq!(s.irq_line_calls, 2);
    }

    #[test]
    fn marker_writes_count_as_idle_and_other_phases_keep_no_timeline() {
        let mut p = probe(Phase::Sgi);
        p.exit(0, &Exit::write(MARKER_BASE, 4, Phase::Sgi as u64));
        one_interrupt(&mut p);
        assert!(p.timeline.is_empty());
        assert_eq!(p.stats(Phase::Idle).exits, 1);
        assert_eq!(p.stats(Phase::Sgi).exits, 3);
    }

    // A guest that keeps the phase open forever cannot grow the timeline
    // past its cap; the newest entries are the ones kept.
    #[test]
    fn the_timeline_is_bounded() {
        let mut p = probe(Phase::Vtimer);
        for _ in 0..TIMELINE_CAP + 5 {
            one_interrupt(&mut p);
        }
        assert_eq!(p.timeline.len(), TIMELINE_CAP);
        let last = p.timeline.back().unwrap().eoi;
        assert!(p.timeline.iter().all(|t| t.eoi <= last));
    }
}
