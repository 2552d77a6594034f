//! The userspace irqchip as the vCPU threads share it: the GICv2 model, and
//! for every CPU the level of its IRQ and FIQ inputs *as KVM last heard it*.
//!
//! # Why the delivered levels are kept next to the model
//!
//! The model's outputs ([`Gicv2::irq_line`]) change whenever any vCPU
//! touches the GIC: CPU 0 writing GICD_SGIR raises CPU 1's line, an SPI
//! re-routed by GICD_ITARGETSR moves from one CPU's line to another's. KVM
//! must hear every change, through `KVM_IRQ_LINE`, and only once.
//!
//! On current kernels a `KVM_IRQ_LINE` for vCPU B issued from vCPU A's
//! thread can be lost: it sets HCR_EL2.VI in B's saved state atomically, but
//! B's own thread rewrites that word non-atomically whenever it enters
//! `KVM_RUN` or is scheduled back in, and when the two meet the bit is gone
//! (see docs/smp.md). So the default rule here is the **owner-thread rule**:
//! a vCPU's lines are only ever changed by that vCPU's own thread.
//!
//! - The owner, before it re-enters `KVM_RUN`, calls [`UserGic::take_own`]:
//!   under the lock it compares what the model wants with what was
//!   delivered, records the new level as delivered and gets the change to
//!   apply.
//! - Any thread, after an access that may have changed other CPUs' outputs,
//!   calls [`UserGic::stale_others`]: the CPUs whose wanted level differs
//!   from the delivered one. Their threads are kicked out of `KVM_RUN`; each
//!   applies its own change with `take_own`. A CPU whose line is already
//!   right is not kicked.
//!
//! Because the delivered level is read and written under the same lock as
//! the model, an owner that has recorded a level is certain to apply it
//! before it runs the guest again, and a kicker that sees the recorded level
//! equal to the wanted one may rely on that.
//!
//! [`Injection::CrossThread`] is the other scheme, kept as a reproducer of
//! the kernel race: [`UserGic::deliver_all`] calls `KVM_IRQ_LINE` for every
//! CPU whose line changed, from whichever thread caused the change.

use std::sync::{Arc, Mutex, MutexGuard};

use uirq_abi::gicv2::IntId;
use uirq_gicv2::Gicv2;

use crate::bus::{self, MmioDevice};
use crate::devices::irq_line::IrqLine;
use crate::probe::Line;

/// Who issues `KVM_IRQ_LINE` for a vCPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Injection {
    /// Only the vCPU's own thread (race-free; the default).
    #[default]
    OwnerThread,
    /// Whichever thread changed the GIC's output: the scheme that loses
    /// interrupts on current kernels, kept as a diagnostic.
    CrossThread,
}

impl Injection {
    /// The command-line spelling.
    pub const fn name(self) -> &'static str {
        match self {
            Injection::OwnerThread => "owner",
            Injection::CrossThread => "cross-thread",
        }
    }
}

/// A CPU's two interrupt inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuLines {
    /// The IRQ input.
    pub irq: bool,
    /// The FIQ input.
    pub fiq: bool,
}

/// What an owner must tell KVM: a new level per line, where it changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineChange {
    /// The IRQ input's new level, if it changed.
    pub irq: Option<bool>,
    /// The FIQ input's new level, if it changed.
    pub fiq: Option<bool>,
}

impl LineChange {
    /// The changes as (line, level) pairs, IRQ first.
    pub fn iter(self) -> impl Iterator<Item = (Line, bool)> {
        [
            self.irq.map(|l| (Line::Irq, l)),
            self.fiq.map(|l| (Line::Fiq, l)),
        ]
        .into_iter()
        .flatten()
    }

    /// Nothing to do.
    pub fn is_empty(self) -> bool {
        self.irq.is_none() && self.fiq.is_none()
    }
}

/// A set of CPU indices (a GICv2 has at most eight).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSet(pub u8);

