//! Property tests over random sequences of guest accesses and line changes.

use proptest::prelude::*;
use uirq_abi::gicv2::{gicc, gicd, IntId, SPURIOUS};

use super::*;

const CPUS: usize = 3;
const SPIS: u32 = 64;

#[derive(Clone, Debug)]
enum Op {
    DistWrite {
        cpu: usize,
        offset: u64,
        size: usize,
        value: u32,
    },
    DistRead {
        cpu: usize,
        offset: u64,
        size: usize,
    },
    CpuWrite {
        cpu: usize,
        offset: u64,
        size: usize,
        value: u32,
    },
    CpuRead {
        cpu: usize,
        offset: u64,
        size: usize,
    },
    Ppi {
        cpu: usize,
        n: u32,
        level: bool,
    },
    Spi {
        n: u32,
        level: bool,
    },
    Ack {
        cpu: usize,
    },
    EoiLast {
        cpu: usize,
    },
    Dir {
        cpu: usize,
    },
}

fn offset(frame: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => (0..frame / 4).prop_map(|w| w * 4),
        2 => 0..frame,
        1 => any::<u64>(),
    ]
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![8 => Just(4), 3 => Just(1), 1 => Just(2), 1 => Just(8), 1 => Just(0)]
}

/// Values that make interesting things happen: all ones, single bits,
/// small numbers (interrupt ids for EOIR/DIR/SGIR), anything.
fn value() -> impl Strategy<Value = u32> {
    prop_oneof![
        2 => any::<u32>(),
        2 => (0u32..32).prop_map(|b| 1 << b),
        2 => 0u32..64,
        1 => Just(u32::MAX),
        1 => (0u32..4, 0u32..256, 0u32..16).prop_map(|(f, t, s)| f << 24 | t << 16 | s),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let cpu = 0..CPUS;
    prop_oneof![
        6 => (cpu.clone(), offset(0x1000), size(), value())
            .prop_map(|(cpu, offset, size, value)| Op::DistWrite { cpu, offset, size, value }),
        2 => (cpu.clone(), offset(0x1000), size())
            .prop_map(|(cpu, offset, size)| Op::DistRead { cpu, offset, size }),
        3 => (cpu.clone(), offset(0x1100), size(), value())
            .prop_map(|(cpu, offset, size, value)| Op::CpuWrite { cpu, offset, size, value }),
        2 => (cpu.clone(), offset(0x1100), size())
            .prop_map(|(cpu, offset, size)| Op::CpuRead { cpu, offset, size }),
        3 => (cpu.clone(), 0u32..16, any::<bool>())
            .prop_map(|(cpu, n, level)| Op::Ppi { cpu, n, level }),
        3 => (0u32..SPIS + 4, any::<bool>()).prop_map(|(n, level)| Op::Spi { n, level }),
        4 => cpu.clone().prop_map(|cpu| Op::Ack { cpu }),
        3 => cpu.clone().prop_map(|cpu| Op::EoiLast { cpu }),
        1 => cpu.prop_map(|cpu| Op::Dir { cpu }),
    ]
}

/// Everything on, wide open: so that random sequences actually deliver.
fn primed() -> Gicv2 {
    let mut g = gic(CPUS, SPIS);
    dw(&mut g, 0, gicd::CTLR, 0b11);
    for cpu in 0..CPUS {
        cw(&mut g, cpu, gicc::CTLR, 0b111);
        cw(&mut g, cpu, gicc::PMR, 0xFF);
        for w in 0..3 {
            dw(&mut g, cpu, gicd::ISENABLER + 4 * w, u32::MAX);
        }
    }
    for spi in 32..32 + SPIS as u64 {
        dwb(&mut g, 0, gicd::ITARGETSR + spi, 0xFF);
    }
    g
}

/// Registers the guest cannot change, with their values.
fn read_only(g: &mut Gicv2) -> Vec<u32> {
    let mut v: Vec<u32> = [gicd::TYPER, gicd::IIDR, gicd::ICFGR]
        .into_iter()
        .chain((gicd::IDREGS..0x1000).step_by(4))
        .map(|o| dr(g, 0, o))
        .collect();
    for cpu in 0..CPUS {
        v.push(cr(g, cpu, gicc::IIDR));
        v.push(dr(g, cpu, gicd::ITARGETSR + 16)); // PPI targets: own bit
    }
    v
}

/// What an acknowledge would answer on `cpu` right now, without taking it.
fn would_ack(g: &Gicv2, cpu: usize) -> u32 {
    ack(&mut g.clone(), cpu)
}

fn apply(g: &mut Gicv2, op: &Op, last: &mut [Option<u32>; CPUS]) {
    match *op {
        Op::DistWrite {
            cpu,
            offset,
            size,
            value,
        } => {
            let bytes = u64::from(value).to_le_bytes();
            g.distributor_write(cpu, offset, &bytes[..size.min(8)]);
        }
        Op::DistRead { cpu, offset, size } => {
            let before = g.clone();
            g.distributor_read(cpu, offset, &mut vec![0; size]);
            assert_eq!(*g, before, "distributor reads have no side effects");
        }
        Op::CpuWrite {
            cpu,
            offset,
            size,
            value,
        } => {
            let bytes = u64::from(value).to_le_bytes();
            g.cpu_interface_write(cpu, offset, &bytes[..size.min(8)]);
        }
        Op::CpuRead { cpu, offset, size } => {
            let before = g.clone();
            g.cpu_interface_read(cpu, offset, &mut vec![0; size]);
            if offset != gicc::IAR && offset != gicc::AIAR {
                assert_eq!(*g, before, "only IAR/AIAR reads have side effects");
            }
        }
        Op::Ppi { cpu, n, level } => g.set_ppi_level(cpu, IntId::ppi(n).unwrap(), level),
        Op::Spi { n, level } => {
            if let Some(id) = IntId::spi(n) {
                g.set_spi_level(id, level);
            }
        }
        Op::Ack { cpu } => {
            let pmr = cr(g, cpu, gicc::PMR);
            let value = ack(g, cpu);
            let raw = value & 0x3FF;
            if raw < 1020 {
                last[cpu] = Some(value);
                // IHI 0048B 4.4.4: what IAR returns is an enabled interrupt
                // above the priority mask, and it is now active.
                assert!(
                    bit(g, cpu, gicd::ISACTIVER, raw),
                    "acknowledged {raw} is active"
                );
                assert!(
                    bit(g, cpu, gicd::ISENABLER, raw),
                    "acknowledged {raw} is enabled"
                );
                let prio = drb(g, cpu, gicd::IPRIORITYR + u64::from(raw));
                assert!(
                    u32::from(prio) < pmr,
                    "priority {prio:#x} below PMR {pmr:#x}"
                );
                assert_eq!(value >> 13, 0);
                if raw >= 16 {
                    assert_eq!(value >> 10, 0, "source CPU only for SGIs");
                }
            }
        }
        Op::EoiLast { cpu } => {
            if let Some(v) = last[cpu].take() {
                eoi(g, cpu, v);
            }
        }
        Op::Dir { cpu } => {
            if let Some(v) = last[cpu] {
                cw(g, cpu, gicc::DIR, v);
            }
        }
    }
}

/// The CPU line contract: a line is up exactly when an acknowledge would
/// return something other than 1023, and IRQ and FIQ are never both up
/// (only one interrupt is signalled at a time).
fn check_lines(g: &Gicv2) {
    for cpu in 0..CPUS {
        let up = g.irq_line(cpu) || g.fiq_line(cpu);
        assert!(!(g.irq_line(cpu) && g.fiq_line(cpu)));
        assert_eq!(up, would_ack(g, cpu) != SPURIOUS, "cpu {cpu}");
    }
}

fn run(mut g: Gicv2, ops: &[Op]) {
    let ro = read_only(&mut g);
    let mut last = [None; CPUS];
    check_lines(&g);
    for op in ops {
        apply(&mut g, op, &mut last);
        check_lines(&g);
    }
    assert_eq!(
        read_only(&mut g),
        ro,
        "read-only registers kept their value"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn from_reset(ops in prop::collection::vec(op(), 0..80)) {
        run(gic(CPUS, SPIS), &ops);
    }

    #[test]
    fn from_primed(ops in prop::collection::vec(op(), 0..80)) {
        run(primed(), &ops);
    }

    // IHI 0048B 3.2.4: a level-sensitive interrupt that is enabled and
    // routed is signalled after deactivation exactly when its line is
    // still high, however the line moved while it was active.
    #[test]
    fn level_interrupt_resignals_iff_line_high(
        n in 0u32..SPIS, levels in prop::collection::vec(any::<bool>(), 1..8)
    ) {
        let mut g = primed();
        let spi = IntId::spi(n).unwrap();
        g.set_spi_level(spi, true);
        let taken = ack(&mut g, 0);
        prop_assert_eq!(taken, spi.raw());
        for &l in &levels {
            g.set_spi_level(spi, l);
        }
        eoi(&mut g, 0, taken);
        let high = *levels.last().unwrap();
        prop_assert_eq!(g.irq_line(0), high);
        prop_assert_eq!(would_ack(&g, 1) == spi.raw(), high);
    }
}
