//! End-to-end regression test of the KVM path itself.
//!
//! Before Linux commit 4ce98bf0865c ("Wake-up from WFI when irqchip is in
//! userspace"), a vCPU waiting in WFI was never woken by its timer when the
//! irqchip is in userspace, so the firmware's timer program hangs. This
//! boots L1 on such a kernel, Debian's 6.1.170, and checks that the VMM
//! names the bug when `--timeout` ends the guest, that it does not blame the
//! kernel for a guest that hangs for its own reasons, and that the
//! workaround (`--kick-every-us`) gets the timer program through.

use uirq_abi::exit::VMM_TIMEOUT;
use uirq_tests::{artifacts, available, preflight, Problem, BATCH_WALL_TIMEOUT};

/// Debian 12's 6.1.170 kernel, which lacks the fix.
const KERNEL_WITHOUT_FIX: &str = "linux-image-6.1.0-47-arm64-unsigned";
/// What the VMM says when it recognises the bug.
const DIAGNOSIS: &str = "this kernel does not wake a vCPU waiting in WFI";

#[test]
fn a_kernel_that_does_not_wake_a_vcpu_in_wfi_is_named() {
    if xtask::project::is_native_kvm_host() {
        eprintln!(
            "\n!!!!! not applicable on an aarch64 KVM host: the kernel under test is this host's own\n"
        );
        return;
    }
    let jobs = uirq_tests::owned(&[
        &["--timeout", "4"],
        &["--program", "spin", "--timeout", "2"],
        &["--kick-every-us", "1000", "--timeout", "120"],
    ]);
    let outcome = preflight().and_then(|()| {
        xtask::l1::ensure_kernel_package(Some(KERNEL_WITHOUT_FIX)).map_err(Problem::CannotRun)?;
        let artifacts = artifacts()?;
        xtask::jobs::run_on_kernel(
            &artifacts,
            &jobs,
            "wfi-bug",
            BATCH_WALL_TIMEOUT,
            KERNEL_WITHOUT_FIX,
        )
        .map_err(Problem::Failed)
    });
    let Some((env, results)) = available(&outcome) else {
        return;
    };
    assert!(env.kernel.starts_with("6.1.0-47"), "booted {}", env.kernel);

    let timer = &results[0];
    assert_eq!(timer.exit_code, Some(VMM_TIMEOUT), "{}", timer.console);
    assert!(
        timer.console.contains(DIAGNOSIS),
        "no diagnosis in:\n{}",
        timer.console
    );
    assert!(timer.console.contains("4ce98bf0865c"), "{}", timer.console);

    // Spinning with interrupts masked and no timer armed: a hang, but not
    // the kernel's fault.
    let spin = &results[1];
    assert_eq!(spin.exit_code, Some(VMM_TIMEOUT), "{}", spin.console);
    assert!(
        !spin.console.contains(DIAGNOSIS),
        "false diagnosis:\n{}",
        spin.console
    );
}
