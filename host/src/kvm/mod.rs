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
//! [`vcpu`] is the run loop that does both around each exit, one thread
//! per vCPU; [`control`] is what those threads share to stop together and
//! to kick each other; [`kick`] gets a vCPU thread out of `KVM_RUN` from
//! another thread; [`host_probe`] asks KVM what it offers and checks, in a
//! throwaway VM, whether a vCPU in WFI wakes for its timer. With
//! [`RunOptions::console_input`], [`run`] also feeds the VMM's standard
//! input into the UART from a thread of its own (`crate::console`).

pub mod clock;
pub mod control;
pub mod host_probe;
pub mod irq_line_check;
pub mod kick;
pub mod regs;
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
    /// The device opened is not KVM (`/dev/null`, a regular file, another
    /// driver): it does not answer `KVM_GET_API_VERSION` with
    /// [`vm::KVM_API_VERSION`].
    #[error("{path} is not a KVM device: KVM_GET_API_VERSION {answer}, where KVM answers 12")]
    NotKvm {
        /// The device path tried.
        path: String,
        /// What the ioctl did: "failed (...)" or "answered N".
        answer: String,
    },
    /// The kernel lacks `KVM_CAP_ARM_USER_IRQ`.
    #[error("this kernel's KVM does not offer KVM_CAP_ARM_USER_IRQ, so the timer cannot be wired to a userspace interrupt controller")]
    NoUserIrq,
    /// `--unmapped abort` on a kernel without
    /// `KVM_CAP_ARM_INJECT_EXT_DABT`.
    #[error("this kernel's KVM does not offer KVM_CAP_ARM_INJECT_EXT_DABT, so a guest access to an address no device claims cannot be answered with an external abort; `--unmapped raz` answers it as read-as-zero / write-ignored instead")]
    NoExternalAbort,
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
    /// The payload could not be placed in guest RAM.
    #[error(transparent)]
    Boot(#[from] crate::boot::BootError),
    /// A device could not be placed on the bus.
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
    /// The GIC model rejected its configuration.
    #[error(transparent)]
    Gic(#[from] uirq_gicv2::ConfigError),
    /// The vCPU thread could not be started or died.
    #[error("vCPU thread: {0}")]
    Thread(String),
    /// An exit that cannot be resumed.
    #[error(transparent)]
    Exit(#[from] crate::exit::ExitError),
    /// A thread could not be put under its seccomp filter.
    #[error(transparent)]
    Sandbox(#[from] crate::seccomp::SeccompError),
}

/// Shorthand to wrap an ioctl error with the step that failed.
pub(crate) fn ioctl(step: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> KvmError {
    move |source| KvmError::Ioctl { step, source }
}

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use control::Ending;
pub use vcpu::Outcome;
pub use vm::{Irqchip, VmConfig};

use crate::console::{InputPump, RawTerminal};
use crate::exit::Stats;
use crate::irqchip::Injection;
use crate::probe::Probe;
use crate::seccomp::{self, ThreadKind};

/// How to run the VM, apart from what it is made of.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Stop a guest that has not powered off after this long.
    pub timeout: Option<Duration>,
    /// Kick every vCPU out of `KVM_RUN` this often (the workaround for
    /// kernels that do not wake a vCPU in WFI for its timer).
    pub kick_every: Option<Duration>,
    /// Who issues `KVM_IRQ_LINE` for a vCPU (userspace irqchip only).
    pub injection: Injection,
    /// Announce the benchmark's marker register and copy the result buffer
    /// out of guest RAM at the end.
    pub bench: bool,
    /// Feed the VMM's standard input into the UART's receive FIFO, with the
    /// terminal (if standard input is one) in raw mode for the run
    /// (`crate::console`).
    pub console_input: bool,
}

/// One vCPU's share of a run.
pub struct VcpuReport<P> {
    /// Exits and ioctls of this vCPU's thread.
    pub stats: Stats,
    /// The probe that watched it.
    pub probe: P,
}

/// Everything a run produced.
pub struct RunReport<P> {
    /// How the guest's run ended.
    pub outcome: Outcome,
    /// The vCPU that ended it, when the guest did.
    pub ended_by: Option<usize>,
    /// Whether SIGINT or SIGTERM stopped it.
    pub interrupted: bool,
    /// Per vCPU, by index.
    pub vcpus: Vec<VcpuReport<P>>,
    /// How the VMM's clock was put on the guest's timebase.
    pub timebase: String,
    /// The benchmark's result buffer, copied out of guest RAM (bench runs).
    pub results: Option<Vec<u8>>,
    /// The VMM's resident memory apart from guest RAM, in KiB, measured at
    /// the end of the run.
    pub vmm_rss_kib: Option<u64>,
}

impl<P> RunReport<P> {
    /// The same report with each vCPU's probe turned into `f(probe)`, in
    /// vCPU order.
    pub fn map_probes<Q>(self, mut f: impl FnMut(P) -> Q) -> RunReport<Q> {
        RunReport {
            outcome: self.outcome,
            ended_by: self.ended_by,
            interrupted: self.interrupted,
            vcpus: self
                .vcpus
                .into_iter()
                .map(|v| VcpuReport {
                    stats: v.stats,
                    probe: f(v.probe),
                })
                .collect(),
            timebase: self.timebase,
            results: self.results,
            vmm_rss_kib: self.vmm_rss_kib,
        }
    }

    /// Every vCPU's counters added up.
    pub fn total_stats(&self) -> Stats {
        let mut total = Stats::default();
        for v in &self.vcpus {
            total.add(&v.stats);
        }
        total
    }
}

/// How often the waiting thread looks for Ctrl-C while nothing else wakes it.
const SIGNAL_POLL: Duration = Duration::from_millis(50);
/// How often a stop is re-kicked until every vCPU thread has noticed.
const STOP_RETRY: Duration = Duration::from_millis(20);

/// Creates the VM described by `config` and runs it to the end.
///
/// Each vCPU runs on a thread of its own, watched by the probe `probe(i)`
/// makes for it; this thread waits for them. The first vCPU to power off,
/// reset, crash or fail ends the run: every other vCPU is stopped and
/// kicked out of `KVM_RUN`, and every thread is joined before this returns.
/// `--timeout` and SIGINT/SIGTERM end it the same way, with
/// [`Outcome::Stopped`].
///
/// With `console_input`, standard input goes to the UART: the terminal is
/// in raw mode from just before the vCPUs start until this returns
/// (whatever the outcome; a panic hook covers the release build's abort),
/// and a thread
/// next to the vCPU threads feeds the receive FIFO; it is stopped and
/// joined with them.
///
/// With the sandbox on (`crate::seccomp::enable`), every thread puts
/// itself under its own seccomp filter once the VM is built: each vCPU
/// thread and the input thread at their start, this thread once it has
/// spawned them. No vCPU enters `KVM_RUN` before all of them have.
pub fn run<P: Probe>(
    config: VmConfig,
    options: &RunOptions,
    mut probe: impl FnMut(usize, &vm::Vm) -> P,
) -> Result<RunReport<P>, KvmError> {
    let kvm = vm::open_kvm(&config.kvm_device)?;
    let mut vm = vm::create(&kvm, config)?;
    clock::set_guest_offset(vm.timebase_offset);
    if options.bench {
        announce_marker(&vm.ram)?;
    }
    kick::install_handler()
        .map_err(|e| KvmError::Thread(format!("cannot install the kick signal handler: {e}")))?;
    kick::install_stop_handlers().map_err(|e| {
        KvmError::Thread(format!("cannot install the SIGINT/SIGTERM handlers: {e}"))
    })?;
    // Raw only once Ctrl-C stops the run cleanly; dropped (the terminal
    // restored) on every way out of this function.
    let _raw_terminal = options.console_input.then(RawTerminal::enable).flatten();
    // Opened now: once this thread is under its filter, it can open nothing.
    let proc_files = ProcFiles::open();
    let gate = StartGate::default();

    let vcpus = std::mem::take(&mut vm.vcpus);
    let cpus = vcpus.len();
    let control = control::Control::new(cpus);
    let injection = options.injection;
    let (done_tx, done_rx) = mpsc::channel::<usize>();
    let pump = InputPump::new();
    let input_over = AtomicBool::new(false);

    let (reports, interrupted) = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(cpus);
        for (index, vcpu) in vcpus.into_iter().enumerate() {
            let (vm, control, done, gate) = (&vm, &control, done_tx.clone(), &gate);
            let watcher = probe(index, vm);
            let spawned = std::thread::Builder::new()
                .name(format!("vcpu{index}"))
                .spawn_scoped(scope, move || {
                    // Tells the waiting thread this vCPU is done, even if the
                    // loop panics (then the run ends with an error).
                    let _done = Finished {
                        index,
                        control,
                        done,
                    };
                    let sandboxed = seccomp::enter(ThreadKind::Vcpu, &format!("vcpu{index}"));
                    gate.arrive();
                    let mut run_loop =
                        vcpu::VcpuLoop::new(index, vcpu, vm, control, injection, watcher);
                    let result = match sandboxed {
                        Ok(_) => {
                            gate.wait_open();
                            run_loop.run()
                        }
                        Err(e) => Err(e.into()),
                    };
                    match result {
                        Ok(Outcome::Stopped) => {}
                        Ok(outcome) => control.end(Ending::Guest {
                            cpu: index,
                            outcome,
                        }),
                        Err(e) => control.end(Ending::Error(e)),
                    }
                    VcpuReport {
                        stats: run_loop.state.stats,
                        probe: run_loop.probe,
                    }
                });
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    control.end(Ending::Error(KvmError::Thread(format!(
                        "cannot start the thread of vCPU {index}: {e}"
                    ))));
                    break;
                }
            }
        }
        drop(done_tx);
        let input = options.console_input.then(|| {
            let (vm, control, pump, over, gate) = (&vm, &control, &pump, &input_over, &gate);
            std::thread::Builder::new()
                .name("console-input".to_string())
                .spawn_scoped(scope, move || {
                    let sandboxed = seccomp::enter(ThreadKind::Input, ThreadKind::Input.name());
                    gate.arrive();
                    if let Err(e) = sandboxed {
                        control.end(Ending::Error(e.into()));
                        return;
                    }
                    let stdin = std::io::stdin();
                    let end = pump.run(
                        std::os::fd::AsFd::as_fd(&stdin),
                        &vm.uart,
                        || control.stopping() || over.load(Ordering::Acquire),
                        || kick_for_device_lines(vm, control),
                    );
                    tracing::debug!(?end, "console input ended");
                })
        });
        // Every thread is spawned: once they are all under their filters,
        // this one goes under its own, and the vCPUs may start.
        let spawned = handles.len() + usize::from(matches!(input, Some(Ok(_))));
        gate.wait_arrivals(spawned);
        match seccomp::enter(ThreadKind::Main, ThreadKind::Main.name()) {
            Ok(true) => tracing::info!(
                "seccomp: every thread under its allowlist ({})",
                seccomp::summary().unwrap_or_default()
            ),
            Ok(false) => tracing::info!("seccomp: off (--no-seccomp)"),
            Err(e) => control.end(Ending::Error(e.into())),
        }
        gate.open();
        let interrupted = wait(&control, &done_rx, handles.len(), options);
        input_over.store(true, Ordering::Release);
        match input {
            Some(Ok(handle)) => {
                // The pump sees the flag within one poll period; the kick
                // signal cuts a wait short (the handler is installed
                // without SA_RESTART), and is repeated in case it landed
                // just before the thread blocked.
                while !handle.is_finished() {
                    pump.interrupt(kick::kick_signal());
                    std::thread::sleep(STOP_RETRY);
                }
                if handle.join().is_err() {
                    tracing::warn!("the console input thread panicked");
                }
            }
            Some(Err(e)) => tracing::warn!("no console input: cannot start its thread: {e}"),
            None => {}
        }
        let reports: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        (reports, interrupted)
    });

    let mut per_vcpu = Vec::with_capacity(reports.len());
    for (index, r) in reports.into_iter().enumerate() {
        per_vcpu
            .push(r.map_err(|_| KvmError::Thread(format!("the thread of vCPU {index} panicked")))?);
    }
    let (outcome, ended_by) = match control.take_ending() {
        Some(Ending::Guest { cpu, outcome }) => (outcome, Some(cpu)),
        Some(Ending::Error(e)) => return Err(e),
        Some(Ending::Timeout | Ending::Interrupted) | None => (Outcome::Stopped, None),
    };
    let results = options.bench.then(|| read_results(&vm.ram)).flatten();
    Ok(RunReport {
        outcome,
        ended_by,
        interrupted,
        vcpus: per_vcpu,
        timebase: vm.timebase.clone(),
        results,
        vmm_rss_kib: rss_apart_from(&vm.ram, proc_files),
    })
}

