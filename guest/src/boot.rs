//! `_start` and `_secondary_start`: the first instructions each core runs.
//!
//! # The boot core: `_start`
//!
//! The VMM (or QEMU) enters the image at its first byte, at EL1 using SP_EL1
//! ("EL1h"), with the MMU and caches off and every exception masked
//! (PSTATE.DAIF = 0b1111). `x0`-`x2` hold the boot arguments
//! (`uirq_abi::boot`). Nothing else can be assumed: no stack, and BSS holds
//! whatever the RAM held. So before any Rust code runs:
//!
//! 1. keep `x0`-`x2` in callee-saved registers;
//! 2. turn the MMU on with the identity map (`ENABLE_MMU`, below), *before*
//!    the first store to memory, so that nothing is ever written with the
//!    caches off and read back through them (see `uirq_guest::mmu`);
//! 3. point SP at the top of this core's stack (`CORE_STACK`);
//! 4. zero BSS (Rust assumes every `static` initialised to zero is zero);
//! 5. allow FP/SIMD instructions at EL1 (`CPACR_EL1.FPEN = 0b11`): the Rust
//!    target `aarch64-unknown-none` uses the FP/SIMD registers (for
//!    `memcpy`, formatting, ...), and while FPEN traps them, the first such
//!    instruction would take a synchronous exception;
//! 6. install the exception vectors (`VBAR_EL1`);
//! 7. an ISB, so the CPACR and VBAR writes are in effect for what follows
//!    (system register writes need a context synchronization event);
//! 8. call `main(x0, x1, x2)`, which never returns.
//!
//! # The other cores: `_secondary_start`
//!
//! They start powered off. The boot core powers each one up with PSCI
//! `CPU_ON` (`smp.rs`), naming `_secondary_start` as the entry point; the
//! core then arrives here in the same state as the boot core did (EL1, MMU
//! off, DAIF masked), with PSCI's context id in `x0`. It repeats steps 2, 3,
//! 5, 6 and 7 for itself (the MMU, the stack, CPACR and VBAR are per-core
//! state), but **not** step 4: BSS is shared, and the boot core has filled
//! it with the very state this core is about to use. Then it calls
//! `smp::secondary_main(core)`.
//!
//! # Which stack
//!
//! The linker script reserves `MAX_CPUS` stacks of `__stack_size` bytes from
//! `__stacks_start` up. A core's number is `MPIDR_EL1.Aff0` (the
//! Multiprocessor Affinity Register's lowest affinity level, which KVM and
//! QEMU `virt` number 0, 1, 2, ...), and core *n* uses the stack whose top
//! is `__stacks_start + (n + 1) * __stack_size`. A core numbered beyond
//! `MAX_CPUS` has no stack and parks in a `WFE` loop.
//!
//! Addresses are formed with `adrp`/`add` (PC-relative), which gives the
//! right answer because the image runs where it was linked (RAM_BASE, as the
//! linker script asserts), and because the identity map leaves every address
//! where it was when the MMU comes on.

use core::arch::global_asm;

use uirq_abi::boot::MAX_CPUS;
use uirq_guest::mmu;

