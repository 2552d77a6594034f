//! The whole MMIO bus as the VM wires it, driven through the vCPU loop's
//! own exit handling ([`crate::exit::serve`]) by arbitrary bytes.
//!
//! The rig mirrors `kvm::vm::create` with the userspace irqchip: a
//! [`UserGic`] with 32 SPIs behind its distributor (GICD) and CPU interface
//! (GICC) frames, the PL011 with its interrupt wired to SPI 33 through
//! [`GicSpi`], and the benchmark's phase marker, at the addresses of
//! `uirq_abi::layout` and `uirq_abi::bench`; everything else is a hole.
//! Each guest access is an [`Exit`] served on one vCPU with the timer
//! levels KVM would report beside it, so timer level changes reach the GIC
//! before the access, as in the vCPU loop. The owner-thread rule of
//! [`crate::irqchip`] is simulated: a vCPU applies its own line changes
//! (`take_own`) before it next enters the guest, and kicks the CPUs
//! `stale_others` names after an MMIO exit; the console thread (UART input)
//! and device SPI changes kick with `stale_others(usize::MAX)`. What KVM
//! heard is tracked per CPU.
//!
//! # Input format
//!
//! ```text
//! byte 0   bits [2:0] num_cpus - 1; bit 3 "primed": start with GIC,
//!          every interrupt, every CPU interface, the UART's receiver,
//!          FIFOs and interrupts enabled (done through exits, checked);
//!          bit 4 answer unmapped accesses as read-as-zero / write-ignored
//!          (`--unmapped raz`) instead of with an external abort
//! then ops one opcode byte (modulo OPCODES) and its operands, until the
//!          input runs out (an op cut short is dropped)
//! ```
//!
//! | opcode | op | operands |
//! |---|---|---|
//! | 0 | [`Op::Read`] | cpu, size, address |
//! | 1 | [`Op::Write`] | cpu, size, address, value (u32 LE `v`; the 8-byte value is `v` with `v.rotate_left(16)` above it) |
//! | 2 | [`Op::Timer`] | cpu, one byte: bits `[5:0]` the `device_irq_level` word (bits 0-1 are the virtual and physical timers, 2-5 must be ignored), bit 6 also sets bit 63, bit 7 report now (an EINTR exit) rather than with the CPU's next exit |
//! | 3 | [`Op::Spi`] | one byte: bit 7 clear: SPI id `34 + (b & 0x3F)` (ids from 64 are not implemented); set: id `b & 0x1F` (not an SPI); bit 6 the level |
//! | 4 | [`Op::Receive`] | one byte `b` (bits `[5:0]` length, bit 6 without flow control, bit 7 the burst four times over), then the bytes |
//! | 5 | [`Op::Run`] | cpu: that vCPU's thread applies its lines; 0xFF: every kicked one does |
//! | 6 | [`Op::Undecodable`] | cpu, address, halfword: the ISS KVM passes on (bit 6 WnR) |
//!
//! A *cpu* is one byte: `b % num_cpus`, except 0xFF which is `num_cpus`
//! (a CPU the VM does not have). A *size* is one byte whose bits `[2:0]`
//! pick 4, 4, 1, 2, 8, 0, 3 or 7 bytes. An *address* is a selector byte
//! `s` then, by `s % 8`:
//!
//! - 0, 1: GICD; 2: GICC; 3: UART; 4: marker: a halfword `h`, below 0x8000
//!   a word index, from 0x8000 a byte offset `h & 0x7FFF`, wrapped into the
//!   frame;
//! - 5: an edge: a halfword `h`, bits `[2:0]` pick the start or end of one
//!   of the four frames, bits `[6:3]` the distance from 8 bytes before it;
//! - 6: any address below 4 GiB (u32 LE); 7: any address (u64 LE).
//!
//! # What is checked
//!
//! After every step (`check_state`):
//! - for every CPU, what KVM heard equals what the bookkeeping recorded as
//!   delivered (`UserGic::delivered`); a CPU whose thread has not been
//!   kicked (and is not the one that just exited) has KVM's lines equal to
//!   the model's `irq_line`/`fiq_line`: no change is ever left for nobody
//!   to deliver; another CPU's `stale_others` names it exactly when the
//!   two differ; applying `take_own` changes exactly those lines;
//! - `stale_others(cpu)` never names `cpu` nor an absent CPU;
//! - a timer level reported high keeps its level-sensitive PPI pending;
//! - the UART drives its line exactly when `UARTRIS & UARTIMSC` is not
//!   zero, and while that line is high a level-sensitive SPI 33 is pending
//!   in the GIC; its receive FIFO never holds more than 32 characters; its
//!   output sink holds exactly the bytes written to UARTDR, in order;
//! - the marker's phase is always a valid phase.
//!
//! Per access: the device that answers (counted in the exit statistics)
//! is the one whose frame holds the whole access, computed here
//! independently of the bus; an access to a hole is answered with an
//! external abort for that address and direction (abort mode) or resumes
//! the guest (raz mode), and either way a read of it, or of the write-only
//! marker, is all zero and no read returns bytes beyond its size; an
//! access to a hole leaves the GIC model untouched (but for the timer
//! levels reported with it); a word write of a valid phase to the marker
//! publishes it; every claimed access and every EINTR resumes the guest;
//! an undecodable access (KVM_EXIT_ARM_NISV) is always an external abort,
//! whatever the mode, and changes nothing. Kicks follow `kvm::vcpu`: only
//! after an MMIO exit that resumed.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use uirq_abi::bench::{Phase, MARKER_BASE, MARKER_SIZE};
use uirq_abi::gicv2::{gicc, gicd, IntId, PTIMER, VTIMER};
use uirq_abi::layout::{
    GICC_BASE, GICC_SIZE, GICD_BASE, GICD_SIZE, UART_BASE, UART_SIZE, UART_SPI,
};
use uirq_gicv2::fuzzing::{bit, dr};
use uirq_gicv2::{GicConfig, Gicv2};

