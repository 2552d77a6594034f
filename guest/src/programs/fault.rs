//! `fault`: takes an unexpected synchronous exception on purpose.
//!
//! The firmware runs with the MMU on, and RAM is Normal memory
//! (`uirq_guest::mmu`), where a misaligned load simply works, unless
//! `SCTLR_EL1.A` (alignment check) is set: then *every* misaligned data
//! access faults, whatever the memory type (Arm ARM DDI 0487, chapter B2,
//! "Alignment support"). So the program sets `SCTLR_EL1.A` (the boot code
//! leaves it clear) and loads 8 bytes from an address that is not a multiple
//! of 8: a data abort taken at the same EL (EC 0x25, fault status
//! 0b100001, alignment fault) with the address in `FAR_EL1`, which the
//! vector table reports before powering off with `Status::Exception`.

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
        "fault: loading 8 bytes from {misaligned:#x} (misaligned, alignment checking on): expect a data abort"
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
