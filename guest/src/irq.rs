//! Who takes an IRQ: one handler per core, registered by the program.
//!
//! The vector (`exceptions.rs`) knows nothing about programs. When an IRQ
//! arrives it timestamps the entry, saves the interrupted state and calls
//! [`dispatch`], which looks up the handler the program running on *this*
//! core registered with [`set_handler`] and calls it with the timestamp.
//! The handler does everything the interrupt means: acknowledge
//! (`GICC_IAR`), handle by id, end (`GICC_EOIR`). With no handler
//! registered the IRQ is unexpected, and is reported (and ends the run) like
//! every other unexpected exception.
//!
//! Why per core: with several cores, each takes its own interrupts through
//! its own CPU interface (IHI 0048B, 1.3), possibly while running a
//! different part of the program. A core registers before it unmasks IRQs
//! (`PSTATE.I`), and only ever its own entry, so the table needs no lock:
//! each entry has exactly one writer, the core it belongs to.

use core::sync::atomic::{AtomicUsize, Ordering};

use aarch64_cpu::asm::barrier;

use uirq_abi::boot::MAX_CPUS;

use crate::smp;

/// An IRQ handler: called on the core that took the IRQ, with IRQs masked
/// and the `CNTVCT_EL0` value the vector read on entry.
pub type Handler = fn(entry_ticks: u64);

/// Each core's handler, as the address of a [`Handler`]; 0 = none.
static HANDLERS: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

/// Sends every IRQ this core takes from now on to `handler`. Call it
/// before unmasking IRQs.
pub fn set_handler(handler: Handler) {
    HANDLERS[smp::core_id()].store(handler as usize, Ordering::Release);
}

/// Called by the IRQ vector: runs this core's handler, or reports an
/// unexpected IRQ when there is none.
pub fn dispatch(entry_ticks: u64) {
    let raw = HANDLERS[smp::core_id()].load(Ordering::Acquire);
    if raw == 0 {
        // Index 5 of the vector table: IRQ, current EL with SP_ELx.
        crate::exceptions::unexpected_exception(5)
    }
    // SAFETY: the only values ever stored in HANDLERS are 0 (ruled out
    // above) and `Handler` function pointers converted with `as usize` by
    // `set_handler`. Converting such a value back gives the same function
    // pointer: function pointers and `usize` have the same size and
    // representation on aarch64.
    let handler = unsafe { core::mem::transmute::<usize, Handler>(raw) };
    handler(entry_ticks)
}

/// Whether this core's IRQ input is asserted right now (`ISR_EL1.I`, bit
/// 7), whatever `PSTATE.I` is. Under a hypervisor this is the virtual IRQ
/// the VMM raised with `KVM_IRQ_LINE` (`HCR_EL2.VI`). It is how a core
/// tells "pending in the GIC" from "signalled to the core" (IHI 0048B,
/// 3.3.2 says the CPU interface signals; this reads what arrived).
pub fn signalled() -> bool {
    // The GIC access that changed the line has completed (a device access
    // completes before the next instruction under both KVM and QEMU); the
    // ISB makes sure ISR is read after it.
    barrier::dsb(barrier::SY);
    barrier::isb(barrier::SY);
    let isr: u64;
    // SAFETY: reading ISR_EL1 at EL1 has no side effect (aarch64-cpu has no
    // definition of this register).
    unsafe { core::arch::asm!("mrs {}, isr_el1", out(reg) isr, options(nomem, nostack)) };
    isr & (1 << 7) != 0
}
