//! Property tests over random sequences of guest accesses and line changes.
//!
//! The operations are the fuzzing module's [`Op`]s, generated here with
//! proptest instead of decoded from bytes, and they run through the same
//! [`Scenario::run`]: every invariant the fuzz target checks (the line
//! contract, HPPIR, acknowledge, EOI and DIR rules, reads without side
//! effects, read-only registers; see `fuzzing.rs`) is checked here after
//! every step.

use proptest::prelude::*;
use uirq_gicv2::regs::{IntId, SPURIOUS};

use super::*;
use uirq_gicv2::fuzzing::{prime, would_acknowledge, Op, Scenario};

const CPUS: usize = 3;
const SPIS: u32 = 64;

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

/// Present CPUs only; PPIs 16-31; SPIs up to four past the implemented
/// ones; acknowledges through GICC_IAR; EOI and DIR of what was
/// acknowledged or ended before, else of 1023, which the model ignores.
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
            .prop_map(|(cpu, n, level)| Op::Ppi { cpu, id: 16 + n, level }),
        3 => (0u32..SPIS + 4, any::<bool>()).prop_map(|(n, level)| Op::Spi { id: 32 + n, level }),
        4 => cpu.clone().prop_map(|cpu| Op::Ack { cpu, alias: false }),
        3 => cpu.clone().prop_map(|cpu| Op::Eoi { cpu, alias: false, fallback: SPURIOUS }),
        1 => cpu.prop_map(|cpu| Op::Dir { cpu, fallback: SPURIOUS }),
    ]
}

/// Runs `ops` on a `CPUS`-CPU, `SPIS`-SPI GIC, checking after every step.
fn run(primed: bool, ops: Vec<Op>) {
    Scenario {
        config: GicConfig {
            num_cpus: CPUS,
            num_spis: SPIS,
        },
        primed,
        ops,
    }
    .run();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn from_reset(ops in prop::collection::vec(op(), 0..80)) {
        run(false, ops);
    }

    #[test]
    fn from_primed(ops in prop::collection::vec(op(), 0..80)) {
        run(true, ops);
    }

    // IHI 0048B 3.2.4: a level-sensitive interrupt that is enabled and
    // routed is signalled after deactivation exactly when its line is
    // still high, however the line moved while it was active.
    #[test]
    fn level_interrupt_resignals_iff_line_high(
        n in 0u32..SPIS, levels in prop::collection::vec(any::<bool>(), 1..8)
    ) {
        let mut g = gic(CPUS, SPIS);
        prime(&mut g);
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
        prop_assert_eq!(would_acknowledge(&g, 1) == spi.raw(), high);
    }

    // IHI 0048B 3.3.2, 4.4.2: an interrupt is signalled only if its priority
    // is strictly higher (numerically lower) than the priority mask. Random
    // accesses almost never make the two equal; this property does.
    #[test]
    fn pmr_masks_exactly_the_priorities_at_or_below_it(priority in any::<u8>(), pmr in any::<u8>()) {
        let mut g = gic(1, 32);
        firmware_init(&mut g);
        cw(&mut g, 0, gicc::PMR, u32::from(pmr));
        let spi = IntId::spi(0).unwrap();
        set_priority(&mut g, 0, spi.raw(), priority);
        enable(&mut g, 0, spi.raw());
        g.set_spi_level(spi, true);
        let beats_mask = priority < pmr;
        prop_assert_eq!(g.irq_line(0), beats_mask);
        prop_assert_eq!(would_acknowledge(&g, 0) == spi.raw(), beats_mask);
    }

    // IHI 0048B 3.3.3, 3.3.5: a pending interrupt preempts an active one
    // only if its *group* priority (the bits above the binary point) is
    // strictly higher; equal group priority never preempts.
    #[test]
    fn preemption_needs_a_strictly_higher_group_priority(
        active in any::<u8>(), pending in any::<u8>(), bpr in 0u32..8
    ) {
        let mut g = gic(1, 32);
        firmware_init(&mut g);
        cw(&mut g, 0, gicc::BPR, bpr);
        // The model may raise a BPR below its minimum; use what it kept.
        let bpr = cr(&mut g, 0, gicc::BPR) & 7;
        let (a, b) = (IntId::spi(0).unwrap(), IntId::spi(1).unwrap());
        set_priority(&mut g, 0, a.raw(), active);
        set_priority(&mut g, 0, b.raw(), pending);
        enable(&mut g, 0, a.raw());
        enable(&mut g, 0, b.raw());
        g.set_spi_level(a, true);
        prop_assume!(would_acknowledge(&g, 0) == a.raw());
        prop_assert_eq!(ack(&mut g, 0), a.raw());
        g.set_spi_level(b, true);
        let group = |p: u8| u32::from(p) & (0xFF_u32 << (bpr + 1)) & 0xFF;
        let preempts = group(pending) < group(active);
        prop_assert_eq!(g.irq_line(0), preempts, "bpr {}", bpr);
        prop_assert_eq!(would_acknowledge(&g, 0) == b.raw(), preempts);
    }
}
