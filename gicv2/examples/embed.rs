//! The model embedded in a few lines: a 2-CPU GIC, the distributor and
//! CPU 0's interface enabled through MMIO writes, the virtual timer's PPI
//! raised, and the interrupt taken and ended as a guest's handler would,
//! with an observer printing what the model reports.
//!
//! ```text
//! cargo run -p uirq-gicv2 --example embed
//! ```
//!
//! In a VMM the MMIO accesses come from the guest's trapped loads and
//! stores, the timer level from the hypervisor, and `irq_line` goes to the
//! vCPU's IRQ input; here they are plain calls.

use uirq_gicv2::regs::{self, gicc, gicd, Frame, IntId};
use uirq_gicv2::{Event, GicConfig, Gicv2, Observer};

/// Prints every event, with the register name for ignored accesses.
struct Print;

impl Observer for Print {
    fn event(&mut self, event: &Event) {
        match *event {
            Event::Ignored {
                frame,
                offset,
                reason,
                ..
            } => {
                let name = regs::name(frame, offset).unwrap_or("reserved");
                println!("  event: {name} at {offset:#x} ignored: {reason}");
            }
            _ => println!("  event: {event:?}"),
        }
    }
}

/// A 32-bit store to `frame` at `offset` from `cpu`, as a trapped guest
/// store arrives.
fn write(gic: &mut Gicv2, cpu: usize, frame: Frame, offset: u64, value: u32) {
    println!(
        "cpu {cpu} writes {:<14} = {value:#x}",
        regs::register(frame, offset).map_or("?".into(), |r| r.to_string())
    );
    match frame {
        Frame::Distributor => gic.distributor_write(cpu, offset, &value.to_le_bytes()),
        _ => gic.cpu_interface_write(cpu, offset, &value.to_le_bytes()),
    }
}

/// A 32-bit load from CPU `cpu`'s interface.
fn read_gicc(gic: &mut Gicv2, cpu: usize, offset: u64) -> u32 {
    let mut data = [0u8; 4];
    gic.cpu_interface_read(cpu, offset, &mut data);
    let value = u32::from_le_bytes(data);
    let name = regs::name(Frame::CpuInterface, offset).unwrap_or("?");
    println!("cpu {cpu} reads  {name:<14} = {value}");
    value
}

fn main() {
    let mut gic = Gicv2::new(GicConfig {
        num_cpus: 2,
        num_spis: 32,
    })
    .expect("2 CPUs and 32 SPIs is a valid GICv2");
    gic.set_observer(Some(Box::new(Print)));

    // PPI 11 (interrupt 27) is the EL1 virtual timer on Arm's recommended
    // wiring.
    let timer = IntId::ppi(11).expect("PPI 11 exists");
    let cpu = 0;

    // What a guest's GIC driver does at boot (IHI 0048B 4.3.1, 4.3.5,
    // 4.4.1, 4.4.2): distributor on, the timer's PPI enabled in CPU 0's
    // banked GICD_ISENABLER0, CPU interface on, priority mask open.
    use Frame::{CpuInterface as Gicc, Distributor as Gicd};
    write(&mut gic, cpu, Gicd, gicd::CTLR, 1);
    write(&mut gic, cpu, Gicd, gicd::ISENABLER, 1 << timer.raw());
    write(&mut gic, cpu, Gicc, gicc::CTLR, 1);
    write(&mut gic, cpu, Gicc, gicc::PMR, 0xFF);
    println!("irq_line(0) = {}", gic.irq_line(cpu));

    println!("timer level high on cpu 0");
    gic.set_ppi_level(cpu, timer, true);
    println!(
        "irq_line(0) = {}, irq_line(1) = {}",
        gic.irq_line(cpu),
        gic.irq_line(1)
    );
    assert!(gic.irq_line(cpu) && !gic.irq_line(1));

    // The guest's handler: acknowledge, silence the timer, end.
    let iar = read_gicc(&mut gic, cpu, gicc::IAR);
    assert_eq!(iar, timer.raw());
    println!(
        "irq_line(0) = {} (the interrupt is active)",
        gic.irq_line(cpu)
    );
    gic.set_ppi_level(cpu, timer, false);
    write(&mut gic, cpu, Gicc, gicc::EOIR, iar);
    assert!(!gic.irq_line(cpu));

    // A misuse the model answers read-as-zero and reports.
    write(&mut gic, cpu, Gicc, gicc::RPR, 0);

    println!(
        "irq_line(0) = {}: interrupt {iar} taken and ended",
        gic.irq_line(cpu)
    );
}
