//! `smp-timer`: every core takes its own virtual-timer ticks.
//!
//! Each core has its own generic timer, and the GIC gives each timer's PPI
//! 27 a *banked* copy per CPU interface (IHI 0048B, 2.2.1 and 4.1.4: enable,
//! pending, active and priority of ids 0-31 exist once per CPU at the same
//! distributor addresses). So the timer program's set-up runs once per
//! core, on that core, and every core counts and measures only its own
//! ticks:
//!
//! ```text
//!  core 0                                  core 1 .. n-1
//!  ──────                                  ─────────────
//!  GICD init (shared), GICC init
//!  start the others (PSCI CPU_ON) ───────▶ GICD banked part, GICC (smp.rs)
//!  run_on(n, take_ticks) ────────────────▶ take_ticks(n):
//!  take_ticks(0):                            PPI 27: priority, enable (own copy)
//!    same as every other core                CVAL = now + period; WFI loop;
//!                                            handler: latency, re-arm, EOIR
//!  wait (bounded) for every core ◀──────── FINISHED[n] = true; SEV
//!  one line per core, then the verdict
//! ```
//!
//! The per-core state lives in arrays indexed by core number, and each
//! element has one writer, the core it belongs to (its handler, or its
//! `take_ticks`), so `uirq_guest::stats`' single-writer types still need no
//! lock; core 0 reads them only after that core has said it finished.

use core::{
    num::NonZeroU64,
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
};

use aarch64_cpu::{
    asm::{barrier, wfi},
    registers::{ReadWriteable, DAIF},
};
use uirq_abi::{
    boot::{DEFAULT_PERIOD_US, DEFAULT_TICKS, MAX_CPUS},
    exit::Status,
    gicv2::VTIMER,
};
use uirq_guest::{
    drivers::{
        gicv2::Priority,
        timer::{signed_ticks_to_ns, us_to_ticks, VirtualTimer},
    },
    report::{write_smp_timer_core, TimerOutcome},
    stats::{Counter, SampleLog, Summary},
};

use crate::{board, irq, psci, smp};

/// The most ticks each core records; asking for more is capped.
const MAX_TICKS: usize = 1000;

/// The virtual timer's priority, as in the timer program.
const TIMER_PRIORITY: Priority = 0x80;

/// Slack on top of four times the expected run time before a core, or
/// core 0 waiting for the others, gives up.
const SLACK_US: u64 = 10_000_000;

/// One core's ticks (see the module docs for who writes what).
struct CoreTicks {
    latencies: SampleLog<MAX_TICKS>,
    ticks: Counter,
    negative: Counter,
    spurious: Counter,
    unexpected: Counter,
    last_unexpected_id: AtomicU32,
    /// Set by the core when it is done (all ticks, or its time is up).
    finished: AtomicBool,
}

static CORES: [CoreTicks; MAX_CPUS] = [const {
    CoreTicks {
        latencies: SampleLog::new(),
        ticks: Counter::new(),
        negative: Counter::new(),
        spurious: Counter::new(),
        unexpected: Counter::new(),
        last_unexpected_id: AtomicU32::new(0),
        finished: AtomicBool::new(false),
    }
}; MAX_CPUS];

/// Ticks each core takes, the period in counter ticks and each core's time
/// limit in microseconds: written by core 0 before any core starts.
static TARGET: AtomicU64 = AtomicU64::new(0);
static PERIOD_TICKS: AtomicU64 = AtomicU64::new(0);
static LIMIT_US: AtomicU64 = AtomicU64::new(0);

/// Runs the program: `x1` ticks per core (0 = `DEFAULT_TICKS`) of `x2`
/// microseconds (0 = `DEFAULT_PERIOD_US`).
pub fn run(x1: u64, x2: u64) -> ! {
    let ticks = match x1 {
        0 => DEFAULT_TICKS,
        n if n > MAX_TICKS as u64 => {
            println!("smp-timer: {n} ticks asked for; capped at {MAX_TICKS} per core");
            MAX_TICKS as u64
        }
        n => n,
    };
    let period_us = if x2 == 0 { DEFAULT_PERIOD_US } else { x2 };
    let Some(freq) = VirtualTimer.frequency() else {
        println!(
            "smp-timer: CNTFRQ_EL0 reads 0, so the counter frequency is unknown; refusing to run"
        );
        psci::system_off(Status::Failure)
    };

    // The shared part of the distributor, once, before the others start.
    board::gicd().init();
    board::gicc().init();
    let cores = match smp::start_secondaries() {
        Ok(cores) => cores,
        Err(error) => {
            println!("smp-timer: {error}");
            println!("smp-timer: 1 cores, FAIL");
            psci::system_off(Status::Failure)
        }
    };
    println!(
        "smp-timer: {cores} core(s), {ticks} ticks of {period_us} us each; CNTFRQ_EL0 = {freq} Hz"
    );

    let limit_us = ticks
        .saturating_mul(period_us)
        .saturating_mul(4)
        .saturating_add(SLACK_US);
    TARGET.store(ticks, Ordering::Relaxed);
    PERIOD_TICKS.store(us_to_ticks(period_us, freq), Ordering::Relaxed);
    LIMIT_US.store(limit_us, Ordering::Relaxed);
    // Every secondary was just started and is idle.
    let posted = smp::run_on_secondaries(cores, take_ticks);
    debug_assert!(posted.is_ok());
    take_ticks(0);

    let all_finished = || (0..cores).all(|c| CORES[c].finished.load(Ordering::Acquire));
    smp::wait_until(limit_us, all_finished);
    report(cores, ticks, freq)
}

