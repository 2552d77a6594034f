//! `ipi-stress`: every core sends numbered IPIs (SGIs) to the others and
//! checks every one it receives; a lost IPI is detected, counted, and
//! recovered.
//!
//! # One IPI
//!
//! ```text
//!  sender s                                  receiver r
//!  ────────                                  ──────────
//!  slot[s][r]: sent_at = now, seq = n
//!  DSB (the slot is visible before the SGI)
//!  GICD_SGIR: SGI 1, target list {r}  ─────▶ IRQ vector: entry = CNTVCT
//!                                            GICC_IAR: SGI 1, CPUID = s
//!                                            seq == last from s + 1 ?
//!                                            latency = entry - sent_at
//!                                            GICC_EOIR
//!  WFE until slot[s][r].acked == n  ◀─────── acked = n; DSB; SEV
//! ```
//!
//! The sender waits for the acknowledge before it uses the slot again, so
//! at most one SGI from each source is ever pending at a receiver (the GIC
//! keeps a pending bit per SGI *and source*, IHI 0048B 3.2.4 and 4.3.16, so
//! SGIs from different senders never merge). While it waits it keeps IRQs
//! unmasked: two cores waiting for each other's acknowledges must still
//! take each other's IPIs. It waits in `WFE`, which the receiver's `SEV`,
//! any interrupt (an exception return sets the event register), and the
//! event stream (`smp.rs`) all end. Cores that have sent their share wait
//! for the rest in `WFI` instead, woken by the IPIs they still receive and
//! by a periodic virtual-timer *watchdog*, so they sleep rather than spin.
//!
//! # A lost IPI, and how it is told from a late one
//!
//! An IPI is *lost* when the GIC holds it pending for a core, and signals
//! it as far as the GIC is concerned, but the core's IRQ input is low, so
//! the core never takes it. (It happens with a userspace GIC when
//! `KVM_IRQ_LINE` for one vCPU is issued from another vCPU's thread: the
//! target's `HCR_EL2.VI` can be wiped while the VMM's model believes the
//! line is high. Re-sending the SGI changes nothing, as it is already
//! pending; only an acknowledge, which makes the model lower and re-raise
//! the line, brings the core back.) So:
//!
//! 1. a sender that has no acknowledge after the timeout (`x2`) sets the
//!    receiver's `check` flag and keeps waiting;
//! 2. the receiver notices the flag within a bounded time (in its `WFE`
//!    loop at once; in its `WFI` loop at the next watchdog tick) and, with
//!    IRQs masked, reads `GICC_HPPIR` (an MMIO exit, after which the VMM
//!    has applied the line) and then `ISR_EL1.I`;
//! 3. an interrupt pending in the GIC while `ISR_EL1.I` = 0 is **lost**:
//!    the receiver acknowledges it (`GICC_IAR`), handles it as the handler
//!    would, and ends it. Pending *and* `ISR_EL1.I` = 1 is merely late: it
//!    is taken as soon as IRQs are unmasked, and the sender counts a late
//!    acknowledge instead.
//!
//! # What is printed
//!
//! One line per core, an explanation when IPIs were lost, and last:
//!
//! ```text
//! ipi-stress: S sent, R received, L lost, latency p50/p99 = A/B ns
//! ```
//!
//! The latency of an IPI is the receiver's vector-entry timestamp minus the
//! sender's timestamp just before its `GICD_SGIR` write; both read the one
//! system counter every core shares. Each core keeps a uniform random
//! sample of its latencies ([`SAMPLES`] of them, `uirq_guest::stats::
//! Reservoir`); as every core receives the same number of IPIs give or take
//! one (`uirq_guest::ipi::target`), the union is a uniform sample of all.
//! A recovered IPI has no vector entry and adds no sample; nor does an IPI
//! that `GICC_IAR` returned in a handler entered, before it was sent, for
//! another core's pending IPI (the GIC picks one of several pending SGIs of
//! equal priority, IHI 0048B 3.3.3; the vector's timestamp is not this
//! one's).

use core::{
    num::NonZeroU64,
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
};

