//! `dt-info`: what the device tree says about the machine, checked against
//! what the firmware was compiled for.
//!
//! A payload started by the Linux boot protocol learns the machine from the
//! device tree in `x0` (booting.rst), not from constants. This program
//! reads the GIC, the UART and the CPUs from it (`uirq_guest::devicetree`)
//! and compares them with `uirq_abi::layout`, the map the drivers use. Its
//! output, one line each, addresses and sizes in hex:
//!
//! ```text
//! dt-info: device tree at 0x43e00000 size 0x5d4
//! dt-info: model "uirq-vmm (userspace GICv2)", compatible "linux,dummy-virt"
//! dt-info: memory 0x40000000 size 0x4000000
//! dt-info: cpus 2
//! dt-info: gic distributor 0x8000000 size 0x1000, cpu interface 0x8010000 size 0x2000
//! dt-info: uart 0x9000000 interrupt spi 1 (id 33, level-high)
//! dt-info: bootargs "uirq.program=dt-info"
//! dt-info: PASS: gic, uart and cpus match the compiled-in memory map
//! ```
//!
//! `model` and `bootargs` say `(none)` when the tree has none, and a value
//! the tree does not give makes its line `dt-info: <what>: <why>`. Every
//! difference from the compiled-in map gets a line
//! `dt-info: FAIL: <what> <value> in the device tree, <value> compiled in`
//! (or `at least <value> needed` for a frame size or the CPU count; the
//! GIC's and UART's frames may be larger than the registers the drivers
//! use, as QEMU's 64 KiB ones are); the program then powers off with
//! `Status::Failure`, otherwise with `Status::Success` after the PASS line.
//!
//! Started without a device tree (`x0` was a program number, or the boot
//! block named it), it prints
//! `dt-info: FAIL: no device tree: start the firmware with the Linux boot protocol (uirq-vmm --kernel)`
//! and fails.

use uirq_abi::exit::Status;
use uirq_guest::devicetree::{self, DtError, Fdt};

use crate::{linux_boot::DeviceTree, psci};

/// Prints the lines of the module docs and powers off with the verdict.
pub fn run(tree: Option<DeviceTree>) -> ! {
    let Some(tree) = tree else {
        println!(
            "dt-info: FAIL: no device tree: start the firmware with the Linux boot protocol (uirq-vmm --kernel)"
        );
        psci::system_off(Status::Failure)
    };
    println!(
        "dt-info: device tree at {:#x} size {:#x}",
        tree.addr, tree.size
    );
    let status = match tree.read(report) {
        Ok(status) => status,
        Err(e) => {
            println!("dt-info: FAIL: {e}");
            Status::Failure
        }
    };
    psci::system_off(status)
}

/// The lines after the first, and the verdict.
fn report(fdt: &Fdt<'_>) -> Status {
    let _console = crate::console::lock();

    print!("dt-info: model ");
    match devicetree::model(fdt) {
        Some(model) => print!("{model:?}"),
        None => print!("(none)"),
    }
    print!(", compatible");
    let mut any = false;
    for (i, c) in devicetree::compatible(fdt).enumerate() {
        print!("{} {c:?}", if i == 0 { "" } else { "," });
        any = true;
    }
    println!("{}", if any { "" } else { " (none)" });

    match devicetree::memory(fdt) {
        Ok(m) => println!("dt-info: memory {:#x} size {:#x}", m.base, m.size),
        Err(e) => println!("dt-info: memory: {e}"),
    }
    let cpus = devicetree::cpu_count(fdt);
    match cpus {
        Ok(n) => println!("dt-info: cpus {n}"),
        Err(e) => println!("dt-info: cpus: {e}"),
    }
    let gic = devicetree::gic(fdt);
    match gic {
        Ok(g) => println!(
            "dt-info: gic distributor {:#x} size {:#x}, cpu interface {:#x} size {:#x}",
            g.distributor.base, g.distributor.size, g.cpu_interface.base, g.cpu_interface.size
        ),
        Err(e) => println!("dt-info: gic: {e}"),
    }
    let uart = devicetree::uart(fdt);
    match uart {
        Ok(u) => println!(
            "dt-info: uart {:#x} interrupt {}",
            u.registers.base, u.interrupt
        ),
        Err(e) => println!("dt-info: uart: {e}"),
    }
    match devicetree::bootargs(fdt) {
        Some(b) => println!("dt-info: bootargs {b:?}"),
        None => println!("dt-info: bootargs (none)"),
    }

    let machine = match (gic, uart, cpus) {
        (Ok(gic), Ok(uart), Ok(cpus)) => devicetree::Machine { gic, uart, cpus },
        (gic, uart, cpus) => {
            let e: DtError = [gic.err(), uart.err(), cpus.err()]
                .into_iter()
                .flatten()
                .next()
                .expect("one of them failed");
            println!("dt-info: FAIL: {e}");
            return Status::Failure;
        }
    };
    let mut failed = false;
    for mismatch in devicetree::mismatches(&machine) {
        println!("dt-info: FAIL: {mismatch}");
        failed = true;
    }
    if failed {
        Status::Failure
    } else {
        println!("dt-info: PASS: gic, uart and cpus match the compiled-in memory map");
        Status::Success
    }
}
