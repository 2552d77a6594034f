//! What every scenario shares.
//!
//! - **Verdict.** [`pass`] prints `scenario <name>: PASS` and powers off
//!   with `Status::Success`; [`fail`] (and the `check!` / `check_eq!`
//!   macros, which call it at the first failed assertion) prints
//!   `scenario <name>: FAIL: <what>` and powers off with
//!   `Status::Failure`. A check may fail inside an interrupt handler too:
//!   the verdict is printed from there.
//! - **The IRQ entry.** [`on_irq`] acknowledges (`GICC_IAR`), logs the
//!   entry, calls the scenario's handler (which ends the interrupt itself,
//!   as each scenario ends it differently), and logs the exit. The log of
//!   entries and exits ([`log`]) is how a scenario checks how many
//!   interrupts it took and in which order, nesting included. Each core
//!   keeps its own log (written only by that core; [`log_of`] reads
//!   another's), so the SMP scenarios can check which core took what.
//! - **Bounded waits.** [`irq_window`] and [`wait_with_irqs`] unmask IRQs
//!   for a bounded time, measured on the virtual counter, so no scenario can
//!   hang: a missing interrupt becomes a failed check.
//! - **Signalled or not.** [`signalled`] reads `ISR_EL1.I`, which shows
//!   whether the core's IRQ input is asserted whatever `PSTATE.I` says: the
//!   precise way to tell "pending in the distributor" from "signalled to
//!   the core" (3.3.2).
//!
//! # Nested interrupts
//!
//! The IRQ vector (`exceptions.rs`) saves `ELR_EL1` and `SPSR_EL1` on the
//! stack *before* it calls Rust, and restores them only after Rust has
//! returned, with IRQs masked again. So a handler may unmask IRQs (with
//! [`irq_window`]) once it has acknowledged its interrupt: a
//! higher-priority interrupt then enters the vector again, on the same
//! stack, below the first frame, and returns into the first handler.
//! [`irq_window`] always masks again before it returns, so the first
//! handler ends its interrupt and returns with IRQs masked, as the
//! vector's restore sequence requires.

use core::{
    fmt,
    num::NonZeroU64,
    sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
};

use aarch64_cpu::{
    asm::barrier,
    registers::{ReadWriteable, DAIF},
};
use uirq_abi::{
    boot::{Program, MAX_CPUS},
    exit::Status,
    gicv2::IntId,
};
use uirq_guest::drivers::{
    gicv2::{Acknowledged, Gicc, Gicd, Priority},
    timer::{us_to_ticks, VirtualTimer},
};

use crate::{board, psci, smp};

/// The running scenario's program number (0: none).
static CURRENT: AtomicU64 = AtomicU64::new(0);

/// The counter frequency, read once by [`start`].
static FREQ: AtomicU64 = AtomicU64::new(0);

/// Most log entries kept per core; later ones are counted but dropped.
const LOG_SIZE: usize = 32;

/// One core's log.
struct CoreLog {
    /// `GICC_IAR` values, with [`EXIT`] set for exits.
    entries: [AtomicU32; LOG_SIZE],
    /// Entries recorded (may exceed `LOG_SIZE`).
    len: AtomicUsize,
}

/// Every core's log, each written only by its core.
static LOGS: [CoreLog; MAX_CPUS] = [const {
    CoreLog {
        entries: [const { AtomicU32::new(0) }; LOG_SIZE],
        len: AtomicUsize::new(0),
    }
}; MAX_CPUS];

/// Flag of a log entry that records a handler's exit.
pub const EXIT: u32 = 1 << 31;
/// Flag of a log entry that records a special id read from `GICC_IAR` in
/// the IRQ entry (a spurious acknowledge).
pub const SPECIAL: u32 = 1 << 30;

/// SPIs the scenarios use: ids 42, 43 and 44. Nothing drives them on
/// either machine (QEMU `virt` wires its devices to other SPIs), so they
/// only ever become pending by software.
pub const SPI_A: IntId = spi(10);
/// Second SPI, see [`SPI_A`].
pub const SPI_B: IntId = spi(11);
/// Third SPI, see [`SPI_A`].
pub const SPI_C: IntId = spi(12);

/// `GICC_RPR` with nothing active (4.4.6).
pub const IDLE: Priority = 0xFF;

/// The id `GICC_IAR` returns when nothing can be acknowledged (3.2.5).
pub const SPURIOUS: u32 = uirq_abi::gicv2::SPURIOUS;