use super::Bytes;
use crate::bus::{self, Bus, MmioDevice};
use crate::devices::irq_line::IrqLine;
use crate::devices::marker::Marker;
use crate::devices::pl011::{Pl011, RX_FIFO_DEPTH};
use crate::exit::{
    self, Exit, ExternalAbort, Machine, Served, Stats, Unmapped, VcpuState, LEVEL_PTIMER,
    LEVEL_VTIMER,
};
use crate::irqchip::{CpuInterfaceFrame, CpuLines, CpuSet, DistributorFrame, GicSpi, UserGic};
use crate::probe::NoProbe;

/// Number of distinct opcodes; an opcode byte is taken modulo this.
pub const OPCODES: u8 = 7;

/// SPIs of the GIC, as `kvm::vm` builds it.
const NUM_SPIS: u32 = 32;

/// Access sizes the size byte picks from (bits `[2:0]`): KVM's 1, 2, 4
/// and 8 (4 twice as likely), and sizes KVM never reports.
const SIZES: [usize; 8] = [4, 4, 1, 2, 8, 0, 3, 7];

/// The bus devices as `kvm::vm` maps them: name, base, size.
pub const DEVICES: [(&str, u64, u64); 4] = [
    ("gicd", GICD_BASE, GICD_SIZE),
    ("gicc", GICC_BASE, GICC_SIZE),
    ("uart", UART_BASE, UART_SIZE),
    ("bench-marker", MARKER_BASE, MARKER_SIZE),
];

/// PL011 registers the checks read (DDI 0183G 3.2).
const UART_DR: u64 = 0x000;
const UART_CR: u64 = 0x030;
const UART_LCR_H: u64 = 0x02C;
const UART_IMSC: u64 = 0x038;
const UART_RIS: u64 = 0x03C;

