//! Fuzzing support: arbitrary bytes in, a checked run of the GICv2 model out.
//!
//! One decoder and one set of checks serve two callers: the cargo-fuzz
//! target `gicv2_mmio` (the project's `fuzz/fuzz_targets/gicv2_mmio.rs`),
//! which feeds it whatever libFuzzer generates, and the test
//! `fuzz_corpus` (`tests/model/fuzz_corpus.rs`), which replays every file
//! of the committed corpus (`fuzz/corpus/gicv2_mmio/`) under plain
//! `cargo test`.
//! [`run`] panics when the model breaks one of the invariants below; that
//! panic is what the fuzzer reports as a crash.
//!
//! The property tests (`tests/model/properties.rs`) use the same
//! checks without the decoder: they generate [`Op`]s with proptest and
//! run them as a [`Scenario`]. The register helpers at the end of this file
//! are also the unit tests' own.
//!
//! It drives the model only through its public API, as the VMM does.
//!
//! # Input format
//!
//! ```text
//! byte 0      bits [2:0] num_cpus - 1; bits [5:3] SPI count, one of
//!             SPI_CHOICES; bit 6 start "primed" (everything enabled,
//!             mask open, SPIs routed everywhere); bit 7 "raw config":
//!             then byte 1 is num_cpus (0..=15) and bytes 2-3 num_spis
//!             (u16 LE), and the run checks that Gicv2::new accepts exactly
//!             the configurations the architecture allows (IHI 0048B 4.3.2)
//! then ops    one opcode byte (modulo OPCODES) and its operands, until the
//!             input runs out (an op cut short is dropped)
//! ```
//!
//! | opcode | op | operands, in order |
//! |---|---|---|
//! | 0 | [`Op::DistRead`] | cpu, size, offset |
//! | 1 | [`Op::DistWrite`] | cpu, size, offset, value |
//! | 2 | [`Op::CpuRead`] | cpu, size, offset |
//! | 3 | [`Op::CpuWrite`] | cpu, size, offset, value |
//! | 4 | [`Op::Ppi`] | cpu, one byte: bits `[3:0]` PPI, bit 6 level; bit 7 set: id `(b & 0x7F) * 8` instead |
//! | 5 | [`Op::Spi`] | halfword: bits `[9:0]` id - 32, bit 14 an SGI/PPI id instead, bit 15 level |
//! | 6 | [`Op::Ack`] | cpu, one byte: bit 0 alias (GICC_AIAR) |
//! | 7 | [`Op::Eoi`] | cpu, one byte: bit 0 alias (GICC_AEOIR), fallback halfword |
//! | 8 | [`Op::Dir`] | cpu, fallback halfword |
//!
//! A *cpu* is one byte: 0x00-0xEF mean `b % num_cpus`; 0xF0-0xFE mean
//! `b & 0xF`, which names absent CPUs too; 0xFF means `usize::MAX`. A
//! *size* is one byte whose bits `[1:0]` pick 4, 1, 2 or 8 bytes. An
//! *offset* is a little-endian halfword `h`: below 0x8000 it is a word index
//! (a byte offset for 1-byte accesses) wrapped into the frame; from 0x8000
//! it is the raw offset `h & 0x7FFF`, unaligned or past the frame; from
//! 0xFFF8 it is just below `u64::MAX`. A *value* is a little-endian word.
//!
//! # What is checked
//!
//! After every step, for every CPU (IHI 0048B 3.2, 4.4):
//! - IRQ and FIQ are never both high (one interrupt is signalled at a time);
//! - a line is high exactly when an acknowledge (tried on a clone) would
//!   return something other than the spurious id 1023 (the VMM's
//!   KVM_IRQ_LINE contract);
//! - when a line is high, GICC_HPPIR names the interrupt GICC_IAR would
//!   return (4.4.7), and that interrupt is implemented, enabled, pending
//!   and above the priority mask;
//! - absent CPUs have both lines low;
//! - the read-only registers (GICD_TYPER, IIDR, identification block,
//!   ICFGR0, banked ITARGETSR0-7, GICC_IIDR) still hold their reset value.
//!
//! Per operation:
//! - reads have no side effect, except a word read of GICC_IAR or GICC_AIAR;
//!   a read fills the whole buffer, zero beyond 4 bytes and zero entirely
//!   when the access size is refused (IHI 0048B 4.1.4);
//! - an acknowledged interrupt (IHI 0048B 4.4.4) is implemented, enabled,
//!   active, above the priority mask, Group 1 if taken through GICC_AIAR,
//!   carries a source CPU only if it is an SGI (and then a present one),
//!   and GICC_RPR becomes its group priority (3.3.2, 3.3.4);
//! - an EOI never raises the running priority, and with EOImode = 0 an
//!   EOIR for an active interrupt (while some priority is active)
//!   deactivates it (4.4.5); with EOImode = 1 a DIR deactivates the
//!   interrupt it names (4.4.15).

