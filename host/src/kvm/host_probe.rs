//! The live half of `uirq-vmm --probe`: KVM's answers for every capability
//! of [`CAPABILITIES`], the WFI wake-up check ([`check_wfi`]), and the
//! cross-thread `KVM_IRQ_LINE` check (`super::irq_line_check`).
//!
//! **The check.** A throwaway VM with no vGIC (so the irqchip is in
//! userspace), one vCPU and a page of RAM holding [`WFI_GUEST`]: the guest
//! arms its virtual timer [`TIMER_DELAY_US`] ahead and waits in WFI. A
//! thread runs `KVM_RUN`; this thread waits for it to return with the
//! timer's level (bit 0 of `kvm_run.s.regs.device_irq_level`). On a kernel
//! with the fix (Linux commit 4ce98bf0865c) KVM wakes the vCPU when the
//! timer fires and returns with the level at once. On a kernel without
//! it, nothing comes: after [`WAITS`]' margin past the deadline this
//! thread kicks the vCPU thread out of `KVM_RUN` (`super::kick`: a signal,
//! and `immediate_exit`), and the return the kick forces carries the level
//! the timer raised long before.
//!
//! Two things keep the verdict honest. A report only counts when the
//! guest's PC is just past its WFI ([`WFI_GUEST_AFTER_WFI`]): KVM had
//! handled the trapped WFI, so the vCPU did wait. With the PC anywhere else
//! the timer fired before the vCPU reached its WFI (a slow first entry, the
//! thread preempted), which proves nothing: the attempt is repeated in a
//! fresh VM with a longer delay. And a report that needed the kick is
//! confirmed once with a longer wait, so that a loaded host that was merely
//! slow is not taken for a broken kernel.
//!
//! On a kernel with the fix the check costs one VM's creation, the timer's
//! delay and one wake-up: a few milliseconds on hardware.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kvm_bindings::{
    kvm_userspace_memory_region, kvm_vcpu_init, KVM_CAP_ARM_INJECT_EXT_DABT,
    KVM_CAP_ARM_NISV_TO_USER, KVM_CAP_ARM_PSCI_0_2, KVM_CAP_ARM_USER_IRQ, KVM_CAP_COUNTER_OFFSET,
    KVM_CAP_DEVICE_CTRL, KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_MAX_VCPUS, KVM_CAP_NR_VCPUS,
    KVM_CAP_ONE_REG,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use uirq_abi::layout::RAM_BASE;

use super::control::Control;
use super::regs::{get_core_reg, set_core_reg, CoreReg};
use super::{clock, ioctl, kick, KvmError};
use crate::host_kernel::{
    Capability, HostReport, IrqLineCheck, IrqLineVerdict, KvmInfo, Uname, WfiCheck, WfiVerdict,
    CAPABILITIES, SCHEMA_VERSION, WFI_GUEST, WFI_GUEST_AFTER_WFI,
};

/// `CAPABILITIES`' numbers as kvm-bindings has them, in the same order.
const KVM_NUMBERS: [u32; CAPABILITIES.len()] = [
    KVM_CAP_ARM_USER_IRQ,
    KVM_CAP_COUNTER_OFFSET,
    KVM_CAP_ARM_INJECT_EXT_DABT,
    KVM_CAP_ARM_NISV_TO_USER,
    KVM_CAP_MAX_VCPUS,
    KVM_CAP_NR_VCPUS,
    KVM_CAP_ARM_PSCI_0_2,
    KVM_CAP_IMMEDIATE_EXIT,
    KVM_CAP_ONE_REG,
    KVM_CAP_DEVICE_CTRL,
];

// The table's numbers are the kernel's.
const _: () = {
    let mut i = 0;
    while i < KVM_NUMBERS.len() {
        assert!(KVM_NUMBERS[i] == CAPABILITIES[i].number);
        i += 1;
    }
};

/// How far ahead the guest first arms its timer.
pub const TIMER_DELAY_US: u64 = 1000;

/// How long past the timer's delay the VMM waits for KVM to return by
/// itself before it kicks: the first attempt's, then the confirmation's.
pub const WAITS: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(500)];

/// How often an attempt whose timer fired before the vCPU reached its
/// WFI is repeated (each time with the delay four times longer).
const EARLY_RETRIES: u32 = 3;

/// Returns from kicks without the timer's level after which an attempt
/// gives up (the kicks come every 20 ms).
const BARE_KICKS: u32 = 25;

