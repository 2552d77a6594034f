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
//!
//! # Bounded, whatever the guest does
//!
//! The guest decides when phases start and end, so nothing here grows with
//! how long it keeps one open. Each vCPU's probe holds a fixed table of
//! counts (saturating, as `crate::exit::Stats` explains), at most one
//! interrupt in flight, and a timeline of at most [`TIMELINE_CAP`] entries:
//! an entry is only added when an interrupt in flight ends with its EOIR,
//! and the oldest goes when the timeline is full. A guest that holds the
//! vtimer phase forever and keeps taking timer interrupts, or takes one and
//! never writes EOIR, costs the same memory as one that runs the benchmark.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use uirq_abi::bench::{Phase, MARKER_BASE, MARKER_SIZE, MAX_SAMPLES};
use uirq_abi::gicv2::gicc;
use uirq_abi::layout::GICC_BASE;

use crate::bench::IrqTimeline;
use crate::exit::{count, Exit, Stats};
use crate::probe::{Line, Probe, Timer};

/// Phase slots counted (phase numbers at or above this count as the last).
pub const PHASES: usize = 8;

/// Most timeline entries kept: as many as the result buffer holds vtimer
/// samples. The statistics match the timeline's *last* entries to the
/// guest's samples (the warm-up interrupts come first and are not in the
/// buffer), so older entries could never be used; the oldest go first.
pub const TIMELINE_CAP: usize = MAX_SAMPLES as usize;

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
        count(&mut s.exits);
        match exit {
            Exit::MmioRead { .. } => count(&mut s.mmio_reads),
            Exit::MmioWrite { .. } => count(&mut s.mmio_writes),
            Exit::Interrupted => count(&mut s.interrupted),
            _ => {}
        }
        let t = self.t_return;
        if let Some(c) = self.current.as_mut() {
            c.exits = c.exits.saturating_add(1);
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
        count(&mut s.level_changes);
        if !self.level_reported {
            // The first level change on an EINTR makes it a level report.
            count(&mut s.level_reports);
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
        count(&mut self.phase_stats[self.current_phase].irq_line_calls);
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
            let spent = (self.now)().wrapping_sub(self.t_ioctl);
            c.irq_line_ticks = c.irq_line_ticks.saturating_add(spent);
        }
    }

    fn reenter(&mut self, _cpu: usize) {
        if self.current.is_none() {
            return;
        }
        let t = (self.now)();
        if let Some(c) = self.current.as_mut() {
            c.vmm_ticks = c.vmm_ticks.saturating_add(t.wrapping_sub(self.t_return));
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
        assert_eq!(TIMELINE_CAP as u64, MAX_SAMPLES, "the result buffer's");
        let last = p.timeline.back().unwrap().eoi;
        assert!(p.timeline.iter().all(|t| t.eoi <= last));
        assert!(p.timeline.capacity() < 2 * TIMELINE_CAP);
    }

    // The other ways a guest holding the vtimer phase could try to grow the
    // probe: timer levels reported over and over without an acknowledge,
    // and an interrupt acknowledged but never ended, with exits on top.
    // Neither adds a timeline entry; the one in flight counts its exits,
    // saturating.
    #[test]
    fn interrupts_that_never_end_add_nothing() {
        let mut p = probe(Phase::Vtimer);
        for _ in 0..3 * TIMELINE_CAP {
            p.exit(0, &Exit::Interrupted);
            p.timer_level(0, Timer::Virtual, true);
            p.reenter(0);
            p.exit(0, &Exit::Interrupted);
            p.timer_level(0, Timer::Virtual, false);
            p.reenter(0);
            p.exit(0, &Exit::read(GICC_BASE + gicc::IAR, 4));
            p.reenter(0);
        }
        assert!(p.timeline.is_empty());
        let in_flight = p.current.expect("one interrupt in flight");
        assert_eq!(in_flight.exits as usize, 3 * 3 * TIMELINE_CAP);
        p.current.as_mut().unwrap().exits = u32::MAX - 1;
        for _ in 0..3 {
            p.exit(0, &Exit::Interrupted);
        }
        assert_eq!(p.current.unwrap().exits, u32::MAX);
        one_interrupt(&mut p);
        assert_eq!(p.timeline.len(), 1, "the EOI ends the one in flight");
    }

    #[test]
    fn phase_counts_saturate() {
        let mut p = probe(Phase::Sgi);
        let near = u64::MAX - 1;
        let s = &mut p.phase_stats[Phase::Sgi as usize];
        (s.exits, s.interrupted, s.level_changes, s.level_reports) = (near, near, near, near);
        s.irq_line_calls = near;
        for _ in 0..3 {
            p.exit(0, &Exit::Interrupted);
            p.timer_level(0, Timer::Virtual, true);
            p.irq_line(0, Line::Irq, true);
        }
        let s = p.stats(Phase::Sgi);
        assert_eq!(
            (s.exits, s.interrupted, s.level_changes, s.level_reports),
            (u64::MAX, u64::MAX, u64::MAX, u64::MAX)
        );
        assert_eq!(s.irq_line_calls, u64::MAX);
    }
}