use alloc::{vec, vec::Vec};

use crate::regs::{gicc, gicd, IntId, SPURIOUS};

use crate::{GicConfig, Gicv2, MAX_CPUS, MAX_SPIS};

/// The SPI counts that bits `[5:3]` of byte 0 choose from: none, small ones
/// (twice as likely), 224 (ITLinesNumber 7) and the largest the
/// architecture allows.
/// Every line query scans every implemented id, so large counts are kept
/// rare to keep the fuzzer fast; raw-config mode reaches any other count.
pub const SPI_CHOICES: [u32; 8] = [0, 32, 32, 64, 64, 96, 224, 988];

/// Number of distinct opcodes; an opcode byte is taken modulo this.
pub const OPCODES: u8 = 9;

/// Size of the distributor frame (IHI 0048B Table 4-1).
const GICD_FRAME: u64 = crate::regs::GICD_FRAME_SIZE;
/// Size of the CPU interface frame (IHI 0048B Table 4-2, GICC_DIR at 0x1000).
const GICC_FRAME: u64 = crate::regs::GICC_FRAME_SIZE;
/// Most acknowledged values remembered per CPU for EOI and DIR.
const MAX_REMEMBERED: usize = 64;

/// One decoded step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A load from the distributor frame.
    DistRead {
        /// The accessing CPU (may be absent).
        cpu: usize,
        /// Offset in the frame (may be outside it).
        offset: u64,
        /// Access size in bytes, at most 8 (the decoder makes 1, 2, 4 or 8;
        /// the property tests also 0).
        size: usize,
    },
    /// A store to the distributor frame.
    DistWrite {
        /// The accessing CPU (may be absent).
        cpu: usize,
        /// Offset in the frame (may be outside it).
        offset: u64,
        /// Access size in bytes, at most 8 (the decoder makes 1, 2, 4 or 8;
        /// the property tests also 0).
        size: usize,
        /// The value, little-endian, zero-extended to `size`.
        value: u32,
    },
    /// A load from the CPU interface frame.
    CpuRead {
        /// The accessing CPU (may be absent).
        cpu: usize,
        /// Offset in the frame (may be outside it).
        offset: u64,
        /// Access size in bytes, at most 8 (the decoder makes 1, 2, 4 or 8;
        /// the property tests also 0).
        size: usize,
    },
    /// A store to the CPU interface frame.
    CpuWrite {
        /// The accessing CPU (may be absent).
        cpu: usize,
        /// Offset in the frame (may be outside it).
        offset: u64,
        /// Access size in bytes, at most 8 (the decoder makes 1, 2, 4 or 8;
        /// the property tests also 0).
        size: usize,
        /// The value, little-endian, zero-extended to `size`.
        value: u32,
    },
    /// `set_ppi_level` (the id is usually a PPI, sometimes not).
    Ppi {
        /// The CPU whose line it is (may be absent).
        cpu: usize,
        /// Raw interrupt id.
        id: u32,
        /// New level.
        level: bool,
    },
    /// `set_spi_level` (the id is usually an SPI, sometimes not, sometimes
    /// unimplemented).
    Spi {
        /// Raw interrupt id.
        id: u32,
        /// New level.
        level: bool,
    },
    /// A word read of GICC_IAR (or GICC_AIAR), checked as an acknowledge.
    Ack {
        /// The accessing CPU (may be absent).
        cpu: usize,
        /// Read GICC_AIAR instead of GICC_IAR.
        alias: bool,
    },
    /// GICC_EOIR (or GICC_AEOIR) with the value of the most recent
    /// acknowledge on this CPU not yet ended, or `fallback` if none.
    Eoi {
        /// The accessing CPU (may be absent).
        cpu: usize,
        /// Write GICC_AEOIR instead of GICC_EOIR.
        alias: bool,
        /// The value written when nothing is remembered.
        fallback: u32,
    },
    /// GICC_DIR with the value of the most recently ended interrupt on this
    /// CPU, or `fallback` if none.
    Dir {
        /// The accessing CPU (may be absent).
        cpu: usize,
        /// The value written when nothing is remembered.
        fallback: u32,
    },
}