impl CpuSet {
    /// The CPUs in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..8).filter(move |&c| self.0 & (1 << c) != 0)
    }

    /// True when no CPU is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

struct State {
    gic: Gicv2,
    delivered: Vec<CpuLines>,
}

impl State {
    fn wanted(&self, cpu: usize) -> CpuLines {
        CpuLines {
            irq: self.gic.irq_line(cpu),
            fiq: self.gic.fiq_line(cpu),
        }
    }

    fn change(&self, cpu: usize) -> LineChange {
        let (want, had) = (self.wanted(cpu), self.delivered[cpu]);
        LineChange {
            irq: (want.irq != had.irq).then_some(want.irq),
            fiq: (want.fiq != had.fiq).then_some(want.fiq),
        }
    }
}

/// The GIC model shared by every vCPU thread, with the line bookkeeping.
pub struct UserGic {
    state: Mutex<State>,
    num_cpus: usize,
}

impl UserGic {
    /// Shares `gic`; every line starts low, as KVM's do.
    pub fn new(gic: Gicv2) -> Self {
        let num_cpus = gic.config().num_cpus;
        Self {
            state: Mutex::new(State {
                gic,
                delivered: vec![CpuLines::default(); num_cpus],
            }),
            num_cpus,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        bus::lock(&self.state)
    }

    /// Number of CPU interfaces.
    pub fn num_cpus(&self) -> usize {
        self.num_cpus
    }

    /// Runs `f` on the model with the lock held.
    pub fn with<R>(&self, f: impl FnOnce(&mut Gicv2) -> R) -> R {
        f(&mut self.lock().gic)
    }

    /// For `cpu`'s own thread: the change of its lines KVM has not heard
    /// yet, recorded as delivered. The caller must apply it (KVM_IRQ_LINE)
    /// before it next enters `KVM_RUN`.
    pub fn take_own(&self, cpu: usize) -> LineChange {
        let mut s = self.lock();
        if cpu >= s.delivered.len() {
            return LineChange::default();
        }
        let change = s.change(cpu);
        s.delivered[cpu] = s.wanted(cpu);
        change
    }

    /// The CPUs other than `cpu` whose lines KVM has not heard yet: their
    /// threads need a kick.
    pub fn stale_others(&self, cpu: usize) -> CpuSet {
        let s = self.lock();
        let mut set = CpuSet::default();
        for c in (0..s.delivered.len()).filter(|&c| c != cpu) {
            if !s.change(c).is_empty() {
                set.0 |= 1 << c;
            }
        }
        set
    }

    /// For [`Injection::CrossThread`]: delivers every CPU's pending change
    /// through `deliver(cpu, line, level)`, from the calling thread, with
    /// the lock held so that changes reach KVM in the order they happened.
    /// Stops at the first error.
    pub fn deliver_all<E>(
        &self,
        mut deliver: impl FnMut(usize, Line, bool) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut s = self.lock();
        for cpu in 0..s.delivered.len() {
            let change = s.change(cpu);
            for (line, level) in change.iter() {
                deliver(cpu, line, level)?;
                match line {
                    Line::Irq => s.delivered[cpu].irq = level,
                    Line::Fiq => s.delivered[cpu].fiq = level,
                }
            }
        }
        Ok(())
    }

    /// What KVM was last told about `cpu`'s lines.
    pub fn delivered(&self, cpu: usize) -> CpuLines {
        self.lock().delivered.get(cpu).copied().unwrap_or_default()
    }
}

/// The distributor frame (GICD, 4 KiB) as a bus device.
pub struct DistributorFrame(pub Arc<UserGic>);

/// The CPU interface frame (GICC, 8 KiB) as a bus device. Every CPU
/// interface is reached at the same address; the vCPU index the bus passes
/// in says which one (IHI 0048B 4.1: the CPU interface registers are banked
/// by the accessing processor).
pub struct CpuInterfaceFrame(pub Arc<UserGic>);

impl MmioDevice for DistributorFrame {
    fn read(&mut self, vcpu: usize, offset: u64, data: &mut [u8]) {
        self.0.with(|g| g.distributor_read(vcpu, offset, data));
    }