/// One decoded step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A guest load: an MMIO read exit on `cpu`.
    Read {
        /// The vCPU (may be one the VM does not have).
        cpu: usize,
        /// Guest physical address.
        addr: u64,
        /// Access size in bytes (0 to 8).
        size: usize,
    },
    /// A guest store: an MMIO write exit on `cpu`.
    Write {
        /// The vCPU (may be one the VM does not have).
        cpu: usize,
        /// Guest physical address.
        addr: u64,
        /// Access size in bytes (0 to 8).
        size: usize,
        /// The value, little-endian; the access takes its first `size` bytes.
        value: u64,
    },
    /// The timer outputs of `cpu` change to `levels` (a `device_irq_level`
    /// word): KVM reports them with the CPU's next exit, or at once with
    /// an EINTR exit.
    Timer {
        /// The vCPU.
        cpu: usize,
        /// The new `device_irq_level` word.
        levels: u64,
        /// Report with an EINTR exit now.
        report: bool,
    },
    /// A device SPI line (not the UART's) changes level, from a thread
    /// that is no vCPU's.
    Spi {
        /// Raw interrupt id (sometimes not an implemented SPI).
        id: u32,
        /// New level.
        level: bool,
    },
    /// The console thread offers bytes to the UART's receiver.
    Receive {
        /// The burst.
        bytes: Vec<u8>,
        /// Without flow control (`Pl011::receive_unpaced`).
        unpaced: bool,
    },
    /// An MMIO access KVM could not decode (KVM_EXIT_ARM_NISV) on `cpu`.
    Undecodable {
        /// The vCPU (may be one the VM does not have).
        cpu: usize,
        /// `fault_ipa`.
        addr: u64,
        /// `esr_iss`.
        iss: u64,
    },
    /// A vCPU thread (or, with `None`, every kicked one) applies its lines
    /// before re-entering the guest.
    Run {
        /// The vCPU, or every one that was kicked.
        cpu: Option<usize>,
    },
}

/// A decoded input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// vCPUs (1 to 8).
    pub num_cpus: usize,
    /// Start with everything enabled (see the module documentation).
    pub primed: bool,
    /// How unmapped accesses are answered.
    pub unmapped: Unmapped,
    /// The steps, in order.
    pub ops: Vec<Op>,
}

impl Bytes<'_> {
    fn vcpu(&mut self, num_cpus: usize) -> Option<usize> {
        Some(match self.u8()? {
            0xFF => num_cpus,
            b => usize::from(b) % num_cpus,
        })
    }

    fn access_size(&mut self) -> Option<usize> {
        Some(SIZES[usize::from(self.u8()? & 7)])
    }

    fn address(&mut self) -> Option<u64> {
        let in_frame = |h: u16, (_, base, size): (&str, u64, u64)| {
            let offset = if h < 0x8000 {
                u64::from(h) * 4
            } else {
                u64::from(h & 0x7FFF)
            };
            base + offset % size
        };
        Some(match self.u8()? % 8 {
            0 | 1 => in_frame(self.u16()?, DEVICES[0]),
            2 => in_frame(self.u16()?, DEVICES[1]),
            3 => in_frame(self.u16()?, DEVICES[2]),
            4 => in_frame(self.u16()?, DEVICES[3]),
            5 => {
                let h = self.u16()?;
                let (_, base, size) = DEVICES[usize::from(h >> 1 & 3)];
                let edge = if h & 1 == 0 { base } else { base + size };
                edge - 8 + u64::from(h >> 3 & 0xF)
            }
            6 => u64::from(self.u32()?),
            _ => self.u64()?,
        })
    }

    fn vm_op(&mut self, n: usize) -> Option<Op> {
        Some(match self.u8()? % OPCODES {
            0 => {
                let cpu = self.vcpu(n)?;
                let size = self.access_size()?;
                let addr = self.address()?;
                Op::Read { cpu, addr, size }
            }
            1 => {
                let cpu = self.vcpu(n)?;
                let size = self.access_size()?;
                let addr = self.address()?;
                let v = self.u32()?;
                let value = u64::from(v) | u64::from(v.rotate_left(16)) << 32;
                Op::Write {
                    cpu,
                    addr,
                    size,
                    value,
                }
            }
            2 => {
                let cpu = self.vcpu(n)?;
                let b = self.u8()?;
                let mut levels = u64::from(b & 0x3F);
                if b & 0x40 != 0 {
                    levels |= 1 << 63;
                }
                Op::Timer {
                    cpu,
                    levels,
                    report: b & 0x80 != 0,
                }
            }
            3 => {
                let b = self.u8()?;
                let id = if b & 0x80 == 0 {
                    34 + u32::from(b & 0x3F)
                } else {
                    u32::from(b & 0x1F)
                };
                Op::Spi {
                    id,
                    level: b & 0x40 != 0,
                }
            }
            4 => {
                let b = self.u8()?;
                let burst = self.take(usize::from(b & 0x3F))?;
                let bytes = if b & 0x80 != 0 {
                    burst.repeat(4)
                } else {
                    burst.to_vec()
                };
                Op::Receive {
                    bytes,
                    unpaced: b & 0x40 != 0,
                }
            }
            5 => Op::Run {
                cpu: match self.u8()? {
                    0xFF => None,
                    b => Some(usize::from(b) % n),
                },
            },
            _ => {
                let cpu = self.vcpu(n)?;
                let addr = self.address()?;
                let iss = u64::from(self.u16()?);
                Op::Undecodable { cpu, addr, iss }
            }
        })
    }
}

