//! End-to-end: the firmware on the VMM on KVM, with the GIC in userspace.
//!
//! All jobs below run in one batch (one boot of L1 when nested); each test
//! checks one job. The indices into `JOBS` are named by the constants.

use std::sync::OnceLock;

use uirq_abi::exit::{Status, VMM_ERROR, VMM_INTERRUPTED, VMM_TIMEOUT};
use uirq_tests::{batch, job, parse_timer_summary, summary_lines, Batch};

const TIMER_DEFAULT: usize = 0;
const TIMER_FAST: usize = 1;
const SPIN_TIMEOUT: usize = 2;
const FAULT: usize = 3;
const MISSING_IMAGE: usize = 4;
const BAD_PROGRAM: usize = 5;
const NO_KVM: usize = 6;
const TOO_MANY_CPUS: usize = 7;
const SPIN_SMP_TIMEOUT: usize = 8;
const SPIN_SMP_SIGINT: usize = 9;

const JOBS: &[&[&str]] = &[
    &[],
    &["--ticks", "50", "--period-us", "1000"],
    &["--program", "spin", "--timeout", "3"],
    &["--program", "fault"],
    // A job that names its own `--image` gets none from the harness.
    &["--image", "/no/such/image.bin"],
    &["--program", "no-such-program"],
    &["--kvm-device", "/dev/no-such-kvm"],
    &["--cpus", "9"],
    // Three secondaries stay powered off inside KVM_RUN while vCPU 0 spins:
    // the stop must reach all four.
    &["--cpus", "4", "--program", "spin", "--timeout", "2"],
    &["@sigint-after-ms=2500", "--cpus", "4", "--program", "spin"],
];

static BATCH: OnceLock<Batch> = OnceLock::new();

fn run(index: usize) -> Option<&'static uirq_tests::JobResult> {
    job(batch(&BATCH, "e2e", JOBS), index)
}

fn assert_timer_run(index: usize, ticks: u64) {
    let Some(r) = run(index) else { return };
    let console = &r.console;
    assert_eq!(r.exit_code, Some(0), "timer run failed:\n{console}");
    let (n, min, median, max) =
        parse_timer_summary(console).unwrap_or_else(|| panic!("no summary line in:\n{console}"));
    assert_eq!(n, ticks, "{console}");
    assert!(min <= median && median <= max, "{console}");
    // Every tick printed its latency, in order, and nothing else claimed a tick.
    let tick_lines: Vec<&str> = console.lines().filter(|l| l.starts_with("tick ")).collect();
    assert_eq!(tick_lines.len() as u64, ticks, "{console}");
    for (i, line) in tick_lines.iter().enumerate() {
        assert!(line.starts_with(&format!("tick {}: ", i + 1)), "{line}");
        assert!(line.ends_with(" ns"), "{line}");
    }
    // Exactly one summary line.
    assert_eq!(summary_lines(console).count(), 1, "{console}");
}

#[test]
fn default_program_takes_ten_timer_interrupts_through_the_userspace_gic() {
    assert_timer_run(TIMER_DEFAULT, 10);
}

#[test]
fn fifty_fast_ticks_all_arrive() {
    assert_timer_run(TIMER_FAST, 50);
}

#[test]
fn a_guest_that_never_stops_is_ended_by_the_timeout() {
    let Some(r) = run(SPIN_TIMEOUT) else { return };
    assert_eq!(r.exit_code, Some(VMM_TIMEOUT), "{}", r.console);
    assert!(
        r.console.contains("did not power off within 3 s"),
        "{}",
        r.console
    );
    // Nothing to blame on the kernel: no timer was armed.
    assert!(!r.console.contains("does not wake a vCPU"), "{}", r.console);
}

#[test]
fn an_unexpected_exception_is_reported_with_its_syndrome() {
    let Some(r) = run(FAULT) else { return };
    assert_eq!(r.exit_code, Some(Status::Exception as i32), "{}", r.console);
    for field in ["ESR", "ELR", "FAR"] {
        assert!(r.console.contains(field), "no {field} in:\n{}", r.console);
    }
}

/// Job `index` ended with the VMM's error code and printed one line,
/// which contains `what`.
fn assert_one_plain_sentence(index: usize, what: &str) {
    let Some(r) = run(index) else { return };
    assert_eq!(r.exit_code, Some(VMM_ERROR), "{}", r.console);
    let lines: Vec<&str> = r.console.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.console);
    assert!(lines[0].contains(what), "{}", r.console);
}

#[test]
fn a_missing_image_is_one_plain_sentence() {
    assert_one_plain_sentence(MISSING_IMAGE, "/no/such/image.bin");
}

#[test]
fn an_unknown_program_is_refused_by_the_command_line() {
    let Some(r) = run(BAD_PROGRAM) else { return };
    assert_eq!(r.exit_code, Some(VMM_ERROR), "{}", r.console);
    assert!(r.console.contains("unknown program"), "{}", r.console);
}

#[test]
fn a_missing_kvm_device_is_one_plain_sentence() {
    assert_one_plain_sentence(NO_KVM, "cannot open /dev/no-such-kvm");
}

#[test]
fn nine_cpus_are_one_plain_sentence() {
    assert_one_plain_sentence(TOO_MANY_CPUS, "a GICv2 has at most 8 CPU interfaces");
}

// A timeout stops every vCPU, the powered-off ones included, and joins
// every thread: the VMM exits with 124 instead of hanging.
#[test]
fn a_timeout_stops_every_vcpu() {
    let Some(r) = run(SPIN_SMP_TIMEOUT) else {
        return;
    };
    assert_eq!(r.exit_code, Some(VMM_TIMEOUT), "{}", r.console);
    assert!(
        r.console.contains("did not power off within 2 s"),
        "{}",
        r.console
    );
}

// Ctrl-C (SIGINT) is a clean stop: every vCPU kicked, every thread joined,
// one sentence, exit code 130.
#[test]
fn ctrl_c_stops_every_vcpu_cleanly() {
    let Some(r) = run(SPIN_SMP_SIGINT) else {
        return;
    };
    assert_eq!(r.exit_code, Some(VMM_INTERRUPTED), "{}", r.console);
    assert!(
        r.console
            .contains("uirq-vmm: interrupted; stopped every vCPU"),
        "{}",
        r.console
    );
}
