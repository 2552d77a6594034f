//! `spin`: never finishes, so the VMM's timeout has something to catch.

use aarch64_cpu::registers::{ReadWriteable, DAIF};

/// Prints one line, masks interrupts, and spins forever.
pub fn run() -> ! {
    println!("spin: spinning forever with interrupts masked");
    DAIF.modify(DAIF::I::Masked + DAIF::F::Masked);
    loop {
        core::hint::spin_loop();
    }
}
