//! The GIC model's events as the VMM's log lines.
//!
//! The model (`uirq-gicv2`) logs nothing itself; it reports to an
//! [`Observer`]. [`GicLog`] is the VMM's: every access the model ignored
//! (a halfword access, a write to a read-only register, an EOI with nothing
//! active, an access from a CPU the GIC does not have) becomes a warning,
//! and so does a line level driven on an input the GIC does not have. As
//! for every line a guest can trigger (`crate::ratelimit`), each cause (the
//! model's reason sentence) is logged a few times in full and then only
//! counted.
//!
//! Every event, logged or not, is then handed to the next observer, if one
//! is chained with [`GicLog::with_next`] or [`GicLog::set_next`]: that is
//! where a tracer or a counter goes, without a second observer slot in the
//! model.

use std::fmt;

use uirq_gicv2::regs::{self, Frame};
use uirq_gicv2::{Event, Observer};

use crate::ratelimit::RateLimit;

/// Turns the model's events into rate-limited warnings, then forwards them.
#[derive(Default)]
pub struct GicLog {
    /// One limiter per reason the model has given so far. The reasons are
    /// the model's `&'static str` sentences, a fixed set, so this stays
    /// small.
    causes: Vec<(&'static str, RateLimit)>,
    /// The observer every event goes to next.
    next: Option<Box<dyn Observer>>,
}

impl GicLog {
    /// Logs, and forwards to nobody.
    pub fn new() -> Self {
        Self::default()
    }

    /// Logs, and hands every event to `next` afterwards.
    pub fn with_next(next: Box<dyn Observer>) -> Self {
        Self {
            causes: Vec::new(),
            next: Some(next),
        }
    }

    /// Replaces the observer events are forwarded to (`None`: nobody).
    pub fn set_next(&mut self, next: Option<Box<dyn Observer>>) {
        self.next = next;
    }

    /// The limiter of `reason`, created on its first occurrence.
    fn limit(&mut self, reason: &'static str) -> &RateLimit {
        let i = match self.causes.iter().position(|(r, _)| *r == reason) {
            Some(i) => i,
            None => {
                self.causes.push((reason, RateLimit::new()));
                self.causes.len() - 1
            }
        };
        &self.causes[i].1
    }
}

impl fmt::Debug for GicLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GicLog")
            .field("causes", &self.causes.len())
            .field("next", &self.next.is_some())
            .finish()
    }
}

/// The register at an offset, by its architectural name (`GICD_ISENABLER1`),
/// or `reserved`; formatted only when a line is written.
struct RegisterName(Frame, u64);

impl fmt::Display for RegisterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match regs::register(self.0, self.1) {
            Some(register) => register.fmt(f),
            None => f.write_str("reserved"),
        }
    }
}

impl Observer for GicLog {
    fn event(&mut self, event: &Event) {
        match *event {
            Event::Ignored {
                cpu,
                frame,
                offset,
                size,
                write,
                reason,
            } => crate::limited_by!(
                self.limit(reason),
                warn,
                frame = frame.prefix(),
                cpu,
                offset = format_args!("{offset:#x}"),
                register = %RegisterName(frame, offset),
                size,
                write,
                "GICv2: {reason}"
            ),
            Event::LevelIgnored {
                cpu,
                id,
                level,
                reason,
            } => crate::limited_by!(
                self.limit(reason),
                warn,
                cpu = ?cpu,
                id = id.raw(),
                level,
                "GICv2: {reason}"
            ),
            _ => {}
        }
        if let Some(next) = self.next.as_mut() {
            next.event(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use uirq_abi::gicv2::{gicc, gicd, VTIMER};
    use uirq_gicv2::{GicConfig, Gicv2};

    use super::*;
    use crate::ratelimit::tests::log_lines;
    use crate::ratelimit::FULL;

    /// Counts the events it is handed.
    #[derive(Clone, Default)]
    struct Count(Arc<Mutex<usize>>);

    impl Observer for Count {
        fn event(&mut self, _: &Event) {
            *self.0.lock().unwrap() += 1;
        }
    }

    fn logged_gic(next: Option<Count>) -> Gicv2 {
        let mut g = Gicv2::new(GicConfig {
            num_cpus: 1,
            num_spis: 32,
        })
        .unwrap();
        let mut log = GicLog::new();
        log.set_next(next.map(|c| Box::new(c) as Box<dyn Observer>));
        g.set_observer(Some(Box::new(log)));
        g
    }

    // A guest that misuses the GIC gets a warning naming the register and
    // the reason, a few times per cause (IHI 0048B 4.1.4: a halfword access
    // is not supported; Table 4-2: GICC_IAR is read-only).
    #[test]
    fn ignored_accesses_are_warnings_limited_per_reason() {
        let mut g = logged_gic(None);
        let lines = log_lines(|| {
            for _ in 0..1000 {
                g.distributor_read(0, gicd::ISENABLER + 4, &mut [0u8; 2]);
                g.cpu_interface_write(0, gicc::IAR, &[0; 4]);
            }
        });
        let size = lines
            .iter()
            .filter(|l| l.contains("unsupported access size"))
            .count();
        let read_only = lines
            .iter()
            .filter(|l| l.contains("write to read-only GICC register"))
            .count();
        assert!(
            (FULL as usize..=FULL as usize + 2).contains(&size),
            "{lines:#?}"
        );
        assert!(
            (FULL as usize..=FULL as usize + 2).contains(&read_only),
            "{lines:#?}"
        );
        let first = &lines[0];
        for field in [
            "WARN",
            "GICv2: unsupported access size or alignment (RAZ/WI)",
            "frame=\"GICD\"",
            "offset=0x104",
            "register=GICD_ISENABLER1",
            "size=2",
            "write=false",
        ] {
            assert!(first.contains(field), "{field} in {first}");
        }
    }

    // A level on an input the GIC lacks is the VMM's own mistake: logged.
    #[test]
    fn ignored_levels_are_warnings() {
        let mut g = logged_gic(None);
        let lines = log_lines(|| g.set_spi_level(VTIMER, true));
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(lines[0].contains("GICv2: set_spi_level on a non-SPI id"));
        assert!(lines[0].contains("id=27"));
    }

    // Every event reaches the chained observer, logged or not: here the
    // timer becoming pending (not logged) and a reserved offset (logged).
    #[test]
    fn every_event_is_forwarded() {
        let count = Count::default();
        let mut g = logged_gic(Some(count.clone()));
        let lines = log_lines(|| {
            g.set_ppi_level(0, VTIMER, true);
            g.distributor_read(0, 0xD00, &mut [0u8; 4]);
        });
        assert_eq!(*count.0.lock().unwrap(), 2);
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(lines[0].contains("register=reserved"), "{lines:#?}");
    }
}