/// Decodes `data` (format in the module documentation). Never fails: an
/// empty input is a one-CPU VM with nothing done to it.
pub fn decode(data: &[u8]) -> Scenario {
    let mut bytes = Bytes(data);
    let head = bytes.u8().unwrap_or(0);
    let num_cpus = usize::from(head & 7) + 1;
    let mut ops = Vec::new();
    while let Some(op) = bytes.vm_op(num_cpus) {
        ops.push(op);
    }
    Scenario {
        num_cpus,
        primed: head & 8 != 0,
        unmapped: if head & 0x10 != 0 {
            Unmapped::ReadAsZero
        } else {
            Unmapped::Abort
        },
        ops,
    }
}

/// Decodes `data` and runs it against a freshly wired bus, checking every
/// invariant of the module documentation. Panics on the first violation.
pub fn run(data: &[u8]) {
    decode(data).run();
}

impl Scenario {
    /// Builds the rig and applies every step, checking as it goes.
    pub fn run(&self) {
        let mut rig = Rig::new(self.num_cpus, self.unmapped);
        rig.check_state();
        if self.primed {
            for op in prime_ops(self.num_cpus) {
                rig.apply(&op);
                rig.check_state();
            }
        }
        for op in &self.ops {
            rig.apply(op);
            rig.check_state();
        }
        // Every kicked thread gets round to applying its lines: then KVM
        // has heard exactly the model's outputs.
        rig.apply(&Op::Run { cpu: None });
        for cpu in 0..self.num_cpus {
            assert_eq!(rig.kvm[cpu], rig.wanted(cpu), "cpu {cpu}: KVM's final view");
        }
    }
}

/// The exits that prime the VM: distributor on (both groups), every SGI,
/// PPI and SPI enabled and every SPI routed to every CPU, each CPU
/// interface on with its mask open, the UART enabled with FIFOs and its
/// receive, timeout, transmit and overrun interrupts unmasked.
pub fn prime_ops(num_cpus: usize) -> Vec<Op> {
    let w = |cpu: usize, addr: u64, value: u32| Op::Write {
        cpu,
        addr,
        size: 4,
        value: value.into(),
    };
    let mut ops = vec![
        w(0, GICD_BASE + gicd::CTLR, 3),
        w(0, GICD_BASE + gicd::ISENABLER + 4, u32::MAX),
    ];
    for word in 8..16 {
        ops.push(w(0, GICD_BASE + gicd::ITARGETSR + 4 * word, u32::MAX));
    }
    for cpu in 0..num_cpus {
        ops.push(w(cpu, GICD_BASE + gicd::ISENABLER, u32::MAX));
        ops.push(w(cpu, GICC_BASE + gicc::CTLR, 3));
        ops.push(w(cpu, GICC_BASE + gicc::PMR, 0xFF));
    }
    ops.push(w(0, UART_BASE + UART_LCR_H, 0x70));
    ops.push(w(0, UART_BASE + UART_CR, 0x301));
    ops.push(w(0, UART_BASE + UART_IMSC, 0x470));
    ops
}

