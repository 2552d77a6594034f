//! `unmapped`: a load or store to an address where no device answers takes
//! a synchronous external abort, and the program goes on after it.
//!
//! On hardware, an access the interconnect cannot deliver to any slave
//! comes back with a decode error, which the core turns into a synchronous
//! external abort on the instruction (Arm ARM D17.2.37 "ESR_EL1"):
//!
//! - `ESR_EL1.EC` = 0x25, a data abort taken without a change of EL;
//! - `ESR_EL1.DFSC` = 0b010000, synchronous external abort, not on a
//!   translation table walk;
//! - `ESR_EL1.WnR` = 1 for a store, 0 for a load;
//! - `FAR_EL1` = the virtual address accessed (D17.2.40; here the identity
//!   map makes it the physical one);
//! - `ELR_EL1` = the faulting instruction, which did not complete: a load
//!   left its destination register as it was.
//!
//! QEMU's `virt` answers the same way, and so does the VMM with its default
//! `--unmapped abort`. The accesses go to [`uirq_abi::layout::HOLE`], empty
//! on both machines: each size (1, 2, 4 and 8 bytes), a load and a store,
//! each wrapped in `exceptions::expect_external_abort`, which catches the
//! abort and resumes after the instruction; every field above is checked.
//! A GIC register read the same way must *not* abort.
//!
//! Then a load pair and a store pair (`LDP`/`STP`), which trap to a
//! hypervisor with no valid syndrome (ESR_EL2.ISV = 0): KVM cannot say
//! what they access, and hands them to the VMM as KVM_EXIT_ARM_NISV where
//! the VMM asked for that. Nothing can complete them, so they take the same
//! abort, with FAR_EL1 the pair's address.
//!
//! Started with `x1` = 1 (what the VMM passes with `--unmapped raz`) the
//! scenario checks the other answer instead: no exception, loads read as
//! zero, stores vanish. The pairs abort all the same.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use uirq_abi::{
    gicv2::gicd,
    layout::{GICD_BASE, HOLE},
};
use uirq_guest::{
    drivers::mmio::{probe_load, probe_store},
    esr,
};

use super::common;
use crate::exceptions::{expect_external_abort, Abort};

/// Whether the machine was said to answer read-as-zero (`x1` = 1).
static READ_AS_ZERO: AtomicBool = AtomicBool::new(false);

/// Takes the scenario's argument: `x1` = 1 expects read-as-zero /
/// write-ignored rather than an abort.
pub fn configure(x1: u64) {
    READ_AS_ZERO.store(x1 == 1, Ordering::Relaxed);
}

/// What a load's destination register holds before it; an aborted load
/// leaves it so.
const UNTOUCHED: u64 = 0xDEAD_BEEF_CAFE_F00D;

/// A store's value.
const PATTERN: u64 = 0x0123_4567_89AB_CDEF;

/// (offset from `HOLE`, size, store?): every size both ways, each at an
/// address of its own alignment, so FAR_EL1 must name each exactly.
const CASES: [(u64, usize, bool); 8] = [
    (0x00, 4, false),
    (0x08, 4, true),
    (0x11, 1, false),
    (0x13, 1, true),
    (0x22, 2, false),
    (0x26, 2, true),
    (0x40, 8, false),
    (0x48, 8, true),
];