const fn spi(n: u32) -> IntId {
    match IntId::spi(n) {
        Some(id) => id,
        None => panic!(),
    }
}

/// An SGI id, checked at compile time.
pub const fn sgi(n: u32) -> IntId {
    match IntId::sgi(n) {
        Some(id) => id,
        None => panic!(),
    }
}

/// Records which scenario runs (so the IRQ entry and the verdict know) and
/// reads the counter frequency, failing without one.
pub fn start(program: Program) {
    CURRENT.store(program.number(), Ordering::Relaxed);
    match VirtualTimer.frequency() {
        Some(freq) => FREQ.store(freq.get(), Ordering::Relaxed),
        None => fail(format_args!("CNTFRQ_EL0 reads 0: no time can be measured")),
    }
}

/// The running scenario.
pub fn current() -> Option<Program> {
    match CURRENT.load(Ordering::Relaxed) {
        0 => None,
        n => Program::from_number(n),
    }
}

fn name() -> &'static str {
    current().map_or("?", Program::name)
}

/// Prints the PASS verdict and powers off with success.
pub fn pass() -> ! {
    DAIF.modify(DAIF::I::Masked);
    println!("scenario {}: PASS", name());
    psci::system_off(Status::Success)
}

/// Prints the FAIL verdict with `what` and powers off with failure.
pub fn fail(what: fmt::Arguments<'_>) -> ! {
    DAIF.modify(DAIF::I::Masked);
    println!("scenario {}: FAIL: {what}", name());
    psci::system_off(Status::Failure)
}

/// Fails the scenario with a formatted message unless `cond` holds.
macro_rules! check {
    ($cond:expr, $($what:tt)+) => {
        if !$cond {
            $crate::programs::scenarios::common::fail(format_args!($($what)+))
        }
    };
}

/// Fails the scenario unless `actual == expected`, printing both and what
/// was compared.
macro_rules! check_eq {
    ($actual:expr, $expected:expr, $($what:tt)+) => {{
        let actual = $actual;
        let expected = $expected;
        if actual != expected {
            $crate::programs::scenarios::common::fail(format_args!(
                "{}: got {:?}, expected {:?}",
                format_args!($($what)+),
                actual,
                expected
            ))
        }
    }};
}

/// Resets both halves of the GIC to the driver's known state (everything
/// disabled, inactive, not pending, default priority; distributor and CPU
/// interface enabled, `PMR` open, EOImode 0) and returns the drivers.
pub fn setup() -> (Gicd, Gicc) {
    let (gicd, gicc) = (board::gicd(), board::gicc());
    gicd.init();
    gicc.init();
    (gicd, gicc)
}

/// This CPU interface's number, as `GICC_IAR.CPUID` reports for its own
/// SGIs. The banked `GICD_ITARGETSR0` bytes read as the reader's own bit
/// (4.3.12), except on a uniprocessor GIC, where they are RAZ and the only
/// interface is number 0.
pub fn own_cpu() -> u32 {
    match board::gicd().own_target_mask() {
        0 => 0,
        mask => mask.trailing_zeros(),
    }
}

/// This CPU interface's bit in a target list.
pub fn own_bit() -> u8 {
    1 << own_cpu()
}

/// Configures and enables `id` at `priority`.
pub fn enable(gicd: &Gicd, id: IntId, priority: Priority) {
    gicd.set_priority(id, priority);
    gicd.enable(id);
}

/// Converts microseconds to counter ticks.
pub fn us(us: u64) -> u64 {
    let freq = NonZeroU64::new(FREQ.load(Ordering::Relaxed)).unwrap_or(NonZeroU64::MIN);
    us_to_ticks(us, freq)
}

/// Whether the core's IRQ input is asserted right now (`ISR_EL1.I`),
/// whatever `PSTATE.I` is (`crate::irq::signalled`).
pub fn signalled() -> bool {
    crate::irq::signalled()
}

/// Unmasks IRQs until `done()` holds or `timeout_us` passes, then masks
/// them again. Returns whether `done()` held.
pub fn wait_with_irqs(timeout_us: u64, done: impl Fn() -> bool) -> bool {
    let timer = VirtualTimer;
    let deadline = timer.now().saturating_add(us(timeout_us));
    DAIF.modify(DAIF::I::Unmasked);
    barrier::isb(barrier::SY);
    let met = loop {
        if done() {
            break true;
        }
        if timer.now() >= deadline {
            break done();
        }
        core::hint::spin_loop();
    };
    DAIF.modify(DAIF::I::Masked);
    met
}

