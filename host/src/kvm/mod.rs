//! The glue between the device models and the kernel (aarch64 hosts only).
//!
//! [`vm`] creates a VM with *no* in-kernel interrupt controller: no vGIC
//! device is created, so KVM leaves the irqchip to userspace. The VMM must
//! then do two things KVM would otherwise do itself:
//!
//! 1. Feed the generic timer's output into the interrupt controller. KVM
//!    emulates the timer but cannot deliver its interrupt anywhere; with
//!    `KVM_CAP_ARM_USER_IRQ` it reports the timer output levels in
//!    `kvm_run.s.regs.device_irq_level` on every return from `KVM_RUN`, and
//!    returns early (EINTR) when only a level changed.
//! 2. Drive the vCPU's IRQ input from the interrupt controller's output with
//!    `KVM_IRQ_LINE` (type `KVM_ARM_IRQ_TYPE_CPU`), which sets or clears the
//!    virtual IRQ (HCR_EL2.VI) for the vCPU.
//!
//! [`vcpu`] is the run loop that does both around each exit; [`kick`] gets
//! a vCPU out of `KVM_RUN` from another thread (used for `--timeout`).

pub mod clock;
pub mod kick;
pub mod vcpu;
pub mod vgic;
pub mod vm;

use thiserror::Error;

