//! Tests of the GICv2 model through its public API, one behaviour each,
//! each citing the section of ARM IHI 0048B it checks, and of the events
//! it reports to an observer.

mod cpu_interface;
mod distributor;
mod fuzz_corpus;
mod hostile;
mod observer;
mod properties;
mod sgi;
mod timer;

use uirq_gicv2::regs::{gicc, gicd, IntId};

// The word accessors are the fuzzing module's, so that the fuzz target,
// the property tests and these tests read and write registers alike.
use uirq_gicv2::fuzzing::{bit, cr, cw, dr, dw};
use uirq_gicv2::{GicConfig, Gicv2};

/// A GIC with `num_cpus` CPU interfaces and `num_spis` SPIs.
fn gic(num_cpus: usize, num_spis: u32) -> Gicv2 {
    Gicv2::new(GicConfig { num_cpus, num_spis }).unwrap()
}

fn id(raw: u32) -> IntId {
    IntId::new(raw).unwrap()
}

/// Distributor byte read.
fn drb(g: &mut Gicv2, cpu: usize, offset: u64) -> u8 {
    let mut buf = [0u8; 1];
    g.distributor_read(cpu, offset, &mut buf);
    buf[0]
}

/// Distributor byte write.
fn dwb(g: &mut Gicv2, cpu: usize, offset: u64, value: u8) {
    g.distributor_write(cpu, offset, &[value]);
}

/// What the project's firmware does at boot, on each CPU: distributor on,
/// CPU interface on, priority mask fully open. Interrupts stay Group 0.
fn firmware_init(g: &mut Gicv2) {
    dw(g, 0, gicd::CTLR, 1);
    for cpu in 0..g.config().num_cpus {
        cw(g, cpu, gicc::CTLR, 1);
        cw(g, cpu, gicc::PMR, 0xFF);
    }
}

/// Sets `cpu`'s view of interrupt `raw`'s priority with a byte write.
fn set_priority(g: &mut Gicv2, cpu: usize, raw: u32, priority: u8) {
    dwb(g, cpu, gicd::IPRIORITYR + u64::from(raw), priority);
}

/// Enables interrupt `raw` (as `cpu` sees it) through GICD_ISENABLERn.
fn enable(g: &mut Gicv2, cpu: usize, raw: u32) {
    dw(
        g,
        cpu,
        gicd::ISENABLER + 4 * u64::from(raw / 32),
        1 << (raw % 32),
    );
}

/// Acknowledge on `cpu`: the GICC_IAR value.
fn ack(g: &mut Gicv2, cpu: usize) -> u32 {
    cr(g, cpu, gicc::IAR)
}

/// End of interrupt on `cpu`.
fn eoi(g: &mut Gicv2, cpu: usize, value: u32) {
    cw(g, cpu, gicc::EOIR, value);
}
