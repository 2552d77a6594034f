//! `_start` and `_secondary_start`: the first instructions each core runs.
//!
//! # The image begins with an arm64 `Image` header
//!
//! The first 64 bytes are the header of Linux's arm64 boot protocol
//! (Documentation/arch/arm64/booting.rst, section 4, "Call the kernel
//! image"; the fields in `uirq_guest::image_header`). Its first word,
//! `code0`, is an instruction: a branch over the rest of the header to the
//! boot code. So `_start` is still the image's first byte, and every way of
//! starting the firmware enters there:
//!
//! - the VMM's `--image` copies the flat image to `RAM_BASE` and enters it
//!   with a program number in `x0` (`uirq_abi::boot`);
//! - QEMU's `-kernel` with the ELF loads it at its link address and enters
//!   `_start` with `x0` = 0 (the boot block then names the program);
//! - a loader of the boot protocol (the VMM's `--kernel`, QEMU's `-kernel`
//!   with the flat image) reads the header, places the image `text_offset`
//!   (0) bytes above a 2 MiB aligned base in RAM, and enters it with the
//!   physical address of a device tree in `x0`, `x1` = `x2` = `x3` = 0.
//!
//! # The boot core: `_start`
//!
//! The core arrives at EL1 using SP_EL1 ("EL1h"), with the MMU off and
//! every exception masked (PSTATE.DAIF = 0b1111). `x0`-`x2` hold the boot
//! arguments. Nothing else can be assumed: no stack, and BSS holds whatever
//! the RAM held. So before any Rust code runs:
//!
//! 1. keep `x0`-`x2` in callee-saved registers;
//! 2. run where the image was linked (`RUN_WHERE_LINKED`, below): the
//!    code and data hold absolute addresses of `RAM_BASE` and up, so an
//!    image a loader placed higher copies itself down first (QEMU writes
//!    its own boot stub at the start of RAM, so it loads an image whose
//!    `text_offset` is below 4 KiB one 2 MiB block up, at `RAM_BASE` +
//!    2 MiB: `load_aarch64_image()` in hw/arm/boot.c);
//! 3. turn the MMU on with the identity map (`ENABLE_MMU`, below), *before*
//!    the first store to memory (the copy of step 2 aside), so that nothing
//!    is ever written with the caches off and read back through them (see
//!    `uirq_guest::mmu`);
//! 4. point SP at the top of this core's stack (`CORE_STACK`);
//! 5. zero BSS (Rust assumes every `static` initialised to zero is zero);
//! 6. allow FP/SIMD instructions at EL1 (`CPACR_EL1.FPEN = 0b11`): the Rust
//!    target `aarch64-unknown-none` uses the FP/SIMD registers (for
//!    `memcpy`, formatting, ...), and while FPEN traps them, the first such
//!    instruction would take a synchronous exception;
//! 7. install the exception vectors (`VBAR_EL1`);
//! 8. an ISB, so the CPACR and VBAR writes are in effect for what follows
//!    (system register writes need a context synchronization event);
//! 9. call `main(x0, x1, x2, load address)`, which never returns.
//!
//! # Moving the image (step 2)
//!
//! booting.rst lets the loader choose the 2 MiB aligned base, and says
//! that memory the device tree describes and does not reserve, "even that
//! below the start of the image", is the kernel's to use. The image's
//! header asks to be "as close as possible to the base of DRAM" (flags bit
//! 3 = 0), so a loader puts it at `RAM_BASE` (the VMM) or just above
//! (QEMU). When `adr` (PC-relative: where the code runs) and the linked
//! address (an absolute literal) differ, the boot core copies the loaded
//! part of the image, `__image_start` to `__image_file_end`, to where it
//! was linked and jumps there, unless that would overwrite the device tree
//! (at most 2 MiB from `x0`, booting.rst), in which case it parks. With the
//! MMU off, data accesses are Device-nGnRnE, uncached; the copy is made
//! coherent with the caches the MMU turns on later by invalidating its
//! destination to the Point of Coherency before and after (so no stale or
//! dirty line from earlier software hides or overwrites it), and the
//! instruction cache is invalidated before the jump (booting.rst: "The
//! instruction cache may be on or off"). `main` later checks that the
//! firmware did not overwrite memory the device tree reserves.
//!
//! # The other cores: `_secondary_start`
//!
//! They start powered off. The boot core powers each one up with PSCI
//! `CPU_ON` (`smp.rs`), naming `_secondary_start` as the entry point; the
//! core then arrives here in the same state as the boot core did (EL1, MMU
//! off, DAIF masked), with PSCI's context id in `x0`. It repeats steps 3,
//! 4, 6, 7 and 8 for itself (the MMU, the stack, CPACR and VBAR are
//! per-core state), but **not** step 2 (the boot core has moved the image
//! already, and `_secondary_start` is its linked address) nor step 5:
//! BSS is shared, and the boot core has filled it with the very state this
//! core is about to use. Then it calls `smp::secondary_main(core)`.
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
//! right answer because, after step 2, the image runs where it was linked
//! (RAM_BASE, as the linker script asserts), and because the identity map
//! leaves every address where it was when the MMU comes on.