/// Why the VM could not be created or run.
#[derive(Debug, Error)]
pub enum KvmError {
    /// The KVM device (normally `/dev/kvm`) is absent or cannot be opened.
    #[error("cannot open {path} (this VMM needs an aarch64 Linux host with KVM enabled, and access to that device)")]
    NoKvm {
        /// The device path tried.
        path: String,
        /// Why it could not be opened.
        source: kvm_ioctls::Error,
    },
    /// The kernel lacks `KVM_CAP_ARM_USER_IRQ`.
    #[error("this kernel's KVM does not offer KVM_CAP_ARM_USER_IRQ, so the timer cannot be wired to a userspace interrupt controller")]
    NoUserIrq,
    /// A KVM ioctl failed; the string says which step.
    #[error("{step} failed")]
    Ioctl {
        /// What the VMM was doing.
        step: &'static str,
        /// The kernel's error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// Guest RAM could not be set up.
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    /// A device could not be placed on the bus.
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
    /// The GIC model rejected its configuration.
    #[error(transparent)]
    Gic(#[from] crate::devices::gicv2::ConfigError),
    /// The vCPU thread could not be started or died.
    #[error("vCPU thread: {0}")]
    Thread(String),
}

/// Shorthand to wrap an ioctl error with the step that failed.
pub(crate) fn ioctl(step: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> KvmError {
    move |source| KvmError::Ioctl { step, source }
}

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use vmm_sys_util::signal::Killable;

pub use vcpu::{Outcome, Stats, PHASES};
pub use vm::{Irqchip, VmConfig};

use crate::bench::IrqTimeline;

/// Everything a run produced.
pub struct RunReport {
    /// How the guest's run ended.
    pub outcome: Outcome,
    /// Exits and ioctls, in total.
    pub stats: Stats,
    /// The same, by benchmark phase (`uirq_abi::bench::Phase` as index).
    pub phase_stats: [Stats; PHASES],
    /// The VMM's timeline of the benchmark's virtual-timer interrupts.
    pub timeline: Vec<IrqTimeline>,
    /// How the VMM's clock was put on the guest's timebase.
    pub timebase: String,
    /// The benchmark's result buffer, copied out of guest RAM (bench runs).
    pub results: Option<Vec<u8>>,
    /// The VMM's resident memory apart from guest RAM, in KiB, measured at
    /// the end of the run.
    pub vmm_rss_kib: Option<u64>,
    /// The guest's virtual timer when the run was stopped (`--timeout`).
    pub stopped_timer: Option<crate::diagnose::StoppedTimer>,
}

/// Creates the VM described by `config` and runs it to the end.
///
/// The vCPU runs on a thread of its own; this thread waits for it. If
/// `timeout` passes first, the vCPU thread is told to stop and kicked out of
/// `KVM_RUN`, and the outcome is [`Outcome::Stopped`]. With `kick_every`,
/// the vCPU is also kicked out of `KVM_RUN` periodically.
///
/// With `bench`, the loop records its timeline of the benchmark's timer
/// interrupts and the result buffer is copied out of guest RAM at the end.
pub fn run(
    config: VmConfig,
    timeout: Option<Duration>,
    kick_every: Option<Duration>,
    bench: bool,
) -> Result<RunReport, KvmError> {
    let kvm = vm::open_kvm(&config.kvm_device)?;
    let vm = vm::create(&kvm, config)?;
    if bench {
        announce_marker(&vm.ram)?;
    }
    kick::install_handler()
        .map_err(|e| KvmError::Thread(format!("cannot install the kick signal handler: {e}")))?;

    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel();
    let thread_stop = stop.clone();
    let handle = std::thread::Builder::new()
        .name("vcpu0".into())
        .spawn(move || {
            let mut vm = vm;
            let mut run_loop = vcpu::VcpuLoop::new(&mut vm, bench);
            let result = run_loop.run(&thread_stop);
            let (stats, phase_stats) = (run_loop.stats, run_loop.phase_stats);
            let timeline = std::mem::take(&mut run_loop.timeline);
            let stopped_timer = run_loop.stopped_timer;
            let results = bench.then(|| read_results(&vm.ram)).flatten();
            let report = result.map(|outcome| RunReport {
                outcome,
                stats,
                phase_stats,
                timeline,
                timebase: vm.timebase.clone(),
                results,
                vmm_rss_kib: rss_apart_from(&vm.ram),
                stopped_timer,
            });
            // The receiver only goes away if the waiting thread panicked.
            let _ = done_tx.send(());
            report
        })
        .map_err(|e| KvmError::Thread(e.to_string()))?;

    // Wait for the vCPU thread; meanwhile kick it every `kick_every` (the
    // workaround for kernels that do not wake a vCPU in WFI for its timer:
    // each kick makes KVM_RUN return, which refreshes the timer level).
    let kick_vcpu = || {
        if let Err(e) = handle.kill(kick::kick_signal()) {
            tracing::warn!("cannot signal the vCPU thread: {e}");
        }
    };
    let started = std::time::Instant::now();
    let timed_out = loop {
        let left = timeout.map_or(Duration::MAX, |t| t.saturating_sub(started.elapsed()));
        if left.is_zero() {
            break true;
        }
        match done_rx.recv_timeout(kick_every.map_or(left, |k| k.min(left))) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break false,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if kick_every.is_some() {
                    kick_vcpu();
                }
            }
        }
    };
    if timed_out {
        stop.store(true, Ordering::Release);
        // Kick until the thread notices: the handler sets immediate_exit, so
        // one kick is enough, but a retry costs nothing and guards against a
        // kick that lands between the thread's publish and its first run.
        while let Err(mpsc::RecvTimeoutError::Timeout) =
            done_rx.recv_timeout(Duration::from_millis(20))
        {
            kick_vcpu();
        }
    }
    handle
        .join()
        .map_err(|_| KvmError::Thread("the vCPU thread panicked".into()))?
}

/// Tells the firmware that this VMM has the benchmark's phase-marker
/// register, by leaving `HOST_MAGIC` in the result buffer's magic word
/// (`uirq_abi::bench`).
fn announce_marker(ram: &crate::memory::GuestRam) -> Result<(), KvmError> {
    use uirq_abi::bench::{HOST_MAGIC, RESULTS_ADDR};
    use vm_memory::{Bytes, GuestAddress};
    ram.write_slice(&HOST_MAGIC.to_le_bytes(), GuestAddress(RESULTS_ADDR))
        .map_err(|e| KvmError::Memory(e.into()))
}

/// Copies the benchmark's result buffer out of guest RAM.
fn read_results(ram: &crate::memory::GuestRam) -> Option<Vec<u8>> {
    use uirq_abi::bench::{RESULTS_ADDR, RESULTS_SIZE};
    use vm_memory::{Bytes, GuestAddress};
    let mut buf = vec![0u8; RESULTS_SIZE as usize];
    match ram.read_slice(&mut buf, GuestAddress(RESULTS_ADDR)) {
        Ok(()) => Some(buf),
        Err(e) => {
            tracing::warn!("cannot read the benchmark result buffer: {e}");
            None
        }
    }
}

/// The process's resident set minus the resident part of guest RAM, in
/// KiB, from /proc/self/smaps (the mapping that starts at guest RAM's host
/// address) and /proc/self/status (VmRSS).
fn rss_apart_from(ram: &crate::memory::GuestRam) -> Option<u64> {
    use vm_memory::{GuestAddress, GuestMemoryBackend};
    let host = ram
        .get_host_address(GuestAddress(uirq_abi::layout::RAM_BASE))
        .ok()? as usize;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let total = kib_field(&status, "VmRSS:")?;
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut in_ram = false;
    let mut ram_rss = 0;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((start, _)) = range.split_once('-') {
                if start.chars().all(|c| c.is_ascii_hexdigit()) && !start.is_empty() {
                    in_ram = usize::from_str_radix(start, 16).ok() == Some(host);
                    continue;
                }
            }
        }
        if in_ram && line.starts_with("Rss:") {
            ram_rss = kib_field(line, "Rss:")?;
        }
    }
    Some(total.saturating_sub(ram_rss))
}

fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}