use aarch64_cpu::{
    asm::{barrier, wfe, wfi},
    registers::{ReadWriteable, DAIF},
};
use uirq_abi::{
    boot::{DEFAULT_IPIS, DEFAULT_IPI_TIMEOUT_US, MAX_CPUS},
    exit::Status,
    gicv2::{IntId, VTIMER},
};
use uirq_guest::{
    drivers::{
        gicv2::{Acknowledged, Priority, SgiTarget},
        timer::{signed_ticks_to_ns, us_to_ticks, VirtualTimer},
    },
    ipi::{self, Totals},
    stats::{percentile, Counter, Reservoir},
};

use crate::{board, irq, psci, smp};

/// The SGI that carries the IPIs.
const IPI: IntId = match IntId::sgi(1) {
    Some(id) => id,
    None => panic!(),
};

/// Priority of the IPI and of the watchdog: above the default, inside the
/// mask.
const PRIORITY: Priority = 0x80;

/// Latency samples each core keeps. All cores' samples are merged on core
/// 0's stack: `MAX_CPUS * SAMPLES * 8` bytes = 128 KiB of its 256 KiB.
pub const SAMPLES: usize = 2048;

/// A sender gives up on an IPI this many timeouts after sending it.
const GIVE_UP_TIMEOUTS: u64 = 10;

/// The watchdog period: a quarter of the timeout, within these bounds.
const WATCHDOG_MIN_US: u64 = 1_000;
const WATCHDOG_MAX_US: u64 = 50_000;

/// Most lost interrupts one check recovers (each recovery may uncover the
/// next one behind it).
const MAX_RECOVERIES_PER_CHECK: usize = 2 * MAX_CPUS + 2;

/// One (sender, receiver) pair's shared slot.
struct Slot {
    /// The IPI's sequence number (written by the sender, from 1 on).
    seq: AtomicU64,
    /// `CNTVCT_EL0` just before the sender's `GICD_SGIR` write.
    sent_at: AtomicU64,
    /// The last sequence number the receiver has finished with.
    acked: AtomicU64,
    /// The last sequence number the receiver recovered as lost.
    recovered: AtomicU64,
}

/// What one core counts. Each field has one writer: the core itself (its
/// sending loop, its handler, or its check, which runs with IRQs masked),
/// except `check`, which other cores set and the core clears.
struct Core {
    /// Last sequence number received from each sender.
    last_seq: [AtomicU64; MAX_CPUS],
    sent: Counter,
    received: Counter,
    lost: Counter,
    lost_other: Counter,
    late: Counter,
    unacknowledged: Counter,
    sequence_errors: Counter,
    /// The first sequence error: sender, received, expected.
    first_sequence_error: [AtomicU64; 3],
    spurious: Counter,
    unexpected: Counter,
    last_unexpected_id: AtomicU32,
    /// IPIs acknowledged in a handler entered before they were sent.
    entered_earlier: Counter,
    samples: Reservoir<SAMPLES>,
    /// Set by a sender that timed out waiting for this core.
    check: AtomicBool,
    /// This core has sent its share.
    done_sending: AtomicBool,
    /// This core has left the program (its counts are final).
    finished: AtomicBool,
}

static SLOTS: [[Slot; MAX_CPUS]; MAX_CPUS] = [const {
    [const {
        Slot {
            seq: AtomicU64::new(0),
            sent_at: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            recovered: AtomicU64::new(0),
        }
    }; MAX_CPUS]
}; MAX_CPUS];

static CORES: [Core; MAX_CPUS] = [const {
    Core {
        last_seq: [const { AtomicU64::new(0) }; MAX_CPUS],
        sent: Counter::new(),
        received: Counter::new(),
        lost: Counter::new(),
        lost_other: Counter::new(),
        late: Counter::new(),
        unacknowledged: Counter::new(),
        sequence_errors: Counter::new(),
        first_sequence_error: [const { AtomicU64::new(0) }; 3],
        spurious: Counter::new(),
        unexpected: Counter::new(),
        last_unexpected_id: AtomicU32::new(0),
        entered_earlier: Counter::new(),
        samples: Reservoir::new(),
        check: AtomicBool::new(false),
        done_sending: AtomicBool::new(false),
        finished: AtomicBool::new(false),
    }
}; MAX_CPUS];

