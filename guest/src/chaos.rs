//! The `chaos` program's pure part: its random numbers, and how each one
//! becomes an operation on the machine.
//!
//! The program (`programs::chaos` in the firmware) draws [`Op`]s from a
//! [`Rng`] seeded with its seed and the core's number, so a seed names one
//! sequence of operations per core, and carries them out with interrupts
//! unmasked. Everything here is arithmetic, tested on the build machine.
//!
//! # What is drawn
//!
//! | share | operation |
//! |------:|-----------|
//! | 18 % | any load or store in the GIC distributor frame |
//! | 15 % | any load or store in the GIC CPU interface frame |
//! |  5 % | any load in the UART frame |
//! | 10 % | a load or store to a hole: any address of the device gigabyte that no device claims |
//! | 10 % | `GICD_SGIR`: any SGI, target list and filter (the reserved filter 0b11 included) |
//! | 10 % | `GICD_ISENABLER`/`ICENABLER`: one interrupt of ids 0-63 enabled (3 in 4) or disabled |
//! |  8 % | `GICD_IPRIORITYR`: one byte, any priority, ids 0-63 |
//! |  4 % | `GICD_ITARGETSR`: one SPI's byte, any target list |
//! |  4 % | `GICD_ISPENDR`/`ICPENDR`: one interrupt of ids 0-63 pending or not |
//! |  4 % | `GICC_PMR`: open (0xF0) half the time, else any |
//! |  3 % | `GICC_CTLR`: enabled (1) half the time, else any of its ten bits |
//! |  3 % | `GICD_CTLR`: forwarding (1) half the time, else any of its two bits |
//! |  6 % | one of the two EL1 timers, armed to fire within 500 us, its PPI enabled |
//!
//! Every access is naturally aligned (1, 2, 4 or 8 bytes): an unaligned
//! access to Device memory is an alignment fault whatever `SCTLR_EL1.A`
//! says (Arm ARM B2.5.2), a fault in the guest, not a test of the VMM. GIC
//! registers are architecturally 32-bit, some byte-accessible (IHI 0048B
//! 4.1.4); the other sizes are there because a guest may use them, and the
//! VMM must answer them somehow. Stores to the UART are left out: they
//! would print, or switch off the console the verdict is printed on.
//! Holes are drawn from the VMM's map (`uirq_abi::layout`); QEMU's `virt`
//! has devices in some of them.

use uirq_abi::bench::{MARKER_BASE, MARKER_SIZE};
use uirq_abi::gicv2::{gicc, gicd};
use uirq_abi::layout::{
    overlaps, GICC_BASE, GICC_SIZE, GICD_BASE, GICD_SIZE, RAM_BASE, UART_BASE, UART_SIZE,
};

/// A xorshift64* generator (Vigna, "An experimental exploration of
/// Marsaglia's xorshift generators, scrambled", 2016): three shifts and a
/// multiply per number, period 2^64 - 1, good enough to pick operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng(u64);