/// Guest RAM of the throwaway VM: one page of the largest size an arm64
/// host uses (64 KiB), so that it is a whole number of host pages.
const RAM_SIZE: u64 = 0x1_0000;

/// Every capability's answer, the kernel's name and, where there is a
/// userspace irqchip to check, the WFI check and the cross-thread
/// `KVM_IRQ_LINE` check (given `irq_line_budget`; none if zero).
pub fn probe(device: &std::path::Path, irq_line_budget: Duration) -> Result<HostReport, KvmError> {
    let kvm = super::vm::open_device(device)?;
    let capabilities: Vec<Capability> = CAPABILITIES
        .iter()
        .map(|c| Capability::answered(c, kvm.check_extension_raw(c.number.into())))
        .collect();
    let user_irq = capabilities.first().is_some_and(|c| c.present);
    const NO_USER_IRQ: &str = "KVM_CAP_ARM_USER_IRQ is absent: no userspace irqchip to check";
    let (wfi_wakeup, cross_thread_irq_line) = if user_irq {
        let irq_line = if irq_line_budget.is_zero() {
            IrqLineCheck::without_result(IrqLineVerdict::NotRun, "skipped (--irq-line-check-ms 0)")
        } else {
            super::irq_line_check::check_irq_line(&kvm, irq_line_budget)
        };
        (check_wfi(&kvm), irq_line)
    } else {
        (
            WfiCheck::not_run(NO_USER_IRQ),
            IrqLineCheck::without_result(IrqLineVerdict::NotRun, NO_USER_IRQ),
        )
    };
    Ok(HostReport {
        schema_version: SCHEMA_VERSION,
        tool: "uirq-vmm".to_string(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        kernel: Uname::current(),
        kvm: KvmInfo {
            device: device.display().to_string(),
            api_version: kvm.get_api_version(),
        },
        capabilities,
        wfi_wakeup,
        cross_thread_irq_line,
    })
}

/// A VM with no vGIC (so the irqchip is in userspace), one page of RAM at
/// `RAM_BASE` holding a few instructions, and one vCPU about to run them.
/// The fields drop in order: the vCPU, the VM, then the RAM the VM maps.
pub(super) struct ThrowawayVm {
    pub vcpu: VcpuFd,
    pub vm: VmFd,
    /// Held only to outlive the VM that maps it.
    #[allow(dead_code)]
    pub ram: crate::memory::GuestRam,
}

impl ThrowawayVm {
    /// The VM, with `code` at `RAM_BASE` and the vCPU's PC on it.
    pub fn new(kvm: &Kvm, code: &[u32]) -> Result<Self, KvmError> {
        let ram = crate::memory::create_ram(RAM_SIZE)?;
        let vm = kvm.create_vm().map_err(ioctl("KVM_CREATE_VM"))?;
        let bytes: Vec<u8> = code.iter().flat_map(|w| w.to_le_bytes()).collect();
        ram.write_slice(&bytes, GuestAddress(RAM_BASE))
            .map_err(|e| KvmError::Memory(e.into()))?;
        let host = ram
            .get_host_address(GuestAddress(RAM_BASE))
            .map_err(crate::memory::MemoryError::Access)?;
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: RAM_BASE,
            memory_size: RAM_SIZE,
            userspace_addr: host as u64,
        };
        // SAFETY: the region is a live mmap owned by `ram`, which outlives
        // the VM and its vCPU (both dropped before it).
        unsafe { vm.set_user_memory_region(region) }
            .map_err(ioctl("KVM_SET_USER_MEMORY_REGION"))?;
        let mut init = kvm_vcpu_init::default();
        vm.get_preferred_target(&mut init)
            .map_err(ioctl("KVM_ARM_PREFERRED_TARGET"))?;
        let vcpu = vm.create_vcpu(0).map_err(ioctl("KVM_CREATE_VCPU"))?;
        vcpu.vcpu_init(&init).map_err(ioctl("KVM_ARM_VCPU_INIT"))?;
        // No vGIC was created: the irqchip is in userspace.
        set_core_reg(&vcpu, CoreReg::Pc, RAM_BASE)?;
        Ok(Self { vcpu, vm, ram })
    }

    /// The first address past the RAM: an access there is an MMIO exit.
    pub fn outside_ram() -> u64 {
        RAM_BASE + RAM_SIZE
    }
}

/// How one attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    /// KVM returned with the level by itself, this long after entering.
    Woke(Duration),
    /// The level came with the kick, this long after entering.
    Kicked(Duration),
    /// The level came with the PC short of the WFI's end: the timer fired
    /// before the vCPU waited.
    Early,
    /// Kick after kick returned without the level.
    NoLevel,
}