/// A decoded input: how to build the GIC, and what to do to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The configuration asked for (possibly invalid in raw-config mode).
    pub config: GicConfig,
    /// Start with everything enabled instead of from reset.
    pub primed: bool,
    /// The steps, in order.
    pub ops: Vec<Op>,
}

/// Reads the input front to back; every read fails once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }

    fn cpu(&mut self, num_cpus: usize) -> Option<usize> {
        Some(match self.u8()? {
            0xFF => usize::MAX,
            b @ 0xF0.. => usize::from(b & 0xF),
            b => usize::from(b) % num_cpus.max(1),
        })
    }

    fn size(&mut self) -> Option<usize> {
        Some([4, 1, 2, 8][usize::from(self.u8()? & 3)])
    }

    fn offset(&mut self, size: usize, frame: u64) -> Option<u64> {
        let h = self.u16()?;
        Some(match h {
            0xFFF8.. => u64::MAX - u64::from(h & 7),
            0x8000.. => u64::from(h & 0x7FFF),
            _ if size == 1 => u64::from(h) % frame,
            _ => u64::from(h) * 4 % frame,
        })
    }

    fn access(&mut self, num_cpus: usize, frame: u64) -> Option<(usize, u64, usize)> {
        let cpu = self.cpu(num_cpus)?;
        let size = self.size()?;
        let offset = self.offset(size, frame)?;
        Some((cpu, offset, size))
    }

    fn op(&mut self, num_cpus: usize) -> Option<Op> {
        let n = num_cpus;
        Some(match self.u8()? % OPCODES {
            0 => {
                let (cpu, offset, size) = self.access(n, GICD_FRAME)?;
                Op::DistRead { cpu, offset, size }
            }
            1 => {
                let (cpu, offset, size) = self.access(n, GICD_FRAME)?;
                let value = self.u32()?;
                Op::DistWrite {
                    cpu,
                    offset,
                    size,
                    value,
                }
            }
            2 => {
                let (cpu, offset, size) = self.access(n, GICC_FRAME)?;
                Op::CpuRead { cpu, offset, size }
            }
            3 => {
                let (cpu, offset, size) = self.access(n, GICC_FRAME)?;
                let value = self.u32()?;
                Op::CpuWrite {
                    cpu,
                    offset,
                    size,
                    value,
                }
            }
            4 => {
                let cpu = self.cpu(n)?;
                let b = self.u8()?;
                // Mostly PPIs 16-31 (bit 6 is the level); bit 7 picks an id
                // from the whole range, which the model must refuse.
                let id = if b & 0x80 == 0 {
                    16 + u32::from(b & 0xF)
                } else {
                    u32::from(b & 0x7F) * 8
                };
                Op::Ppi {
                    cpu,
                    id,
                    level: b & 0x40 != 0,
                }
            }
            5 => {
                let h = self.u16()?;
                // Bit 15 is the level; bit 14 picks a non-SPI id (0-31).
                let id = if h & 0x4000 == 0 {
                    32 + u32::from(h & 0x3FF)
                } else {
                    u32::from(h & 0x1F)
                };
                Op::Spi {
                    id,
                    level: h & 0x8000 != 0,
                }
            }
            6 => {
                let cpu = self.cpu(n)?;
                let alias = self.u8()? & 1 != 0;
                Op::Ack { cpu, alias }
            }
            7 => {
                let cpu = self.cpu(n)?;
                let alias = self.u8()? & 1 != 0;
                let fallback = u32::from(self.u16()?);
                Op::Eoi {
                    cpu,
                    alias,
                    fallback,
                }
            }
            _ => {
                let cpu = self.cpu(n)?;
                let fallback = u32::from(self.u16()?);
                Op::Dir { cpu, fallback }
            }
        })
    }
}