// The run's parameters, written by core 0 before any core starts sending.
static CORE_COUNT: AtomicU64 = AtomicU64::new(0);
static TOTAL: AtomicU64 = AtomicU64::new(0);
static TIMEOUT_TICKS: AtomicU64 = AtomicU64::new(0);
static WATCHDOG_TICKS: AtomicU64 = AtomicU64::new(0);
/// No progress anywhere for this long ends the run (counter ticks).
static STALL_TICKS: AtomicU64 = AtomicU64::new(0);
/// Set by core 0 once every core has sent its share: everyone stops.
static STOP: AtomicBool = AtomicBool::new(false);

/// Runs the program: `x1` IPIs in total (0 = `DEFAULT_IPIS`), `x2` the
/// acknowledge timeout in microseconds (0 = `DEFAULT_IPI_TIMEOUT_US`).
pub fn run(x1: u64, x2: u64) -> ! {
    irq::set_handler(on_irq);
    let total = if x1 == 0 { DEFAULT_IPIS } else { x1 };
    let timeout_us = if x2 == 0 { DEFAULT_IPI_TIMEOUT_US } else { x2 };
    let Some(freq) = VirtualTimer.frequency() else {
        println!(
            "ipi-stress: CNTFRQ_EL0 reads 0, so the counter frequency is unknown; refusing to run"
        );
        psci::system_off(Status::Failure)
    };
    let present = smp::cpu_count();
    if present < 2 {
        println!(
            "ipi-stress: needs at least 2 CPUs, but the GIC has {present} CPU interface \
             (GICD_TYPER.CPUNumber = {}); run the VM with 2 or more vCPUs",
            present - 1
        );
        psci::system_off(Status::Failure)
    }

    board::gicd().init();
    board::gicc().init();
    let cores = match smp::start_secondaries() {
        Ok(cores) => cores,
        Err(error) => {
            println!("ipi-stress: could not start the other cores: {error}");
            psci::system_off(Status::Failure)
        }
    };
    let watchdog_us = (timeout_us / 4).clamp(WATCHDOG_MIN_US, WATCHDOG_MAX_US);
    println!(
        "ipi-stress: {cores} cores, {total} IPIs (SGI {}), acknowledge timeout {timeout_us} us, \
         watchdog {watchdog_us} us; CNTFRQ_EL0 = {freq} Hz",
        IPI.raw()
    );
    CORE_COUNT.store(cores as u64, Ordering::Relaxed);
    TOTAL.store(total, Ordering::Relaxed);
    TIMEOUT_TICKS.store(us_to_ticks(timeout_us, freq), Ordering::Relaxed);
    WATCHDOG_TICKS.store(us_to_ticks(watchdog_us, freq), Ordering::Relaxed);
    let stall_us = timeout_us
        .saturating_mul(GIVE_UP_TIMEOUTS + 2)
        .saturating_add(1_000_000);
    STALL_TICKS.store(us_to_ticks(stall_us, freq), Ordering::Relaxed);

    if let Err(core) = smp::run_on_secondaries(cores, exchange) {
        println!("ipi-stress: core {core} is not ready for work");
        psci::system_off(Status::Failure)
    }
    exchange(0);

    // Everyone else leaves at the next wake-up (an IPI or the watchdog).
    STOP.store(true, Ordering::Release);
    smp::notify();
    let all_finished = || (1..cores).all(|c| CORES[c].finished.load(Ordering::Acquire));
    smp::wait_until(stall_us, all_finished);
    report(cores, timeout_us, freq)
}