/// After a device outside the vCPU threads (the console input, feeding the
/// UART) changed its interrupt line. With the userspace GIC the SPI's new
/// level is in the model, but no vCPU loop has looked at the CPUs' outputs:
/// the CPUs whose IRQ or FIQ line KVM has not heard yet are kicked, and
/// each one's own thread applies it before re-entering (the owner-thread
/// rule, `crate::irqchip`; with `--irq-injection cross-thread` the kicked
/// thread delivers every change). The input thread never calls
/// `KVM_IRQ_LINE` for a CPU itself. With the in-kernel vGIC the UART's line
/// has already told KVM (`KVM_IRQ_LINE` on the SPI), and there is nothing
/// to do.
fn kick_for_device_lines(vm: &vm::Vm, control: &control::Control) {
    let Some(gic) = vm.gic.as_deref() else {
        return;
    };
    // No CPU has the index usize::MAX: every CPU whose line is stale.
    for cpu in gic.stale_others(usize::MAX).iter() {
        control.kick_for_lines(cpu);
    }
}

/// Dropped when a vCPU thread's work ends, normally or by a panic: reports
/// the thread as finished, and a panic as the end of the run.
struct Finished<'a> {
    index: usize,
    control: &'a control::Control,
    done: mpsc::Sender<usize>,
}

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.control.end(Ending::Error(KvmError::Thread(format!(
                "the thread of vCPU {} panicked",
                self.index
            ))));
        }
        // The receiver only goes away if the waiting thread panicked.
        let _ = self.done.send(self.index);
    }
}