/// Decodes `data` (format in the module documentation). Never fails: an
/// empty input is a one-CPU GIC with nothing done to it.
pub fn decode(data: &[u8]) -> Scenario {
    let mut bytes = Bytes(data);
    let head = bytes.u8().unwrap_or(0);
    let (config, primed) = if head & 0x80 != 0 {
        let num_cpus = usize::from(bytes.u8().unwrap_or(0) & 0xF);
        let num_spis = u32::from(bytes.u16().unwrap_or(0));
        (GicConfig { num_cpus, num_spis }, false)
    } else {
        let num_cpus = usize::from(head & 7) + 1;
        let num_spis = SPI_CHOICES[usize::from(head >> 3 & 7)];
        (GicConfig { num_cpus, num_spis }, head & 0x40 != 0)
    };
    let mut ops = Vec::new();
    while let Some(op) = bytes.op(config.num_cpus) {
        ops.push(op);
    }
    Scenario {
        config,
        primed,
        ops,
    }
}

/// Decodes `data` and runs it against a fresh [`Gicv2`], checking every
/// invariant of the module documentation. Panics on the first violation.
pub fn run(data: &[u8]) {
    decode(data).run();
}

impl Scenario {
    /// Builds the GIC and applies every step, checking as it goes.
    pub fn run(&self) {
        let GicConfig { num_cpus, num_spis } = self.config;
        let allowed = (1..=MAX_CPUS).contains(&num_cpus)
            && num_spis <= MAX_SPIS
            && (num_spis % 32 == 0 || num_spis == MAX_SPIS);
        let g = Gicv2::new(self.config);
        assert_eq!(
            g.is_ok(),
            allowed,
            "IHI 0048B 4.3.2: {:?} is {}a valid GICv2",
            self.config,
            if allowed { "" } else { "not " }
        );
        let Ok(mut g) = g else { return };
        if self.primed {
            prime(&mut g);
        }
        let mut run = Run {
            read_only: read_only(&mut g),
            g,
            acked: vec![Vec::new(); num_cpus],
            ended: vec![Vec::new(); num_cpus],
        };
        run.check_state();
        for op in &self.ops {
            run.apply(op);
            run.check_state();
        }
    }
}

/// Everything on and wide open, so that short inputs already deliver:
/// both groups forwarded and signalled, Group 1 acknowledgeable through
/// GICC_IAR, PMR 0xFF, every interrupt enabled, every SPI routed to every
/// CPU. This is what [`Scenario::primed`] starts from.
pub fn prime(g: &mut Gicv2) {
    let cpus = g.config().num_cpus;
    let words = u64::from(g.config().num_ids().div_ceil(32));
    dw(g, 0, gicd::CTLR, 0b11);
    for cpu in 0..cpus {
        cw(g, cpu, gicc::CTLR, 0b111);
        cw(g, cpu, gicc::PMR, 0xFF);
        for w in 0..words {
            dw(g, cpu, gicd::ISENABLER + 4 * w, u32::MAX);
        }
    }
    for id in 32..u64::from(g.config().num_ids()) {
        g.distributor_write(0, gicd::ITARGETSR + id, &[0xFF]);
    }
}

/// The model under test and what the checks remember between steps.
struct Run {
    g: Gicv2,
    /// Values of the read-only registers at the start.
    read_only: Vec<u32>,
    /// Per CPU: acknowledged values not yet ended, most recent last.
    acked: Vec<Vec<u32>>,
    /// Per CPU: ended values, for GICC_DIR, most recent last.
    ended: Vec<Vec<u32>>,
}

