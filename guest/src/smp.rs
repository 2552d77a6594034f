//! The other cores: how many there are, starting them, and giving them work.
//!
//! # Starting a core (PSCI `CPU_ON`, DEN 0022 5.1.4)
//!
//! Only the boot core runs at first; KVM (for a VMM that created its other
//! vCPUs powered off) and QEMU `virt` keep the rest powered off until the
//! firmware asks PSCI to start each one, naming its `MPIDR_EL1` affinity and
//! an entry point. [`start_secondaries`] does that for every core the GIC
//! has a CPU interface for, with `boot.rs`'s `_secondary_start` as the
//! entry, and waits (bounded) until each one reports in:
//!
//! ```text
//!  core 0                                   core n
//!  ──────                                   ──────
//!  CPU_ON(n, _secondary_start) ──HVC──▶ (PSCI powers it up)
//!                                          _secondary_start: MMU, stack,
//!                                          FP/SIMD, VBAR (boot.rs)
//!                                          secondary_main(n):
//!                                            GICD banked part, GICC, timers off,
//!                                            event stream
//!  wait until ONLINE[n]  ◀──────────────────ONLINE[n] = true; SEV
//!                                            park: WFE until a job is posted
//!  run_on(n, job) ───────────────────────▶  job(n)
//!  wait_idle(n)  ◀──────────────────────────done; SEV; park again
//! ```
//!
//! # Numbering
//!
//! A core's number is its `MPIDR_EL1.Aff0` ([`core_id`]), which KVM and QEMU
//! `virt` set to 0, 1, 2, ... for vCPU 0, 1, 2, ... (with up to eight
//! cores, the GICv2 limit, no higher affinity level is used). The same
//! number is the core's GIC CPU interface number, its bit in a
//! `GICD_ITARGETSR` byte and the source id in `GICC_IAR` for its SGIs.
//! How many cores there are comes from the GIC itself: one more than
//! `GICD_TYPER.CPUNumber` (IHI 0048B, 4.3.2), which the VMM's model, KVM's
//! vGIC and QEMU's GIC all set to the number of vCPUs minus one
//! ([`cpu_count`]).
//!
//! # Waiting
//!
//! Cores wait for each other's stores with `WFE` ([`wait_until`]): a core
//! that stores something another core waits for follows it with `DSB` and
//! `SEV`, which wakes every core in `WFE` (Arm ARM, D1 "Wait for Event").
//! So that a lost wake-up cannot hang anyone, every core runs the generic
//! timer's event stream (`CNTKCTL_EL1.EVNTEN`), which wakes `WFE` at least
//! every [`EVENT_STREAM_US`], and every wait has a deadline on the virtual
//! counter. The one unbounded wait is a parked core's wait for work.

use core::{
    fmt,
    sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
};

use aarch64_cpu::{
    asm::{barrier, sev, wfe},
    registers::{ReadWriteable, Readable, CNTKCTL_EL1, MPIDR_EL1},
};
use uirq_abi::boot::MAX_CPUS;
use uirq_guest::{
    drivers::timer::{event_stream_trigger_bit, us_to_ticks, PhysicalTimer, VirtualTimer},
    psci_codes::PsciError,
};

use crate::{board, psci};

/// The longest gap between two events of the event stream.
pub const EVENT_STREAM_US: u64 = 100;

/// How long [`start_secondaries`] waits for a started core to report in.
/// Generous: nested under emulation, a vCPU thread may take a while to be
/// scheduled for the first time.
pub const ONLINE_TIMEOUT_US: u64 = 5_000_000;

/// Work for a core: called on it with its number, with IRQs masked; it may
/// unmask them, but must mask them again before it returns.
pub type Job = fn(core: usize);

/// This core's number, `MPIDR_EL1.Aff0` (see the module docs).
pub fn core_id() -> usize {
    MPIDR_EL1.read(MPIDR_EL1::Aff0) as usize
}

/// How many cores the machine has: `GICD_TYPER.CPUNumber` + 1, at most
/// [`MAX_CPUS`].
pub fn cpu_count() -> usize {
    (board::gicd().typer().cpu_count as usize).min(MAX_CPUS)
}

/// Sets up what every core needs for itself before it waits on anything:
/// the event stream (see the module docs). `boot.rs`'s path through `main`
/// calls it on the boot core, [`secondary_main`] on the others.
pub fn init_this_core() {
    let bit = VirtualTimer
        .frequency()
        .map_or(15, |f| event_stream_trigger_bit(f, EVENT_STREAM_US));
    // EVNTDIR = 0: an event on each 0-to-1 transition of bit EVNTI of
    // CNTVCT_EL0 (EVNTIS = 0: bits 0-15).
    CNTKCTL_EL1.modify(
        CNTKCTL_EL1::EVNTEN::Enable
            + CNTKCTL_EL1::EVNTDIR::ZeroToOne
            + CNTKCTL_EL1::EVNTI.val(bit.into()),
    );
    barrier::isb(barrier::SY);
}

/// Why the other cores could not all be started.
#[derive(Clone, Copy, Debug)]
pub enum StartError {
    /// PSCI refused `CPU_ON` for `core`.
    Psci {
        /// The core asked for.
        core: usize,
        /// What PSCI answered.
        error: PsciError,
    },
    /// PSCI accepted, but `core` did not report in within
    /// [`ONLINE_TIMEOUT_US`].
    NoResponse {
        /// The core that stayed silent.
        core: usize,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Psci { core, error } => {
                write!(f, "PSCI CPU_ON for core {core} failed: {error}")
            }
            StartError::NoResponse { core } => write!(
                f,
                "core {core} was started (PSCI CPU_ON returned SUCCESS) but did not \
                 report in within {} ms",
                ONLINE_TIMEOUT_US / 1000
            ),
        }
    }
}

