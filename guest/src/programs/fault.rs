//! `fault`: takes an unexpected synchronous exception on purpose.
//!
//! With the MMU off, every data access is to Device memory, and an unaligned
//! access to Device memory always takes an alignment fault, whatever
//! `SCTLR_EL1.A` says. So an 8-byte load from an address that is not a
//! multiple of 8 raises a data abort taken at the same EL (EC 0x25, fault
//! status 0b100001) with the address in `FAR_EL1`, which the vector table
//! reports before powering off with `Status::Exception`.
//!
//! That rule is what faults on real hardware under KVM. An emulator may not
//! model it (QEMU 7.2's `virt` does not: there the load just works), so the program also sets
//! `SCTLR_EL1.A`, which makes *every* misaligned load fault, whatever the
//! memory type: the fault is then certain everywhere.

use core::arch::asm;

use aarch64_cpu::{
    asm::barrier,
    registers::{ReadWriteable, SCTLR_EL1},
};

/// Something in RAM to load from, misaligned by one byte.
static TARGET: [u64; 2] = [0; 2];

/// Prints one line, then faults.
pub fn run() -> ! {
    let misaligned = TARGET.as_ptr() as usize + 1;
    println!(
        "fault: loading 8 bytes from {misaligned:#x} (misaligned, MMU off): expect a data abort"
    );
    SCTLR_EL1.modify(SCTLR_EL1::A::Enable);
    // A system register write takes effect after a context synchronization
    // event.
    barrier::isb(barrier::SY);

    // The load is written in assembly because a misaligned load is undefined
    // behaviour in Rust; in assembly it is the architecture's defined fault.
    // SAFETY: the load reads two bytes of `TARGET` and six after it, all in
    // RAM; it does not write memory. It faults and never completes, and the
    // fault handler never returns here.
    unsafe {
        asm!(
            "ldr {tmp}, [{addr}]",
            addr = in(reg) misaligned,
            tmp = out(reg) _,
            options(nostack, readonly),
        );
    }
    println!("fault: the misaligned load did not fault");
    crate::psci::system_off(uirq_abi::exit::Status::Failure)
}
