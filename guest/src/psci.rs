//! The firmware's PSCI calls (Arm DEN 0022): powering the other cores on,
//! and how every run ends, SYSTEM_OFF with the firmware's verdict in `x4`
//! (`uirq_abi::exit::STATUS_REGISTER`).
//!
//! PSCI calls go to the hypervisor with `HVC #0`: KVM implements PSCI itself
//! (CPU_ON starts the vCPU the VMM created powered off; SYSTEM_OFF is
//! reported to the VMM as a shutdown), and QEMU's `virt` board (without EL2)
//! answers HVC the same way. SYSTEM_OFF takes no arguments; the VMM reads
//! `x4` back to learn the status. (Not `x1`: KVM writes the PSCI return
//! value into `x0`-`x3` before it reports the shutdown, while the SMC
//! Calling Convention preserves `x4`-`x17`.)

use core::arch::asm;

use uirq_abi::{exit::Status, psci::SYSTEM_OFF};
use uirq_guest::psci_codes::{self as codes, PsciError, CPU_ON};

/// Powers up the core whose `MPIDR_EL1` affinity is `target_mpidr`, which
/// starts at physical address `entry` at EL1 with the MMU off and
/// `context` in `x0` (DEN 0022, 5.1.4 "CPU_ON"). Returns once PSCI has
/// accepted (or refused) the request; the core may not have run a single
/// instruction yet.
pub fn cpu_on(target_mpidr: u64, entry: usize, context: u64) -> Result<(), PsciError> {
    let ret: u64;
    // SAFETY: HVC #0 with a PSCI function id is the PSCI calling convention
    // (SMC Calling Convention, DEN 0028): it clobbers at most x0-x17, which
    // are declared clobbered. CPU_ON starts another core at `entry`, which
    // the caller has made the firmware's secondary entry point; nothing
    // changes for this core. Not `nomem`: the new core reads what this one
    // stored before the call, so the compiler must not move those stores
    // past it, and the DSB completes them before the request is made.
    unsafe {
        asm!(
            "dsb ish",
            "hvc #0",
            inout("x0") u64::from(CPU_ON) => ret,
            inout("x1") target_mpidr => _,
            inout("x2") entry as u64 => _,
            inout("x3") context => _,
            out("x4") _, out("x5") _, out("x6") _,
            out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _,
            out("x17") _,
            options(nostack),
        );
    }
    codes::result(ret)
}

/// Powers the machine off, reporting `status`. Does not return.
pub fn system_off(status: Status) -> ! {
    // SAFETY: HVC #0 with a PSCI function id is the PSCI calling convention
    // (SMC Calling Convention, DEN 0028): it touches no memory of ours and
    // clobbers at most x0-x17, which are declared clobbered. If it returns
    // (no PSCI behind HVC), execution simply goes on below.
    unsafe {
        asm!(
            "hvc #0",
            inout("x0") u64::from(SYSTEM_OFF) => _,
            out("x1") _, out("x2") _, out("x3") _,
            inout("x4") status as u64 => _,
            out("x5") _, out("x6") _,
            out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _,
            out("x17") _,
            options(nomem, nostack),
        );
    }
    println!("uirq-guest: PSCI SYSTEM_OFF returned; halting");
    loop {
        aarch64_cpu::asm::wfe();
    }
}