impl Run {
    fn num_cpus(&self) -> usize {
        self.g.config().num_cpus
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::DistRead { cpu, offset, size } => self.read(Frame::Gicd, cpu, offset, size),
            Op::CpuRead { cpu, offset, size } => self.read(Frame::Gicc, cpu, offset, size),
            Op::DistWrite {
                cpu,
                offset,
                size,
                value,
            } => Frame::Gicd.write(&mut self.g, cpu, offset, &value_bytes(value)[..size]),
            Op::CpuWrite {
                cpu,
                offset,
                size,
                value,
            } => Frame::Gicc.write(&mut self.g, cpu, offset, &value_bytes(value)[..size]),
            Op::Ppi { cpu, id, level } => {
                if let Some(id) = IntId::new(id) {
                    self.g.set_ppi_level(cpu, id, level);
                }
            }
            Op::Spi { id, level } => {
                if let Some(id) = IntId::new(id) {
                    self.g.set_spi_level(id, level);
                }
            }
            Op::Ack { cpu, alias } => self.acknowledge(cpu, alias),
            Op::Eoi {
                cpu,
                alias,
                fallback,
            } => {
                let value = self
                    .acked
                    .get_mut(cpu)
                    .and_then(Vec::pop)
                    .unwrap_or(fallback);
                if let Some(ended) = self.ended.get_mut(cpu) {
                    if ended.len() < MAX_REMEMBERED {
                        ended.push(value);
                    }
                }
                self.end_of_interrupt(cpu, alias, value);
            }
            Op::Dir { cpu, fallback } => {
                let value = self
                    .ended
                    .get_mut(cpu)
                    .and_then(Vec::pop)
                    .unwrap_or(fallback);
                self.deactivate(cpu, value);
            }
        }
    }

    /// A load of `size` bytes from `frame`, with the checks of IHI 0048B
    /// 4.1.4: no side effect unless it is a word read of GICC_IAR or
    /// GICC_AIAR, and the buffer filled as [`check_read_buffer`] says.
    fn read(&mut self, frame: Frame, cpu: usize, offset: u64, size: usize) {
        let before = self.g.clone();
        let mut buf = vec![0xA5; size];
        frame.read(&mut self.g, cpu, offset, &mut buf);
        let acknowledging =
            frame == Frame::Gicc && size == 4 && (offset == gicc::IAR || offset == gicc::AIAR);
        if !acknowledging {
            assert_eq!(
                self.g, before,
                "{frame:?} read of {size} bytes at {offset:#x} had a side effect \
                 (only word reads of GICC_IAR/AIAR have one)"
            );
        }
        // Only distributor registers take byte accesses (IHI 0048B 4.1.4).
        check_read_buffer(&buf, offset, size, frame == Frame::Gicd);
    }

    /// GICC_EOIR / GICC_AEOIR write with the checks of IHI 0048B 4.4.5:
    /// a priority drop never raises the running priority, and with
    /// EOImode = 0 an EOIR for an active interrupt, while some priority is
    /// active, deactivates it.
    fn end_of_interrupt(&mut self, cpu: usize, alias: bool, value: u32) {
        let g = &mut self.g;
        let present = cpu < g.config().num_cpus;
        let raw = value & 0x3FF;
        let implemented = raw < g.config().num_ids();
        let rpr = cr(g, cpu, gicc::RPR);
        let eoimode = cr(g, cpu, gicc::CTLR) & (1 << 9) != 0;
        let was_active = implemented && bit(g, cpu, gicd::ISACTIVER, raw);
        cw(g, cpu, if alias { gicc::AEOIR } else { gicc::EOIR }, value);
        if !present {
            return;
        }
        assert!(
            cr(g, cpu, gicc::RPR) >= rpr,
            "EOI of {value:#x} raised the running priority above {rpr:#x}"
        );
        if !alias && !eoimode && was_active && rpr != 0xFF {
            assert!(
                !bit(g, cpu, gicd::ISACTIVER, raw),
                "EOIR with EOImode = 0 deactivates {raw}"
            );
        }
    }

    /// GICC_DIR write with the check of IHI 0048B 4.4.15: with
    /// EOImode = 1 it deactivates the interrupt it names.
    fn deactivate(&mut self, cpu: usize, value: u32) {
        let g = &mut self.g;
        let raw = value & 0x3FF;
        let eoimode = cr(g, cpu, gicc::CTLR) & (1 << 9) != 0;
        cw(g, cpu, gicc::DIR, value);
        if cpu < g.config().num_cpus && eoimode && raw < g.config().num_ids() {
            assert!(
                !bit(g, cpu, gicd::ISACTIVER, raw),
                "DIR with EOImode = 1 deactivates {raw}"
            );
        }
    }

    /// GICC_IAR / GICC_AIAR read with the checks of IHI 0048B 4.4.4.
    fn acknowledge(&mut self, cpu: usize, alias: bool) {
        let g = &mut self.g;
        let present = cpu < g.config().num_cpus;
        let pmr = cr(g, cpu, gicc::PMR);
        let ctlr = cr(g, cpu, gicc::CTLR);
        let (bpr, abpr) = (cr(g, cpu, gicc::BPR), cr(g, cpu, gicc::ABPR));
        let value = cr(g, cpu, if alias { gicc::AIAR } else { gicc::IAR });
        let raw = value & 0x3FF;
        if !present {
            assert_eq!(value, 0, "an absent CPU interface reads as zero");
            return;
        }
        if raw >= 1020 {
            assert_eq!(value >> 10, 0, "special ids carry no source");
            assert!(
                alias || raw == SPURIOUS || raw == 1022,
                "GICC_IAR answers 1022 or 1023"
            );
            return;
        }
        if let Some(acked) = self.acked.get_mut(cpu) {
            if acked.len() < MAX_REMEMBERED {
                acked.push(value);
            }
        }
        assert!(
            raw < g.config().num_ids(),
            "acknowledged {raw} is implemented"
        );
        assert!(
            bit(g, cpu, gicd::ISACTIVER, raw),
            "acknowledged {raw} is active"
        );
        assert!(
            bit(g, cpu, gicd::ISENABLER, raw),
            "acknowledged {raw} is enabled"
        );
        let group1 = bit(g, cpu, gicd::IGROUPR, raw);
        assert!(!alias || group1, "GICC_AIAR takes Group 1 only (4.4.9)");
        let mut prio = [0u8];
        g.distributor_read(cpu, gicd::IPRIORITYR + u64::from(raw), &mut prio);
        let prio = prio[0];
        assert!(
            u32::from(prio) < pmr,
            "acknowledged {raw}: priority {prio:#x} not below PMR {pmr:#x}"
        );
        assert_eq!(value >> 13, 0, "IAR bits [31:13] are reserved");
        let source = (value >> 10) as usize;
        if raw >= 16 {
            assert_eq!(source, 0, "source CPU only for SGIs");
        } else {
            assert!(source < g.config().num_cpus, "SGI source {source} exists");
        }
        // IHI 0048B 3.3.4: Group 1 uses GICC_ABPR unless CTLR.CBPR is set;
        // the group priority field is bits [7:BPR+1] (Group 0) or
        // [7:ABPR] (Group 1).
        let shift = if group1 && ctlr & (1 << 4) == 0 {
            abpr
        } else {
            bpr + 1
        };
        let group_priority = u32::from(prio) & (0xFF << shift) & 0xFF;
        assert_eq!(
            cr(g, cpu, gicc::RPR),
            group_priority,
            "acknowledged {raw} (priority {prio:#x}): the running priority is its group priority"
        );
    }

    fn check_state(&mut self) {
        let cpus = self.num_cpus();
        for cpu in 0..cpus {
            let (irq, fiq) = (self.g.irq_line(cpu), self.g.fiq_line(cpu));
            assert!(!(irq && fiq), "cpu {cpu}: IRQ and FIQ both high");
            let iar = would_acknowledge(&self.g, cpu);
            assert_eq!(
                irq || fiq,
                iar != SPURIOUS,
                "cpu {cpu}: line {} but GICC_IAR would answer {iar}",
                if irq || fiq { "high" } else { "low" }
            );
            if irq || fiq {
                self.check_signalled(cpu, iar);
            }
        }
        for cpu in [cpus, MAX_CPUS, usize::MAX] {
            assert!(!self.g.irq_line(cpu) && !self.g.fiq_line(cpu));
        }
        assert_eq!(
            read_only(&mut self.g),
            self.read_only,
            "read-only registers kept their value"
        );
    }

    /// `cpu`'s line is high and an acknowledge would answer `iar`.
    fn check_signalled(&mut self, cpu: usize, iar: u32) {
        let g = &mut self.g;
        let hppir = cr(g, cpu, gicc::HPPIR);
        assert_eq!(hppir, iar, "cpu {cpu}: GICC_HPPIR names what IAR takes");
        let raw = iar & 0x3FF;
        if raw >= 1020 {
            // 1022: a Group 1 interrupt GICC_IAR may not take (4.4.4).
            assert_eq!(raw, 1022);
            return;
        }
        assert!(raw < g.config().num_ids());
        assert!(
            bit(g, cpu, gicd::ISENABLER, raw),
            "{raw} signalled: enabled"
        );
        assert!(bit(g, cpu, gicd::ISPENDR, raw), "{raw} signalled: pending");
        assert!(
            !bit(g, cpu, gicd::ISACTIVER, raw),
            "{raw} signalled: not active"
        );
        let mut prio = [0u8];
        g.distributor_read(cpu, gicd::IPRIORITYR + u64::from(raw), &mut prio);
        assert!(
            u32::from(prio[0]) < cr(g, cpu, gicc::PMR),
            "{raw} above PMR"
        );
    }
}