/// One core's part: its own PPI 27, its own timer, until `TARGET` ticks.
fn take_ticks(core: usize) {
    irq::set_handler(on_irq);
    let gicd = board::gicd();
    // The banked copy of PPI 27 that belongs to this core.
    gicd.set_priority(VTIMER, TIMER_PRIORITY);
    gicd.enable(VTIMER);

    let timer = VirtualTimer;
    let me = &CORES[core];
    let target = TARGET.load(Ordering::Relaxed);
    let freq = timer.frequency().unwrap_or(NonZeroU64::MIN);
    let deadline = timer
        .now()
        .saturating_add(us_to_ticks(LIMIT_US.load(Ordering::Relaxed), freq));
    timer.arm_after(PERIOD_TICKS.load(Ordering::Relaxed));

    // As in the timer program: check with IRQs masked, sleep in WFI (a
    // pending IRQ wakes it whatever PSTATE.I says), then let the interrupt
    // in for a moment. The deadline bounds the wait as long as this core's
    // own timer wakes it; a core whose ticks stop arriving is caught by
    // core 0's bounded wait for all.
    while me.ticks.get() < target && timer.now() < deadline {
        wfi();
        DAIF.modify(DAIF::I::Unmasked);
        barrier::isb(barrier::SY);
        DAIF.modify(DAIF::I::Masked);
    }
    timer.disable();
    me.finished.store(true, Ordering::Release);
    smp::notify();
}

/// One line per core, then the verdict line, then SYSTEM_OFF.
fn report(cores: usize, ticks: u64, freq: NonZeroU64) -> ! {
    let to_ns = |t: i64| signed_ticks_to_ns(t, freq);
    let mut failures = 0;
    let _console = crate::console::lock();
    for (core, me) in CORES.iter().enumerate().take(cores) {
        let mut sorted = [0i64; MAX_TICKS];
        let summary = Summary::of(me.latencies.copy_to(&mut sorted)).map(|s| s.map(to_ns));
        let mut uart = board::uart();
        // Writing to the UART cannot fail.
        let _ = write_smp_timer_core(&mut uart, core, me.ticks.get(), summary);
        println!();

        let spurious = me.spurious.get();
        if spurious != 0 {
            println!("smp-timer: core {core}: {spurious} spurious acknowledge(s) (IAR read 1023)");
        }
        if !me.finished.load(Ordering::Acquire) {
            failures += 1;
            println!("smp-timer: core {core}: FAILED: did not finish in time");
            continue;
        }
        let outcome = TimerOutcome {
            expected: ticks,
            timer_interrupts: me.ticks.get(),
            unexpected: me.unexpected.get(),
            last_unexpected_id: me.last_unexpected_id.load(Ordering::Relaxed),
            negative_latencies: me.negative.get(),
        };
        if let Err(failure) = outcome.verdict() {
            failures += 1;
            println!("smp-timer: core {core}: FAILED: {failure}");
        }
    }
    if failures == 0 {
        println!("smp-timer: {cores} cores, PASS");
        psci::system_off(Status::Success)
    } else {
        println!("smp-timer: {cores} cores, FAIL");
        psci::system_off(Status::Failure)
    }
}

/// The IRQ handler on every core: as the timer program's, on this core's
/// state.
fn on_irq(entry_ticks: u64) {
    let me = &CORES[smp::core_id()];
    let gicc = board::gicc();
    let Some(irq) = gicc.acknowledge() else {
        me.spurious.increment();
        return;
    };
    if irq.id() == VTIMER {
        let timer = VirtualTimer;
        // Readings of the same virtual counter (the counter is common to
        // all cores; CNTVOFF is the same for every vCPU of a VM).
        let latency = entry_ticks.wrapping_sub(timer.deadline()) as i64;
        if latency < 0 {
            me.negative.increment();
        }
        me.latencies.push(latency);
        me.ticks.increment();
        if me.ticks.get() < TARGET.load(Ordering::Relaxed) {
            timer.arm_after(PERIOD_TICKS.load(Ordering::Relaxed));
        } else {
            timer.disable();
        }
    } else {
        me.unexpected.increment();
        me.last_unexpected_id
            .store(irq.id().raw(), Ordering::Relaxed);
        board::gicd().disable(irq.id());
    }
    gicc.end_of_interrupt(irq);
}
