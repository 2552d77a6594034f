//! The live cross-thread `KVM_IRQ_LINE` check of `uirq-vmm --probe`: does
//! a line change made from another thread survive the vCPU's own thread
//! entering `KVM_RUN`?
//!
//! **The race** (docs/smp.md, section 3). With the irqchip in userspace,
//! `KVM_IRQ_LINE` sets or clears `HCR_EL2.VI` in the vCPU's saved
//! `hcr_el2` with an atomic bit operation; the vCPU's own thread rewrites
//! that word with plain read-modify-writes in `kvm_arch_vcpu_load()`, at
//! the start of every `KVM_RUN`. A change that lands between that load
//! and store is undone.
//!
//! **The check.** A throwaway VM ([`super::host_probe`]'s) runs
//! [`ISR_GUEST`], which reports `ISR_EL1` (bit 7: the virtual IRQ is
//! pending, that is `HCR_EL2.VI`) through an MMIO write. The vCPU's thread
//! enters `KVM_RUN` over and over with `immediate_exit` set: each call
//! runs `vcpu_load()`, whose racy sequence comes before the
//! `immediate_exit` test, and returns at once, so nearly all the thread's
//! time is spent where the race is. Meanwhile this thread raises the
//! vCPU's IRQ line, after a short random spin so that the change lands at
//! varying points of an entry; then it asks the vCPU's thread for one real
//! guest entry, and the guest's `ISR_EL1.I` says whether the raise held.
//! The same for a lower. Nothing else changes the line, so a raise the
//! guest does not see (or a lower it does not see) was undone by the
//! race.
//!
//! The check ends at the first loss, which settles the question, or when
//! its time is spent. The race is timing-bound: a loss is certain, and
//! none in a short check means only that it did not show this time. Under
//! nested emulation (QEMU TCG, 6.12.117) one raise in about 11 000 was
//! lost, some 40 s of checking; on hardware an entry and a read cost a
//! hundredth of that, and the same second covers far more changes. A
//! kernel developer after a firm answer gives it more time
//! (`--irq-line-check-ms`), or runs `ipi-stress` with cross-thread
//! injection (`cargo xtask kernels`).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kvm_ioctls::{Kvm, VcpuExit, VcpuFd};

use super::host_probe::ThrowawayVm;
use super::regs::{cpu_irq_field, set_core_reg, CoreReg};
use super::{ioctl, KvmError};
use crate::host_kernel::{irq_line_detail, IrqLineCheck, IrqLineVerdict, ISR_EL1_I, ISR_GUEST};
use crate::probe::Line;

/// How long this thread waits for the vCPU's thread to enter `KVM_RUN` or
/// to answer a read before the check gives up.
const PATIENCE: Duration = Duration::from_secs(2);

/// What the vCPU's thread does next.
const HAMMER: u8 = 0;
const READ: u8 = 1;
const STOP: u8 = 2;

/// The two threads' shared state.
struct Shared {
    /// [`HAMMER`], [`READ`] or [`STOP`].
    phase: AtomicU8,
    /// `KVM_RUN` entries with `immediate_exit`.
    entries: AtomicU64,
}

/// Runs the check on `kvm`; a failure to build or run the throwaway VM is
/// an inconclusive check, not an error.
pub fn check_irq_line(kvm: &Kvm, budget: Duration) -> IrqLineCheck {
    let started = Instant::now();
    let mut check = match run(kvm, budget) {
        Ok(Counts {
            raises,
            raises_lost,
            lowers_lost,
            entries,
        }) => IrqLineCheck {
            verdict: IrqLineVerdict::from_counts(raises, raises_lost, lowers_lost),
            detail: irq_line_detail(raises, raises_lost, lowers_lost, entries),
            raises,
            raises_lost,
            lowers_lost,
            entries,
            cost_us: 0,
        },
        Err(e) => IrqLineCheck::without_result(
            IrqLineVerdict::Inconclusive,
            &format!("the check's VM failed: {}", super::host_probe::chain(&e)),
        ),
    };
    check.cost_us = started.elapsed().as_micros() as u64;
    check
}

/// What the check counted.
struct Counts {
    raises: u32,
    raises_lost: u32,
    lowers_lost: u32,
    entries: u64,
}

fn run(kvm: &Kvm, budget: Duration) -> Result<Counts, KvmError> {
    // Its VM and RAM are dropped at the end of this function, after the
    // vCPU's thread (which owns the vCPU) has ended.
    let throwaway = ThrowawayVm::new(kvm, &ISR_GUEST)?;
    let (vcpu, vm) = (throwaway.vcpu, &throwaway.vm);
    let mmio = ThrowawayVm::outside_ram();
    set_core_reg(&vcpu, CoreReg::X(1), mmio)?;
    let shared = Shared {
        phase: AtomicU8::new(READ),
        entries: AtomicU64::new(0),
    };
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let shared = &shared;
        let spawned = std::thread::Builder::new()
            .name("irq-line-check".to_string())
            .spawn_scoped(scope, move || {
                if let Err(e) = owner(vcpu, shared, &tx, mmio) {
                    let _ = tx.send(Err(e));
                }
            });
        if let Err(e) = spawned {
            return Err(KvmError::Thread(format!(
                "cannot start the cross-thread check's thread: {e}"
            )));
        }
        let result = inject(vm, shared, &rx, budget);
        shared.phase.store(STOP, Ordering::SeqCst);
        result
    })
}