    fn write(&mut self, vcpu: usize, offset: u64, data: &[u8]) {
        self.0.with(|g| g.distributor_write(vcpu, offset, data));
    }
}

impl MmioDevice for CpuInterfaceFrame {
    fn read(&mut self, vcpu: usize, offset: u64, data: &mut [u8]) {
        self.0.with(|g| g.cpu_interface_read(vcpu, offset, data));
    }

    fn write(&mut self, vcpu: usize, offset: u64, data: &[u8]) {
        self.0.with(|g| g.cpu_interface_write(vcpu, offset, data));
    }
}

/// A device's interrupt output wired to one SPI of the userspace GIC. The
/// level goes into the model; the vCPU loop that served the device's access
/// then finds which CPU's line changed and delivers or kicks as above.
pub struct GicSpi {
    gic: Arc<UserGic>,
    id: IntId,
}

impl GicSpi {
    /// The line into SPI `id` (an id that is not an implemented SPI is
    /// refused by the model with a warning at each use).
    pub fn new(gic: Arc<UserGic>, id: IntId) -> Self {
        Self { gic, id }
    }
}

impl IrqLine for GicSpi {
    fn set_level(&self, level: bool) {
        self.gic.with(|g| g.set_spi_level(self.id, level));
    }
}

#[cfg(test)]
mod tests {
    use uirq_abi::gicv2::{gicc, gicd};
    use uirq_gicv2::GicConfig;

    use super::*;

    const SGI_1: u32 = 1;

    /// A GIC with `cpus` CPU interfaces, distributor and every CPU
    /// interface enabled, priority mask open.
    fn gic(cpus: usize) -> Arc<UserGic> {
        let g = Arc::new(UserGic::new(
            Gicv2::new(GicConfig {
                num_cpus: cpus,
                num_spis: 32,
            })
            .unwrap(),
        ));
        let mut d = DistributorFrame(g.clone());
        let mut c = CpuInterfaceFrame(g.clone());
        d.write(0, gicd::CTLR, &3u32.to_le_bytes());
        for cpu in 0..cpus {
            c.write(cpu, gicc::CTLR, &1u32.to_le_bytes());
            c.write(cpu, gicc::PMR, &0xF0u32.to_le_bytes());
        }
        g
    }

    fn sgi(g: &Arc<UserGic>, from: usize, targets: u8) {
        let v = (u32::from(targets) << 16) | SGI_1;
        DistributorFrame(g.clone()).write(from, gicd::SGIR, &v.to_le_bytes());
    }

    fn iar(g: &Arc<UserGic>, cpu: usize) -> u32 {
        let mut b = [0u8; 4];
        CpuInterfaceFrame(g.clone()).read(cpu, gicc::IAR, &mut b);
        u32::from_le_bytes(b)
    }

    // An SGI from CPU 0 to CPU 1 makes CPU 1's line stale for CPU 0's
    // thread (kick CPU 1), and only CPU 1 takes the change, once.
    #[test]
    fn a_change_for_another_cpu_is_a_kick_and_the_owner_applies_it_once() {
        let g = gic(3);
        assert!(g.stale_others(0).is_empty());
        sgi(&g, 0, 0b010);
        assert_eq!(g.stale_others(0), CpuSet(0b010));
        assert_eq!(g.take_own(0), LineChange::default(), "CPU 0 is unaffected");
        assert_eq!(
            g.take_own(1),
            LineChange {
                irq: Some(true),
                fiq: None
            }
        );
        assert!(g.stale_others(0).is_empty(), "no second kick once applied");
        assert_eq!(g.take_own(1), LineChange::default(), "applied once");
        assert!(g.delivered(1).irq);
    }