/// The device whose frame holds all of `[addr, addr + len)`, and the
/// offset in it; computed without the bus.
pub fn route(addr: u64, len: usize) -> Option<(&'static str, u64)> {
    let (a, l) = (u128::from(addr), len as u128);
    DEVICES
        .iter()
        .find(|&&(_, base, size)| {
            let (b, e) = (u128::from(base), u128::from(base) + u128::from(size));
            a >= b && a < e && a + l <= e
        })
        .map(|&(name, base, _)| (name, addr - base))
}

/// The UART's interrupt wire, tapped: the level goes to the GIC through
/// [`GicSpi`] as in the VM, and is kept for the checks.
struct Tap {
    spi: GicSpi,
    level: Arc<AtomicBool>,
}

impl IrqLine for Tap {
    fn set_level(&self, level: bool) {
        self.level.store(level, Ordering::SeqCst);
        self.spi.set_level(level);
    }
}

/// The UART's output: every byte, kept for the checks.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        bus::lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Rig {
    num_cpus: usize,
    unmapped: Unmapped,
    bus: Bus,
    gic: Arc<UserGic>,
    uart: Arc<Mutex<Pl011>>,
    uart_level: Arc<AtomicBool>,
    sink: Sink,
    /// The bytes written to UARTDR, as the checks expect them in the sink.
    transmitted: Vec<u8>,
    phase: Arc<AtomicU32>,
    /// Per vCPU: the exit handling's state.
    vcpus: Vec<VcpuState>,
    /// Per vCPU: exits served.
    exits: Vec<u64>,
    /// Per vCPU: the `device_irq_level` word KVM reports now.
    timer: Vec<u64>,
    /// Per vCPU: the word last reported with an exit.
    reported: Vec<u64>,
    /// Per vCPU: the lines as KVM heard them (`KVM_IRQ_LINE` calls made).
    kvm: Vec<CpuLines>,
    /// vCPU threads that will apply their lines before they next enter the
    /// guest: the one that just exited, and every one kicked since.
    pending: CpuSet,
}

impl Rig {
    /// The devices as `kvm::vm::create` wires them with the userspace GIC.
    fn new(num_cpus: usize, unmapped: Unmapped) -> Self {
        let gic = Arc::new(UserGic::new(
            Gicv2::new(GicConfig {
                num_cpus,
                num_spis: NUM_SPIS,
            })
            .expect("1 to 8 CPUs and 32 SPIs is a valid GICv2"),
        ));
        let mut bus = Bus::new();
        let dist = Arc::new(Mutex::new(DistributorFrame(gic.clone())));
        let cpu = Arc::new(Mutex::new(CpuInterfaceFrame(gic.clone())));
        bus.insert("gicd", GICD_BASE, GICD_SIZE, dist).unwrap();
        bus.insert("gicc", GICC_BASE, GICC_SIZE, cpu).unwrap();
        let uart_spi = IntId::spi(UART_SPI).unwrap();
        let uart_level = Arc::new(AtomicBool::new(false));
        let line = Tap {
            spi: GicSpi::new(gic.clone(), uart_spi),
            level: uart_level.clone(),
        };
        let sink = Sink::default();
        let uart = Arc::new(Mutex::new(Pl011::new(
            Box::new(sink.clone()),
            Box::new(line),
        )));
        bus.insert("uart", UART_BASE, UART_SIZE, uart.clone())
            .unwrap();
        let phase = Arc::new(AtomicU32::new(0));
        let marker = Arc::new(Mutex::new(Marker::new(phase.clone())));
        bus.insert("bench-marker", MARKER_BASE, MARKER_SIZE, marker)
            .unwrap();
        Rig {
            num_cpus,
            unmapped,
            bus,
            gic,
            uart,
            uart_level,
            sink,
            transmitted: Vec::new(),
            phase,
            vcpus: vec![VcpuState::default(); num_cpus],
            exits: vec![0; num_cpus],
            timer: vec![0; num_cpus],
            reported: vec![0; num_cpus],
            kvm: vec![CpuLines::default(); num_cpus],
            pending: CpuSet::default(),
        }
    }

