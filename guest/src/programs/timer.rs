//! `timer`, the default program: periodic virtual-timer interrupts through
//! the GIC, and how late each one was handled.
//!
//! # What happens
//!
//! ```text
//!  run()                                       on_irq()  (IRQ vector, IRQs masked)
//!  ─────                                       ────────
//!  banner: CNTFRQ, GICD_TYPER, IIDRs
//!  GICD init, GICC init
//!  VTIMER: priority, enable at the GIC
//!  CVAL = now + period, ENABLE
//!  loop: WFI, let the IRQ in  ───────────────▶ t0 = CNTVCT (in the vector)
//!                                              IAR → VTIMER (acknowledge)
//!                                              latency = t0 - CVAL
//!                                              re-arm: CVAL = now + period
//!                                                 (or CTL = 0 after the last)
//!                                              EOIR  (after the line is low)
//!  ... until N ticks  ◀────────────────────────
//!  print each tick, the summary, SYSTEM_OFF
//! ```
//!
//! The latency is measured in counter ticks from the moment the timer's
//! condition became true (`CNTVCT >= CVAL`) to the first instructions of the
//! IRQ vector. Under a VMM with a userspace GIC it covers: the timer firing
//! in KVM, the exit to the VMM, the VMM's GIC model raising the vCPU's IRQ
//! line, and re-entry into the guest. The lines are printed after the run,
//! so no UART exit sits inside a measured interval.

use core::{
    num::NonZeroU64,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
};

use aarch64_cpu::{
    asm::{barrier, wfi},
    registers::{ReadWriteable, DAIF},
};
use uirq_abi::{
    boot::{DEFAULT_PERIOD_US, DEFAULT_TICKS},
    exit::Status,
    gicv2::VTIMER,
};
use uirq_guest::{
    drivers::{
        gicv2::Priority,
        timer::{signed_ticks_to_ns, us_to_ticks, VirtualTimer},
    },
    report::{write_timer_summary, TimerOutcome},
    stats::{Counter, SampleLog, Summary},
};

use crate::{board, psci};

/// The most ticks one run records (the size of the latency log); asking for
/// more is capped, with a message.
const MAX_TICKS: usize = 10_000;

/// The virtual timer's priority: above the distributor's default
/// (`DEFAULT_PRIORITY`, 0xA0), well inside the mask (`PMR` = 0xFF).
const TIMER_PRIORITY: Priority = 0x80;

// State shared between `run` and the IRQ handler. Each item has one writer
// (see `uirq_guest::stats` for why that needs no lock on one core):
// `TARGET` and `PERIOD_TICKS` are written by `run` before IRQs are unmasked;
// everything else only by the handler.

/// Ticks to take.
static TARGET: AtomicU64 = AtomicU64::new(0);
/// Timer period in counter ticks.
static PERIOD_TICKS: AtomicU64 = AtomicU64::new(0);
/// Latency of each timer interrupt, in counter ticks (signed: a negative
/// value would be an interrupt handled before its deadline).
static LATENCIES: SampleLog<MAX_TICKS> = SampleLog::new();
/// Virtual-timer interrupts taken.
static TIMER_IRQS: Counter = Counter::new();
/// Of those, how many were handled before their deadline.
static NEGATIVE: Counter = Counter::new();
/// Acknowledges that returned the spurious id 1023.
static SPURIOUS: Counter = Counter::new();
/// Interrupts with an id other than the virtual timer's.
static UNEXPECTED: Counter = Counter::new();
/// The id of the last of those.
static LAST_UNEXPECTED_ID: AtomicU32 = AtomicU32::new(0);

/// Runs the program: `x1` ticks (0 = `DEFAULT_TICKS`) of `x2` microseconds
/// (0 = `DEFAULT_PERIOD_US`).
pub fn run(x1: u64, x2: u64) -> ! {
    crate::irq::set_handler(on_irq);
    let ticks = match x1 {
        0 => DEFAULT_TICKS,
        n if n > MAX_TICKS as u64 => {
            println!(
                "timer: {n} ticks asked for; capped at {MAX_TICKS}, the size of the latency log"
            );
            MAX_TICKS as u64
        }
        n => n,
    };
    let period_us = if x2 == 0 { DEFAULT_PERIOD_US } else { x2 };

    let timer = VirtualTimer;
    let Some(freq) = timer.frequency() else {
        println!("timer: CNTFRQ_EL0 reads 0, so the counter frequency is unknown; refusing to run");
        psci::system_off(Status::Failure)
    };
    let gicd = board::gicd();
    let gicc = board::gicc();

    // What are we running on?
    let typer = gicd.typer();
    let iidr = gicd.iidr();
    println!("timer: {ticks} ticks of {period_us} us; CNTFRQ_EL0 = {freq} Hz");
    println!(
        "timer: GICD_TYPER: {} CPU interface(s), {} interrupt ids (ITLinesNumber {}), security extensions: {}",
        typer.cpu_count,
        typer.interrupt_count,
        typer.it_lines_number,
        if typer.security_extensions { "yes" } else { "no" },
    );
    println!(
        "timer: GICD_IIDR = {:#010x} (implementer {:#05x}, product {:#04x}, variant {}, revision {}); GICC_IIDR = {:#010x}",
        iidr.raw,
        iidr.implementer,
        iidr.product_id,
        iidr.variant,
        iidr.revision,
        gicc.iidr().raw,
    );

    // The GIC: both halves to a known state, then let the timer's PPI in.
    gicd.init();
    gicc.init();
    gicd.set_priority(VTIMER, TIMER_PRIORITY);
    gicd.enable(VTIMER);

    // The timer: first deadline one period from now.
    let period = us_to_ticks(period_us, freq);
    TARGET.store(ticks, Ordering::Relaxed);
    PERIOD_TICKS.store(period, Ordering::Relaxed);
    timer.arm_after(period);

    wait_for_ticks(ticks);

    report(ticks, freq)
}

