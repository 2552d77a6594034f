//! `sgi-smp` (3 or more cores): where an SGI goes, by `GICD_SGIR`'s
//! target list and filter, and who `GICC_IAR` says sent it (IHI 0048B
//! 4.3.15, Table 4-21; 4.4.4).
//!
//! | step | sender | `TargetListFilter`, list | must be taken by          |
//! |------|--------|--------------------------|---------------------------|
//! | 1    | core 0 | 0b00 list, {1, 2}        | cores 1 and 2 only        |
//! | 2    | core 1 | 0b01 all but the sender  | every core except 1       |
//! | 3    | core 2 | 0b10 the sender only     | core 2 only               |
//! | 4    | core 2 | 0b00 list, {0, 2}        | cores 0 and 2 (itself)    |
//!
//! Each SGI has its own id (2, 3, 4, 5), so a stray delivery cannot pass
//! for the right one. After each send every core opens an IRQ window
//! (`cores::window`), and each core's log must hold exactly the SGI
//! expected there, with `GICC_IAR.CPUID` (bits [12:10]) naming the sender:
//! `+3/1 -3/1` is SGI 3 from core 1, entered and left.

use uirq_abi::boot::{Program, MAX_CPUS};
use uirq_guest::drivers::gicv2::{Acknowledged, SgiTarget};

use super::{
    common::{self, sgi, EXIT},
    cores,
};
use crate::board;

pub fn run() -> ! {
    let (gicd, _) = common::setup();
    let n = cores::start(Program::SgiSmp);
    let ids = [sgi(2), sgi(3), sgi(4), sgi(5)];
    cores::enable_everywhere(n, &ids, 0x80);

    // 1. A list: cores 1 and 2, from core 0.
    check!(gicd.send_sgi(SgiTarget::List(0b110), ids[0]), "SGI 2");
    expect(n, 2, 0, |core| core == 1 || core == 2);

    // 2. All but the sender, from core 1.
    cores::on(1, |_| {
        check!(
            board::gicd().send_sgi(SgiTarget::AllOthers, sgi(3)),
            "SGI 3"
        );
    });
    expect(n, 3, 1, |core| core != 1);

    // 3. Only the sender, core 2.
    cores::on(2, |_| {
        check!(board::gicd().send_sgi(SgiTarget::Myself, sgi(4)), "SGI 4");
    });
    expect(n, 4, 2, |core| core == 2);

    // 4. A list naming another core and the sender itself, from core 2.
    cores::on(2, |_| {
        check!(
            board::gicd().send_sgi(SgiTarget::List(0b101), sgi(5)),
            "SGI 5"
        );
    });
    expect(n, 5, 2, |core| core == 0 || core == 2);

    common::pass()
}

/// Opens a window on every core and checks that exactly the cores for
/// which `takes(core)` holds took SGI `id` from `source`, once.
fn expect(n: usize, id: u32, source: u32, takes: impl Fn(usize) -> bool) {
    let mut expected = [0; MAX_CPUS];
    for (core, e) in expected.iter_mut().enumerate().take(n) {
        *e = usize::from(takes(core));
    }
    cores::window(n, expected);
    let iar = id | source << 10;
    for core in 0..n {
        if takes(core) {
            common::expect_log_of(core, &[iar, EXIT | iar]);
        } else {
            common::expect_log_of(core, &[]);
        }
    }
    common::clear_logs();
}

pub fn on_irq(irq: Acknowledged, _entry_ticks: u64) {
    board::gicc().end_of_interrupt(irq);
}