    fn wanted(&self, cpu: usize) -> CpuLines {
        self.gic.with(|g| CpuLines {
            irq: g.irq_line(cpu),
            fiq: g.fiq_line(cpu),
        })
    }

    /// `cpu`'s thread applies its lines (`take_own`), as before every
    /// `KVM_RUN`: each change it gets must be one.
    fn own(&mut self, cpu: usize) {
        let change = self.gic.take_own(cpu);
        let Some(heard) = self.kvm.get_mut(cpu) else {
            assert!(change.is_empty(), "a change for absent cpu {cpu}");
            return;
        };
        if let Some(level) = change.irq {
            assert_ne!(
                heard.irq, level,
                "cpu {cpu}: an IRQ change that changes nothing"
            );
            heard.irq = level;
        }
        if let Some(level) = change.fiq {
            assert_ne!(
                heard.fiq, level,
                "cpu {cpu}: a FIQ change that changes nothing"
            );
            heard.fiq = level;
        }
        if cpu < 8 {
            self.pending.0 &= !(1 << cpu);
        }
    }

    /// Kicks what `stale_others(kicker)` names (a vCPU, or `usize::MAX`
    /// for a thread that is no vCPU's).
    fn kick(&mut self, kicker: usize) {
        let stale = self.gic.stale_others(kicker);
        assert!(
            stale.iter().all(|c| c != kicker && c < self.num_cpus),
            "stale_others({kicker}) = {stale:?}"
        );
        self.pending.0 |= stale.0;
    }