global_asm!(
    r#"
// MOV64 reg, value: a 64-bit constant in four 16-bit pieces.
.macro MOV64 reg, value
    movz    \reg, #((\value) & 0xffff)
    movk    \reg, #(((\value) >> 16) & 0xffff), lsl #16
    movk    \reg, #(((\value) >> 32) & 0xffff), lsl #32
    movk    \reg, #(((\value) >> 48) & 0xffff), lsl #48
.endm

// ENABLE_MMU: stage 1 translation on, with the identity map. Uses x9-x10
// only, and no memory: there is no stack yet.
//
// Arm ARM DDI 0487, chapter D8 ("Translation table base registers",
// "Translation Lookaside Buffers (TLBs)") and "Context synchronization
// event": the registers that define the translation must be in effect
// before SCTLR_EL1.M turns it on, and no stale TLB entry (their contents
// are UNKNOWN after reset) may be used.
.macro ENABLE_MMU
    MOV64   x9, {mair}
    msr     mair_el1, x9
    MOV64   x9, {tcr}
    msr     tcr_el1, x9
    adrp    x9, {table}             // 4 KiB aligned: adrp alone is exact
    msr     ttbr0_el1, x9           // ASID 0, CnP 0
    isb                             // the three writes above take effect

    tlbi    vmalle1                 // forget whatever the TLBs held
    dsb     nsh                     // ... and wait until they have
    isb

    mrs     x9, sctlr_el1           // read-modify-write: keep the RES1 bits
    MOV64   x10, {sctlr_set}        // and whatever the hypervisor reset
    orr     x9, x9, x10
    MOV64   x10, {sctlr_clear}
    bic     x9, x9, x10
    msr     sctlr_el1, x9
    isb                             // fetch the next instruction translated

    ic      iallu                   // no instruction fetched with the
    dsb     nsh                     // MMU off may survive in the I-cache
    isb
.endm

// CORE_STACK: x9 = this core's number (MPIDR_EL1.Aff0), SP = the top of its
// stack. Uses x9-x11; parks a core whose number has no stack.
.macro CORE_STACK
    mrs     x9, mpidr_el1
    and     x9, x9, #0xff           // Aff0
    cmp     x9, #{max_cpus}
    b.hs    __park
    adrp    x10, __stacks_start
    add     x10, x10, :lo12:__stacks_start
    ldr     x11, =__stack_size      // an absolute symbol of the linker
    madd    x10, x9, x11, x10       // bottom of this core's stack ...
    add     x10, x10, x11           // ... and its top
    mov     sp, x10
.endm

// FP_AND_VECTORS: CPACR_EL1.FPEN, bits [21:20] = 0b11 (no FP/SIMD trapping
// at EL0/EL1); VBAR_EL1 = the 2 KiB-aligned vector table (exceptions.rs);
// an ISB so both take effect before any FP/SIMD instruction or exception.
.macro FP_AND_VECTORS
    mrs     x10, cpacr_el1
    orr     x10, x10, #(0b11 << 20)
    msr     cpacr_el1, x10
    adrp    x10, __vectors
    add     x10, x10, :lo12:__vectors
    msr     vbar_el1, x10
    isb
.endm

.pushsection .text.boot, "ax"
.global _start
.type _start, %function
_start:
    // 1. The boot arguments survive in x19-x21 until main is called.
    mov     x19, x0
    mov     x20, x1
    mov     x21, x2

    // 2. MMU on. 3. Stack.
    ENABLE_MMU
    CORE_STACK

    // 4. Zero BSS, 16 bytes at a time (both ends are 16-byte aligned).
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
1:  cmp     x9, x10
    b.hs    2f
    stp     xzr, xzr, [x9], #16
    b       1b
2:

    // 5., 6., 7.
    FP_AND_VECTORS

    // 8. main(x0, x1, x2) -> !
    mov     x0, x19
    mov     x1, x20
    mov     x2, x21
    bl      {main}
    b       __park                  // main never returns
.size _start, . - _start

// Where PSCI CPU_ON starts the other cores; x0 = context id (unused: the
// core's number comes from its own MPIDR_EL1).
.global _secondary_start
.type _secondary_start, %function
_secondary_start:
    ENABLE_MMU
    CORE_STACK                      // x9 = core number
    FP_AND_VECTORS                  // (no BSS zeroing: see the module docs)
    mov     x0, x9
    bl      {secondary_main}        // secondary_main(core) -> !
    b       __park
.size _secondary_start, . - _secondary_start

// A core with nothing (left) to do.
__park:
    wfe
    b       __park

    .ltorg                          // the literal pool of `ldr x11, =...`
.popsection
"#,
    mair = const mmu::MAIR,
    tcr = const mmu::TCR,
    sctlr_set = const mmu::SCTLR_SET,
    sctlr_clear = const mmu::SCTLR_CLEAR,
    table = sym mmu::IDENTITY_MAP,
    max_cpus = const MAX_CPUS,
    main = sym crate::main,
    secondary_main = sym crate::smp::secondary_main,
);

extern "C" {
    /// The entry point `smp::start_secondaries` gives PSCI `CPU_ON`. Not a
    /// function Rust may call: only its address is used.
    pub fn _secondary_start();
}