use core::arch::global_asm;

use uirq_abi::boot::MAX_CPUS;
use uirq_guest::{devicetree, image_header, mmu};

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

// DCACHE_INVAL start, end: invalidate the data cache lines holding
// [start, end) to the Point of Coherency, by address (with the MMU off,
// address = physical address). CTR_EL0.DminLine is log2 of the smallest
// data cache line in 4-byte words. Uses x13-x15.
.macro DCACHE_INVAL start, end
    mrs     x13, ctr_el0
    ubfx    x13, x13, #16, #4
    mov     x14, #4
    lsl     x14, x14, x13           // line size in bytes
    sub     x15, x14, #1
    bic     x15, \start, x15        // the line holding the first byte
9:  dc      ivac, x15
    add     x15, x15, x14
    cmp     x15, \end
    b.lo    9b
    dsb     sy
.endm

// RUN_WHERE_LINKED: step 2 (see the module docs). x22 = where the loader
// put the image; x19 = x0 as the loader set it (a device tree's address
// under the boot protocol). Uses x9-x15; parks if the image cannot move.
.macro RUN_WHERE_LINKED
    adr     x22, _start             // where the image runs now
    ldr     x9, =__image_start      // where it was linked (RAM_BASE)
    cmp     x22, x9
    b.eq    __start_linked          // the usual case: nothing to do
    b.lo    __park                  // below RAM_BASE: nowhere to go
    // The device tree (at most 2 MiB) must not lie in [RAM_BASE,
    // __image_end): the copy, BSS and the stacks would overwrite it.
    ldr     x10, =__image_end
    cmp     x19, x10
    b.hs    1f                      // above the firmware
    add     x11, x19, #{dt_max_4k}, lsl #12
    cmp     x11, x9
    b.hi    __park                  // inside: moving would destroy it
1:  ldr     x10, =__image_file_end
    DCACHE_INVAL x9, x10            // no dirty line may land on the copy
    mov     x11, x22
    mov     x12, x9
2:  ldp     x13, x14, [x11], #16    // forward, 16 bytes at a time: safe
    stp     x13, x14, [x12], #16    // although the ranges may overlap,
    cmp     x12, x10                // as the destination is the lower
    b.lo    2b
    dsb     sy                      // the copy is in memory ...
    DCACHE_INVAL x9, x10            // ... and in no cache line
    ic      iallu                   // nor is the old code in the I-cache
    dsb     nsh
    isb
    ldr     x9, =__start_linked     // continue in the copy
    br      x9
__start_linked:
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
.global _start, __image_header_magic, __image_header_end
.type _start, %function
_start:
    // The arm64 Image header (uirq_guest::image_header; booting.rst,
    // section 4). Every field is little-endian, as the target is.
    b       __boot                  // code0: branch over the header
    .long   0                       // code1
    .quad   {text_offset}           // text_offset
    .quad   __image_size            // image_size: image, BSS and stacks
    .quad   {image_flags}           // flags: LE, 4K pages, near DRAM base
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
__image_header_magic:
    .long   {image_magic}           // magic: "ARM\x64"
    .long   0                       // res5: no PE/COFF header
__image_header_end:                 // the linker script checks the layout

__boot:
    // 1. The boot arguments survive in x19-x21 until main is called.
    mov     x19, x0
    mov     x20, x1
    mov     x21, x2

    // 2. Run where linked (x22 = where the loader put the image).
    RUN_WHERE_LINKED

    // 3. MMU on. 4. Stack.
    ENABLE_MMU
    CORE_STACK

    // 5. Zero BSS, 16 bytes at a time (both ends are 16-byte aligned).
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
1:  cmp     x9, x10
    b.hs    2f
    stp     xzr, xzr, [x9], #16
    b       1b
2:

    // 6., 7., 8.
    FP_AND_VECTORS

    // 9. main(x0, x1, x2, load address) -> !
    mov     x0, x19
    mov     x1, x20
    mov     x2, x21
    mov     x3, x22
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
    FP_AND_VECTORS                  // (no move, no BSS zeroing: module docs)
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
    text_offset = const image_header::TEXT_OFFSET,
    image_flags = const image_header::FLAGS,
    image_magic = const image_header::MAGIC,
    dt_max_4k = const devicetree::MAX_SIZE >> 12,
    max_cpus = const MAX_CPUS,
    main = sym crate::main,
    secondary_main = sym crate::smp::secondary_main,
);

extern "C" {
    /// The entry point `smp::start_secondaries` gives PSCI `CPU_ON`. Not a
    /// function Rust may call: only its address is used.
    pub fn _secondary_start();
}