/// A core's mailbox: the boot core posts a [`Job`], the core runs it.
struct Mailbox {
    /// The job, as the address of a [`Job`] (valid once `posted` moved).
    job: AtomicUsize,
    /// Jobs posted so far (written by the poster).
    posted: AtomicU64,
    /// Jobs finished so far (written by the core).
    done: AtomicU64,
}

/// Whether each core has come up (written by the core itself).
static ONLINE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Each core's mailbox.
static MAILBOXES: [Mailbox; MAX_CPUS] = [const {
    Mailbox {
        job: AtomicUsize::new(0),
        posted: AtomicU64::new(0),
        done: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// Whether `core` is up and parked or running a job.
pub fn is_online(core: usize) -> bool {
    ONLINE.get(core).is_some_and(|o| o.load(Ordering::Acquire))
}

/// Starts cores 1 to [`cpu_count`] - 1 (those not started yet) and waits
/// until each has reported in. Returns the number of cores now running,
/// this one included.
pub fn start_secondaries() -> Result<usize, StartError> {
    let count = cpu_count();
    for core in 1..count {
        if is_online(core) {
            continue;
        }
        // Affinity Aff0 = core, all higher levels 0 (see the module docs);
        // the context id (x0 at the entry) is the core number too.
        let entry = crate::boot::_secondary_start as *const () as usize;
        psci::cpu_on(core as u64, entry, core as u64)
            .map_err(|error| StartError::Psci { core, error })?;
        if !wait_until(ONLINE_TIMEOUT_US, || is_online(core)) {
            return Err(StartError::NoResponse { core });
        }
    }
    Ok(count)
}

/// Where `boot.rs` brings every core but the boot core, with its number.
pub extern "C" fn secondary_main(core: usize) -> ! {
    // The core's own share of the interrupt machinery: its banked SGI and
    // PPI state at the distributor, its CPU interface, both its timers
    // quiet. (The distributor as a whole belongs to the boot core.)
    board::gicd().init_private();
    board::gicc().init();
    VirtualTimer.disable();
    PhysicalTimer.disable();
    init_this_core();

    ONLINE[core].store(true, Ordering::Release);
    notify();

    // Park: run jobs as they are posted, forever. IRQs stay masked here.
    let mailbox = &MAILBOXES[core];
    loop {
        let posted = mailbox.posted.load(Ordering::Acquire);
        if posted == mailbox.done.load(Ordering::Relaxed) {
            wfe();
            continue;
        }
        let raw = mailbox.job.load(Ordering::Relaxed);
        // SAFETY: `run_on` stores only `Job` function pointers converted
        // with `as usize` into `job`, before it publishes them by moving
        // `posted` (Release; Acquire above). Converting the value back gives
        // the same function pointer: function pointers and `usize` have the
        // same size and representation on aarch64.
        let job = unsafe { core::mem::transmute::<usize, Job>(raw) };
        job(core);
        mailbox.done.store(posted, Ordering::Release);
        notify();
    }
}

/// Posts `job` to `core`, which runs it as soon as it sees it. Returns
/// `false` (and posts nothing) when `core` is this core, is not online, or
/// has not finished its previous job.
pub fn run_on(core: usize, job: Job) -> bool {
    if core == core_id() || !is_online(core) || !is_idle(core) {
        return false;
    }
    let mailbox = &MAILBOXES[core];
    mailbox.job.store(job as usize, Ordering::Relaxed);
    mailbox.posted.fetch_add(1, Ordering::Release);
    notify();
    true
}

/// Posts `job` to every secondary core `1..cores`, to run beside this one.
/// Returns the first core that could not take it ([`run_on`]'s refusals);
/// the cores before it have the job.
pub fn run_on_secondaries(cores: usize, job: Job) -> Result<(), usize> {
    match (1..cores).find(|&core| !run_on(core, job)) {
        Some(core) => Err(core),
        None => Ok(()),
    }
}

/// Whether `core` has finished every job posted to it.
pub fn is_idle(core: usize) -> bool {
    let mailbox = &MAILBOXES[core];
    mailbox.done.load(Ordering::Acquire) == mailbox.posted.load(Ordering::Relaxed)
}

/// Waits until `core` has finished its jobs, at most `timeout_us`.
pub fn wait_idle(core: usize, timeout_us: u64) -> bool {
    wait_until(timeout_us, || is_idle(core))
}

/// Wakes every core waiting in `WFE`: a `DSB` first, so the stores it
/// waits for are visible before it looks again (Arm ARM, D1 "Wait for
/// Event", "The Send Event instructions").
pub fn notify() {
    barrier::dsb(barrier::ISH);
    sev();
}

/// Waits with `WFE` until `done()` holds or `timeout_us` passes on the
/// virtual counter; returns whether `done()` held. Leaves `PSTATE.I` as it
/// was: with IRQs unmasked, interrupts are taken while waiting.
pub fn wait_until(timeout_us: u64, done: impl Fn() -> bool) -> bool {
    let timer = VirtualTimer;
    let Some(freq) = timer.frequency() else {
        return done();
    };
    let deadline = timer.now().saturating_add(us_to_ticks(timeout_us, freq));
    loop {
        if done() {
            return true;
        }
        if timer.now() >= deadline {
            return done();
        }
        // Woken by SEV (`notify`), an interrupt, or the event stream.
        wfe();
    }
}
