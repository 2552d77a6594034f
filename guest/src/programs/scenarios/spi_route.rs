//! `spi-route` (2 or more cores): the processor targets registers,
//! `GICD_ITARGETSRn` (IHI 0048B 4.3.12).
//!
//! 1. **Banked, read-only bytes.** `GICD_ITARGETSR0`-`7` (ids 0-31: SGIs
//!    and PPIs) read, on every core, as that core's own bit in every byte.
//! 2. **Routing.** SPI 42 targeted at core 1 only and made pending
//!    (`GICD_ISPENDR`, 4.3.7) is taken by core 1, not by core 0.
//! 3. **Re-routing at run time.** Targeted at core 0 instead, and made
//!    pending again, it is taken by core 0, not by core 1.
//!
//! (An SPI with several targets is `spi-1ofn`'s subject. Re-targeting an
//! SPI *while* it is pending moves the pending state too, 4.3.12, but
//! QEMU 7.2's GIC keeps a software-pending SPI with the targets it had
//! when it was made pending, so this scenario re-targets between two
//! pendings, which both readings agree on.)

use core::sync::atomic::{AtomicU64, Ordering};

use uirq_abi::{
    boot::{Program, MAX_CPUS},
    gicv2::gicd::ITARGETSR,
};
use uirq_guest::drivers::gicv2::Acknowledged;

use super::{
    common::{self, EXIT, SPI_A},
    cores,
};
use crate::board;

/// What each core read from `GICD_ITARGETSR0`-`7`: 0 when every byte was
/// its own bit, else `1 << 63 | word << 32 | value` of the first word that
/// was not.
static TARGETS_READ: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

pub fn run() -> ! {
    let (gicd, _) = common::setup();
    let n = cores::start(Program::SpiRoute);

    // 1. Every core reads its banked ITARGETSR0-7.
    cores::on_all(n, |core| {
        let raw = board::gicd().raw();
        let own = u32::from_ne_bytes([1 << core; 4]);
        let first_wrong = (0..8u64).find_map(|word| {
            let value = raw.read32(ITARGETSR as usize + 4 * word as usize)?;
            (value != own).then_some(1 << 63 | word << 32 | u64::from(value))
        });
        TARGETS_READ[core].store(first_wrong.unwrap_or(0), Ordering::Relaxed);
    });
    for (core, read) in TARGETS_READ.iter().enumerate().take(n) {
        let read = read.load(Ordering::Relaxed);
        check!(
            read == 0,
            "core {core} read GICD_ITARGETSR{} = {:#010x}, expected {:#04x} in every byte",
            (read >> 32) & 0xFF,
            read & 0xFFFF_FFFF,
            1 << core
        );
    }

    // 2. SPI 42 to core 1.
    common::enable(&gicd, SPI_A, 0x80);
    gicd.set_targets(SPI_A, 0b10);
    check_eq!(gicd.targets(SPI_A), 0b10, "GICD_ITARGETSR of SPI 42");
    gicd.set_pending(SPI_A);
    check!(
        !common::signalled(),
        "SPI 42 for core 1 signalled on core 0"
    );
    let a = SPI_A.raw();
    cores::window(n, only(1));
    common::expect_log_of(1, &[a, EXIT | a]);
    expect_nothing_but(n, 1);

    // 3. Re-routed to core 0.
    gicd.set_targets(SPI_A, 0b01);
    gicd.set_pending(SPI_A);
    check!(
        common::signalled(),
        "SPI 42 re-routed to core 0 not signalled there"
    );
    cores::window(n, only(0));
    common::expect_log_of(0, &[a, EXIT | a]);
    expect_nothing_but(n, 0);

    common::pass()
}

/// Window expectations: one interrupt on `core`, none elsewhere.
fn only(core: usize) -> [usize; MAX_CPUS] {
    let mut expected = [0; MAX_CPUS];
    expected[core] = 1;
    expected
}

/// Fails unless every core but `core` has an empty log; then clears all.
fn expect_nothing_but(n: usize, core: usize) {
    for other in (0..n).filter(|&c| c != core) {
        common::expect_log_of(other, &[]);
    }
    common::clear_logs();
}

pub fn on_irq(irq: Acknowledged, _entry_ticks: u64) {
    board::gicc().end_of_interrupt(irq);
}