/// Unmasks IRQs for `us` microseconds: whatever is signalled is taken.
pub fn irq_window(us: u64) {
    wait_with_irqs(us, || false);
}

fn push(entry: u32) {
    // Only this core writes its log: a plain load and store suffice.
    let log = &LOGS[smp::core_id()];
    let i = log.len.load(Ordering::Relaxed);
    if let Some(slot) = log.entries.get(i) {
        slot.store(entry, Ordering::Relaxed);
    }
    log.len.store(i + 1, Ordering::Release);
}

/// Number of this core's log entries so far.
pub fn log_len() -> usize {
    LOGS[smp::core_id()].len.load(Ordering::Acquire)
}

/// This core's handler entries so far (each acknowledged interrupt is one).
pub fn entries() -> usize {
    log().iter().filter(|&&e| e & (EXIT | SPECIAL) == 0).count()
}

/// This core's log so far (at most `LOG_SIZE` entries).
pub fn log() -> Log {
    log_of(smp::core_id())
}

/// Core `core`'s log so far (read it once that core is done with it).
pub fn log_of(core: usize) -> Log {
    let core_log = &LOGS[core];
    let mut log = Log {
        entries: [0; LOG_SIZE],
        len: core_log.len.load(Ordering::Acquire).min(LOG_SIZE),
    };
    for (slot, entry) in log.entries.iter_mut().zip(&core_log.entries).take(log.len) {
        *slot = entry.load(Ordering::Relaxed);
    }
    log
}

/// Empties every core's log (while no core takes interrupts).
pub fn clear_logs() {
    for log in &LOGS {
        log.len.store(0, Ordering::Release);
    }
}

/// A copy of the interrupt log, printable as `+27 -27 ...` (`+` entry,
/// `-` exit, `!` special id read in the IRQ entry; SGIs as `id/source`).
pub struct Log {
    entries: [u32; LOG_SIZE],
    len: usize,
}

impl Log {
    fn iter(&self) -> impl Iterator<Item = &u32> {
        self.entries[..self.len].iter()
    }
}

impl PartialEq<[u32]> for Log {
    fn eq(&self, other: &[u32]) -> bool {
        self.entries[..self.len] == *other
    }
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, e) in self.iter().enumerate() {
            let sign = match (e & EXIT != 0, e & SPECIAL != 0) {
                (_, true) => '!',
                (true, false) => '-',
                (false, false) => '+',
            };
            let iar = e & 0x1FFF;
            let sep = if i == 0 { "" } else { " " };
            if iar < 16 {
                write!(f, "{sep}{sign}{}/{}", iar & 0x3FF, iar >> 10)?;
            } else {
                write!(f, "{sep}{sign}{}", iar & 0x3FF)?;
            }
        }
        write!(f, "]")
    }
}

/// Fails unless this core's log is exactly `expected` (entries are
/// `GICC_IAR` values, exits have [`EXIT`] set).
pub fn expect_log(expected: &[u32]) {
    expect_log_of(smp::core_id(), expected);
}

/// Fails unless core `core`'s log is exactly `expected`.
pub fn expect_log_of(core: usize, expected: &[u32]) {
    let log = log_of(core);
    if log != *expected {
        let want = Log {
            entries: core::array::from_fn(|i| expected.get(i).copied().unwrap_or(0)),
            len: expected.len().min(LOG_SIZE),
        };
        // Core 0's log is "the" log of the single-CPU scenarios.
        if core == 0 {
            fail(format_args!(
                "interrupt log {log:?} (+ entry, - exit), expected {want:?}"
            ));
        }
        fail(format_args!(
            "interrupt log of core {core} {log:?} (+ entry, - exit), expected {want:?}"
        ));
    }
}

/// The IRQ entry of every scenario: acknowledge, log, handle, log.
pub fn on_irq(entry_ticks: u64) {
    let Some(program) = current() else {
        fail(format_args!("IRQ with no scenario running"))
    };
    match board::gicc().acknowledge_or_special() {
        Err(special) => push(SPECIAL | special),
        Ok(irq) => {
            let iar = irq.iar();
            push(iar);
            super::handler(program)(irq, entry_ticks);
            push(EXIT | iar);
        }
    }
}

/// The handler of scenarios that expect no interrupt at all.
pub fn unexpected_irq(irq: Acknowledged, _entry_ticks: u64) {
    fail(format_args!(
        "unexpected interrupt {} taken (IAR {:#x})",
        irq.id().raw(),
        irq.iar()
    ))
}