    /// Serves `exit` on `cpu` as the vCPU loop does: lines applied before
    /// the guest ran, the levels KVM reports beside the exit, `serve`,
    /// then kicks after MMIO. Returns the exit as served and the
    /// statistics before and after.
    fn exit(&mut self, cpu: usize, mut exit: Exit, expect: Served) -> (Exit, Stats, Stats) {
        let present = cpu < self.num_cpus;
        if present {
            self.own(cpu);
        }
        let levels = self.timer.get(cpu).copied().unwrap_or(0);
        let mut state = self.vcpus.get(cpu).copied().unwrap_or_default();
        let before = state.stats;
        let machine = Machine {
            bus: &self.bus,
            gic: Some(&self.gic),
            unmapped: self.unmapped,
        };
        let served = exit::serve(cpu, &mut exit, levels, &mut state, machine, &mut NoProbe);
        assert_eq!(served, Ok(expect), "{exit:?} on cpu {cpu}");
        assert_eq!(state.stats.exits, before.exits + 1);
        let mmio = expect == Served::Resume
            && matches!(exit, Exit::MmioRead { .. } | Exit::MmioWrite { .. });
        if present {
            self.vcpus[cpu] = state;
            self.exits[cpu] += 1;
            self.reported[cpu] = levels;
            self.pending.0 |= 1 << cpu;
            let timers = LEVEL_VTIMER | LEVEL_PTIMER;
            assert_eq!(
                state.timer_levels & timers,
                levels & timers,
                "cpu {cpu}: timer levels forwarded"
            );
        }
        // vcpu.rs: kicks after MMIO, owner-thread rule, two CPUs or more
        // (with one, the CPU that exited is the only one, and applies its
        // own lines). A CPU the VM does not have never exits there; here,
        // where it does for robustness, it kicks like a device's thread.
        if mmio && (self.num_cpus >= 2 || !present) {
            self.kick(cpu);
        } else {
            let stale = self.gic.stale_others(cpu);
            assert!(stale.iter().all(|c| c != cpu && c < self.num_cpus));
        }
        (exit, before, state.stats)
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Read { cpu, addr, size } => {
                let expect = route(addr, size.min(8));
                let snapshot = self.snapshot(expect.is_none());
                let served = self.answer(expect, addr, false);
                let (exit, before, after) = self.exit(cpu, Exit::read(addr, size), served);
                self.unchanged(snapshot, cpu, addr);
                let Exit::MmioRead { len, data, .. } = exit else {
                    unreachable!()
                };
                assert_eq!(len, size.min(8));
                assert_eq!(after.mmio_reads, before.mmio_reads + 1);
                check_routing(expect, &before, &after, addr, len);
                assert!(
                    data[len..].iter().all(|&b| b == 0),
                    "read of {len} bytes at {addr:#x} returned {data:02x?}"
                );
                if matches!(expect, None | Some(("bench-marker", _))) {
                    assert_eq!(data, [0; 8], "{addr:#x} reads as zero");
                }
            }
            Op::Write {
                cpu,
                addr,
                size,
                value,
            } => {
                let expect = route(addr, size.min(8));
                let snapshot = self.snapshot(expect.is_none());
                let served = self.answer(expect, addr, true);
                let (exit, before, after) = self.exit(cpu, Exit::write(addr, size, value), served);
                self.unchanged(snapshot, cpu, addr);
                let Exit::MmioWrite { len, .. } = exit else {
                    unreachable!()
                };
                assert_eq!(after.mmio_writes, before.mmio_writes + 1);
                check_routing(expect, &before, &after, addr, len);
                match expect {
                    Some(("uart", UART_DR)) if len > 0 => self.transmitted.push(value as u8),
                    Some(("bench-marker", 0)) if len == 4 => {
                        if let Some(p) = Phase::from_number(value as u32) {
                            assert_eq!(self.phase.load(Ordering::SeqCst), p as u32);
                        }
                    }
                    _ => {}
                }
            }
            Op::Timer {
                cpu,
                levels,
                report,
            } => {
                if let Some(t) = self.timer.get_mut(cpu) {
                    *t = levels;
                }
                if report {
                    self.exit(cpu, Exit::Interrupted, Served::Resume);
                }
            }
            Op::Spi { id, level } => {
                // A device's line from its own thread, as the UART's from
                // the console thread; an id that is not an SPI is refused.
                if let Some(id) = IntId::new(id) {
                    GicSpi::new(self.gic.clone(), id).set_level(level);
                }
                self.kick(usize::MAX);
            }
            Op::Receive { ref bytes, unpaced } => {
                let mut uart = bus::lock(&self.uart);
                let space = uart.rx_space();
                let taken = if unpaced {
                    uart.receive_unpaced(bytes)
                } else {
                    uart.receive(bytes)
                };
                if unpaced {
                    assert!(taken <= bytes.len());
                } else {
                    assert_eq!(
                        taken,
                        space.min(bytes.len()),
                        "flow control takes what fits"
                    );
                }
                drop(uart);
                self.kick(usize::MAX);
            }
            Op::Undecodable { cpu, addr, iss } => {
                let snapshot = self.snapshot(true);
                let abort = Served::InjectAbort(ExternalAbort {
                    addr,
                    write: iss & 1 << 6 != 0,
                });
                self.exit(cpu, Exit::UndecodableMmio { addr, iss }, abort);
                self.unchanged(snapshot, cpu, addr);
            }
            Op::Run { cpu: Some(cpu) } => self.own(cpu),
            Op::Run { cpu: None } => {
                for cpu in self.pending.iter().collect::<Vec<_>>() {
                    self.own(cpu);
                }
            }
        }
    }

    /// How `serve` must answer an access that `route` sends to `expect`.
    fn answer(&self, expect: Option<(&str, u64)>, addr: u64, write: bool) -> Served {
        match (expect, self.unmapped) {
            (None, Unmapped::Abort) => Served::InjectAbort(ExternalAbort { addr, write }),
            _ => Served::Resume,
        }
    }

    /// The GIC model now, when `take` (for [`Rig::unchanged`]).
    fn snapshot(&self, take: bool) -> Option<Gicv2> {
        take.then(|| self.gic.with(|g| g.clone()))
    }

    /// An access served on `cpu` left the GIC as `snapshot` was, but for
    /// the timer levels `serve` forwarded first (replayed here: the same
    /// level again changes nothing).
    fn unchanged(&self, snapshot: Option<Gicv2>, cpu: usize, addr: u64) {
        let Some(mut expected) = snapshot else { return };
        if let Some(&t) = self.timer.get(cpu) {
            expected.set_ppi_level(cpu, VTIMER, t & LEVEL_VTIMER != 0);
            expected.set_ppi_level(cpu, PTIMER, t & LEVEL_PTIMER != 0);
        }
        let now = self.gic.with(|g| g.clone());
        assert!(
            now == expected,
            "the access at {addr:#x} (no device) changed the GIC"
        );
    }

    fn check_state(&mut self) {
        let n = self.num_cpus;
        for cpu in 0..n {
            let wanted = self.wanted(cpu);
            let heard = self.kvm[cpu];
            assert_eq!(
                heard,
                self.gic.delivered(cpu),
                "cpu {cpu}: KVM heard what was recorded"
            );
            let kicked = self.pending.0 & (1 << cpu) != 0;
            assert!(
                kicked || heard == wanted,
                "cpu {cpu}: the model wants {wanted:?}, KVM has {heard:?}, and nobody will tell it"
            );
            for kicker in [(cpu + 1) % n, usize::MAX] {
                if kicker == cpu {
                    continue;
                }
                let stale = self.gic.stale_others(kicker).iter().any(|c| c == cpu);
                assert_eq!(stale, heard != wanted, "cpu {cpu} stale for {kicker}");
            }
            assert_eq!(self.vcpus[cpu].stats.exits, self.exits[cpu]);
            let reported = self.reported[cpu];
            self.gic.with(|g| {
                for (mask, ppi) in [(LEVEL_VTIMER, VTIMER), (LEVEL_PTIMER, PTIMER)] {
                    if reported & mask != 0 && level_sensitive(g, cpu, ppi.raw()) {
                        assert!(
                            bit(g, cpu, gicd::ISPENDR, ppi.raw()),
                            "cpu {cpu}: timer PPI {} high but not pending",
                            ppi.raw()
                        );
                    }
                }
            });
        }
        let level = self.uart_level.load(Ordering::SeqCst);
        let mut uart = bus::lock(&self.uart);
        let (ris, imsc) = (reg(&mut uart, UART_RIS), reg(&mut uart, UART_IMSC));
        assert_eq!(
            level,
            ris & imsc != 0,
            "UART line vs RIS {ris:#x} & IMSC {imsc:#x}"
        );
        assert!(uart.rx_space() <= RX_FIFO_DEPTH);
        drop(uart);
        let spi = 32 + UART_SPI;
        if level {
            self.gic.with(|g| {
                if level_sensitive(g, 0, spi) {
                    assert!(
                        bit(g, 0, gicd::ISPENDR, spi),
                        "UART line high, SPI {spi} not pending"
                    );
                }
            });
        }
        assert_eq!(
            *bus::lock(&self.sink.0),
            self.transmitted,
            "the UART's output is what was written to UARTDR"
        );
        assert!(Phase::from_number(self.phase.load(Ordering::SeqCst)).is_some());
    }
}