/// One core's part: send its share, then keep receiving until every core
/// has sent its share (core 0) or core 0 says stop (the others).
fn exchange(core: usize) {
    irq::set_handler(on_irq);
    let gicd = board::gicd();
    // This core's banked copies of the SGI and of the watchdog's PPI.
    for id in [IPI, VTIMER] {
        gicd.set_priority(id, PRIORITY);
        gicd.enable(id);
    }

    let cores = CORE_COUNT.load(Ordering::Relaxed) as usize;
    let share = ipi::share(TOTAL.load(Ordering::Relaxed), cores, core);
    for k in 0..share {
        // STOP before every core has sent its share: core 0 gave up on a
        // stalled run. And an IPI never acknowledged has failed the run
        // already: sending on could only add a wait of GIVE_UP_TIMEOUTS
        // for every IPI to that receiver.
        if STOP.load(Ordering::Acquire) || !send_one(core, ipi::target(core, cores, k)) {
            break;
        }
    }
    CORES[core].done_sending.store(true, Ordering::Release);
    smp::notify();

    let everyone_sent = || (0..cores).all(|c| CORES[c].done_sending.load(Ordering::Acquire));
    if core == 0 {
        idle(core, everyone_sent);
    } else {
        idle(core, || STOP.load(Ordering::Acquire));
    }
    VirtualTimer.disable();
    CORES[core].finished.store(true, Ordering::Release);
    smp::notify();
}

/// Sends one IPI from `core` to `to` and waits for its acknowledge;
/// `false` when it gave up waiting.
fn send_one(core: usize, to: usize) -> bool {
    let me = &CORES[core];
    let slot = &SLOTS[core][to];
    let timer = VirtualTimer;
    let seq = slot.seq.load(Ordering::Relaxed) + 1;

    let sent_at = timer.now();
    slot.sent_at.store(sent_at, Ordering::Relaxed);
    slot.seq.store(seq, Ordering::Release);
    // The slot must be visible to the receiver before it can take the
    // SGI: the GICD_SGIR store is to Device memory, and only a DSB orders
    // it after the stores to Normal memory above.
    barrier::dsb(barrier::ISH);
    // `1 << to`: `to` is a core number below MAX_CPUS (8).
    let sent = board::gicd().send_sgi(SgiTarget::List(1 << to), IPI);
    debug_assert!(sent, "IPI is an SGI");
    me.sent.increment();

    let timeout = TIMEOUT_TICKS.load(Ordering::Relaxed);
    let mut asked_at = None;
    DAIF.modify(DAIF::I::Unmasked);
    barrier::isb(barrier::SY);
    let acked = loop {
        if slot.acked.load(Ordering::Acquire) == seq {
            break true;
        }
        if me.check.load(Ordering::Acquire) {
            DAIF.modify(DAIF::I::Masked);
            check_self(core);
            DAIF.modify(DAIF::I::Unmasked);
        }
        let now = timer.now();
        match asked_at {
            None if now.wrapping_sub(sent_at) >= timeout => {
                // No acknowledge in time: ask the receiver to look for a
                // lost IPI, and keep waiting.
                CORES[to].check.store(true, Ordering::Release);
                smp::notify();
                asked_at = Some(now);
            }
            Some(_) if now.wrapping_sub(sent_at) >= GIVE_UP_TIMEOUTS * timeout => break false,
            _ => {}
        }
        wfe();
    };
    DAIF.modify(DAIF::I::Masked);

    if !acked {
        me.unacknowledged.increment();
    } else if asked_at.is_some() && slot.recovered.load(Ordering::Acquire) != seq {
        me.late.increment();
    }
    acked
}

/// Waits with `WFI` until `until()` holds, serving check requests; the
/// watchdog bounds every sleep. Also leaves when nothing has happened
/// anywhere for the stall time.
fn idle(core: usize, until: impl Fn() -> bool) {
    let me = &CORES[core];
    let timer = VirtualTimer;
    let watchdog = WATCHDOG_TICKS.load(Ordering::Relaxed);
    let stall = STALL_TICKS.load(Ordering::Relaxed);
    let mut last_progress = progress();
    let mut last_change = timer.now();
    loop {
        // IRQs are masked here: check, then sleep.
        if me.check.load(Ordering::Acquire) {
            check_self(core);
        }
        if until() {
            break;
        }
        let now = timer.now();
        let progress = progress();
        if progress != last_progress {
            (last_progress, last_change) = (progress, now);
        } else if now.wrapping_sub(last_change) >= stall {
            break;
        }
        // The watchdog: re-armed at every wake-up, so it fires only when
        // nothing else woke this core for a whole period.
        timer.arm_after(watchdog);
        wfi();
        DAIF.modify(DAIF::I::Unmasked);
        barrier::isb(barrier::SY);
        DAIF.modify(DAIF::I::Masked);
    }
}