impl Rng {
    /// The generator of core `core` for `seed`: the pair is mixed with
    /// splitmix64's finaliser, so neighbouring seeds and cores start far
    /// apart, and a zero state (which xorshift never leaves) cannot occur.
    pub const fn new(seed: u64, core: usize) -> Self {
        let mut z = seed
            .wrapping_add((core as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0; 0 gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // The high bits of a multiply: no modulo bias worth the name for
        // the small `n` used here.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// An access size: 1, 2, 4 or 8 bytes, 4 most often.
    pub fn size(&mut self) -> usize {
        match self.below(8) {
            0 => 1,
            1 => 2,
            2 => 8,
            _ => 4,
        }
    }
}

/// Where an access goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// The GIC distributor frame.
    Gicd,
    /// The GIC CPU interface frame.
    Gicc,
    /// The PL011's frame (loads only).
    Uart,
    /// An address no device claims: the offset is the address itself.
    Hole,
}

impl Region {
    /// The guest physical address offsets in this region are added to.
    pub const fn base(self) -> u64 {
        match self {
            Region::Gicd => GICD_BASE,
            Region::Gicc => GICC_BASE,
            Region::Uart => UART_BASE,
            Region::Hole => 0,
        }
    }
}

/// One operation of the `chaos` program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A load (`value` is `None`) or a store of `size` bytes at
    /// `region.base() + offset`.
    Access {
        /// Where.
        region: Region,
        /// Offset in the region (the address, for a hole), a multiple of
        /// `size`.
        offset: u64,
        /// 1, 2, 4 or 8.
        size: usize,
        /// The value stored (its low `size` bytes), or `None` for a load.
        value: Option<u64>,
    },
    /// Arm the virtual (or physical) timer to fire `after_us` from now,
    /// and enable its PPI.
    Timer {
        /// The EL1 physical timer (PPI 30) rather than the virtual one
        /// (PPI 27).
        physical: bool,
        /// Microseconds until it fires.
        after_us: u64,
    },
}

impl Op {
    /// The guest physical address of an access.
    pub fn address(&self) -> Option<u64> {
        match *self {
            Op::Access { region, offset, .. } => Some(region.base() + offset),
            Op::Timer { .. } => None,
        }
    }
}

/// The devices' frames in the device gigabyte, as the VMM maps them:
/// (base, size). An address outside all of them is a hole.
pub const FRAMES: [(u64, u64); 4] = [
    (GICD_BASE, GICD_SIZE),
    (GICC_BASE, GICC_SIZE),
    (UART_BASE, UART_SIZE),
    (MARKER_BASE, MARKER_SIZE),
];

/// Whether the `size`-byte access at `addr` touches no device frame and
/// stays below RAM.
pub fn is_hole(addr: u64, size: u64) -> bool {
    addr.checked_add(size).is_some_and(|end| end <= RAM_BASE)
        && FRAMES
            .iter()
            .all(|&(base, len)| !overlaps(addr, size, base, len))
}

/// A random aligned offset for a `size`-byte access in a `frame`-byte
/// frame.
fn offset_in(rng: &mut Rng, frame: u64, size: usize) -> u64 {
    let size = size as u64;
    rng.below(frame / size) * size
}

/// A random aligned hole address for a `size`-byte access.
fn hole(rng: &mut Rng, size: usize) -> u64 {
    loop {
        let addr = offset_in(rng, RAM_BASE, size);
        if is_hole(addr, size as u64) {
            return addr;
        }
    }
}

/// A load or store at random in `region` (`frame` bytes long).
fn any_access(rng: &mut Rng, region: Region, frame: u64, may_store: bool) -> Op {
    let size = rng.size();
    let offset = match region {
        Region::Hole => hole(rng, size),
        _ => offset_in(rng, frame, size),
    };
    let value = (may_store && rng.one_in(2)).then(|| rng.next_u64());
    Op::Access {
        region,
        offset,
        size,
        value,
    }
}

/// A 32-bit store at `offset` of the distributor or CPU interface.
fn store32(region: Region, offset: u64, value: u64) -> Op {
    Op::Access {
        region,
        offset,
        size: 4,
        value: Some(value & 0xFFFF_FFFF),
    }
}

/// A byte store at `offset` of the distributor.
fn store8(offset: u64, value: u64) -> Op {
    Op::Access {
        region: Region::Gicd,
        offset,
        size: 1,
        value: Some(value & 0xFF),
    }
}

/// The bit of interrupt `id` in a one-bit-per-interrupt distributor
/// register bank at `base` (IHI 0048B 4.3.5): (word offset, bit value).
fn bit_of(base: u64, id: u64) -> (u64, u64) {
    (base + 4 * (id / 32), 1 << (id % 32))
}

/// The next operation (see the module docs for the shares).
pub fn next_op(rng: &mut Rng) -> Op {
    let roll = rng.below(100);
    match roll {
        0..=17 => any_access(rng, Region::Gicd, GICD_SIZE, true),
        18..=32 => any_access(rng, Region::Gicc, GICC_SIZE, true),
        33..=37 => any_access(rng, Region::Uart, UART_SIZE, false),
        38..=47 => any_access(rng, Region::Hole, 0, true),
        48..=57 => {
            // GICD_SGIR (4.3.15): filter [25:24], target list [23:16],
            // NSATT [15], SGI id [3:0].
            let filter = rng.below(4) << 24;
            let targets = rng.below(256) << 16;
            let nsatt = rng.below(2) << 15;
            store32(
                Region::Gicd,
                gicd::SGIR,
                filter | targets | nsatt | rng.below(16),
            )
        }
        58..=67 => {
            let id = rng.below(64);
            let bank = if rng.one_in(4) {
                gicd::ICENABLER
            } else {
                gicd::ISENABLER
            };
            let (offset, bit) = bit_of(bank, id);
            store32(Region::Gicd, offset, bit)
        }
        68..=75 => store8(gicd::IPRIORITYR + rng.below(64), rng.next_u64()),
        76..=79 => store8(gicd::ITARGETSR + 32 + rng.below(32), rng.next_u64()),
        80..=83 => {
            let id = rng.below(64);
            let bank = if rng.one_in(2) {
                gicd::ICPENDR
            } else {
                gicd::ISPENDR
            };
            let (offset, bit) = bit_of(bank, id);
            store32(Region::Gicd, offset, bit)
        }
        84..=87 => {
            let pmr = if rng.one_in(2) { 0xF0 } else { rng.below(256) };
            store32(Region::Gicc, gicc::PMR, pmr)
        }
        88..=90 => {
            let ctlr = if rng.one_in(2) { 1 } else { rng.below(1 << 10) };
            store32(Region::Gicc, gicc::CTLR, ctlr)
        }
        91..=93 => {
            let ctlr = if rng.one_in(2) { 1 } else { rng.below(4) };
            store32(Region::Gicd, gicd::CTLR, ctlr)
        }
        _ => Op::Timer {
            physical: rng.one_in(2),
            after_us: rng.below(500),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_names_one_sequence_per_core() {
        let draw = |seed, core| {
            let mut rng = Rng::new(seed, core);
            (0..64).map(|_| next_op(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7, 0), draw(7, 0));
        assert_ne!(draw(7, 0), draw(7, 1));
        assert_ne!(draw(7, 0), draw(8, 0));
        // Seed 0 is a seed like any other (the state is never zero).
        assert_ne!(Rng::new(0, 0), Rng(0));
    }

    #[test]
    fn below_stays_in_range_and_reaches_both_ends() {
        let mut rng = Rng::new(1, 0);
        let draws: Vec<u64> = (0..10_000).map(|_| rng.below(10)).collect();
        assert!(draws.iter().all(|&d| d < 10));
        assert!(draws.contains(&0) && draws.contains(&9));
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.below(1), 0);
    }

    // Every access is aligned to its size, inside its frame (or in a
    // hole), and never a store to the UART; every kind of operation
    // occurs.
    #[test]
    fn operations_are_aligned_inside_their_frames_and_all_occur() {
        let mut seen = [0u32; 6];
        for seed in 1..5 {
            let mut rng = Rng::new(seed, 0);
            for _ in 0..20_000 {
                let op = next_op(&mut rng);
                match op {
                    Op::Access {
                        region,
                        offset,
                        size,
                        value,
                    } => {
                        assert!([1, 2, 4, 8].contains(&size), "{op:?}");
                        assert_eq!(offset % size as u64, 0, "{op:?}");
                        let frame = match region {
                            Region::Gicd => GICD_SIZE,
                            Region::Gicc => GICC_SIZE,
                            Region::Uart => UART_SIZE,
                            Region::Hole => RAM_BASE,
                        };
                        assert!(offset + size as u64 <= frame, "{op:?}");
                        if region == Region::Hole {
                            assert!(is_hole(offset, size as u64), "{op:?}");
                        }
                        if region == Region::Uart {
                            assert_eq!(value, None, "{op:?}");
                        }
                        let kind = match (region, value.is_some()) {
                            (Region::Hole, false) => 0,
                            (Region::Hole, true) => 1,
                            (Region::Uart, _) => 2,
                            (_, false) => 3,
                            (_, true) => 4,
                        };
                        seen[kind] += 1;
                    }
                    Op::Timer { after_us, .. } => {
                        assert!(after_us < 500);
                        seen[5] += 1;
                    }
                }
            }
        }
        assert!(seen.iter().all(|&n| n > 100), "{seen:?}");
    }

    #[test]
    fn holes_avoid_every_device_frame() {
        for (base, size) in FRAMES {
            assert!(!is_hole(base, 4));
            assert!(!is_hole(base + size - 1, 1));
            assert!(!is_hole(base - 4, 8), "straddles the start of {base:#x}");
            assert!(is_hole(base + size, 4) || FRAMES.iter().any(|f| f.0 == base + size));
        }
        assert!(is_hole(uirq_abi::layout::HOLE, 8));
        assert!(is_hole(0, 8));
        assert!(!is_hole(RAM_BASE - 4, 8), "runs into RAM");
        assert!(!is_hole(u64::MAX - 3, 8));
        assert_eq!(
            Op::Access {
                region: Region::Gicc,
                offset: 4,
                size: 4,
                value: None
            }
            .address(),
            Some(GICC_BASE + 4)
        );
    }

    #[test]
    fn structured_stores_hit_the_registers_they_mean() {
        assert_eq!(bit_of(gicd::ISENABLER, 27), (gicd::ISENABLER, 1 << 27));
        assert_eq!(bit_of(gicd::ICPENDR, 33), (gicd::ICPENDR + 4, 1 << 1));
        assert_eq!(
            store8(gicd::IPRIORITYR + 5, 0x1A2),
            Op::Access {
                region: Region::Gicd,
                offset: gicd::IPRIORITYR + 5,
                size: 1,
                value: Some(0xA2)
            }
        );
    }
}