/// Runs the WFI wake-up check on `kvm`; a failure to build or run the
/// throwaway VM is an inconclusive check, not an error (a run that needs
/// KVM will say what is wrong with it).
pub fn check_wfi(kvm: &Kvm) -> WfiCheck {
    let started = Instant::now();
    let mut check = WfiCheck {
        verdict: WfiVerdict::Inconclusive,
        detail: String::new(),
        timer_delay_us: TIMER_DELAY_US,
        wait_ms: 0,
        report_after_us: None,
        kicked: false,
        attempts: 0,
        cost_us: 0,
    };
    let freq = clock::frequency();
    let mut early = 0;
    let mut confirming = 0;
    let result = loop {
        let wait = WAITS[confirming];
        check.attempts += 1;
        check.wait_ms = wait.as_millis() as u64;
        let ticks = (check.timer_delay_us * freq / 1_000_000).max(1);
        let delay = Duration::from_micros(check.timer_delay_us);
        match attempt(kvm, ticks, delay + wait) {
            Err(e) => break Err(e),
            Ok(Attempt::Woke(after)) => {
                check.report_after_us = Some(after.as_micros() as u64);
                check.kicked = false;
                break Ok((
                    WfiVerdict::Wakes,
                    format!(
                        "KVM returned with the timer's level {:.1} ms after entering KVM_RUN, the timer being due after {:.1} ms",
                        ms(after),
                        check.timer_delay_us as f64 / 1000.0
                    ),
                ));
            }
            Ok(Attempt::Kicked(after)) => {
                check.report_after_us = Some(after.as_micros() as u64);
                check.kicked = true;
                if confirming + 1 < WAITS.len() {
                    confirming += 1;
                    continue;
                }
                break Ok((
                    WfiVerdict::BugPresent,
                    format!(
                        "KVM_RUN did not return within {} ms and then {} ms of the timer's deadline; the kick's return carried the level",
                        WAITS[0].as_millis(),
                        wait.as_millis()
                    ),
                ));
            }
            Ok(Attempt::Early) if early < EARLY_RETRIES => {
                early += 1;
                check.timer_delay_us *= 4;
            }
            Ok(Attempt::Early) => {
                break Ok((
                    WfiVerdict::Inconclusive,
                    format!(
                        "the timer fired before the vCPU reached its WFI, {} times",
                        early + 1
                    ),
                ))
            }
            Ok(Attempt::NoLevel) => {
                break Ok((
                    WfiVerdict::Inconclusive,
                    format!(
                        "{BARE_KICKS} kicks from {} ms on found no timer level raised",
                        wait.as_millis()
                    ),
                ))
            }
        }
    };
    match result {
        Ok((verdict, detail)) => {
            check.verdict = verdict;
            check.detail = detail;
        }
        Err(e) => {
            check.verdict = WfiVerdict::Inconclusive;
            check.detail = format!("the check's VM failed: {}", chain(&e));
        }
    }
    check.cost_us = started.elapsed().as_micros() as u64;
    check
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// An error and its causes, in one line.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What the vCPU thread hands back.
enum FromVcpu {
    /// About to enter `KVM_RUN` for the first time.
    Entering(Instant),
    /// `KVM_RUN` returned with the timer's level high, at that time, with
    /// the guest's PC.
    Level { at: Instant, pc: u64 },
    /// `KVM_RUN` returned from a kick without the level.
    KickedWithoutLevel,
    /// Something else: an exit the guest cannot cause, or an error.
    Failed(KvmError),
}

/// One throwaway VM: the guest arms its timer `ticks` ahead and waits; the
/// vCPU is kicked when `KVM_RUN` has not returned with the level after
/// `patience`.
fn attempt(kvm: &Kvm, ticks: u64, patience: Duration) -> Result<Attempt, KvmError> {
    let started = Instant::now();
    // Its VM and RAM are dropped at the end of this function, after the
    // vCPU's thread (which owns the vCPU) has ended.
    let throwaway = ThrowawayVm::new(kvm, &WFI_GUEST)?;
    let vcpu = throwaway.vcpu;
    set_core_reg(&vcpu, CoreReg::X(0), ticks)?;

    kick::install_handler()
        .map_err(|e| KvmError::Thread(format!("cannot install the kick signal handler: {e}")))?;
    tracing::debug!("WFI check: VM built in {:.1} ms", ms(started.elapsed()));
    let control = Control::new(1);
    let kicked = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let (control, kicked) = (&control, &kicked);
        let spawned = std::thread::Builder::new()
            .name("wfi-check".to_string())
            .spawn_scoped(scope, move || {
                control.register_current_thread(0);
                let message = run_until_level(vcpu, &tx, kicked);
                let _ = tx.send(message);
            });
        if let Err(e) = spawned {
            return Err(KvmError::Thread(format!(
                "cannot start the WFI check's thread: {e}"
            )));
        }
        let entered = match rx.recv() {
            Ok(FromVcpu::Entering(at)) => at,
            Ok(FromVcpu::Failed(e)) => return Err(e),
            _ => return Err(KvmError::Thread("the WFI check's thread ended".into())),
        };
        let mut answer = rx.recv_timeout(patience);
        while let Err(mpsc::RecvTimeoutError::Timeout) = answer {
            // Repeated until the thread answers, in case a signal went
            // astray (Control::kick_all says nothing of a failed one).
            kicked.store(true, Ordering::SeqCst);
            control.kick_all();
            answer = rx.recv_timeout(Duration::from_millis(20));
        }
        tracing::debug!(
            "WFI check: KVM_RUN entered {:.1} ms after the start, answered {:.1} ms after that (kicked: {})",
            ms(entered.saturating_duration_since(started)),
            ms(entered.elapsed()),
            kicked.load(Ordering::SeqCst)
        );
        match answer {
            Ok(FromVcpu::Level { at, pc }) if pc == RAM_BASE + WFI_GUEST_AFTER_WFI => {
                let after = at.saturating_duration_since(entered);
                Ok(if kicked.load(Ordering::SeqCst) {
                    Attempt::Kicked(after)
                } else {
                    Attempt::Woke(after)
                })
            }
            Ok(FromVcpu::Level { .. }) => Ok(Attempt::Early),
            Ok(FromVcpu::KickedWithoutLevel) => Ok(Attempt::NoLevel),
            Ok(FromVcpu::Failed(e)) => Err(e),
            Ok(FromVcpu::Entering(_)) | Err(_) => {
                Err(KvmError::Thread("the WFI check's thread ended".into()))
            }
        }
    })
}

