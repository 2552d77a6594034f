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

pub mod kick;
pub mod vcpu;
pub mod vm;

use thiserror::Error;

/// Why the VM could not be created or run.
#[derive(Debug, Error)]
pub enum KvmError {
    /// `/dev/kvm` is absent or cannot be opened.
    #[error("cannot open /dev/kvm ({0}); this VMM needs an aarch64 Linux host with KVM enabled and access to /dev/kvm")]
    NoKvm(#[source] kvm_ioctls::Error),
    /// The kernel lacks `KVM_CAP_ARM_USER_IRQ`.
    #[error("this kernel's KVM does not offer KVM_CAP_ARM_USER_IRQ, so the timer cannot be wired to a userspace interrupt controller")]
    NoUserIrq,
    /// A KVM ioctl failed; the string says which step.
    #[error("{step} failed: {source}")]
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

pub use vcpu::{Outcome, Stats};
pub use vm::VmConfig;

/// Creates the VM described by `config` and runs it to the end.
///
/// The vCPU runs on a thread of its own; this thread waits for it. If
/// `timeout` passes first, the vCPU thread is told to stop and kicked out of
/// `KVM_RUN`, and the outcome is [`Outcome::Stopped`].
pub fn run(config: VmConfig, timeout: Option<Duration>) -> Result<(Outcome, Stats), KvmError> {
    let kvm = vm::open_kvm()?;
    let vm = vm::create(&kvm, config)?;
    kick::install_handler()
        .map_err(|e| KvmError::Thread(format!("cannot install the kick signal handler: {e}")))?;

    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel();
    let thread_stop = stop.clone();
    let handle = std::thread::Builder::new()
        .name("vcpu0".into())
        .spawn(move || {
            let mut vm = vm;
            let mut run_loop =
                vcpu::VcpuLoop::new(0, &mut vm.vcpu, &vm.fd, &vm.bus, vm.gic.clone());
            let result = run_loop.run(&thread_stop);
            let stats = run_loop.stats;
            // The receiver only goes away if the waiting thread panicked.
            let _ = done_tx.send(());
            result.map(|outcome| (outcome, stats))
        })
        .map_err(|e| KvmError::Thread(e.to_string()))?;

    let deadline = timeout.unwrap_or(Duration::MAX);
    if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(deadline) {
        stop.store(true, Ordering::Release);
        // Kick until the thread notices: the handler sets immediate_exit, so
        // one kick is enough, but a retry costs nothing and guards against a
        // kick that lands between the thread's publish and its first run.
        while let Err(mpsc::RecvTimeoutError::Timeout) =
            done_rx.recv_timeout(Duration::from_millis(20))
        {
            if let Err(e) = handle.kill(kick::kick_signal()) {
                tracing::warn!("cannot signal the vCPU thread: {e}");
            }
        }
    }
    handle
        .join()
        .map_err(|_| KvmError::Thread("the vCPU thread panicked".into()))?
}