/// This thread's half: raise, read, lower, read, until the first loss or
/// the budget's end. The vCPU's thread starts with a read (the line is
/// low).
fn inject(
    vm: &kvm_ioctls::VmFd,
    shared: &Shared,
    rx: &mpsc::Receiver<Result<u64, KvmError>>,
    budget: Duration,
) -> Result<Counts, KvmError> {
    let field = cpu_irq_field(0, Line::Irq);
    let pending = |rx: &mpsc::Receiver<Result<u64, KvmError>>| -> Result<bool, KvmError> {
        match rx.recv_timeout(PATIENCE) {
            Ok(Ok(isr)) => Ok(isr & ISR_EL1_I != 0),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(KvmError::Thread(
                "the cross-thread check's vCPU did not report ISR_EL1".into(),
            )),
        }
    };
    if pending(rx)? {
        return Err(KvmError::Thread(
            "the guest saw an IRQ pending before any was raised".into(),
        ));
    }
    let mut counts = Counts {
        raises: 0,
        raises_lost: 0,
        lowers_lost: 0,
        entries: 0,
    };
    let mut random = Xorshift::seeded();
    let started = Instant::now();
    while counts.raises_lost + counts.lowers_lost == 0 && started.elapsed() < budget {
        for level in [true, false] {
            // The vCPU's thread is back in its entry loop: wait for an
            // entry to start after this point, then a little more.
            let seen = shared.entries.load(Ordering::SeqCst);
            let waiting = Instant::now();
            while shared.entries.load(Ordering::SeqCst) < seen + 2 {
                if waiting.elapsed() > PATIENCE {
                    return Err(KvmError::Thread(
                        "the cross-thread check's vCPU stopped entering KVM_RUN".into(),
                    ));
                }
                std::hint::spin_loop();
            }
            for _ in 0..random.below(512) {
                std::hint::spin_loop();
            }
            vm.set_irq_line(field, level)
                .map_err(ioctl("KVM_IRQ_LINE (cross-thread check)"))?;
            shared.phase.store(READ, Ordering::SeqCst);
            let seen = pending(rx)?;
            if seen != level {
                if level {
                    counts.raises_lost += 1;
                } else {
                    counts.lowers_lost += 1;
                }
                break;
            }
        }
        counts.raises += 1;
    }
    counts.entries = shared.entries.load(Ordering::SeqCst);
    tracing::debug!(
        "cross-thread check: {} raises in {:.1} ms, {} entries",
        counts.raises,
        started.elapsed().as_secs_f64() * 1e3,
        counts.entries
    );
    Ok(counts)
}

/// The vCPU's thread: `KVM_RUN` with `immediate_exit` while the phase is
/// [`HAMMER`]; one real entry, up to the guest's MMIO write of
/// `ISR_EL1`, for each [`READ`].
fn owner(
    mut vcpu: VcpuFd,
    shared: &Shared,
    tx: &mpsc::Sender<Result<u64, KvmError>>,
    mmio: u64,
) -> Result<(), KvmError> {
    loop {
        match shared.phase.load(Ordering::SeqCst) {
            STOP => return Ok(()),
            READ => {
                vcpu.get_kvm_run().immediate_exit = 0;
                let isr = read_isr(&mut vcpu, mmio)?;
                shared.phase.store(HAMMER, Ordering::SeqCst);
                if tx.send(Ok(isr)).is_err() {
                    return Ok(());
                }
            }
            _ => {
                vcpu.get_kvm_run().immediate_exit = 1;
                match vcpu.run() {
                    Err(e) if e.errno() == libc::EINTR => {}
                    Ok(VcpuExit::Intr) => {}
                    Ok(other) => {
                        return Err(KvmError::Thread(format!(
                            "KVM_RUN with immediate_exit ran the guest: {other:?}"
                        )))
                    }
                    Err(source) => {
                        return Err(KvmError::Ioctl {
                            step: "KVM_RUN (cross-thread check)",
                            source,
                        })
                    }
                }
                shared.entries.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Runs the guest up to its next write of `ISR_EL1`.
fn read_isr(vcpu: &mut VcpuFd, mmio: u64) -> Result<u64, KvmError> {
    loop {
        match vcpu.run() {
            Ok(VcpuExit::MmioWrite(addr, data)) if addr == mmio => {
                let mut bytes = [0u8; 8];
                let n = data.len().min(8);
                bytes[..n].copy_from_slice(&data[..n]);
                return Ok(u64::from_le_bytes(bytes));
            }
            // A signal, or a level change of a timer the guest never
            // armed: enter again.
            Ok(VcpuExit::Intr) => {}
            Err(e) if e.errno() == libc::EINTR => {}
            Ok(other) => {
                return Err(KvmError::Thread(format!(
                    "the cross-thread check's guest exited unexpectedly: {other:?}"
                )))
            }
            Err(source) => {
                return Err(KvmError::Ioctl {
                    step: "KVM_RUN (cross-thread check)",
                    source,
                })
            }
        }
    }
}

/// A small pseudo-random sequence (Marsaglia's xorshift64) for the spins
/// before each line change; its quality does not matter, only that the
/// change lands at varying points of an entry.
struct Xorshift(u64);

impl Xorshift {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
        Self(nanos | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