/// Holds the vCPU threads back until every thread of the run is under its
/// seccomp filter: each spawned thread arrives once it has tried to
/// install its own, the main thread waits for them all, installs its own,
/// and opens the gate.
#[derive(Default)]
struct StartGate {
    state: std::sync::Mutex<(usize, bool)>,
    changed: std::sync::Condvar,
}

impl StartGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, bool)> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A spawned thread has tried to install its filter.
    fn arrive(&self) {
        self.lock().0 += 1;
        self.changed.notify_all();
    }

    /// Waits until `n` threads have arrived.
    fn wait_arrivals(&self, n: usize) {
        let mut state = self.lock();
        while state.0 < n {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Lets the vCPUs run.
    fn open(&self) {
        self.lock().1 = true;
        self.changed.notify_all();
    }

    /// Waits until the gate is open.
    fn wait_open(&self) {
        let mut state = self.lock();
        while !state.1 {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// Waits for `running` vCPU threads to finish, ending the run on
/// `--timeout` or SIGINT/SIGTERM and kicking the vCPUs periodically with
/// `kick_every`. Returns whether a signal stopped the run.
fn wait(
    control: &control::Control,
    done: &mpsc::Receiver<usize>,
    mut running: usize,
    options: &RunOptions,
) -> bool {
    let started = Instant::now();
    let mut next_kick = options.kick_every.map(|k| started + k);
    let mut interrupted = false;
    while running > 0 {
        let now = Instant::now();
        let mut wake = now + SIGNAL_POLL;
        if control.stopping() {
            wake = now + STOP_RETRY;
        } else {
            if let Some(t) = options.timeout {
                wake = wake.min(started + t);
            }
            if let Some(k) = next_kick {
                wake = wake.min(k);
            }
        }
        match done.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(_) => {
                running -= 1;
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if control.stopping() {
            // A vCPU thread that has not noticed yet: kick again (a kick
            // that landed before the thread published its kvm_run, for
            // instance, did nothing).
            control.kick_all();
            continue;
        }
        let now = Instant::now();
        if kick::stop_requested() {
            interrupted = true;
            control.end(Ending::Interrupted);
        } else if options.timeout.is_some_and(|t| now >= started + t) {
            control.end(Ending::Timeout);
        } else if let (Some(k), Some(every)) = (next_kick, options.kick_every) {
            if now >= k {
                control.kick_all();
                next_kick = Some(now + every);
            }
        }
    }
    interrupted
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

/// /proc/self/status and /proc/self/smaps, opened before the run so that
/// the memory report at its end needs no `openat` (the main thread's
/// seccomp filter has none). The kernel writes a /proc file's text when it
/// is read, so what is read at the end is the end's.
struct ProcFiles {
    status: Option<std::fs::File>,
    smaps: Option<std::fs::File>,
}

impl ProcFiles {
    fn open() -> Self {
        Self {
            status: std::fs::File::open("/proc/self/status").ok(),
            smaps: std::fs::File::open("/proc/self/smaps").ok(),
        }
    }
}

/// All of `file`, with `read(2)` alone (`read_to_string` on a `File` also
/// asks for its size and position).
fn read_all(file: Option<std::fs::File>) -> Option<String> {
    use std::io::Read;
    let mut file = file?;
    let mut text = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    String::from_utf8(text).ok()
}

/// The process's resident set minus the resident part of guest RAM, in
/// KiB, from /proc/self/smaps (the mapping that starts at guest RAM's host
/// address) and /proc/self/status (VmRSS).
fn rss_apart_from(ram: &crate::memory::GuestRam, files: ProcFiles) -> Option<u64> {
    use vm_memory::{GuestAddress, GuestMemoryBackend};
    let host = ram
        .get_host_address(GuestAddress(uirq_abi::layout::RAM_BASE))
        .ok()? as usize;
    let status = read_all(files.status)?;
    let total = kib_field(&status, "VmRSS:")?;
    let smaps = read_all(files.smaps)?;
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
