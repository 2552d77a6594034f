//! What the vCPU threads share to stop together and to kick each other.
//!
//! - **Stop.** Whatever ends the run (a vCPU's SYSTEM_OFF, reset, crash or
//!   error; `--timeout`; Ctrl-C) sets one flag and kicks every vCPU thread
//!   out of `KVM_RUN`, including a vCPU asleep in WFI inside the kernel or
//!   one still powered off waiting for PSCI CPU_ON. Each loop checks the
//!   flag before it re-enters. The first ending recorded is the run's
//!   outcome; the others only follow it.
//! - **Kicks for lines.** Under the owner-thread rule (`crate::irqchip`), a
//!   thread that changed another vCPU's IRQ line kicks that vCPU's thread,
//!   which applies the line before re-entering. `kick_pending` keeps one
//!   kick in flight per vCPU: the owner clears it just before it reads its
//!   lines, so a kicker that finds it already set knows a kick is on its way
//!   that will make the owner read the lines after this change too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use super::kick;
use super::vcpu::Outcome;
use super::KvmError;

/// How the run ended, as first recorded.
pub enum Ending {
    /// The guest ended it (on the given vCPU).
    Guest {
        /// The vCPU that powered off, reset or crashed.
        cpu: usize,
        /// What it did.
        outcome: Outcome,
    },
    /// A vCPU thread failed.
    Error(KvmError),
    /// `--timeout` expired.
    Timeout,
    /// SIGINT or SIGTERM.
    Interrupted,
}

/// A vCPU thread's POSIX thread id, for `pthread_kill`.
#[derive(Clone, Copy)]
struct ThreadId(libc::pthread_t);

// SAFETY: a pthread_t is an opaque handle (a pointer on musl) that this
// module never dereferences; it is only passed to pthread_kill, which may be
// called from any thread.
unsafe impl Send for ThreadId {}
// SAFETY: as above; the handle is immutable once registered.
unsafe impl Sync for ThreadId {}

/// Shared by the vCPU threads and the thread that waits for them.
pub struct Control {
    stop: AtomicBool,
    threads: Vec<OnceLock<ThreadId>>,
    kick_pending: Vec<AtomicBool>,
    ending: Mutex<Option<Ending>>,
}

impl Control {
    /// Control for `cpus` vCPU threads.
    pub fn new(cpus: usize) -> Self {
        Self {
            stop: AtomicBool::new(false),
            threads: (0..cpus).map(|_| OnceLock::new()).collect(),
            kick_pending: (0..cpus).map(|_| AtomicBool::new(false)).collect(),
            ending: Mutex::new(None),
        }
    }

    /// Called by vCPU `cpu`'s thread before its first `KVM_RUN`.
    pub fn register_current_thread(&self, cpu: usize) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        let _ = self.threads[cpu].set(ThreadId(me));
    }

    /// Whether the run is being stopped.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Records `ending` if nothing ended the run before, and stops every
    /// vCPU.
    pub fn end(&self, ending: Ending) {
        {
            let mut slot = crate::bus::lock(&self.ending);
            if slot.is_none() {
                *slot = Some(ending);
            }
        }
        self.stop_all();
    }

    /// Sets the stop flag and kicks every registered vCPU thread.
    pub fn stop_all(&self) {
        self.stop.store(true, Ordering::Release);
        self.kick_all();
    }

    /// Kicks every registered vCPU thread out of `KVM_RUN`.
    pub fn kick_all(&self) {
        for cpu in 0..self.threads.len() {
            self.signal(cpu);
        }
    }

    /// Called by `cpu`'s own thread just before it reads its lines.
    pub fn clear_kick(&self, cpu: usize) {
        self.kick_pending[cpu].store(false, Ordering::SeqCst);
    }

    /// Kicks `cpu`'s thread to apply its lines, unless a kick is already
    /// on its way. Returns whether a signal was sent.
    pub fn kick_for_lines(&self, cpu: usize) -> bool {
        if self.kick_pending[cpu].swap(true, Ordering::SeqCst) {
            return false;
        }
        self.signal(cpu)
    }

    fn signal(&self, cpu: usize) -> bool {
        let Some(&ThreadId(thread)) = self.threads[cpu].get() else {
            // Not started yet: it reads its lines and the stop flag before
            // its first KVM_RUN anyway.
            return false;
        };
        // SAFETY: `thread` is a vCPU thread of this run; the threads are
        // scoped and joined only after the last kick, so the id is valid.
        let rc = unsafe { libc::pthread_kill(thread, kick::kick_signal()) };
        if rc != 0 {
            // Kicks follow the guest's SGIs: a failure that repeats must
            // not flood the log.
            crate::limited!(warn, cpu, rc, "cannot signal a vCPU thread");
        }
        rc == 0
    }

    /// The recorded ending, once the threads are done.
    pub fn take_ending(&self) -> Option<Ending> {
        crate::bus::lock(&self.ending).take()
    }
}
