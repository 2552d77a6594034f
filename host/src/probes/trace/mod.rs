//! Recording a run for a timeline viewer: `--trace FILE`.
//!
//! One interrupt crosses four parties: KVM notices the guest's timer fired
//! and returns from `KVM_RUN` with the new level, the VMM feeds it into its
//! GIC model, the model raises the vCPU's IRQ line (`KVM_IRQ_LINE`), and
//! the guest, back in `KVM_RUN`, acknowledges and ends it with MMIO
//! accesses that exit to the VMM again. A trace shows that path as it
//! happened in one real run:
//!
//! | source | what it records | where |
//! |---|---|---|
//! | [`TraceProbe`], one per vCPU thread | in and out of `KVM_RUN`, each exit with its kind and, for a GIC access, the register's name and value; timer level reports; `KVM_IRQ_LINE` calls; kicks | the vCPU's track |
//! | [`GicRecorder`], fed by the GIC model's observer ([`GicObserver`]) | an interrupt becoming pending, acknowledged, its priority dropped (EOI), deactivated; accesses the model ignored | one track per CPU interface, one for the distributor |
//! | the guest's own timestamps ([`GuestTick`]) | for each timer interrupt: its deadline, the first instruction of the vector, after the acknowledge, after the EOI | the guest's tracks |
//!
//! Every record takes a timestamp from the counter on the guest's timebase
//! (the same CNTVCT the guest reads) and a sequence number from one
//! counter shared by all threads, so records that land on the same tick
//! still come out in the order they happened. [`chrome::write`] turns them
//! into Chrome's trace-event JSON, which ui.perfetto.dev and
//! chrome://tracing load.
//!
//! A run without `--trace` has no `TraceProbe` in its loop and no observer
//! on its model, so it pays nothing. A traced run keeps at most
//! [`DEFAULT_BUDGET`] records in all, the first ones, and says how many it
//! could not keep.

pub mod chrome;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::exit::Exit;
use crate::probe::{Line, Probe, Timer, TimerRegs};

/// Records a traced run keeps, all threads together (about 100 bytes each
/// in memory and in the file).
pub const DEFAULT_BUDGET: u64 = 500_000;

/// What all of a run's recorders share: the clock, the order of records
/// and how many more may be kept.
#[derive(Debug)]
pub struct Shared {
    now: fn() -> u64,
    seq: AtomicU64,
    budget: u64,
    dropped: AtomicU64,
}

impl Shared {
    /// A recording that timestamps with `now` (the counter on the guest's
    /// timebase) and keeps at most `budget` records.
    pub fn new(now: fn() -> u64, budget: u64) -> Arc<Self> {
        Arc::new(Self {
            now,
            seq: AtomicU64::new(0),
            budget,
            dropped: AtomicU64::new(0),
        })
    }

    /// A timestamp and a sequence number for the next record, or `None`
    /// when the budget is spent (the record is counted as dropped).
    fn stamp(&self) -> Option<Stamp> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        if seq >= self.budget {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Stamp {
            seq,
            t: (self.now)(),
        })
    }

    /// Records that were not kept because the budget was spent.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// When a record happened: the counter, and its place in the run's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    /// Position among all of the run's records (the sort key).
    pub seq: u64,
    /// The counter (CNTVCT on the guest's timebase).
    pub t: u64,
}

/// What a vCPU thread did, as [`TraceProbe`] saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VcpuRecord {
    /// About to enter `KVM_RUN`.
    Enter,
    /// `KVM_RUN` returned with this exit (not served yet).
    Exit(Exit),
    /// The exit was served; a load's value is in it.
    Served(Exit),
    /// A timer's output level reached the GIC model.
    TimerLevel {
        /// Which timer.
        timer: Timer,
        /// Its new level.
        level: bool,
    },
    /// `KVM_IRQ_LINE` is called for `target`'s `line`.
    IrqLine {
        /// The vCPU whose line is set.
        target: usize,
        /// IRQ or FIQ.
        line: Line,
        /// The level set.
        level: bool,
    },
    /// That `KVM_IRQ_LINE` returned.
    IrqLineDone,
    /// This thread kicked `target`'s thread to update its lines.
    Kicked {
        /// The kicked vCPU.
        target: usize,
    },
    /// The run was stopped from outside.
    Stopped,
}

