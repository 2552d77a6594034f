//! The uirq guest firmware: a bare-metal aarch64 program that takes the
//! virtual timer's interrupt through a GICv2 and reports the latency.
//!
//! Read it top-down:
//!
//! 1. [`boot`]: `_start`, the first instruction of the image (a branch over
//!    the arm64 Image header that begins it): the image moved to where it
//!    was linked if a loader put it elsewhere, MMU on (`uirq_guest::mmu`),
//!    stack, BSS, FP/SIMD, exception vectors, then [`main`]; and
//!    `_secondary_start`, where the other cores begin.
//! 2. [`main`]: picks a program from the boot registers (`uirq_abi::boot`),
//!    or, started by the Linux boot protocol, from the device tree in `x0`
//!    ([`linux_boot`]).
//! 3. [`programs::timer`]: the default program, GIC and timer set-up, the
//!    wait loop and the interrupt handler.
//! 4. [`exceptions`]: the vector table, the IRQ entry that saves the
//!    interrupted state, and the report for every unexpected exception;
//!    [`irq`]: the per-core table of IRQ handlers the vector calls.
//! 5. [`smp`]: the other cores: how many, PSCI CPU_ON, their set-up, and a
//!    mailbox to give them work; the SMP programs ([`programs::smp_timer`],
//!    [`programs::ipi_stress`], the SMP scenarios) build on it.
//! 6. [`psci`]: PSCI calls, and how every run ends, SYSTEM_OFF with a
//!    status.
//!
//! The drivers and everything that can be tested off-target live in the
//! library (`src/lib.rs`). On the build machine this file compiles to a stub.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
#[macro_use]
mod console;
#[cfg(target_os = "none")]
mod board;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod exceptions;
#[cfg(target_os = "none")]
mod irq;
#[cfg(target_os = "none")]
mod linux_boot;
#[cfg(target_os = "none")]
mod programs;
#[cfg(target_os = "none")]
mod psci;
#[cfg(target_os = "none")]
mod smp;

#[cfg(target_os = "none")]
use uirq_abi::{boot::Program, exit::Status};

/// The firmware's Rust entry point, called by `_start` with the boot
/// registers the loader set (`uirq_abi::boot`): `x0` the program, `x1` and
/// `x2` its arguments (0 = default); or, under the Linux boot protocol,
/// `x0` the address of a device tree. `loaded_at` is where the loader put
/// the image (`_start` has moved it to `RAM_BASE` if that was elsewhere).
#[cfg(target_os = "none")]
#[no_mangle]
extern "C" fn main(x0: u64, x1: u64, x2: u64, loaded_at: u64) -> ! {
    use aarch64_cpu::registers::{CurrentEL, Readable};

    board::uart().init();
    smp::init_this_core();

    // Everything here (VBAR_EL1, the EL1 virtual timer, PSCI through HVC)
    // assumes EL1. At EL2 an HVC would trap to ourselves through a vector
    // table that is not installed, so not even SYSTEM_OFF would work: say so
    // and stop.
    let el = CurrentEL.read(CurrentEL::EL);
    if el != 1 {
        println!("uirq-guest: entered at EL{el}, but this firmware must run at EL1; halting");
        loop {
            aarch64_cpu::asm::wfe();
        }
    }

    let linked_at = linux_boot::footprint().base;
    if loaded_at != linked_at {
        println!(
            "uirq-guest: loaded at {loaded_at:#x}, moved to {linked_at:#x} where it is linked"
        );
    }

    // Under the Linux boot protocol, x0 is a device tree's address (in RAM,
    // where no program number is), and the program is on its command line.
    // Under QEMU's `-kernel` with the ELF, x0 is 0: the program may then be
    // in the boot block that QEMU's loader device wrote into RAM
    // (`uirq_abi::boot::block`).
    let (x0, x1, x2, tree) = if linux_boot::is_device_tree_address(x0) {
        let tree = linux_boot::DeviceTree::open(x0).unwrap_or_else(|e| {
            println!("uirq-guest: x0 = {x0:#x} is in RAM, but not a usable device tree: {e}");
            psci::system_off(Status::BadBootArgs)
        });
        (linux_boot::program(&tree).number(), 0, 0, Some(tree))
    } else if x0 == 0 {
        let (x0, x1, x2) = boot_block().unwrap_or((x0, x1, x2));
        (x0, x1, x2, None)
    } else {
        (x0, x1, x2, None)
    };

    match Program::from_number(x0) {
        Some(Program::Timer) => programs::timer::run(x1, x2),
        Some(Program::Spin) => programs::spin::run(),
        Some(Program::Fault) => programs::fault::run(),
        Some(Program::Bench) => programs::bench::run(x1, x2),
        Some(Program::SmpTimer) => programs::smp_timer::run(x1, x2),
        Some(Program::IpiStress) => programs::ipi_stress::run(x1, x2),
        Some(Program::DtInfo) => programs::dt_info::run(tree),
        Some(Program::Chaos) => programs::chaos::run(x1, x2),
        Some(Program::Echo) => programs::echo::run(tree),
        // Every other program is a GIC scenario.
        Some(scenario) => programs::scenarios::run(scenario, x1),
        None => {
            println!("uirq-guest: unknown program number {x0} in x0 (x1 = {x1:#x}, x2 = {x2:#x})");
            psci::system_off(Status::BadBootArgs)
        }
    }
}

/// `(x0, x1, x2)` from the boot block, if a loader wrote one.
#[cfg(target_os = "none")]
fn boot_block() -> Option<(u64, u64, u64)> {
    use uirq_abi::boot::block;

    let words: [u64; block::WORDS] = core::array::from_fn(|i| {
        let address = (block::ADDR as usize) + 8 * i;
        // SAFETY: the boot block page is guest RAM reserved for it (the
        // linker script asserts that the image, BSS and stacks end below it),
        // 8-byte aligned, and nothing in the firmware refers to it. A
        // volatile read, because a loader, not this program, wrote it.
        unsafe { core::ptr::read_volatile(address as *const u64) }
    });
    let found = block::decode(words);
    if let Some((program, x1, x2)) = found {
        println!(
            "uirq-guest: boot block at {:#x}: program {program}, x1 = {x1:#x}, x2 = {x2:#x}",
            block::ADDR
        );
    }
    found
}

/// A panic prints its message and powers off with [`Status::Panic`].
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::sync::atomic::{AtomicBool, Ordering};

    // A panic while printing the panic must not recurse forever.
    static PANICKING: AtomicBool = AtomicBool::new(false);
    if !PANICKING.load(Ordering::Relaxed) {
        PANICKING.store(true, Ordering::Relaxed);
        println!("uirq-guest: panic: {info}");
    }
    psci::system_off(Status::Panic)
}

/// On the build machine there is no firmware to run, only the library's
/// unit tests (`cargo test --lib`).
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "uirq-guest is firmware: build it with `--target aarch64-unknown-none` \
         and run it under the VMM or qemu-system-aarch64"
    );
    std::process::exit(1);
}