/// A number that changes whenever any core sends or receives an IPI.
fn progress() -> u64 {
    CORES
        .iter()
        .map(|c| c.sent.get().wrapping_add(c.received.get()))
        .fold(0, u64::wrapping_add)
}

/// Looks for interrupts the GIC holds pending for this core while its IRQ
/// input is low (lost), and recovers each by acknowledging it. IRQs must be
/// masked.
fn check_self(core: usize) {
    let me = &CORES[core];
    me.check.store(false, Ordering::Relaxed);
    let gicc = board::gicc();
    for _ in 0..MAX_RECOVERIES_PER_CHECK {
        // GICC_HPPIR (IHI 0048B 4.4.8): the highest priority pending
        // interrupt, without acknowledging it. Under a VMM this read is an
        // MMIO exit, after which the VMM has applied this core's line.
        if gicc.highest_pending_id().is_none() {
            return; // 1023: nothing pending
        }
        if irq::signalled() {
            return; // pending and signalled: it will be taken, late not lost
        }
        // Pending in the GIC, not signalled to the core: lost. Acknowledge
        // it (GICC_IAR, 4.4.4), which brings the line back to life.
        let Ok(irq) = gicc.acknowledge_or_special() else {
            return; // it went away meanwhile
        };
        if irq.id() == IPI {
            me.lost.increment();
            receive(core, irq, None);
        } else {
            me.lost_other.increment();
            other_interrupt(core, irq);
        }
    }
}

/// The IRQ handler on every core.
fn on_irq(entry_ticks: u64) {
    let core = smp::core_id();
    match board::gicc().acknowledge_or_special() {
        Err(_) => CORES[core].spurious.increment(),
        Ok(irq) if irq.id() == IPI => receive(core, irq, Some(entry_ticks)),
        Ok(irq) => other_interrupt(core, irq),
    }
}

/// Checks and acknowledges one IPI: `entry_ticks` is the vector's
/// timestamp, or `None` for an IPI recovered by [`check_self`].
fn receive(core: usize, irq: Acknowledged, entry_ticks: Option<u64>) {
    let me = &CORES[core];
    // IAR.CPUID: the CPU interface that wrote GICD_SGIR (4.4.4).
    let source = irq.source_cpu().unwrap_or(0) as usize;
    let Some(slot) = SLOTS.get(source).map(|row| &row[core]) else {
        me.unexpected.increment();
        board::gicc().end_of_interrupt(irq);
        return;
    };
    let seq = slot.seq.load(Ordering::Acquire);
    let sent_at = slot.sent_at.load(Ordering::Relaxed);
    let expected = me.last_seq[source].load(Ordering::Relaxed) + 1;
    if seq != expected {
        if me.sequence_errors.get() == 0 {
            for (field, value) in me
                .first_sequence_error
                .iter()
                .zip([source as u64, seq, expected])
            {
                field.store(value, Ordering::Relaxed);
            }
        }
        me.sequence_errors.increment();
    }
    me.last_seq[source].store(seq, Ordering::Relaxed);
    me.received.increment();
    if let Some(entry) = entry_ticks {
        // Readings of the one system counter all cores share; as signed,
        // the wrapped difference is the true one.
        let latency = entry.wrapping_sub(sent_at) as i64;
        if latency < 0 {
            // The vector was entered for another pending IPI, and GICC_IAR
            // chose this one, sent since (3.3.3): no latency to measure.
            me.entered_earlier.increment();
        } else {
            me.samples.offer(latency);
        }
    }
    board::gicc().end_of_interrupt(irq);

    // The SGI is inactive again: the sender may use the slot.
    if entry_ticks.is_none() {
        slot.recovered.store(seq, Ordering::Release);
    }
    slot.acked.store(seq, Ordering::Release);
    smp::notify();
}

