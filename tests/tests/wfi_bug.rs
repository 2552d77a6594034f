//! End-to-end regression test of the KVM path itself.
//!
//! Before Linux commit 4ce98bf0865c ("Wake-up from WFI when irqchip is in
//! userspace"), a vCPU waiting in WFI was never woken by its timer when the
//! irqchip is in userspace, so the firmware's timer program hangs. This
//! boots L1 on such a kernel, Debian's 6.1.170, and checks that
//! `uirq-vmm --probe` finds the bug; that a plain run of the timer program
//! gets through anyway, because the VMM's start-up check finds the bug and
//! turns the periodic kick on by itself; and, with that check off
//! (`--no-probe`), that the VMM names the bug when `--timeout` ends the
//! guest, that it does not blame the kernel for a guest that hangs for its
//! own reasons, and that the workaround given by hand (`--kick-every-us`)
//! gets the timer program through.

use std::sync::OnceLock;

use uirq_abi::exit::VMM_TIMEOUT;
use uirq_tests::{
    artifacts, available, owned, parse_timer_summary, preflight, Batch, Problem, BATCH_WALL_TIMEOUT,
};
use xtask::jobs::JobResult;

/// Debian 12's 6.1.170 kernel, which lacks the fix.
const KERNEL_WITHOUT_FIX: &str = "linux-image-6.1.0-47-arm64-unsigned";
/// What the VMM says when it recognises the bug after a timeout.
const DIAGNOSIS: &str = "this kernel does not wake a vCPU waiting in WFI";
/// What it says when it turns the workaround on by itself.
const AUTO_KICK: &str = "kicking the vCPUs every 1000 us to work around it";

const TIMEOUT_NO_PROBE: usize = 0;
const SPIN_NO_PROBE: usize = 1;
const KICK_BY_HAND: usize = 2;
const PLAIN: usize = 3;
const PROBE_JSON: usize = 4;
const PROBE_TEXT: usize = 5;

const JOBS: [&[&str]; 6] = [
    &["--no-probe", "--timeout", "4"],
    &["--no-probe", "--program", "spin", "--timeout", "2"],
    &["--kick-every-us", "1000", "--timeout", "120"],
    // No workaround asked for; -v shows the check's verdict, and the
    // timeout only bounds a failure.
    &["-v", "--timeout", "120"],
    &["--probe", "--json"],
    &["--probe"],
];

static BATCH: OnceLock<Batch> = OnceLock::new();

/// Job `index` of the batch on the kernel without the fix; `None` where
/// that cannot run (an aarch64 KVM host runs its own kernel).
fn run(index: usize) -> Option<&'static JobResult> {
    if xtask::project::is_native_kvm_host() {
        eprintln!(
            "\n!!!!! not applicable on an aarch64 KVM host: the kernel under test is this host's own\n"
        );
        return None;
    }
    let batch = BATCH.get_or_init(|| {
        preflight()?;
        xtask::l1::ensure_kernel_package(Some(KERNEL_WITHOUT_FIX)).map_err(Problem::CannotRun)?;
        let artifacts = artifacts()?;
        xtask::jobs::run_on_kernel(
            &artifacts,
            &owned(&JOBS),
            "wfi-bug",
            BATCH_WALL_TIMEOUT,
            KERNEL_WITHOUT_FIX,
        )
        .map_err(Problem::Failed)
    });
    let (env, results) = available(batch)?;
    assert!(env.kernel.starts_with("6.1.0-47"), "booted {}", env.kernel);
    Some(&results[index])
}

#[test]
fn a_kernel_that_does_not_wake_a_vcpu_in_wfi_is_named() {
    let Some(timer) = run(TIMEOUT_NO_PROBE) else {
        return;
    };
    assert_eq!(timer.exit_code, Some(VMM_TIMEOUT), "{}", timer.console);
    assert!(
        timer.console.contains(DIAGNOSIS),
        "no diagnosis in:\n{}",
        timer.console
    );
    assert!(timer.console.contains("4ce98bf0865c"), "{}", timer.console);
    assert!(!timer.console.contains(AUTO_KICK), "{}", timer.console);

    // Spinning with interrupts masked and no timer armed: a hang, but not
    // the kernel's fault.
    let Some(spin) = run(SPIN_NO_PROBE) else {
        return;
    };
    assert_eq!(spin.exit_code, Some(VMM_TIMEOUT), "{}", spin.console);
    assert!(
        !spin.console.contains(DIAGNOSIS),
        "false diagnosis:\n{}",
        spin.console
    );
}

#[test]
fn the_kick_given_by_hand_gets_the_timer_program_through_without_a_check() {
    let Some(r) = run(KICK_BY_HAND) else { return };
    assert_eq!(r.exit_code, Some(0), "{}", r.console);
    assert!(parse_timer_summary(&r.console).is_some(), "{}", r.console);
    assert!(!r.console.contains(AUTO_KICK), "{}", r.console);
}

#[test]
fn a_plain_run_finds_the_bug_and_kicks_by_itself() {
    let Some(r) = run(PLAIN) else { return };
    assert_eq!(r.exit_code, Some(0), "{}", r.console);
    assert!(parse_timer_summary(&r.console).is_some(), "{}", r.console);
    let notice = r
        .console
        .lines()
        .find(|l| l.contains(AUTO_KICK))
        .unwrap_or_else(|| panic!("no notice in:\n{}", r.console));
    for part in ["6.1.0-47", "4ce98bf0865c", "--kick-every-us", "--no-probe"] {
        assert!(notice.contains(part), "{part}: {notice}");
    }
    assert!(
        r.console.contains("WFI wake-up check: bug_present in "),
        "{}",
        r.console
    );
}

#[test]
fn the_probe_finds_the_bug() {
    let Some(r) = run(PROBE_JSON) else { return };
    assert_eq!(r.exit_code, Some(0), "{}", r.console);
    let line = r
        .console
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in:\n{}", r.console));
    let j: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(
        j["kernel"]["release"]
            .as_str()
            .is_some_and(|r| r.starts_with("6.1.0-47")),
        "{j}"
    );
    let w = &j["wfi_wakeup"];
    assert_eq!(w["verdict"], "bug_present", "{j}");
    assert_eq!(w["kicked"], true, "{j}");
    eprintln!(
        "WFI check on {}: {} in {:.1} ms ({})",
        j["kernel"]["release"],
        w["verdict"],
        w["cost_us"].as_u64().unwrap_or(0) as f64 / 1000.0,
        w["detail"]
    );

    let Some(r) = run(PROBE_TEXT) else { return };
    assert_eq!(r.exit_code, Some(0), "{}", r.console);
    let wfi = r
        .console
        .lines()
        .find(|l| l.starts_with("WFI wake-up: "))
        .unwrap_or_else(|| panic!("{}", r.console));
    assert!(
        wfi.starts_with("WFI wake-up: the bug is present") && wfi.contains("4ce98bf0865c"),
        "{wfi}"
    );
}
