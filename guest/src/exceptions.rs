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
//! only expected entry is **IRQ, current EL with SP_ELx (0x280)**. Every
//! other entry reports the exception (kind, `ESR_EL1`, `ELR_EL1`,
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

use core::arch::global_asm;

use aarch64_cpu::registers::{Readable, ELR_EL1, ESR_EL1, FAR_EL1, SPSR_EL1};
use uirq_abi::exit::Status;
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
    UNEXPECTED 4

    // 0x280: IRQ, current EL with SP_ELx, the one expected exception.
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

// The rest of the IRQ path. On entry x0 = timestamp, and the interrupted
// x0/x1 are at [sp]. Frame below them (704 bytes, 16-byte aligned):
//     0..144  x2-x18, x29        144  x30, ELR_EL1
//   160       SPSR_EL1, FPCR     176  FPSR, (padding)
//   192..704  q0-q31
__irq_save_call_restore:
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

    bl      {irq}                   // irq(entry_timestamp)

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
.popsection
"#,
    unexpected = sym unexpected_exception,
    irq = sym irq,
);

/// The Rust half of the IRQ entry. `entry_ticks` is `CNTVCT_EL0` as read by
/// the vector's second instruction. Which code handles the IRQ is up to the
/// program running on this core (`irq.rs`).
extern "C" fn irq(entry_ticks: u64) {
    crate::irq::dispatch(entry_ticks);
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
