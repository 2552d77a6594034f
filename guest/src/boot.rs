//! `_start`: the first instruction the core runs.
//!
//! The VMM (or QEMU) enters the image at its first byte, at EL1 using SP_EL1
//! ("EL1h"), with the MMU and caches off and every exception masked
//! (PSTATE.DAIF = 0b1111). `x0`-`x2` hold the boot arguments
//! (`uirq_abi::boot`). Nothing else can be assumed: no stack, and BSS holds
//! whatever the RAM held. So before any Rust code runs:
//!
//! 1. keep `x0`-`x2` in callee-saved registers;
//! 2. point SP at the top of the stack the linker script reserved;
//! 3. zero BSS (Rust assumes every `static` initialised to zero is zero);
//! 4. allow FP/SIMD instructions at EL1 (`CPACR_EL1.FPEN = 0b11`): the Rust
//!    target `aarch64-unknown-none` uses the FP/SIMD registers (for
//!    `memcpy`, formatting, ...), and while FPEN traps them, the first such
//!    instruction would take a synchronous exception;
//! 5. install the exception vectors (`VBAR_EL1`);
//! 6. an ISB, so the CPACR and VBAR writes are in effect for what follows
//!    (system register writes need a context synchronization event);
//! 7. call `main(x0, x1, x2)`, which never returns.
//!
//! The addresses are formed with `adrp`/`add` (PC-relative), which gives the
//! right answer because the image runs where it was linked (RAM_BASE, as the
//! linker script asserts).

use core::arch::global_asm;

global_asm!(
    r#"
.pushsection .text.boot, "ax"
.global _start
.type _start, %function
_start:
    // 1. The boot arguments survive in x19-x21 until main is called.
    mov     x19, x0
    mov     x20, x1
    mov     x21, x2

    // 2. The stack grows down from __stack_top (16-byte aligned, asserted by
    //    the linker script).
    adrp    x9, __stack_top
    add     x9, x9, :lo12:__stack_top
    mov     sp, x9

    // 3. Zero BSS, 16 bytes at a time (both ends are 16-byte aligned).
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
1:  cmp     x9, x10
    b.hs    2f
    stp     xzr, xzr, [x9], #16
    b       1b
2:

    // 4. CPACR_EL1.FPEN, bits [21:20] = 0b11: no FP/SIMD trapping at EL0/EL1.
    mrs     x9, cpacr_el1
    orr     x9, x9, #(0b11 << 20)
    msr     cpacr_el1, x9

    // 5. VBAR_EL1 = the 2 KiB-aligned vector table (exceptions.rs).
    adrp    x9, __vectors
    add     x9, x9, :lo12:__vectors
    msr     vbar_el1, x9

    // 6. Make both writes take effect before any FP/SIMD instruction or
    //    exception.
    isb

    // 7. main(x0, x1, x2) -> !
    mov     x0, x19
    mov     x1, x20
    mov     x2, x21
    bl      {main}

    // main never returns; if it did, stop here.
3:  wfe
    b       3b
.size _start, . - _start
.popsection
"#,
    main = sym crate::main,
);
