//! The events an observer sees: an interrupt's life (IHI 0048B 3.2.4,
//! Figure 3-1) and the accesses the model ignored.

use std::sync::{Arc, Mutex};

use uirq_gicv2::regs::{gicc, gicd, SPURIOUS};
use uirq_gicv2::{Event, Frame, Observer};

use super::*;

/// Keeps every event, for the test to look at.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Event>>>);

impl Observer for Recorder {
    fn event(&mut self, event: &Event) {
        self.0.lock().unwrap().push(*event);
    }
}

impl Recorder {
    /// The events seen since the last call.
    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A firmware-initialised GIC with a recorder installed.
fn observed(num_cpus: usize, num_spis: u32) -> (Gicv2, Recorder) {
    let mut g = gic(num_cpus, num_spis);
    firmware_init(&mut g);
    let recorder = Recorder::default();
    g.set_observer(Some(Box::new(recorder.clone())));
    (g, recorder)
}

/// GICC_CTLR.EOImodeS (IHI 0048B 4.4.1).
const EOIMODE: u32 = 1 << 9;

// IHI 0048B 3.2.4: a level-sensitive PPI becomes pending when its line
// rises; the timer's PPI on CPU 0 is reported with CPU 0's banked copy.
#[test]
fn timer_level_is_pending_once() {
    let (mut g, rec) = observed(2, 0);
    enable(&mut g, 0, 27);
    g.set_ppi_level(0, id(27), true);
    assert_eq!(
        rec.take(),
        [Event::Pending {
            id: id(27),
            cpu: Some(0),
            source: None
        }]
    );
    // Still high: still pending, nothing new.
    g.set_ppi_level(0, id(27), true);
    assert_eq!(rec.take(), []);
    // Falling: no event; rising again: pending again.
    g.set_ppi_level(0, id(27), false);
    g.set_ppi_level(0, id(27), true);
    assert_eq!(rec.take().len(), 1);
}

// IHI 0048B 4.4.4: acknowledge takes the interrupt from pending to active;
// an SGI's acknowledge carries its source CPU, as GICC_IAR bits [12:10].
#[test]
fn sgi_pending_and_acknowledged_with_its_source() {
    let (mut g, rec) = observed(2, 0);
    // CPU 0 sends SGI 3 to CPU 1 (target list 0b10).
    dw(&mut g, 0, gicd::SGIR, 0b10 << 16 | 3);
    assert_eq!(
        rec.take(),
        [Event::Pending {
            id: id(3),
            cpu: Some(1),
            source: Some(0)
        }]
    );
    assert_eq!(ack(&mut g, 1), 3);
    assert_eq!(
        rec.take(),
        [Event::Acknowledged {
            cpu: 1,
            id: id(3),
            source: Some(0)
        }]
    );
    // Nothing left: the spurious answer is not an acknowledge.
    assert_eq!(ack(&mut g, 1), SPURIOUS);
    assert_eq!(rec.take(), []);
}

// IHI 0048B 4.4.5: with EOImode = 0, GICC_EOIR drops the running priority
// and deactivates, in that order.
#[test]
fn eoir_drops_priority_and_deactivates() {
    let (mut g, rec) = observed(1, 32);
    enable(&mut g, 0, 27);
    g.set_ppi_level(0, id(27), true);
    assert_eq!(ack(&mut g, 0), 27);
    g.set_ppi_level(0, id(27), false);
    rec.take();
    eoi(&mut g, 0, 27);
    assert_eq!(
        rec.take(),
        [
            Event::PriorityDropped { cpu: 0, id: id(27) },
            Event::Deactivated { cpu: 0, id: id(27) },
        ]
    );
}

// IHI 0048B 3.2.1, 4.4.15: with EOImode = 1, GICC_EOIR only drops the
// priority; the interrupt stays active until GICC_DIR.
#[test]
fn eoimode_1_deactivates_only_at_dir() {
    let (mut g, rec) = observed(1, 32);
    cw(&mut g, 0, gicc::CTLR, 1 | EOIMODE);
    enable(&mut g, 0, 27);
    g.set_ppi_level(0, id(27), true);
    assert_eq!(ack(&mut g, 0), 27);
    g.set_ppi_level(0, id(27), false);
    rec.take();
    eoi(&mut g, 0, 27);
    assert_eq!(rec.take(), [Event::PriorityDropped { cpu: 0, id: id(27) }]);
    cw(&mut g, 0, gicc::DIR, 27);
    assert_eq!(rec.take(), [Event::Deactivated { cpu: 0, id: id(27) }]);
    // A second DIR finds it inactive: nothing happens.
    cw(&mut g, 0, gicc::DIR, 27);
    assert_eq!(rec.take(), []);
}

// An SPI's state is not banked, so its pending event names no CPU, whether
// its line rose or GICD_ISPENDR set it (IHI 0048B 4.3.7).
#[test]
fn spis_are_pending_for_no_cpu_in_particular() {
    let (mut g, rec) = observed(2, 32);
    g.set_spi_level(id(40), true);
    dw(&mut g, 1, gicd::ISPENDR + 4, 1 << (41 - 32));
    let spi = |raw| Event::Pending {
        id: id(raw),
        cpu: None,
        source: None,
    };
    assert_eq!(rec.take(), [spi(40), spi(41)]);
    // Setting it pending again while pending: nothing new.
    dw(&mut g, 0, gicd::ISPENDR + 4, 1 << (41 - 32));
    assert_eq!(rec.take(), []);
}

// IHI 0048B 4.3.17: GICD_SPENDSGIR makes an SGI pending from the sources
// its bits name.
#[test]
fn spendsgir_reports_each_new_source() {
    let (mut g, rec) = observed(2, 0);
    dwb(&mut g, 0, gicd::SPENDSGIR + 5, 0b11);
    let from = |source| Event::Pending {
        id: id(5),
        cpu: Some(0),
        source: Some(source),
    };
    assert_eq!(rec.take(), [from(0), from(1)]);
}

// IHI 0048B 4.1.4: a halfword access is answered RAZ/WI, and the observer
// is told which access and why.
#[test]
fn an_ignored_access_is_reported() {
    let (mut g, rec) = observed(2, 32);
    let mut half = [0u8; 2];
    g.distributor_read(1, gicd::TYPER, &mut half);
    g.cpu_interface_write(0, gicc::IAR, &7u32.to_le_bytes());
    g.cpu_interface_read(5, gicc::IAR, &mut [0u8; 4]);
    let events = rec.take();
    assert_eq!(
        events[0],
        Event::Ignored {
            cpu: 1,
            frame: Frame::Distributor,
            offset: gicd::TYPER,
            size: 2,
            write: false,
            reason: "unsupported access size or alignment (RAZ/WI)",
        }
    );
    assert_eq!(
        events[1],
        Event::Ignored {
            cpu: 0,
            frame: Frame::CpuInterface,
            offset: gicc::IAR,
            size: 4,
            write: true,
            reason: "write to read-only GICC register (ignored)",
        }
    );
    assert!(matches!(
        events[2],
        Event::Ignored {
            cpu: 5,
            frame: Frame::CpuInterface,
            write: false,
            ..
        }
    ));
    assert_eq!(events.len(), 3);
}

// An EOI with nothing active is UNPREDICTABLE (IHI 0048B 4.4.5); the model
// ignores it and says so, naming the register written.
#[test]
fn an_eoi_with_nothing_active_is_reported() {
    let (mut g, rec) = observed(1, 0);
    eoi(&mut g, 0, 27);
    assert!(matches!(
        rec.take()[..],
        [Event::Ignored {
            offset: gicc::EOIR,
            write: true,
            reason: "EOI with no active interrupt (ignored)",
            ..
        }]
    ));
}

// A level driven on an input the GIC does not have is ignored and
// reported; it is the VMM's mistake, not the guest's.
#[test]
fn a_level_on_no_input_is_reported() {
    let (mut g, rec) = observed(1, 32);
    g.set_spi_level(id(27), true);
    g.set_ppi_level(3, id(27), true);
    g.set_spi_level(id(100), true);
    let events = rec.take();
    assert!(matches!(
        events[..],
        [
            Event::LevelIgnored { cpu: None, .. },
            Event::LevelIgnored { cpu: Some(3), .. },
            Event::LevelIgnored { cpu: None, .. },
        ]
    ));
}

// The observer is the VMM's: a clone of the model has none, removing it
// stops the events, and taking it hands it back.
#[test]
fn clones_and_removal() {
    let (mut g, rec) = observed(1, 32);
    let mut copy = g.clone();
    assert!(g.has_observer() && !copy.has_observer());
    assert_eq!(copy, g, "equality compares state only");
    copy.set_spi_level(id(40), true);
    assert_eq!(rec.take(), []);
    let observer = g.take_observer();
    assert!(observer.is_some() && !g.has_observer());
    g.set_spi_level(id(40), true);
    assert_eq!(rec.take(), []);
    g.set_observer(observer);
    g.set_spi_level(id(41), true);
    assert_eq!(rec.take().len(), 1);
    g.set_observer(None);
    g.set_spi_level(id(42), true);
    assert_eq!(rec.take(), []);
}
