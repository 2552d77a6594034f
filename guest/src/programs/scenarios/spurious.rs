//! `spurious`: `GICC_IAR` answers the spurious id 1023, and changes
//! nothing, whenever no interrupt can be acknowledged (IHI 0048B 3.2.5,
//! 4.4.4): nothing pending at all; the only pending interrupt already
//! acknowledged (active); the only pending one not of higher priority than
//! the running priority.
//!
//! Everything runs with IRQs masked, acknowledging by polling `GICC_IAR`,
//! which is how software finds interrupts without taking the exception.

use uirq_guest::drivers::gicv2::Acknowledged;

use super::common::{self, IDLE, SPI_A, SPI_B, SPURIOUS};

pub fn run() -> ! {
    let (gicd, gicc) = common::setup();
    let iar = || {
        gicc.acknowledge_or_special()
            .map(|a: Acknowledged| a.id().raw())
    };

    check_eq!(
        gicc.highest_pending(),
        SPURIOUS,
        "GICC_HPPIR with nothing pending"
    );
    check_eq!(
        gicc.acknowledge_or_special().map(|a| a.iar()),
        Err(SPURIOUS),
        "GICC_IAR with nothing pending"
    );
    check_eq!(
        gicc.running_priority(),
        IDLE,
        "GICC_RPR after a spurious read"
    );

    common::enable(&gicd, SPI_A, 0x80);
    common::enable(&gicd, SPI_B, 0x90);
    gicd.set_pending(SPI_A);
    let a = match gicc.acknowledge_or_special() {
        Ok(a) => a,
        Err(special) => common::fail(format_args!("GICC_IAR with SPI 42 pending: {special}")),
    };
    check_eq!(a.id(), SPI_A, "first acknowledge");
    check_eq!(
        gicc.running_priority(),
        0x80,
        "GICC_RPR after acknowledging SPI 42"
    );
    check_eq!(
        iar(),
        Err(SPURIOUS),
        "GICC_IAR with SPI 42 active, nothing pending"
    );

    gicd.set_pending(SPI_B);
    check_eq!(
        iar(),
        Err(SPURIOUS),
        "GICC_IAR with SPI 43 (0x90) pending under running priority 0x80"
    );
    check!(
        gicd.is_pending(SPI_B),
        "the refused acknowledge took SPI 43"
    );
    gicc.end_of_interrupt(a);
    check_eq!(
        gicc.running_priority(),
        IDLE,
        "GICC_RPR after EOI of SPI 42"
    );

    let b = match gicc.acknowledge_or_special() {
        Ok(b) => b,
        Err(special) => common::fail(format_args!("GICC_IAR with SPI 43 pending: {special}")),
    };
    check_eq!(b.id(), SPI_B, "second acknowledge");
    gicc.end_of_interrupt(b);
    check_eq!(iar(), Err(SPURIOUS), "GICC_IAR at the end");
    check_eq!(gicc.running_priority(), IDLE, "GICC_RPR at the end");
    check_eq!(
        common::log_len(),
        0,
        "IRQ exceptions taken with IRQs masked"
    );
    common::pass()
}
