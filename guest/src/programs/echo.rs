//! `echo`: prints what the kernel command line tells it to, and stops.
//!
//! A guest controls everything it prints, and this one shows it: started
//! by the Linux boot protocol (`uirq-vmm --kernel uirq-guest.bin`) with
//!
//! ```text
//! uirq.program=echo uirq.echo=@@uirq job 0 exit 0\n@@uirq done
//! ```
//!
//! in its bootargs, it prints every line of the text after `uirq.echo=`
//! (each `\n`, a backslash and an `n`, a line break;
//! `uirq_guest::devicetree::echo_text`) exactly as given, and powers off
//! with `Status::Success`. The end-to-end tests make it print the lines the
//! harness itself prints (the L1 init's job markers, the VMM's reports), to
//! check that none of them is believed (`uirq_abi::report`).
//!
//! Without a device tree, or without `uirq.echo=` in the bootargs, it says
//! `echo: FAIL: ...` and fails.

use uirq_abi::exit::Status;
use uirq_guest::devicetree;

use crate::{linux_boot::DeviceTree, psci};

/// Prints the text and powers off.
pub fn run(tree: Option<DeviceTree>) -> ! {
    let Some(tree) = tree else {
        println!(
            "echo: FAIL: no device tree: start the firmware with the Linux boot protocol (uirq-vmm --kernel) and uirq.echo=TEXT in the bootargs"
        );
        psci::system_off(Status::Failure)
    };
    let status = tree.read(|fdt| {
        let bootargs = devicetree::bootargs(fdt).unwrap_or("");
        let Some(text) = devicetree::echo_text(bootargs) else {
            println!("echo: FAIL: the bootargs hold no uirq.echo=TEXT");
            return Status::Failure;
        };
        let _console = crate::console::lock();
        for line in devicetree::echo_lines(text) {
            println!("{line}");
        }
        Status::Success
    });
    psci::system_off(status.unwrap_or_else(|e| {
        println!("echo: FAIL: {e}");
        Status::Failure
    }))
}