/// The trace probe of one vCPU thread.
pub struct TraceProbe {
    shared: Arc<Shared>,
    /// What this thread recorded, in order.
    pub records: Vec<(Stamp, VcpuRecord)>,
}

impl TraceProbe {
    /// A probe recording into `shared`'s order and budget.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            records: Vec::new(),
        }
    }

    fn push(&mut self, record: VcpuRecord) {
        if let Some(stamp) = self.shared.stamp() {
            self.records.push((stamp, record));
        }
    }
}

impl Probe for TraceProbe {
    fn exit(&mut self, _cpu: usize, exit: &Exit) {
        self.push(VcpuRecord::Exit(exit.clone()));
    }

    fn served(&mut self, _cpu: usize, exit: &Exit) {
        self.push(VcpuRecord::Served(exit.clone()));
    }

    fn timer_level(&mut self, _cpu: usize, timer: Timer, level: bool) {
        self.push(VcpuRecord::TimerLevel { timer, level });
    }

    fn irq_line(&mut self, target: usize, line: Line, level: bool) {
        self.push(VcpuRecord::IrqLine {
            target,
            line,
            level,
        });
    }

    fn irq_line_done(&mut self, _cpu: usize) {
        self.push(VcpuRecord::IrqLineDone);
    }

    fn kicked(&mut self, _cpu: usize, target: usize) {
        self.push(VcpuRecord::Kicked { target });
    }

    fn reenter(&mut self, _cpu: usize) {
        self.push(VcpuRecord::Enter);
    }

    fn stopped(&mut self, _cpu: usize, _timer: Option<TimerRegs>) {
        self.push(VcpuRecord::Stopped);
    }
}

/// One event of the GIC model, as its observer reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicRecord {
    /// `id` became pending: on `cpu` for a banked SGI or PPI, in the
    /// distributor for an SPI (`cpu` is `None`); `source` sent an SGI.
    Pending {
        /// Interrupt id.
        id: u32,
        /// The CPU whose banked copy became pending.
        cpu: Option<usize>,
        /// The CPU that sent the SGI.
        source: Option<usize>,
    },
    /// A GICC_IAR read on `cpu` returned `id`: pending to active.
    Acknowledged {
        /// The acknowledging CPU.
        cpu: usize,
        /// Interrupt id.
        id: u32,
        /// The CPU that sent the SGI.
        source: Option<usize>,
    },
    /// A GICC_EOIR write on `cpu` dropped `id`'s running priority.
    PriorityDropped {
        /// The CPU.
        cpu: usize,
        /// Interrupt id.
        id: u32,
    },
    /// `id` became inactive on `cpu` (EOIR with EOImode 0, or GICC_DIR).
    Deactivated {
        /// The CPU.
        cpu: usize,
        /// Interrupt id.
        id: u32,
    },
    /// The model ignored an access of `cpu` (read as zero, write ignored).
    Ignored {
        /// The accessing CPU.
        cpu: usize,
        /// The register's name, or its offset in hexadecimal.
        register: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// The GIC model's events of a traced run, from whichever thread caused
/// them (the model is shared; its observer is called under its lock).
pub struct GicRecorder {
    shared: Arc<Shared>,
    records: Mutex<Vec<(Stamp, GicRecord)>>,
}

impl GicRecorder {
    /// A log recording into `shared`'s order and budget.
    pub fn new(shared: Arc<Shared>) -> Arc<Self> {
        Arc::new(Self {
            shared,
            records: Mutex::new(Vec::new()),
        })
    }

    /// Records `record` now.
    pub fn record(&self, record: GicRecord) {
        if let Some(stamp) = self.shared.stamp() {
            // A panic elsewhere while holding the lock leaves the vector
            // usable; keep recording into it.
            let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
            records.push((stamp, record));
        }
    }

    /// Everything recorded so far, in order.
    pub fn take(&self) -> Vec<(Stamp, GicRecord)> {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *records)
    }
}

