//! The guest is hostile input: every offset, every size and every CPU index
//! must be answered without a panic.

use uirq_gicv2::regs::{gicc, gicd};

use super::*;

const SIZES: [usize; 7] = [0, 1, 2, 3, 4, 8, 16];

fn hammer(g: &mut Gicv2, cpu: usize, offset: u64) {
    for size in SIZES {
        let mut buf = vec![0xA5u8; size];
        g.distributor_read(cpu, offset, &mut buf);
        g.cpu_interface_read(cpu, offset, &mut buf);
        let ones = vec![0xFFu8; size];
        g.distributor_write(cpu, offset, &ones);
        g.cpu_interface_write(cpu, offset, &ones);
    }
    let _ = (g.irq_line(cpu), g.fiq_line(cpu));
}

// IHI 0048B 4.1.4 and the model's contract: any offset in and beyond both
// frames, with any size, is answered (RAZ/WI where no register accepts it).
#[test]
fn every_offset_and_size_is_answered() {
    for (cpus, spis) in [(1, 0), (3, 988), (8, 64)] {
        let mut g = gic(cpus, spis);
        firmware_init(&mut g);
        for offset in 0..0x2100u64 {
            hammer(&mut g, offset as usize % cpus, offset);
        }
        for offset in [u64::MAX, u64::MAX - 1, u64::MAX - 3, 1 << 63, 0x1_0000_0000] {
            hammer(&mut g, 0, offset);
        }
    }
}

// Accesses that name a CPU interface that does not exist are RAZ/WI.
#[test]
fn absent_cpus_are_raz_wi() {
    let mut g = gic(2, 32);
    firmware_init(&mut g);
    let before = g.clone();
    for cpu in [2, 8, usize::MAX] {
        hammer(&mut g, cpu, gicd::SGIR);
        hammer(&mut g, cpu, gicc::IAR);
        hammer(&mut g, cpu, gicd::ISENABLER);
        let mut buf = [0xFFu8; 4];
        g.distributor_read(cpu, gicd::TYPER, &mut buf);
        assert_eq!(buf, [0; 4]);
        assert!(!g.irq_line(cpu) && !g.fiq_line(cpu));
    }
    assert_eq!(g, before);
}

// Reads of an unaligned word fill the whole buffer with zeros, whatever was
// in it before.
#[test]
fn refused_reads_leave_no_stale_bytes() {
    let mut g = gic(1, 32);
    let mut buf = [0xEEu8; 8];
    g.distributor_read(0, gicd::TYPER, &mut buf);
    assert_eq!(buf, [0; 8]);
    let mut buf = [0xEEu8; 4];
    g.cpu_interface_read(0, gicc::IIDR + 1, &mut buf);
    assert_eq!(buf, [0; 4]);
}