    // No kick when the owner's line is already right: a second SGI while
    // the first is still pending changes no output.
    #[test]
    fn no_kick_when_the_line_is_already_right() {
        let g = gic(2);
        sgi(&g, 0, 0b10);
        g.take_own(1);
        sgi(&g, 0, 0b10);
        assert!(g.stale_others(0).is_empty());
    }

    // Acknowledge lowers the line (the CPU interface stops signalling once
    // the interrupt is active, IHI 0048B 3.2.4), which is the owner's own
    // change to apply.
    #[test]
    fn the_line_drops_on_acknowledge() {
        let g = gic(2);
        sgi(&g, 0, 0b10);
        g.take_own(1);
        assert_eq!(iar(&g, 1) & 0x3FF, SGI_1);
        assert_eq!(
            g.take_own(1),
            LineChange {
                irq: Some(false),
                fiq: None
            }
        );
    }

    // A thread that changes its own line does not kick itself.
    #[test]
    fn a_cpus_own_change_is_never_a_kick() {
        let g = gic(2);
        sgi(&g, 1, 0b10);
        assert!(g.stale_others(1).is_empty());
        assert_eq!(g.take_own(1).irq, Some(true));
    }

    // Cross-thread delivery reaches every changed CPU from one call, in
    // CPU order, and records the levels as delivered.
    #[test]
    fn cross_thread_delivery_applies_every_change_once() {
        let g = gic(4);
        sgi(&g, 0, 0b1010);
        let mut calls = Vec::new();
        g.deliver_all(|cpu, line, level| {
            calls.push((cpu, line, level));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(calls, [(1, Line::Irq, true), (3, Line::Irq, true)]);
        calls.clear();
        g.deliver_all(|cpu, line, level| {
            calls.push((cpu, line, level));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert!(calls.is_empty());
        assert!(g.stale_others(0).is_empty());
    }

    // An error stops delivery and leaves the failed line undelivered.
    #[test]
    fn a_failed_delivery_is_not_recorded() {
        let g = gic(2);
        sgi(&g, 0, 0b10);
        assert_eq!(g.deliver_all(|_, _, _| Err("boom")), Err("boom"));
        assert!(!g.delivered(1).irq);
        assert_eq!(g.stale_others(0), CpuSet(0b10));
    }

    // A device's SPI line routed to CPU 2 reaches only CPU 2's output.
    #[test]
    fn a_device_spi_follows_its_targets() {
        let g = gic(3);
        let id = IntId::spi(1).unwrap();
        let mut d = DistributorFrame(g.clone());
        // Enable SPI 33 (ISENABLER1 bit 1), target CPU 2, priority 0x80.
        d.write(0, gicd::ISENABLER + 4, &2u32.to_le_bytes());
        d.write(0, gicd::ITARGETSR + 33, &[0b100]);
        d.write(0, gicd::IPRIORITYR + 33, &[0x80]);
        let line = GicSpi::new(g.clone(), id);
        line.set_level(true);
        assert_eq!(g.stale_others(0), CpuSet(0b100));
        assert_eq!(g.take_own(2).irq, Some(true));
        line.set_level(false);
        assert_eq!(g.take_own(2).irq, Some(false));
    }

    // IHI 0048B 4.1: the two frames are separate ranges on one GIC; the CPU
    // interface answers for the vCPU that made the access.
    #[test]
    fn both_frames_reach_one_model_through_the_bus() {
        use crate::bus::Bus;
        let g = Arc::new(UserGic::new(
            Gicv2::new(GicConfig {
                num_cpus: 2,
                num_spis: 32,
            })
            .unwrap(),
        ));
        let mut bus = Bus::new();
        bus.insert(
            "gicd",
            0x0800_0000,
            0x1000,
            Arc::new(Mutex::new(DistributorFrame(g.clone()))),
        )
        .unwrap();
        bus.insert(
            "gicc",
            0x0801_0000,
            0x2000,
            Arc::new(Mutex::new(CpuInterfaceFrame(g.clone()))),
        )
        .unwrap();
        let mut buf = [0u8; 4];
        bus.read(0, 0x0800_0000 + gicd::TYPER, &mut buf);
        assert_eq!(u32::from_le_bytes(buf) >> 5 & 7, 1, "CPUNumber = 2 - 1");
        bus.write(1, 0x0801_0000 + gicc::PMR, &0xF0u32.to_le_bytes());
        bus.read(1, 0x0801_0000 + gicc::PMR, &mut buf);
        assert_eq!(u32::from_le_bytes(buf), 0xF0);
        bus.read(0, 0x0801_0000 + gicc::PMR, &mut buf);
        assert_eq!(u32::from_le_bytes(buf), 0, "CPU 0's PMR is its own");
        assert!(!g.with(|g| g.irq_line(0)));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Sgi { from: usize, targets: u8 },
        Ack { cpu: usize },
        Eoi { cpu: usize, id: u32 },
        Own { cpu: usize },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..4usize, 0..16u8).prop_map(|(from, targets)| Op::Sgi { from, targets }),
            (0..4usize).prop_map(|cpu| Op::Ack { cpu }),
            (0..4usize, 0..16u32).prop_map(|(cpu, id)| Op::Eoi { cpu, id }),
            (0..4usize).prop_map(|cpu| Op::Own { cpu }),
        ]
    }

    proptest::proptest! {
        // Whatever the interleaving of GIC accesses from any CPU and owner
        // updates, KVM's view (the levels the owners applied, one change
        // at a time) always equals what was recorded as delivered; a CPU is
        // stale for a kicker exactly when its wanted level differs; and once
        // every owner has applied its change, KVM's view is the model's.
        #[test]
        fn kvm_hears_every_change_once_and_ends_up_with_the_models_lines(
            ops in proptest::collection::vec(op(), 1..60)
        ) {
            let g = gic(4);
            let mut kvm = [CpuLines::default(); 4];
            let apply = |cpu: usize, change: LineChange, kvm: &mut [CpuLines; 4]| {
                if let Some(l) = change.irq {
                    proptest::prop_assert_ne!(kvm[cpu].irq, l, "a change that changes nothing");
                    kvm[cpu].irq = l;
                }
                if let Some(l) = change.fiq {
                    kvm[cpu].fiq = l;
                }
                Ok(())
            };
            for op in ops {
                match op {
                    Op::Sgi { from, targets } => sgi(&g, from, targets),
                    Op::Ack { cpu } => {
                        iar(&g, cpu);
                    }
                    Op::Eoi { cpu, id } => {
                        let v = (id & 0x3FF) | ((cpu as u32 & 7) << 10);
                        CpuInterfaceFrame(g.clone()).write(cpu, gicc::EOIR, &v.to_le_bytes());
                    }
                    Op::Own { cpu } => apply(cpu, g.take_own(cpu), &mut kvm)?,
                }
                for (cpu, heard) in kvm.iter().enumerate() {
                    proptest::prop_assert_eq!(*heard, g.delivered(cpu));
                    let wanted = g.with(|m| CpuLines { irq: m.irq_line(cpu), fiq: m.fiq_line(cpu) });
                    for kicker in (0..4).filter(|&k| k != cpu) {
                        let stale = g.stale_others(kicker).iter().any(|c| c == cpu);
                        proptest::prop_assert_eq!(stale, wanted != *heard);
                    }
                }
            }
            for cpu in 0..4 {
                apply(cpu, g.take_own(cpu), &mut kvm)?;
                let wanted = g.with(|m| CpuLines { irq: m.irq_line(cpu), fiq: m.fiq_line(cpu) });
                proptest::prop_assert_eq!(kvm[cpu], wanted);
            }
        }
    }

    #[test]
    fn cpu_sets_list_their_members() {
        assert_eq!(CpuSet(0b1001_0010).iter().collect::<Vec<_>>(), [1, 4, 7]);
        assert!(CpuSet(0).is_empty());
    }
}