/// The GIC model's observer in a traced run: each event, as a
/// [`GicRecord`], into the recorder. It goes after the VMM's log
/// (`crate::devices::gic_log::GicLog::with_next`).
pub struct GicObserver(pub Arc<GicRecorder>);

impl uirq_gicv2::Observer for GicObserver {
    fn event(&mut self, event: &uirq_gicv2::Event) {
        use uirq_gicv2::Event;
        let record = match *event {
            Event::Pending { id, cpu, source } => GicRecord::Pending {
                id: id.raw(),
                cpu,
                source,
            },
            Event::Acknowledged { cpu, id, source } => GicRecord::Acknowledged {
                cpu,
                id: id.raw(),
                source,
            },
            Event::PriorityDropped { cpu, id } => GicRecord::PriorityDropped { cpu, id: id.raw() },
            Event::Deactivated { cpu, id } => GicRecord::Deactivated { cpu, id: id.raw() },
            Event::Ignored {
                cpu,
                frame,
                offset,
                reason,
                ..
            } => GicRecord::Ignored {
                cpu,
                register: uirq_gicv2::regs::name(frame, offset).unwrap_or(match frame {
                    uirq_gicv2::Frame::Distributor => "GICD (reserved offset)",
                    _ => "GICC (reserved offset)",
                }),
                reason,
            },
            // The VMM's own line levels: its log says so; nothing the
            // guest did.
            _ => return,
        };
        self.0.record(record);
    }
}

/// One timer interrupt as the guest timed it (counter values, from the
/// firmware's own records: `uirq_abi::bench::VtimerSample`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestTick {
    /// The CPU that took it.
    pub cpu: usize,
    /// The timer's deadline (CNTV_CVAL).
    pub deadline: u64,
    /// The first instruction of the IRQ vector.
    pub vector: u64,
    /// After the acknowledge (GICC_IAR read).
    pub acked: u64,
    /// After the end of interrupt (GICC_EOIR write).
    pub eoi: u64,
}

/// A traced run: the file it goes to (created before the run starts, so a
/// path that cannot be written fails at once) and what records it.
pub struct Recording {
    file: File,
    path: PathBuf,
    shared: Arc<Shared>,
    gic: Arc<GicRecorder>,
}

/// What [`Recording::finish`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Records kept.
    pub records: u64,
    /// Records the budget did not keep.
    pub dropped: u64,
}

impl Recording {
    /// Creates (or truncates) `path` and starts a recording that
    /// timestamps with `now` and keeps at most `budget` records.
    pub fn create(path: &Path, now: fn() -> u64, budget: u64) -> io::Result<Self> {
        let file = File::create(path)?;
        let shared = Shared::new(now, budget);
        Ok(Self {
            file,
            path: path.to_path_buf(),
            gic: GicRecorder::new(shared.clone()),
            shared,
        })
    }

    /// Where the trace goes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A probe for one vCPU thread.
    pub fn probe(&self) -> TraceProbe {
        TraceProbe::new(self.shared.clone())
    }

    /// The observer to chain onto the GIC model's (see [`GicObserver`]).
    pub fn gic_observer(&self) -> GicObserver {
        GicObserver(self.gic.clone())
    }

    /// Writes the trace: every vCPU's records (`vcpus`, by index), the GIC
    /// model's, and the guest's own timestamps.
    pub fn finish(
        self,
        vcpus: &[Vec<(Stamp, VcpuRecord)>],
        guest: &[GuestTick],
        frequency: u64,
        about: serde_json::Map<String, serde_json::Value>,
    ) -> io::Result<Written> {
        let gic = self.gic.take();
        let dropped = self.shared.dropped();
        let records = vcpus.iter().map(Vec::len).sum::<usize>() + gic.len();
        let trace = chrome::Trace {
            vcpus,
            gic: &gic,
            guest,
            frequency,
            dropped,
            about,
        };
        let mut out = BufWriter::new(self.file);
        chrome::write(&mut out, &trace)?;
        out.flush()?;
        Ok(Written {
            records: records as u64,
            dropped,
        })
    }
}