/// A read buffer after the model answered: zero beyond the 4 bytes of a
/// register, and entirely zero if no register takes that access
/// (IHI 0048B 4.1.4: aligned words everywhere, bytes only for the
/// byte-organised distributor registers).
fn check_read_buffer(buf: &[u8], offset: u64, size: usize, bytes_allowed: bool) {
    let served = (size == 4 && offset % 4 == 0) || (size == 1 && bytes_allowed);
    let zero_from = if served { 4.min(size) } else { 0 };
    assert!(
        buf[zero_from..].iter().all(|&b| b == 0),
        "read of {size} bytes at {offset:#x} left {buf:02x?}"
    );
}

/// The registers no guest access may change: GICD_TYPER, GICD_IIDR, the
/// identification block, and per CPU GICD_ICFGR0 (SGIs always edge),
/// GICD_ITARGETSR0-7 (banked, read-only) and GICC_IIDR.
fn read_only(g: &mut Gicv2) -> Vec<u32> {
    let mut v: Vec<u32> = [gicd::TYPER, gicd::IIDR]
        .into_iter()
        .chain((gicd::IDREGS..GICD_FRAME).step_by(4))
        .map(|o| dr(g, 0, o))
        .collect();
    for cpu in 0..g.config().num_cpus {
        v.push(dr(g, cpu, gicd::ICFGR));
        v.extend((0..8).map(|w| dr(g, cpu, gicd::ITARGETSR + 4 * w)));
        v.push(cr(g, cpu, gicc::IIDR));
    }
    v
}