/// Sleeps until the handler has counted `target` timer interrupts.
///
/// The check and the sleep must not race: if IRQs were unmasked and the last
/// interrupt arrived between "not done yet" and `WFI`, the core would sleep
/// with nothing left to wake it. So the check runs with IRQs masked, and
/// `WFI` sleeps with them masked too, which is fine: a pending IRQ wakes
/// `WFI` whatever `PSTATE.I` says. Then IRQs are unmasked for a moment, the
/// ISB makes sure the pending interrupt is taken right there, and they are
/// masked again for the next check.
fn wait_for_ticks(target: u64) {
    loop {
        if TIMER_IRQS.get() >= target {
            break;
        }
        wfi();
        DAIF.modify(DAIF::I::Unmasked);
        barrier::isb(barrier::SY);
        DAIF.modify(DAIF::I::Masked);
    }
}

/// Prints each tick, the summary line, and powers off with the verdict.
fn report(ticks: u64, freq: NonZeroU64) -> ! {
    let to_ns = |t: i64| signed_ticks_to_ns(t, freq);
    for i in 0..LATENCIES.len() {
        if let Some(latency) = LATENCIES.get(i) {
            println!("tick {}: {} ns", i + 1, to_ns(latency));
        }
    }

    // 80 KB of stack at most (the linker script reserves 256 KiB).
    let mut sorted = [0i64; MAX_TICKS];
    let summary = Summary::of(LATENCIES.copy_to(&mut sorted)).map(|s| s.map(to_ns));
    let outcome = TimerOutcome {
        expected: ticks,
        timer_interrupts: TIMER_IRQS.get(),
        unexpected: UNEXPECTED.get(),
        last_unexpected_id: LAST_UNEXPECTED_ID.load(Ordering::Relaxed),
        negative_latencies: NEGATIVE.get(),
    };
    let spurious = SPURIOUS.get();
    if spurious != 0 {
        println!("timer: {spurious} spurious acknowledge(s) (IAR read 1023)");
    }
    let mut uart = board::uart();
    // Writing to the UART cannot fail.
    let _ = write_timer_summary(&mut uart, outcome.timer_interrupts, summary);
    println!();

    match outcome.verdict() {
        Ok(()) => psci::system_off(Status::Success),
        Err(failure) => {
            println!("timer: FAILED: {failure}");
            psci::system_off(Status::Failure)
        }
    }
}

/// The IRQ handler (called from the vector with the entry timestamp).
///
/// Acknowledge, handle, end: and for the level-sensitive timer, the line is
/// lowered (re-armed into the future or disabled) *before* the end of
/// interrupt, or the GIC would make it pending again at once.
pub fn on_irq(entry_ticks: u64) {
    let gicc = board::gicc();
    let Some(irq) = gicc.acknowledge() else {
        // 1023: the GIC had nothing for us after all (the line dropped
        // between signalling and the IAR read). Nothing to end.
        SPURIOUS.increment();
        return;
    };

    if irq.id() == VTIMER {
        on_timer(entry_ticks);
    } else {
        // Nobody here knows the device, so it cannot be silenced; disable
        // the interrupt at the distributor so it cannot fire again.
        UNEXPECTED.increment();
        LAST_UNEXPECTED_ID.store(irq.id().raw(), Ordering::Relaxed);
        board::gicd().disable(irq.id());
    }

    gicc.end_of_interrupt(irq);
}

/// One timer tick: record the latency, then silence the timer.
fn on_timer(entry_ticks: u64) {
    let timer = VirtualTimer;

    // Both values are readings of the same virtual counter; reinterpreting
    // the wrapped difference as signed gives the (small) true difference.
    let latency = entry_ticks.wrapping_sub(timer.deadline()) as i64;
    if latency < 0 {
        NEGATIVE.increment();
    }
    LATENCIES.push(latency);
    TIMER_IRQS.increment();

    if TIMER_IRQS.get() < TARGET.load(Ordering::Relaxed) {
        // The next deadline counts from now, not from this one, so a late
        // tick never leaves a deadline already in the past.
        timer.arm_after(PERIOD_TICKS.load(Ordering::Relaxed));
    } else {
        timer.disable();
    }
}