/// The watchdog (silenced; `idle` re-arms it), or something unexpected.
fn other_interrupt(core: usize, irq: Acknowledged) {
    if irq.id() == VTIMER {
        VirtualTimer.disable();
    } else {
        let me = &CORES[core];
        me.unexpected.increment();
        me.last_unexpected_id
            .store(irq.id().raw(), Ordering::Relaxed);
        board::gicd().disable(irq.id());
    }
    board::gicc().end_of_interrupt(irq);
}

/// Prints every core's counts, the explanation of any loss, and the
/// summary line last; powers off with the verdict.
fn report(cores: usize, timeout_us: u64, freq: NonZeroU64) -> ! {
    let _console = crate::console::lock();
    let mut totals = Totals::default();
    let mut merged = [0i64; MAX_CPUS * SAMPLES];
    let mut len = 0;
    for (n, c) in CORES.iter().enumerate().take(cores) {
        let finished = c.finished.load(Ordering::Acquire);
        println!(
            "ipi-stress: core {n}: sent {}, received {}, lost {}, late {}, sequence errors {}{}",
            c.sent.get(),
            c.received.get(),
            c.lost.get(),
            c.late.get(),
            c.sequence_errors.get(),
            if finished { "" } else { " (did not finish)" },
        );
        if c.sequence_errors.get() != 0 {
            let [source, got, expected] = c
                .first_sequence_error
                .each_ref()
                .map(|v| v.load(Ordering::Relaxed));
            println!("ipi-stress: core {n}: first sequence error: from core {source}, got {got}, expected {expected}");
        }
        if c.spurious.get() != 0 {
            println!(
                "ipi-stress: core {n}: {} spurious acknowledge(s) (IAR read 1023)",
                c.spurious.get()
            );
        }
        if c.unexpected.get() != 0 {
            println!(
                "ipi-stress: core {n}: {} unexpected interrupt(s), the last id {}",
                c.unexpected.get(),
                c.last_unexpected_id.load(Ordering::Relaxed)
            );
        }
        totals.sent += c.sent.get();
        totals.received += c.received.get();
        totals.lost += c.lost.get();
        totals.lost_other += c.lost_other.get();
        totals.late += c.late.get();
        totals.sequence_errors += c.sequence_errors.get();
        totals.unacknowledged += c.unacknowledged.get();
        totals.unexpected += c.unexpected.get();
        totals.entered_earlier += c.entered_earlier.get();
        totals.unfinished += u64::from(!finished);
        len += c.samples.copy_to(&mut merged[len..]).len();
    }

    if totals.lost + totals.lost_other > 0 {
        println!(
            "ipi-stress: {} lost IPI(s) (and {} other lost interrupt(s)): each was pending in the GIC \
             (GICC_HPPIR) while the receiving core's IRQ input was low (ISR_EL1.I = 0), found when \
             its sender had waited {timeout_us} us for the acknowledge; the receiver recovered it by \
             acknowledging it (GICC_IAR) and ending it (GICC_EOIR)",
            totals.lost, totals.lost_other
        );
    }
    if totals.late > 0 {
        println!(
            "ipi-stress: {} acknowledge(s) came after the {timeout_us} us timeout without the IPI \
             being lost (late, not lost)",
            totals.late
        );
    }
    if totals.entered_earlier > 0 {
        println!(
            "ipi-stress: {} IPI(s) were acknowledged in a handler entered before they were sent \
             (GICC_IAR chose them over the pending IPI the core was entering for): no latency \
             sample for those",
            totals.entered_earlier
        );
    }
    let verdict = totals.verdict();
    if let Err(failure) = verdict {
        println!("ipi-stress: FAILED: {failure}");
    }

    let samples = &mut merged[..len];
    samples.sort_unstable();
    let to_ns = |t: i64| signed_ticks_to_ns(t, freq);
    let p50 = percentile(samples, 500).map(to_ns);
    let p99 = percentile(samples, 990).map(to_ns);
    let mut uart = board::uart();
    // Writing to the UART cannot fail.
    let _ = ipi::write_summary(&mut uart, &totals, p50, p99);
    println!();
    psci::system_off(if verdict.is_ok() {
        Status::Success
    } else {
        Status::Failure
    })
}