pub fn run() -> ! {
    let raz = READ_AS_ZERO.load(Ordering::Relaxed);
    if raz {
        println!("unmapped: expecting read-as-zero / write-ignored (x1 = 1), not an abort");
    }

    // A device that is there answers, armed slot or not.
    let typer = GICD_BASE + gicd::TYPER;
    // SAFETY: GICD_TYPER, a read-only register of the distributor in the
    // identity-mapped device gigabyte, 4-byte aligned; reading it changes
    // nothing.
    let (_, abort) = expect_external_abort(|| unsafe { probe_load(typer as usize, 4, 0) });
    check!(
        abort.is_none(),
        "a read of GICD_TYPER took an exception: {abort:x?}"
    );

    for (offset, size, store) in CASES {
        let addr = HOLE + offset;
        let what = if store { "store" } else { "load" };
        // SAFETY: `addr` is in the identity-mapped device gigabyte, aligned
        // to `size`, and nothing (no device, no Rust object) is there:
        // the access either aborts, caught by the armed slot, or reaches
        // nothing.
        let ((value, insn), abort) = expect_external_abort(|| unsafe {
            if store {
                (0, probe_store(addr as usize, size, PATTERN))
            } else {
                probe_load(addr as usize, size, UNTOUCHED)
            }
        });
        match (raz, abort) {
            (false, None) if store => common::fail(format_args!(
                "a {size}-byte store to {addr:#x}, where nothing is mapped, took no exception"
            )),
            (false, None) => common::fail(format_args!(
                "a {size}-byte load from {addr:#x}, where nothing is mapped, took no exception (read {value:#x})"
            )),
            (false, Some(abort)) => {
                let access = format_args!("{size}-byte {what}");
                check_syndrome(&abort, addr, store, insn as u64, &access);
                if !store {
                    check_eq!(
                        value,
                        UNTOUCHED,
                        "the destination register of the aborted {size}-byte load from {addr:#x} (the load must not complete)"
                    );
                }
                println!(
                    "unmapped: {size}-byte {what} at {addr:#x}: synchronous external abort, ESR_EL1 {:#x}, FAR_EL1 {:#x}",
                    abort.esr, abort.far
                );
            }
            (true, Some(abort)) => common::fail(format_args!(
                "the {size}-byte {what} at {addr:#x} took an exception (ESR {:#x}, FAR {:#x}), but read-as-zero was expected",
                abort.esr, abort.far
            )),
            (true, None) => {
                if !store {
                    check_eq!(value, 0, "the {size}-byte load from {addr:#x}");
                }
                println!("unmapped: {size}-byte {what} at {addr:#x}: no exception{}", if store { "" } else { ", read 0" });
            }
        }
    }
    for (offset, store) in [(0x80, false), (0x90, true)] {
        let addr = HOLE + offset;
        pair(addr, store);
    }
    common::pass()
}

/// One `LDP`/`STP` of two doublewords at `addr`, which must abort whatever
/// the answer to decodable accesses is (see the module docs).
fn pair(addr: u64, store: bool) {
    let what = if store { "store pair" } else { "load pair" };
    let (mut first, mut second) = (UNTOUCHED, !UNTOUCHED);
    let mut insn: u64 = 0;
    let ((), abort) = expect_external_abort(|| {
        // SAFETY: `addr` is in the identity-mapped device gigabyte,
        // 16-byte aligned, with nothing (no device, no Rust object) in the
        // 16 bytes from it; the access aborts into the armed slot.
        unsafe {
            if store {
                core::arch::asm!(
                    "adr {i}, 2f",
                    "2: stp {a}, {b}, [{p}]",
                    i = out(reg) insn,
                    a = in(reg) PATTERN,
                    b = in(reg) !PATTERN,
                    p = in(reg) addr,
                    options(nostack, preserves_flags)
                );
            } else {
                core::arch::asm!(
                    "adr {i}, 2f",
                    "2: ldp {a}, {b}, [{p}]",
                    i = out(reg) insn,
                    a = inout(reg) first,
                    b = inout(reg) second,
                    p = in(reg) addr,
                    options(nostack, preserves_flags)
                );
            }
        }
    });
    let Some(abort) = abort else {
        common::fail(format_args!(
            "a {what} at {addr:#x}, where nothing is mapped, took no exception"
        ))
    };
    check_syndrome(&abort, addr, store, insn, &what);
    if !store {
        check_eq!(
            (first, second),
            (UNTOUCHED, !UNTOUCHED),
            "the destination registers of the aborted {what} from {addr:#x} (it must not complete)"
        );
    }
    println!(
        "unmapped: {what} at {addr:#x}: synchronous external abort, ESR_EL1 {:#x}, FAR_EL1 {:#x}",
        abort.esr, abort.far
    );
}

/// Fails unless `abort` is a synchronous external abort at this EL on the
/// access `what` at `addr` made by the instruction at `insn`.
fn check_syndrome(abort: &Abort, addr: u64, store: bool, insn: u64, what: &dyn fmt::Display) {
    check_eq!(
        esr::exception_class(abort.esr),
        esr::EC_DATA_ABORT_SAME_EL,
        "ESR_EL1.EC of the {what} at {addr:#x} (ESR {:#x})",
        abort.esr
    );
    check_eq!(
        abort.esr & 0x3F,
        esr::DFSC_SYNC_EXTERNAL,
        "ESR_EL1.DFSC of the {what} at {addr:#x} (ESR {:#x})",
        abort.esr
    );
    check_eq!(
        abort.is_write(),
        store,
        "ESR_EL1.WnR of the {what} at {addr:#x} (ESR {:#x})",
        abort.esr
    );
    check_eq!(abort.far, addr, "FAR_EL1 of the {what} at {addr:#x}");
    check_eq!(
        abort.elr,
        insn,
        "ELR_EL1 (the faulting instruction) of the {what} at {addr:#x}"
    );
}
