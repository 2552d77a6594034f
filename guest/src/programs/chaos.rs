//! `chaos`: a guest that does everything a guest may do to the machine, at
//! random, on every core, with interrupts on, and then stops by itself.
//!
//! It exists to show that the VMM survives any guest: whatever the guest
//! does to the GIC, the UART, the timers and the addresses where nothing
//! is, the VMM neither crashes nor hangs, and the guest keeps running. Its
//! operations come from `uirq_guest::chaos` (the table there says what and
//! how often): loads and stores anywhere in the GIC's two frames, loads
//! from the UART, loads and stores to holes, SGIs with any target list and
//! filter, enables, priorities, targets, pending bits, `GICC_PMR`, both
//! `CTLR`s, and both timers armed a few hundred microseconds ahead.
//!
//! ```text
//!  core 0                                  cores 1 .. n-1
//!  ──────                                  ──────────────
//!  GIC reset, start the others ──────────▶ (parked, smp.rs)
//!  run_on(n, work) ──────────────────────▶ work(n): the same as core 0
//!  work(0): IRQs unmasked; its share of
//!    the operations, each drawn from
//!    Rng(seed, core); IRQs masked
//!  wait (bounded) for every core ◀──────── FINISHED; SEV
//!  one line per core, the summary, SYSTEM_OFF
//! ```
//!
//! **Interrupts.** Every core's handler acknowledges whatever `GICC_IAR`
//! gives, ends it with `GICC_EOIR`, and counts it; a spurious answer
//! (1023) is counted too. 1022 means the highest-priority pending
//! interrupt is in Group 1 and `GICC_CTLR.AckCtl` is clear (IHI 0048B
//! 3.2.5, 4.4.4), which a random `GICC_CTLR` and `GICD_IGROUPR` can
//! arrange: it is signalled but `GICC_IAR` will never take it, so the
//! handler takes it through the Group 1 aliases, `GICC_AIAR` and
//! `GICC_AEOIR` (4.4.13, 4.4.14), rather than being interrupted again
//! forever. A timer's interrupt (PPI 27 or 30) is silenced by switching that
//! timer off before its EOI, as its level would otherwise make it pending
//! again at once.
//!
//! **Holes.** An access to a hole is made inside
//! `exceptions::expect_external_abort`. If it aborts, the syndrome must be
//! that access's (EC 0x25, DFSC 0b010000, FAR_EL1 the address, WnR the
//! direction, ELR_EL1 the instruction), or the program fails at once. A
//! VMM answering `--unmapped raz` gives no abort at all: the verdict then
//! requires that *no* hole access aborted, as either all must or none.
//! An access to a device frame is made unarmed: an abort there is an
//! unexpected exception, reported, and the end of the run.
//!
//! **The end.** Every core makes its share of the operations and stops;
//! core 0 waits for the others (bounded: four times as long as its own
//! share took, plus 10 s), prints one line per core and
//!
//! ```text
//! chaos: seed S, N ops, A aborts, I interrupts, PASS
//! ```
//!
//! and powers off with success. A core that does not finish in time, or a
//! wrong syndrome, is `FAIL` and status 1. The run is meant for the VMM's
//! map; on QEMU's `virt` some of the holes hold devices.

use core::num::NonZeroU64;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use aarch64_cpu::{
    asm::barrier,
    registers::{ReadWriteable, DAIF},
};
use uirq_abi::{
    boot::{DEFAULT_CHAOS_OPS, DEFAULT_CHAOS_SEED, MAX_CPUS},
    exit::Status,
    gicv2::{gicc, PTIMER, VTIMER},
    layout::GICC_BASE,
};
use uirq_guest::{
    chaos::{next_op, Op, Region, Rng},
    drivers::{
        gicv2::Priority,
        mmio::{probe_load, probe_store},
        timer::{us_to_ticks, PhysicalTimer, VirtualTimer},
    },
    esr,
};

use crate::{board, exceptions, irq, psci, smp};

/// The id `GICC_IAR` answers when only a Group 1 interrupt could be
/// acknowledged and `GICC_CTLR.AckCtl` is clear (IHI 0048B 3.2.5).
const GROUP1_ONLY: u32 = 1022;

/// The timers' PPIs' priority when a timer operation enables them.
const TIMER_PRIORITY: Priority = 0x80;

/// Slack added to core 0's bound on how long the others may take.
const FINISH_SLACK_US: u64 = 10_000_000;

/// One core's counts, written only by that core (its loop and its
/// handler); core 0 reads them once the core has finished.
struct CoreCounts {
    ops: AtomicU64,
    holes: AtomicU64,
    aborts: AtomicU64,
    interrupts: AtomicU64,
    spurious: AtomicU64,
    finished: AtomicBool,
}