/// The statistics say the access went where [`route`] says.
fn check_routing(
    expect: Option<(&'static str, u64)>,
    before: &Stats,
    after: &Stats,
    addr: u64,
    len: usize,
) {
    let count = |s: &Stats, name: &str| {
        s.mmio_by_device
            .iter()
            .find(|&(k, _)| k == name)
            .map_or(0, |(_, n)| n)
    };
    match expect {
        None => assert_eq!(
            after.mmio_unclaimed,
            before.mmio_unclaimed + 1,
            "{len} bytes at {addr:#x} belong to no device"
        ),
        Some((name, _)) => {
            assert_eq!(after.mmio_unclaimed, before.mmio_unclaimed);
            assert_eq!(
                count(after, name),
                count(before, name) + 1,
                "{len} bytes at {addr:#x} belong to {name}"
            );
        }
    }
}

/// GICD_ICFGR says `id` is level-sensitive (Int_config[1] clear) for `cpu`.
fn level_sensitive(g: &mut Gicv2, cpu: usize, id: u32) -> bool {
    let word = dr(g, cpu, gicd::ICFGR + 4 * u64::from(id / 16));
    word & (2 << (2 * (id % 16))) == 0
}

/// A word read of a PL011 register that has no side effect.
fn reg(uart: &mut Pl011, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    uart.read(0, offset, &mut b);
    u32::from_le_bytes(b)
}
