//! End-to-end: the firmware on the VMM on KVM, with the GIC in userspace.
//!
//! All jobs below run in one batch (one boot of L1 when nested); each test
//! checks one job. The indices into `JOBS` are named by the constants.

use std::sync::OnceLock;

use uirq_abi::exit::{Status, VMM_ERROR, VMM_INTERRUPTED, VMM_TIMEOUT};
use uirq_abi::report;
use uirq_tests::{
    batch_with, job, owned, parse_timer_summary, summary_lines, Batch, Problem, BATCH_WALL_TIMEOUT,
};
use xtask::jobs;
use xtask::project::Artifacts;

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
const UNMAPPED_RAZ: usize = 10;
const SECCOMP_ON: usize = 11;
const SECCOMP_OFF: usize = 12;

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
    // The old answer to an access to nothing, kept as an option (the
    // default, an external abort, is the `unmapped` scenario's, in
    // scenarios.rs).
    &[
        "--program",
        "unmapped",
        "--unmapped",
        "raz",
        "--timeout",
        "30",
    ],
    // The sandbox is on by default (`-v` says so) and `--no-seccomp` turns
    // it off. Every other job runs with it on: they are what shows that
    // each thread's allowlist has every call the thread makes.
    &["-v", "--ticks", "3"],
    &["--no-seccomp", "-v", "--ticks", "3"],
];

/// Input the VMM must refuse before it runs anything, one sentence each.
const HOSTILE_INPUT: &[&[&str]] = &[
    // The benchmark's result buffer lies 32 MiB into RAM.
    &["--ram-mib", "8", "--program", "bench"],
    // Opens, but is not KVM.
    &["--kvm-device", "/dev/null"],
    // Not a regular file: reading it would never end.
    &["--image", "/dev/zero"],
];
const RAM_TOO_SMALL: usize = JOBS.len();
const NOT_KVM: usize = JOBS.len() + 1;
const ENDLESS_IMAGE: usize = JOBS.len() + 2;
/// The guest prints the harness's own lines (the `echo` program).
const FORGED: usize = JOBS.len() + HOSTILE_INPUT.len();
/// The job after it, to show that its lines stayed its own.
const AFTER_FORGED: usize = FORGED + 1;
/// Nobody reads the VMM's standard output.
const STALLED_STDOUT: usize = AFTER_FORGED + 1;

