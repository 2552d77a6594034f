//! Getting a vCPU thread out of `KVM_RUN` from another thread.
//!
//! A thread blocked in `KVM_RUN` (guest running, or the vCPU halted in WFI)
//! returns to userspace when a signal is delivered to it: the ioctl fails
//! with EINTR. The signal's handler does nothing but set
//! `kvm_run.immediate_exit`, which closes the race where the signal lands
//! just *before* the thread enters `KVM_RUN`: with the flag set, KVM returns
//! EINTR at once instead of running the guest (Documentation/virt/kvm/api.rst,
//! "immediate_exit"). The vCPU thread clears the flag before it re-enters.
//!
//! The handler finds the right `kvm_run` through a thread-local pointer that
//! the vCPU thread publishes once; the signal is sent to that thread only
//! (`pthread_kill`), so the handler always runs on the vCPU's own thread.
//!
//! The same module turns SIGINT and SIGTERM into a flag the waiting thread
//! polls, so Ctrl-C stops every vCPU and joins every thread.

use std::cell::Cell;
use std::ptr;

use kvm_bindings::kvm_run;
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

thread_local! {
    /// The `kvm_run` page of the vCPU this thread runs, or null.
    static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(ptr::null_mut()) };
}

/// The signal used to kick vCPU threads: the first real-time signal, which
/// nothing else in the VMM uses.
pub fn kick_signal() -> i32 {
    SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let run = KVM_RUN.with(Cell::get);
    if !run.is_null() {
        // SAFETY: the pointer was published by this same thread from its
        // VcpuFd's kvm_run mapping, which outlives the thread's run loop (it
        // is cleared before the VcpuFd is dropped). A volatile byte store is
        // async-signal-safe.
        unsafe { ptr::addr_of_mut!((*run).immediate_exit).write_volatile(1) };
    }
}

/// Installs the kick handler for the whole process (once, before any vCPU
/// thread starts). It is installed without SA_RESTART, so a blocked
/// `KVM_RUN` returns EINTR.
pub fn install_handler() -> Result<(), vmm_sys_util::errno::Error> {
    register_signal_handler(kick_signal(), on_kick)
}

/// Publishes (or, with null, withdraws) the calling vCPU thread's `kvm_run`
/// page for the kick handler.
pub fn publish(run: *mut kvm_run) {
    KVM_RUN.with(|c| c.set(run));
}

/// Set by SIGINT or SIGTERM; the thread that waits for the vCPUs polls it
/// and stops the run cleanly (every vCPU kicked, every thread joined).
static STOP_REQUESTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // An atomic store is async-signal-safe.
    STOP_REQUESTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Installs handlers that turn SIGINT (Ctrl-C) and SIGTERM into a clean
/// stop instead of killing the process mid-run.
pub fn install_stop_handlers() -> Result<(), vmm_sys_util::errno::Error> {
    register_signal_handler(libc::SIGINT, on_stop_signal)?;
    register_signal_handler(libc::SIGTERM, on_stop_signal)
}

/// Whether SIGINT or SIGTERM arrived.
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(std::sync::atomic::Ordering::SeqCst)
}