/// What a word read of GICC_IAR on `cpu` would answer right now, tried on
/// a clone so that nothing is acknowledged.
pub fn would_acknowledge(g: &Gicv2, cpu: usize) -> u32 {
    cr(&mut g.clone(), cpu, gicc::IAR)
}

/// The two register frames an [`Op`] can access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frame {
    /// The distributor (GICD).
    Gicd,
    /// The CPU interface (GICC).
    Gicc,
}

impl Frame {
    fn read(self, g: &mut Gicv2, cpu: usize, offset: u64, data: &mut [u8]) {
        match self {
            Frame::Gicd => g.distributor_read(cpu, offset, data),
            Frame::Gicc => g.cpu_interface_read(cpu, offset, data),
        }
    }

    fn write(self, g: &mut Gicv2, cpu: usize, offset: u64, data: &[u8]) {
        match self {
            Frame::Gicd => g.distributor_write(cpu, offset, data),
            Frame::Gicc => g.cpu_interface_write(cpu, offset, data),
        }
    }
}

/// An [`Op`]'s value as the bytes of a store: little-endian, zero-extended
/// to 8 bytes, of which the access takes the first `size`.
fn value_bytes(value: u32) -> [u8; 8] {
    u64::from(value).to_le_bytes()
}

// Word accessors, shared with the unit tests (`tests/mod.rs`).

/// Distributor word read.
pub fn dr(g: &mut Gicv2, cpu: usize, offset: u64) -> u32 {
    let mut buf = [0u8; 4];
    g.distributor_read(cpu, offset, &mut buf);
    u32::from_le_bytes(buf)
}

/// Distributor word write.
pub fn dw(g: &mut Gicv2, cpu: usize, offset: u64, value: u32) {
    g.distributor_write(cpu, offset, &value.to_le_bytes());
}

/// CPU interface word read.
pub fn cr(g: &mut Gicv2, cpu: usize, offset: u64) -> u32 {
    let mut buf = [0u8; 4];
    g.cpu_interface_read(cpu, offset, &mut buf);
    u32::from_le_bytes(buf)
}

/// CPU interface word write.
pub fn cw(g: &mut Gicv2, cpu: usize, offset: u64, value: u32) {
    g.cpu_interface_write(cpu, offset, &value.to_le_bytes());
}

/// One bit of a bit-per-interrupt distributor register, as `cpu` sees it.
pub fn bit(g: &mut Gicv2, cpu: usize, base: u64, raw: u32) -> bool {
    dr(g, cpu, base + 4 * u64::from(raw / 32)) & (1 << (raw % 32)) != 0
}