static CORES: [CoreCounts; MAX_CPUS] = [const {
    CoreCounts {
        ops: AtomicU64::new(0),
        holes: AtomicU64::new(0),
        aborts: AtomicU64::new(0),
        interrupts: AtomicU64::new(0),
        spurious: AtomicU64::new(0),
        finished: AtomicBool::new(false),
    }
}; MAX_CPUS];

/// The seed, the operations over all cores and the number of cores:
/// written by core 0 before any core starts its share.
static SEED: AtomicU64 = AtomicU64::new(0);
static TOTAL_OPS: AtomicU64 = AtomicU64::new(0);
static CORE_COUNT: AtomicU64 = AtomicU64::new(1);

/// Adds one to a counter only its own core writes.
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Runs the program: `x1` seed (0 = `DEFAULT_CHAOS_SEED`), `x2` operations
/// over all cores (0 = `DEFAULT_CHAOS_OPS`).
pub fn run(x1: u64, x2: u64) -> ! {
    let seed = if x1 == 0 { DEFAULT_CHAOS_SEED } else { x1 };
    let ops = if x2 == 0 { DEFAULT_CHAOS_OPS } else { x2 };
    if VirtualTimer.frequency().is_none() {
        println!("chaos: CNTFRQ_EL0 reads 0, so no deadline can be set; refusing to run");
        psci::system_off(Status::Failure)
    }
    board::gicd().init();
    board::gicc().init();
    let cores = match smp::start_secondaries() {
        Ok(cores) => cores,
        Err(error) => {
            println!("chaos: {error}");
            println!("chaos: seed {seed}, 0 ops, 0 aborts, 0 interrupts, FAIL");
            psci::system_off(Status::Failure)
        }
    };
    println!("chaos: seed {seed}, {ops} ops on {cores} core(s)");
    SEED.store(seed, Ordering::Relaxed);
    TOTAL_OPS.store(ops, Ordering::Relaxed);
    CORE_COUNT.store(cores as u64, Ordering::Relaxed);

    // Every secondary was just started and is idle.
    let posted = smp::run_on_secondaries(cores, work);
    debug_assert!(posted.is_ok());
    let timer = VirtualTimer;
    let started = timer.now();
    work(0);
    let freq = timer.frequency().unwrap_or(NonZeroU64::MIN);
    let took_us = (timer.now() - started).saturating_mul(1_000_000) / freq.get();
    let bound = took_us.saturating_mul(4).saturating_add(FINISH_SLACK_US);
    let all_finished = || (0..cores).all(|c| CORES[c].finished.load(Ordering::Acquire));
    smp::wait_until(bound, all_finished);
    report(seed, cores)
}

/// This core's share of the operations.
fn share(core: usize) -> u64 {
    let total = TOTAL_OPS.load(Ordering::Relaxed);
    let cores = CORE_COUNT.load(Ordering::Relaxed).max(1);
    total / cores + u64::from((core as u64) < total % cores)
}

/// One core's part: its share of the operations with IRQs unmasked.
fn work(core: usize) {
    irq::set_handler(on_irq);
    let me = &CORES[core];
    let mut rng = Rng::new(SEED.load(Ordering::Relaxed), core);
    let freq = VirtualTimer.frequency().unwrap_or(NonZeroU64::MIN);
    DAIF.modify(DAIF::I::Unmasked);
    barrier::isb(barrier::SY);
    for _ in 0..share(core) {
        let op = next_op(&mut rng);
        execute(core, op, freq);
        bump(&me.ops);
    }
    DAIF.modify(DAIF::I::Masked);
    VirtualTimer.disable();
    PhysicalTimer.disable();
    me.finished.store(true, Ordering::Release);
    smp::notify();
}

/// Carries out one operation.
fn execute(core: usize, op: Op, freq: NonZeroU64) {
    match op {
        Op::Timer { physical, after_us } => {
            let ticks = us_to_ticks(after_us, freq);
            let gicd = board::gicd();
            if physical {
                gicd.set_priority(PTIMER, TIMER_PRIORITY);
                gicd.enable(PTIMER);
                PhysicalTimer.arm_after(ticks);
            } else {
                gicd.set_priority(VTIMER, TIMER_PRIORITY);
                gicd.enable(VTIMER);
                VirtualTimer.arm_after(ticks);
            }
        }
        Op::Access {
            region: Region::Hole,
            offset: addr,
            size,
            value,
        } => hole_access(core, addr, size, value),
        Op::Access {
            region,
            offset,
            size,
            value,
        } => {
            let addr = (region.base() + offset) as usize;
            // SAFETY: `addr` is inside a device frame of the identity-mapped
            // device gigabyte (`uirq_guest::chaos` draws it so), aligned to
            // `size`; no Rust object lives there. What the access does to
            // the device is the point.
            unsafe {
                match value {
                    Some(v) => {
                        probe_store(addr, size, v);
                    }
                    None => {
                        probe_load(addr, size, 0);
                    }
                }
            }
        }
    }
}

