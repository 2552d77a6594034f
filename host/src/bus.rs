//! The MMIO bus: which device answers a trapped guest access.
//!
//! Guest physical addresses that are not RAM have no memory behind them, so
//! KVM exits to the VMM (KVM_EXIT_MMIO) for every load or store there. The bus
//! maps each address range to one device and hands the device the offset
//! into its range, never the absolute address, so a device model does not
//! know where it is mapped. Ranges may not overlap; an access no device
//! claims is logged (a few times, then counted: `crate::ratelimit`) and
//! answered as read-as-zero / write-ignored, because a misbehaving guest must
//! never stop the VMM. That is the VMM's `--unmapped raz`; by default the
//! exit handling asks [`Bus::claims`] first and answers an access to
//! nothing with a synchronous external abort instead, as hardware does
//! (`crate::exit::Unmapped`).

use std::fmt;
use std::sync::{Arc, Mutex};

use thiserror::Error;

/// A device model that answers MMIO accesses.
///
/// `vcpu` is the index of the vCPU that made the access: some devices (the
/// GIC's banked registers) answer differently per CPU. `data.len()` is the
/// access size in bytes (1, 2, 4 or 8); a read fills `data` in little-endian
/// order, a write takes its value from it.
pub trait MmioDevice: Send {
    /// A guest load of `data.len()` bytes at `offset` within the device.
    fn read(&mut self, vcpu: usize, offset: u64, data: &mut [u8]);
    /// A guest store of `data` at `offset` within the device.
    fn write(&mut self, vcpu: usize, offset: u64, data: &[u8]);
}

/// A device shared between the bus and whoever else drives it (the vCPU loop
/// feeds interrupt lines into the GIC model, for instance).
pub type SharedDevice = Arc<Mutex<dyn MmioDevice>>;

/// Why a device could not be added to the bus.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BusError {
    /// The new range shares addresses with a device already on the bus.
    #[error("MMIO range {new} overlaps {existing}")]
    Overlap {
        /// The range that was refused.
        new: Range,
        /// The range already registered.
        existing: Range,
    },
    /// The range is empty or runs past the end of the address space.
    #[error("MMIO range at {base:#x} with size {size:#x} is empty or wraps around")]
    BadRange {
        /// Requested base address.
        base: u64,
        /// Requested size.
        size: u64,
    },
}

/// A half-open guest physical address range `[base, base + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First address.
    pub base: u64,
    /// Number of bytes.
    pub size: u64,
}

impl Range {
    fn contains(&self, addr: u64, len: u64) -> bool {
        addr >= self.base && addr - self.base < self.size && len <= self.size - (addr - self.base)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.base, self.base + self.size)
    }
}

struct Entry {
    range: Range,
    name: &'static str,
    device: SharedDevice,
}

/// The set of devices mapped into the guest's MMIO space.
#[derive(Default)]
pub struct Bus {
    entries: Vec<Entry>,
}

/// What the bus did with an access; the vCPU loop counts these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A device answered; its name is given.
    Claimed(&'static str),
    /// No device covers the whole access: it was read as zero or ignored.
    Unclaimed,
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `device` at `[base, base + size)` under `name` (used in logs).
    pub fn insert(
        &mut self,
        name: &'static str,
        base: u64,
        size: u64,
        device: SharedDevice,
    ) -> Result<(), BusError> {
        if size == 0 || base.checked_add(size).is_none() {
            return Err(BusError::BadRange { base, size });
        }
        let new = Range { base, size };
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| uirq_abi::layout::overlaps(base, size, e.range.base, e.range.size))
        {
            return Err(BusError::Overlap {
                new,
                existing: e.range,
            });
        }
        self.entries.push(Entry {
            range: new,
            name,
            device,
        });
        Ok(())
    }

    fn find(&self, addr: u64, len: usize) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.range.contains(addr, len as u64))
    }

    /// Whether a device covers the whole `len`-byte access at `addr`
    /// (what [`Bus::read`] and [`Bus::write`] would answer as
    /// [`Access::Claimed`]). The exit handling asks first when an access to
    /// nothing is to be answered with an external abort rather than
    /// read-as-zero / write-ignored (`crate::exit::Unmapped`).
    pub fn claims(&self, addr: u64, len: usize) -> bool {
        self.find(addr, len).is_some()
    }

    /// Serves a guest load at `addr`. An unclaimed load reads as zero.
    pub fn read(&self, vcpu: usize, addr: u64, data: &mut [u8]) -> Access {
        match self.find(addr, data.len()) {
            Some(e) => {
                lock(&e.device).read(vcpu, addr - e.range.base, data);
                Access::Claimed(e.name)
            }
            None => {
                data.fill(0);
                crate::limited!(
                    warn,
                    vcpu,
                    addr = format_args!("{addr:#x}"),
                    size = data.len(),
                    "guest read from unmapped MMIO address (reads as zero)"
                );
                Access::Unclaimed
            }
        }
    }

    /// Serves a guest store at `addr`. An unclaimed store is ignored.
    pub fn write(&self, vcpu: usize, addr: u64, data: &[u8]) -> Access {
        match self.find(addr, data.len()) {
            Some(e) => {
                lock(&e.device).write(vcpu, addr - e.range.base, data);
                Access::Claimed(e.name)
            }
            None => {
                crate::limited!(
                    warn,
                    vcpu,
                    addr = format_args!("{addr:#x}"),
                    size = data.len(),
                    "guest write to unmapped MMIO address (ignored)"
                );
                Access::Unclaimed
            }
        }
    }
}