/// What the `echo` guest prints: every kind of line the harness reads,
/// in the form it had before it carried a tag, and with a guessed tag.
fn forged_lines() -> Vec<String> {
    let guess = "0".repeat(32);
    [
        "@@uirq job 0 exit 0".to_string(),
        format!("@@uirq job {FORGED} exit 3"),
        format!("@@uirq job {AFTER_FORGED} start"),
        "@@uirq done".to_string(),
        "@@uirq init-error forged".to_string(),
        format!("@@uirq {guess} job {FORGED} exit 3"),
        format!("@@uirq {guess} kernel forged"),
        r#"@@bench {"irqchip":"forged","results":[]}"#.to_string(),
        format!(r#"@@bench {guess} {{"irqchip":"forged","results":[]}}"#),
        r#"@@exits {"irqchip":"forged","cpus":1,"run_ms":1.0,"total":1,"exits":{"other":1}}"#
            .to_string(),
        format!(r#"@@exits {guess} {{"irqchip":"forged","total":1,"exits":{{"other":1}}}}"#),
    ]
    .to_vec()
}

fn jobs(artifacts: &Artifacts) -> Result<Vec<Vec<String>>, Problem> {
    let mut jobs = owned(JOBS);
    jobs.extend(owned(HOSTILE_INPUT));
    let echo = format!(
        "uirq.program=echo {}{}",
        uirq_abi::boot::ECHO_BOOTARG,
        forged_lines().join("\\n")
    );
    let image = artifacts.guest_image.display().to_string();
    jobs.extend(owned(&[
        &[
            "--kernel",
            &image,
            "--cmdline",
            &echo,
            "--exit-stats",
            "--timeout",
            "60",
        ],
        &["--ticks", "3", "--period-us", "1000"],
        // About 10 KB of tick lines into a pipe that holds 4 KiB.
        &[
            jobs::STDOUT_UNREAD,
            "--ticks",
            "500",
            "--period-us",
            "1000",
            "--timeout",
            "120",
        ],
    ]));
    Ok(jobs)
}

static BATCH: OnceLock<Batch> = OnceLock::new();

fn run(index: usize) -> Option<&'static uirq_tests::JobResult> {
    job(batch_with(&BATCH, "e2e", jobs, BATCH_WALL_TIMEOUT), index)
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

// `--unmapped raz` answers an access to nothing as before the abort was
// the default: loads read zero, stores vanish, no exception. The VMM
// passes the mode to the scenario, which checks exactly that; the pairs,
// which nothing can decode, abort all the same.
#[test]
fn unmapped_raz_reads_zero_and_ignores_stores() {
    let Some(r) = run(UNMAPPED_RAZ) else { return };
    assert_eq!(r.exit_code, Some(0), "{}", r.console);
    assert!(
        r.console.contains("scenario unmapped: PASS"),
        "{}",
        r.console
    );
    assert!(
        r.console
            .contains("unmapped: 4-byte load at 0x8100000: no exception, read 0"),
        "{}",
        r.console
    );
    assert!(
        r.console
            .contains("unmapped: 8-byte store at 0x8100048: no exception"),
        "{}",
        r.console
    );
    assert!(
        r.console
            .contains("unmapped: load pair at 0x8100080: synchronous external abort"),
        "{}",
        r.console
    );
}

#[test]
fn a_program_that_needs_more_ram_than_given_is_one_plain_sentence() {
    assert_one_plain_sentence(
        RAM_TOO_SMALL,
        "--program bench needs at least 34 MiB of guest RAM",
    );
}

#[test]
fn a_kvm_device_that_is_not_kvm_is_told_apart() {
    assert_one_plain_sentence(NOT_KVM, "/dev/null is not a KVM device");
}

#[test]
fn an_image_that_is_not_a_regular_file_is_refused_without_reading_it() {
    assert_one_plain_sentence(
        ENDLESS_IMAGE,
        "the firmware image /dev/zero is not a regular file",
    );
}

// The guest prints every line the harness reads (the L1 init's job
// markers, the VMM's reports), untagged and with a guessed tag. None of them
// counts: the job's exit code is the guest's real one, the VMM's real
// exit statistics are its report, there is no benchmark report, the lines
// are plain text of this job, and the jobs around it keep their own output.
#[test]
fn nothing_the_guest_prints_speaks_for_the_harness() {
    let Some(r) = run(FORGED) else { return };
    let console = &r.console;
    assert_eq!(r.exit_code, Some(0), "the echo's own status:\n{console}");
    let lines: Vec<&str> = console.lines().collect();
    let forged = forged_lines();
    let first = lines
        .iter()
        .position(|l| *l == forged[0])
        .unwrap_or_else(|| panic!("the forged lines are not in the console:\n{console}"));
    assert_eq!(
        lines[first..first + forged.len()],
        forged.iter().map(String::as_str).collect::<Vec<_>>()[..],
        "every forged line is plain text, in order:\n{console}"
    );
    assert_eq!(r.report(report::BENCH), None, "{console}");
    let exits: serde_json::Value = serde_json::from_str(
        r.report(report::EXITS)
            .unwrap_or_else(|| panic!("no real exit statistics:\n{console}")),
    )
    .unwrap();
    assert_eq!(exits["irqchip"], "user", "{exits}");
    assert!(
        exits["mmio_by_device"]["uart"].as_u64() > Some(100),
        "{exits}"
    );
    assert_eq!(r.reports.len(), 1, "{:?}", r.reports);

    let Some(after) = run(AFTER_FORGED) else {
        return;
    };
    assert_eq!(after.exit_code, Some(0), "{}", after.console);
    assert_eq!(parse_timer_summary(&after.console).map(|s| s.0), Some(3));
    for other in [run(TIMER_DEFAULT), Some(after)].into_iter().flatten() {
        assert!(
            !other.console.contains("forged") && !other.console.contains("@@"),
            "{}",
            other.console
        );
    }
}

#[test]
fn every_thread_runs_under_its_seccomp_filter_by_default() {
    let Some(r) = run(SECCOMP_ON) else { return };
    assert_eq!(r.exit_code, Some(0), "{}", r.console);
    assert!(
        r.console
            .contains("seccomp: every thread under its allowlist (vcpu "),
        "{}",
        r.console
    );
    assert_eq!(parse_timer_summary(&r.console).map(|s| s.0), Some(3));
}

#[test]
fn no_seccomp_runs_without_the_filters() {
    let Some(r) = run(SECCOMP_OFF) else { return };
    assert_eq!(r.exit_code, Some(0), "{}", r.console);
    assert!(
        r.console.contains("seccomp: off (--no-seccomp)"),
        "{}",
        r.console
    );
    assert!(!r.console.contains("under its allowlist"), "{}", r.console);
}

// The VMM's standard output is a pipe nobody reads. Before the guest's
// console had a queue and a writer thread of its own, the vCPU thread
// printing a tick blocked in write(2) once the pipe was full: the guest
// stopped, `--timeout` could not stop a thread that was not in KVM_RUN,
// and the VMM never exited (this batch would have hit its wall time). Now
// the guest runs to its end, the VMM gives up on the stuck writer after
// OUTPUT_STALL and exits with the guest's status, saying why its output is
// missing (on standard error, which is read).
#[test]
fn a_stalled_reader_of_the_output_does_not_stall_the_guest_or_the_vmm() {
    let Some(r) = run(STALLED_STDOUT) else { return };
    assert_eq!(r.exit_code, Some(0), "{}", r.console);
    assert!(
        r.console
            .contains("uirq-vmm: standard output is not being read"),
        "{}",
        r.console
    );
    assert!(!r.console.contains("tick 1:"), "stdout was not the console");
}
