//! The exception vector table and what each entry does.
//!
//! # The table (Arm ARM, "Exception vectors")
//!
//! `VBAR_EL1` points at 16 entries of 0x80 bytes (32 instructions) each,
//! 2 KiB aligned. Which entry the core jumps to depends on where the
//! exception came from and what kind it is:
//!
//! | offset | taken from                         | Sync  | IRQ   | FIQ   | SError |
//! |--------|------------------------------------|-------|-------|-------|--------|
//! | 0x000  | current EL, using SP_EL0           | 0x000 | 0x080 | 0x100 | 0x180  |
//! | 0x200  | current EL, using SP_ELx           | 0x200 | 0x280 | 0x300 | 0x380  |
//! | 0x400  | lower EL, AArch64                  | 0x400 | 0x480 | 0x500 | 0x580  |
//! | 0x600  | lower EL, AArch32                  | 0x600 | 0x680 | 0x700 | 0x780  |
//!
//! This firmware runs at EL1 on SP_EL1 and only ever unmasks IRQs, so the
//! expected entries are **IRQ, current EL with SP_ELx (0x280)** and, when
//! a program has said it expects one ([`expect_external_abort`]),
//! **synchronous, current EL with SP_ELx (0x200)** for a synchronous
//! external abort. Every other entry, and a synchronous exception nobody
//! expected, reports the exception (kind, `ESR_EL1`, `ELR_EL1`,
//! `FAR_EL1`, and which core took it) and powers off with
//! `Status::Exception`. Every core uses the same table (`VBAR_EL1` is
//! per-core state, which `boot.rs` sets on each), on its own stack.
//!
//! # The IRQ entry
//!
//! 1. Save `x0`/`x1` and read `CNTVCT_EL0` into `x0` *first*: that is the
//!    handler-entry timestamp the timer program measures latency with.
//!    Taking an exception is a context synchronization event, so no ISB is
//!    needed before this counter read (unlike in `VirtualTimer::now`).
//! 2. Save everything the interrupted code may have live that a Rust
//!    function may change: the caller-saved `x2`-`x18`, the frame pointer
//!    `x29`, the link register `x30`, `ELR_EL1` and `SPSR_EL1` (so a nested
//!    exception could not lose the return state), and the FP/SIMD state:
//!    **all of `q0`-`q31`**, `FPCR` and `FPSR`. AAPCS64 only asks a called
//!    function to preserve the *low 64 bits* of `v8`-`v15`, and interrupted
//!    code may hold 128-bit values in them, so they are saved whole too.
//!    `x19`-`x28` are preserved by the Rust handler itself (callee-saved).
//! 3. Call the Rust handler with the timestamp (which hands it to the
//!    handler the running program registered for this core, `irq.rs`),
//!    restore, `eret`.
//!
//! # An expected abort (the synchronous entry)
//!
//! A load or store to an address where no device answers ends, on
//! hardware, in a *synchronous external abort*: a data abort taken at the
//! faulting instruction, `ESR_EL1.EC` = 0x25 (from the current EL), fault
//! status (DFSC) 0b010000, the faulting address in `FAR_EL1`, WnR telling a
//! store from a load (Arm ARM D17.2.37 "ESR_EL1", D17.2.40 "FAR_EL1").
//! QEMU's `virt` does the same, and so does the VMM by default. A program
//! that touches such an address on purpose wraps the one access in
//! [`expect_external_abort`], which arms this core's slot in `EXPECTED`.
//! The synchronous entry saves the same frame as the IRQ entry and calls
//! [`sync_exception`], which accepts the exception only if the slot is
//! armed *and* the syndrome is a synchronous external abort at this EL:
//! it records `ESR_EL1`, `FAR_EL1` and `ELR_EL1` in the slot, disarms it,
//! and moves the saved `ELR_EL1` on by 4 (A64 instructions are 4 bytes;
//! such an abort has `ESR_EL1.IL` = 1), so the `eret` resumes after the
//! faulting instruction, which did not complete: a load left its register
//! as it was. Anything else (an alignment or translation fault, a second
//! abort, an abort with no slot armed) is reported like every other
//! unexpected exception.