/// The vCPU thread: runs the guest until a return from `KVM_RUN` carries
/// the virtual timer's level (bit 0 of `device_irq_level`); after
/// [`BARE_KICKS`] returns from kicks without it, the attempt ends.
fn run_until_level(mut vcpu: VcpuFd, tx: &mpsc::Sender<FromVcpu>, kicked: &AtomicBool) -> FromVcpu {
    kick::publish(vcpu.get_kvm_run());
    let _ = tx.send(FromVcpu::Entering(Instant::now()));
    let mut bare_kicks = 0;
    let message = loop {
        let returned = vcpu.run().map(|exit| match exit {
            VcpuExit::Intr => None,
            other => Some(format!("{other:?}")),
        });
        let at = Instant::now();
        let run = vcpu.get_kvm_run();
        // A kick's signal handler set it; consumed now.
        run.immediate_exit = 0;
        // SAFETY: `s` is a union of `kvm_sync_regs` and padding; on arm64
        // KVM writes `regs.device_irq_level` on every return from KVM_RUN
        // when the irqchip is in userspace, and any bit pattern is a valid
        // u64.
        let level = unsafe { run.s.regs.device_irq_level };
        match returned {
            // With a userspace irqchip a level change makes KVM_RUN fail
            // with EINTR, as does a kick.
            Ok(None) => {}
            Err(e) if e.errno() == libc::EINTR => {}
            Ok(Some(exit)) => {
                break FromVcpu::Failed(KvmError::Thread(format!(
                    "the WFI check's guest exited unexpectedly: {exit}"
                )))
            }
            Err(source) => {
                break FromVcpu::Failed(KvmError::Ioctl {
                    step: "KVM_RUN (WFI check)",
                    source,
                })
            }
        }
        if level & 1 != 0 {
            match get_core_reg(&vcpu, CoreReg::Pc) {
                Ok(pc) => break FromVcpu::Level { at, pc },
                Err(e) => break FromVcpu::Failed(e),
            }
        }
        if kicked.load(Ordering::SeqCst) {
            // A kick that landed before this thread was in KVM_RUN (a
            // loaded host) returned at once, before the guest armed its
            // timer: re-enter, and let the next kick tell.
            bare_kicks += 1;
            if bare_kicks >= BARE_KICKS {
                break FromVcpu::KickedWithoutLevel;
            }
        }
    };
    kick::publish(std::ptr::null_mut());
    message
}
