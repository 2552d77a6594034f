//! What the SMP scenarios share: enough cores, every core ready to take
//! interrupts through the scenario IRQ entry, and running a step on
//! another core.
//!
//! Core 0 runs the scenario; the others only ever run *steps* it posts to
//! them (`smp::run_on`), each a plain `fn(core)` that gets its parameters
//! from statics, and core 0 waits (bounded) until the step is done. Between
//! steps the other cores are parked with IRQs masked, so an interrupt that
//! targets them stays pending until a step opens an IRQ window: every
//! interrupt is taken exactly where the scenario says.

use core::sync::atomic::{AtomicUsize, Ordering};

use uirq_abi::boot::{Program, MAX_CPUS};
use uirq_guest::drivers::gicv2::{IntId, Priority};

use super::common;
use crate::{board, irq, smp};

/// How long core 0 waits for a step on another core.
const STEP_TIMEOUT_US: u64 = 2_000_000;
/// How long a window waits for the interrupts it expects...
const WINDOW_TIMEOUT_US: u64 = 500_000;
/// ... and then stays open for any that should not come.
const WINDOW_SETTLE_US: u64 = 20_000;

/// Starts the other cores and lets each take interrupts through the
/// scenario IRQ entry. Fails the scenario when the machine has fewer than
/// `program.min_cpus()` cores or one does not start. Returns the number of
/// cores.
pub fn start(program: Program) -> usize {
    let needed = program.min_cpus();
    let present = smp::cpu_count();
    check!(
        present >= needed,
        "needs at least {needed} CPUs, but the GIC has {present} CPU interface(s) \
         (GICD_TYPER.CPUNumber + 1); run the VM with {needed} or more vCPUs"
    );
    let cores = match smp::start_secondaries() {
        Ok(cores) => cores,
        Err(error) => common::fail(format_args!("{error}")),
    };
    on_all(cores, |_| irq::set_handler(super::on_irq));
    cores
}

/// Runs `step` on `core` (on this core if it is this one) and waits until
/// it is done.
pub fn on(core: usize, step: smp::Job) {
    if core == smp::core_id() {
        step(core);
        return;
    }
    check!(
        smp::run_on(core, step),
        "core {core} is not ready for a step"
    );
    check!(
        smp::wait_idle(core, STEP_TIMEOUT_US),
        "core {core} did not finish its step within {} ms",
        STEP_TIMEOUT_US / 1000
    );
}

/// Runs `step` on cores `0..cores` at the same time (this core included)
/// and waits until every one is done.
pub fn on_all(cores: usize, step: smp::Job) {
    if let Err(core) = smp::run_on_secondaries(cores, step) {
        common::fail(format_args!("core {core} is not ready for a step"));
    }
    step(0);
    for core in 1..cores {
        check!(
            smp::wait_idle(core, STEP_TIMEOUT_US),
            "core {core} did not finish its step within {} ms",
            STEP_TIMEOUT_US / 1000
        );
    }
}

/// How many interrupts each core's next [`window`] waits for.
static EXPECTED: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

/// Opens an IRQ window on every core at once: each waits for `expected[core]`
/// handler entries (bounded), then stays open a little longer so that an
/// interrupt that should not come has the chance to. Logs are read after.
pub fn window(cores: usize, expected: [usize; MAX_CPUS]) {
    for (slot, n) in EXPECTED.iter().zip(expected) {
        slot.store(n, Ordering::Relaxed);
    }
    on_all(cores, |core| {
        let want = EXPECTED[core].load(Ordering::Relaxed);
        common::wait_with_irqs(WINDOW_TIMEOUT_US, || common::entries() >= want);
        common::irq_window(WINDOW_SETTLE_US);
    });
}

/// The SGIs and SPIs a step enables on its core, and their priority: set by
/// core 0 before [`enable_everywhere`].
static ENABLE: [AtomicUsize; 4] = [const { AtomicUsize::new(usize::MAX) }; 4];
static ENABLE_PRIORITY: AtomicUsize = AtomicUsize::new(0x80);

/// Enables `ids` at `priority` on every core: SGIs and PPIs are banked, so
/// each core enables its own copy (IHI 0048B, 4.1.4); for an SPI one write
/// would do, and the others repeat it harmlessly.
pub fn enable_everywhere(cores: usize, ids: &[IntId], priority: Priority) {
    for (i, slot) in ENABLE.iter().enumerate() {
        let raw = ids.get(i).map_or(usize::MAX, |id| id.raw() as usize);
        slot.store(raw, Ordering::Relaxed);
    }
    check!(ids.len() <= ENABLE.len(), "at most {} ids", ENABLE.len());
    ENABLE_PRIORITY.store(priority.into(), Ordering::Relaxed);
    on_all(cores, |_| {
        let gicd = board::gicd();
        let priority = ENABLE_PRIORITY.load(Ordering::Relaxed) as Priority;
        for slot in &ENABLE {
            let raw = slot.load(Ordering::Relaxed);
            if let Some(id) = u32::try_from(raw).ok().and_then(IntId::new) {
                common::enable(&gicd, id, priority);
            }
        }
    });
}