/// Locks a device. A device model that panicked while locked has already
/// reported its bug; its state is still the best there is, so keep serving.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the last access it saw and answers reads with its offset.
    #[derive(Default)]
    struct Probe {
        last_write: Option<(usize, u64, Vec<u8>)>,
    }

    impl MmioDevice for Probe {
        fn read(&mut self, _vcpu: usize, offset: u64, data: &mut [u8]) {
            let bytes = offset.to_le_bytes();
            data.copy_from_slice(&bytes[..data.len()]);
        }
        fn write(&mut self, vcpu: usize, offset: u64, data: &[u8]) {
            self.last_write = Some((vcpu, offset, data.to_vec()));
        }
    }

    fn probe() -> (Arc<Mutex<Probe>>, SharedDevice) {
        let p = Arc::new(Mutex::new(Probe::default()));
        let d: SharedDevice = p.clone();
        (p, d)
    }

    #[test]
    fn devices_see_offsets_not_addresses() {
        let mut bus = Bus::new();
        let (p, d) = probe();
        bus.insert("probe", 0x1000, 0x100, d).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(bus.read(0, 0x1010, &mut buf), Access::Claimed("probe"));
        assert_eq!(u32::from_le_bytes(buf), 0x10);
        assert_eq!(
            bus.write(3, 0x10fc, &[1, 2, 3, 4]),
            Access::Claimed("probe")
        );
        assert_eq!(
            p.lock().unwrap().last_write,
            Some((3, 0xfc, vec![1, 2, 3, 4]))
        );
    }

    #[test]
    fn overlaps_are_refused_and_neighbours_accepted() {
        let mut bus = Bus::new();
        bus.insert("a", 0x1000, 0x1000, probe().1).unwrap();
        let err = bus.insert("b", 0x1fff, 0x10, probe().1).unwrap_err();
        assert!(matches!(err, BusError::Overlap { .. }));
        let err = bus.insert("c", 0x0, 0x2000, probe().1).unwrap_err();
        assert!(matches!(err, BusError::Overlap { .. }));
        bus.insert("d", 0x2000, 0x1000, probe().1).unwrap();
        bus.insert("e", 0x0, 0x1000, probe().1).unwrap();
    }

    #[test]
    fn empty_and_wrapping_ranges_are_refused() {
        let mut bus = Bus::new();
        assert!(matches!(
            bus.insert("z", 0x1000, 0, probe().1),
            Err(BusError::BadRange { .. })
        ));
        assert!(matches!(
            bus.insert("w", u64::MAX, 2, probe().1),
            Err(BusError::BadRange { .. })
        ));
    }

    // A guest that loops on an unmapped address gets a few lines in the
    // log, then a count, not a line per access.
    #[test]
    fn a_guest_hammering_an_unmapped_address_logs_a_few_lines() {
        let bus = Bus::new();
        let lines = crate::ratelimit::tests::log_lines(|| {
            let mut buf = [0u8; 4];
            for _ in 0..1_000_000 {
                assert_eq!(bus.read(0, 0x5000, &mut buf), Access::Unclaimed);
                assert_eq!(bus.write(1, 0x5000, &buf), Access::Unclaimed);
            }
        });
        let reads = lines.iter().filter(|l| l.contains("read from")).count();
        let writes = lines.iter().filter(|l| l.contains("write to")).count();
        // At most five in full each (fewer if other tests came first: the
        // limiters are per process), and a summary a second for however
        // long the loop took.
        assert!(reads <= 30, "{lines:#?}");
        assert!(writes <= 30, "{lines:#?}");
    }

    #[test]
    fn unclaimed_reads_are_zero_and_straddling_accesses_unclaimed() {
        let mut bus = Bus::new();
        bus.insert("a", 0x1000, 0x100, probe().1).unwrap();
        let mut buf = [0xffu8; 8];
        assert_eq!(bus.read(0, 0x5000, &mut buf), Access::Unclaimed);
        assert_eq!(buf, [0; 8]);
        // An 8-byte access that starts inside the range and ends outside it
        // belongs to no device.
        let mut buf = [0xffu8; 8];
        assert_eq!(bus.read(0, 0x10fc, &mut buf), Access::Unclaimed);
        assert_eq!(bus.write(0, 0x10fc, &[0; 8]), Access::Unclaimed);
    }
}