/// A load or store where no device is: an abort must be this access's.
fn hole_access(core: usize, addr: u64, size: usize, value: Option<u64>) {
    let me = &CORES[core];
    bump(&me.holes);
    // SAFETY: `addr` is in the identity-mapped device gigabyte, aligned to
    // `size`, and no device or Rust object is there (`chaos::is_hole`); the
    // access aborts into the armed slot or reaches nothing.
    let (insn, abort) = exceptions::expect_external_abort(|| unsafe {
        match value {
            Some(v) => probe_store(addr as usize, size, v),
            None => probe_load(addr as usize, size, 0).1,
        }
    });
    let Some(abort) = abort else { return };
    bump(&me.aborts);
    let store = value.is_some();
    let right = esr::is_sync_external_abort_same_el(abort.esr)
        && abort.far == addr
        && abort.is_write() == store
        && abort.elr == insn as u64;
    if !right {
        fail(format_args!(
            "core {core}: the abort of a {size}-byte {} at {addr:#x} (instruction at {insn:#x}) \
             reads ESR_EL1 {:#x}, FAR_EL1 {:#x}, ELR_EL1 {:#x}",
            if store { "store" } else { "load" },
            abort.esr,
            abort.far,
            abort.elr
        ))
    }
}

/// Every core's IRQ handler (see the module docs).
fn on_irq(_entry_ticks: u64) {
    let me = &CORES[smp::core_id()];
    let gicc = board::gicc();
    match gicc.acknowledge_or_special() {
        Ok(irq) => {
            silence(irq.id().raw());
            gicc.end_of_interrupt(irq);
            bump(&me.interrupts);
        }
        Err(GROUP1_ONLY) => {
            let (aiar, aeoir) = (GICC_BASE + gicc::AIAR, GICC_BASE + gicc::AEOIR);
            // SAFETY: GICC_AIAR and GICC_AEOIR, registers of this core's
            // CPU interface in the identity-mapped device gigabyte, 4-byte
            // aligned.
            let (iar, _) = unsafe { probe_load(aiar as usize, 4, 0) };
            let id = (iar & 0x3FF) as u32;
            if id >= GROUP1_ONLY {
                bump(&me.spurious);
                return;
            }
            silence(id);
            // SAFETY: as above.
            unsafe { probe_store(aeoir as usize, 4, iar) };
            bump(&me.interrupts);
        }
        Err(_) => bump(&me.spurious),
    }
}

/// Switches off the timer behind a timer PPI, so that its level drops
/// before the EOI.
fn silence(id: u32) {
    if id == VTIMER.raw() {
        VirtualTimer.disable();
    } else if id == PTIMER.raw() {
        PhysicalTimer.disable();
    }
}

/// Prints the failure and powers off with `Status::Failure` (from any
/// core).
fn fail(what: core::fmt::Arguments<'_>) -> ! {
    DAIF.modify(DAIF::I::Masked);
    println!("chaos: FAIL: {what}");
    psci::system_off(Status::Failure)
}

/// One line per core, the summary line, SYSTEM_OFF.
fn report(seed: u64, cores: usize) -> ! {
    let _console = crate::console::lock();
    let (mut ops, mut holes, mut aborts, mut interrupts) = (0, 0, 0, 0);
    let mut unfinished = 0;
    for (core, c) in CORES.iter().enumerate().take(cores) {
        let finished = c.finished.load(Ordering::Acquire);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        println!(
            "chaos: core {core}: {} ops, {} hole accesses, {} aborts, {} interrupts ({} spurious){}",
            get(&c.ops),
            get(&c.holes),
            get(&c.aborts),
            get(&c.interrupts),
            get(&c.spurious),
            if finished { "" } else { ", DID NOT FINISH" }
        );
        unfinished += usize::from(!finished);
        ops += get(&c.ops);
        holes += get(&c.holes);
        aborts += get(&c.aborts);
        interrupts += get(&c.interrupts);
    }
    let mixed = aborts != 0 && aborts != holes;
    if aborts == 0 && holes != 0 {
        println!(
            "chaos: no hole access aborted: the machine answers them read-as-zero / write-ignored"
        );
    }
    if mixed {
        println!(
            "chaos: {aborts} of {holes} hole accesses aborted: an access to nothing must abort always or never"
        );
    }
    let pass = unfinished == 0 && !mixed;
    println!(
        "chaos: seed {seed}, {ops} ops, {aborts} aborts, {interrupts} interrupts, {}",
        if pass { "PASS" } else { "FAIL" }
    );
    psci::system_off(if pass {
        Status::Success
    } else {
        Status::Failure
    })
}