use core::arch::global_asm;
use core::sync::atomic::{compiler_fence, AtomicU64, AtomicU8, Ordering};

use aarch64_cpu::registers::{Readable, ELR_EL1, ESR_EL1, FAR_EL1, SPSR_EL1};
use uirq_abi::{boot::MAX_CPUS, exit::Status};
use uirq_guest::esr;

use crate::{psci, smp};

global_asm!(
    r#"
// An entry that is not expected: x0 = its index (0-15), then report.
.macro UNEXPECTED index
    .balign 0x80
    mov     x0, #\index
    b       {unexpected}
.endm

// The rest of an entry that returns. On entry x0 = the handler's first
// argument, and the interrupted x0/x1 are at [sp]. Builds the frame below
// them (704 bytes, 16-byte aligned):
//     0..144  x2-x18, x29        144  x30, ELR_EL1
//   160       SPSR_EL1, FPCR     176  FPSR, (padding)
//   192..704  q0-q31
// calls handler(x0, frame), restores everything from the frame (ELR_EL1
// included, which the handler may have changed there) and returns.
.macro SAVE_CALL_RESTORE handler
    sub     sp, sp, #704
    stp     x2, x3, [sp, #0]
    stp     x4, x5, [sp, #16]
    stp     x6, x7, [sp, #32]
    stp     x8, x9, [sp, #48]
    stp     x10, x11, [sp, #64]
    stp     x12, x13, [sp, #80]
    stp     x14, x15, [sp, #96]
    stp     x16, x17, [sp, #112]
    stp     x18, x29, [sp, #128]
    mrs     x1, elr_el1
    stp     x30, x1, [sp, #144]
    mrs     x1, spsr_el1
    mrs     x2, fpcr
    stp     x1, x2, [sp, #160]
    mrs     x1, fpsr
    str     x1, [sp, #176]
    stp     q0, q1, [sp, #192]
    stp     q2, q3, [sp, #224]
    stp     q4, q5, [sp, #256]
    stp     q6, q7, [sp, #288]
    stp     q8, q9, [sp, #320]
    stp     q10, q11, [sp, #352]
    stp     q12, q13, [sp, #384]
    stp     q14, q15, [sp, #416]
    stp     q16, q17, [sp, #448]
    stp     q18, q19, [sp, #480]
    stp     q20, q21, [sp, #512]
    stp     q22, q23, [sp, #544]
    stp     q24, q25, [sp, #576]
    stp     q26, q27, [sp, #608]
    stp     q28, q29, [sp, #640]
    stp     q30, q31, [sp, #672]

    mov     x1, sp                  // the frame
    bl      \handler                // handler(x0, frame)

    ldp     q0, q1, [sp, #192]
    ldp     q2, q3, [sp, #224]
    ldp     q4, q5, [sp, #256]
    ldp     q6, q7, [sp, #288]
    ldp     q8, q9, [sp, #320]
    ldp     q10, q11, [sp, #352]
    ldp     q12, q13, [sp, #384]
    ldp     q14, q15, [sp, #416]
    ldp     q16, q17, [sp, #448]
    ldp     q18, q19, [sp, #480]
    ldp     q20, q21, [sp, #512]
    ldp     q22, q23, [sp, #544]
    ldp     q24, q25, [sp, #576]
    ldp     q26, q27, [sp, #608]
    ldp     q28, q29, [sp, #640]
    ldp     q30, q31, [sp, #672]
    ldr     x1, [sp, #176]
    msr     fpsr, x1
    ldp     x1, x2, [sp, #160]
    msr     spsr_el1, x1
    msr     fpcr, x2
    ldp     x30, x1, [sp, #144]
    msr     elr_el1, x1
    ldp     x18, x29, [sp, #128]
    ldp     x16, x17, [sp, #112]
    ldp     x14, x15, [sp, #96]
    ldp     x12, x13, [sp, #80]
    ldp     x10, x11, [sp, #64]
    ldp     x8, x9, [sp, #48]
    ldp     x6, x7, [sp, #32]
    ldp     x4, x5, [sp, #16]
    ldp     x2, x3, [sp, #0]
    add     sp, sp, #704
    ldp     x0, x1, [sp], #16
    eret
.endm

.pushsection .text.vectors, "ax"
.balign 0x800
.global __vectors
__vectors:
    // Current EL with SP_EL0.
    UNEXPECTED 0
    UNEXPECTED 1
    UNEXPECTED 2
    UNEXPECTED 3

    // Current EL with SP_ELx.
    // 0x200: synchronous: an abort a program expects, or else reported.
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mov     x0, #4                  // the entry's index, for a report
    b       __sync_save_call_restore

    // 0x280: IRQ, current EL with SP_ELx.
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mrs     x0, cntvct_el0          // entry timestamp; exception entry is
                                    // context-synchronizing: no ISB needed
    b       __irq_save_call_restore

    UNEXPECTED 6
    UNEXPECTED 7

    // Lower EL, AArch64.
    UNEXPECTED 8
    UNEXPECTED 9
    UNEXPECTED 10
    UNEXPECTED 11

    // Lower EL, AArch32.
    UNEXPECTED 12
    UNEXPECTED 13
    UNEXPECTED 14
    UNEXPECTED 15
    .balign 0x80
.global __vectors_end
__vectors_end:

__irq_save_call_restore:
    SAVE_CALL_RESTORE {irq}

__sync_save_call_restore:
    SAVE_CALL_RESTORE {sync}
.popsection
"#,
    unexpected = sym unexpected_exception,
    irq = sym irq,
    sync = sym sync_exception,
);

/// The Rust half of the IRQ entry. `entry_ticks` is `CNTVCT_EL0` as read by
/// the vector's second instruction. Which code handles the IRQ is up to the
/// program running on this core (`irq.rs`).
extern "C" fn irq(entry_ticks: u64) {
    crate::irq::dispatch(entry_ticks);
}

/// Byte offset of the saved `ELR_EL1` in the frame the vector builds (see
/// the layout above `SAVE_CALL_RESTORE`).
const FRAME_ELR: usize = 152;

/// What an expected synchronous external abort left in the syndrome
/// registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abort {
    /// `ESR_EL1`: EC 0x25, DFSC 0b010000, WnR for a store.
    pub esr: u64,
    /// `FAR_EL1`: the virtual address the access faulted on.
    pub far: u64,
    /// `ELR_EL1` as taken: the address of the faulting instruction.
    pub elr: u64,
}

impl Abort {
    /// Whether a store caused it (`ESR_EL1.WnR`).
    pub fn is_write(&self) -> bool {
        self.esr & esr::WNR != 0
    }
}

/// A core's expectation slot: idle, armed, or holding the abort taken.
struct Expected {
    state: AtomicU8,
    esr: AtomicU64,
    far: AtomicU64,
    elr: AtomicU64,
}

const IDLE: u8 = 0;
const ARMED: u8 = 1;
const TAKEN: u8 = 2;

/// Every core's slot, each used only by its own core (by the program and
/// by the synchronous entry that interrupts it), so plain loads and stores
/// are enough: an exception is taken in program order, after everything
/// before the faulting instruction.
static EXPECTED: [Expected; MAX_CPUS] = [const {
    Expected {
        state: AtomicU8::new(IDLE),
        esr: AtomicU64::new(0),
        far: AtomicU64::new(0),
        elr: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// Runs `access`, which must make (at most) one load or store, accepting
/// one synchronous external abort on it: returns what `access` returned
/// (meaningless for a load that aborted) and the abort, if one was taken.
/// Execution resumes after the faulting instruction. Any other exception
/// meanwhile, or a second abort, is still unexpected and ends the run with
/// a report. An IRQ taken meanwhile is handled as usual; its handler must
/// not use this itself (the slot is the core's one).
pub fn expect_external_abort<R>(access: impl FnOnce() -> R) -> (R, Option<Abort>) {
    let slot = &EXPECTED[smp::core_id()];
    slot.state.store(ARMED, Ordering::Relaxed);
    // The access stays between arming and looking, whatever it is made of.
    compiler_fence(Ordering::SeqCst);
    let result = access();
    compiler_fence(Ordering::SeqCst);
    let abort = (slot.state.swap(IDLE, Ordering::Relaxed) == TAKEN).then(|| Abort {
        esr: slot.esr.load(Ordering::Relaxed),
        far: slot.far.load(Ordering::Relaxed),
        elr: slot.elr.load(Ordering::Relaxed),
    });
    (result, abort)
}

/// The Rust half of the synchronous entry (see "An expected abort" in the
/// module docs): accepts an armed, synchronous external abort at this EL
/// and returns past the instruction; reports anything else.
extern "C" fn sync_exception(index: u64, frame: *mut u8) {
    let esr = ESR_EL1.get();
    let slot = &EXPECTED[smp::core_id()];
    if !esr::is_sync_external_abort_same_el(esr) || slot.state.load(Ordering::Relaxed) != ARMED {
        unexpected_exception(index)
    }
    let elr = ELR_EL1.get();
    slot.esr.store(esr, Ordering::Relaxed);
    slot.far.store(FAR_EL1.get(), Ordering::Relaxed);
    slot.elr.store(elr, Ordering::Relaxed);
    slot.state.store(TAKEN, Ordering::Relaxed);
    // SAFETY: `frame` is the frame the vector built on this core's stack
    // for this exception, 704 bytes, 16-byte aligned; the saved ELR_EL1 is
    // the u64 at FRAME_ELR, which the vector restores before `eret`.
    unsafe { frame.add(FRAME_ELR).cast::<u64>().write(elr + 4) };
}

/// What each of the 16 vector entries is for, by index.
const KINDS: [&str; 16] = [
    "synchronous, current EL with SP_EL0",
    "IRQ, current EL with SP_EL0",
    "FIQ, current EL with SP_EL0",
    "SError, current EL with SP_EL0",
    "synchronous, current EL with SP_ELx",
    "IRQ, current EL with SP_ELx",
    "FIQ, current EL with SP_ELx",
    "SError, current EL with SP_ELx",
    "synchronous, lower EL (AArch64)",
    "IRQ, lower EL (AArch64)",
    "FIQ, lower EL (AArch64)",
    "SError, lower EL (AArch64)",
    "synchronous, lower EL (AArch32)",
    "IRQ, lower EL (AArch32)",
    "FIQ, lower EL (AArch32)",
    "SError, lower EL (AArch32)",
];

/// Every vector entry but the IRQ one ends here: report and power off.
///
/// `FAR_EL1` is only meaningful for aborts and alignment faults; it is
/// printed regardless, with that caveat.
pub extern "C" fn unexpected_exception(index: u64) -> ! {
    let kind = KINDS.get(index as usize).copied().unwrap_or("?");
    let esr = ESR_EL1.get();
    let ec = esr::exception_class(esr);
    let _console = crate::console::lock();
    println!(
        "uirq-guest: unexpected exception on core {}: {kind}",
        smp::core_id()
    );
    println!(
        "  ESR_EL1  = {esr:#018x} (EC {ec:#04x}: {})",
        esr::describe_class(ec)
    );
    if let Some(fault) = esr::describe_abort(esr) {
        println!("             fault status: {fault}");
    }
    println!("  ELR_EL1  = {:#018x}", ELR_EL1.get());
    println!("  FAR_EL1  = {:#018x} (valid for aborts)", FAR_EL1.get());
    println!("  SPSR_EL1 = {:#018x}", SPSR_EL1.get());
    psci::system_off(Status::Exception)
}
