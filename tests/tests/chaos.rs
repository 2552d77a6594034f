//! End-to-end: a hostile guest. The firmware's `chaos` program does, at
//! random and with interrupts on, everything a guest may do to the machine
//! (any load or store in the GIC's frames, UART loads, loads and stores
//! where nothing is, SGIs with any target list and filter, enables,
//! priorities, targets, pending bits, masks, both timers) on every vCPU, and
//! ends by itself with one summary line:
//!
//! ```text
//! chaos: seed S, N ops, A aborts, I interrupts, PASS
//! ```
//!
//! The VMM must never crash and always stop cleanly: each seed, on one to
//! four vCPUs, must run to that line and exit 0 (a hang is cut by
//! `--timeout` and fails with 124); a run too long to finish must be ended
//! by `--timeout` with exit 124 and nothing else. All jobs run in one batch
//! (one boot of L1 when nested).

use std::sync::OnceLock;

use uirq_abi::exit::VMM_TIMEOUT;
use uirq_tests::{batch, job, Batch, JobResult};

/// (seed, vCPUs, operations) of the runs that must finish.
const SEEDS: [(&str, &str, &str); 4] = [
    ("1", "1", "20000"),
    ("2", "2", "10000"),
    ("3", "3", "8000"),
    ("4", "4", "8000"),
];
/// The same program with `--unmapped raz`: no hole access may abort.
const RAZ: usize = SEEDS.len();
/// A run of a billion operations, which `--timeout 2` must end.
const CUT: usize = SEEDS.len() + 1;

static BATCH: OnceLock<Batch> = OnceLock::new();

fn run(index: usize) -> Option<&'static JobResult> {
    let mut jobs: Vec<Vec<&str>> = SEEDS
        .iter()
        .map(|&(seed, cpus, ops)| {
            vec![
                "--program",
                "chaos",
                "--seed",
                seed,
                "--cpus",
                cpus,
                "--ops",
                ops,
                "--timeout",
                "120",
            ]
        })
        .collect();
    jobs.push(vec![
        "--program",
        "chaos",
        "--seed",
        "5",
        "--ops",
        "5000",
        "--unmapped",
        "raz",
        "--timeout",
        "120",
    ]);
    jobs.push(vec![
        "--program",
        "chaos",
        "--seed",
        "6",
        "--cpus",
        "2",
        "--ops",
        "1000000000",
        "--timeout",
        "2",
    ]);
    let jobs: Vec<&[&str]> = jobs.iter().map(|j| &j[..]).collect();
    job(batch(&BATCH, "chaos", &jobs), index)
}

/// (seed, ops, aborts, interrupts, verdict) from the summary line.
fn summary(console: &str) -> Option<(u64, u64, u64, u64, String)> {
    let line = console
        .lines()
        .find(|l| l.starts_with("chaos: seed ") && l.contains(" interrupts, "))?;
    let rest = line.strip_prefix("chaos: seed ")?;
    let (seed, rest) = rest.split_once(", ")?;
    let (ops, rest) = rest.split_once(" ops, ")?;
    let (aborts, rest) = rest.split_once(" aborts, ")?;
    let (interrupts, verdict) = rest.split_once(" interrupts, ")?;
    Some((
        seed.parse().ok()?,
        ops.parse().ok()?,
        aborts.parse().ok()?,
        interrupts.parse().ok()?,
        verdict.to_string(),
    ))
}

fn assert_finished(index: usize) {
    let Some(r) = run(index) else { return };
    let (seed, _, ops) = SEEDS[index];
    let console = &r.console;
    assert_eq!(r.exit_code, Some(0), "seed {seed}:\n{console}");
    let (s, n, aborts, interrupts, verdict) =
        summary(console).unwrap_or_else(|| panic!("no summary line:\n{console}"));
    assert_eq!(verdict, "PASS", "{console}");
    assert_eq!(s.to_string(), seed, "{console}");
    assert_eq!(n.to_string(), ops, "{console}");
    // About a tenth of the operations go to holes, and each must abort.
    assert!(aborts > 0, "no hole access aborted:\n{console}");
    assert!(interrupts > 0, "no interrupt was taken:\n{console}");
}

#[test]
fn chaos_on_one_vcpu_runs_to_its_summary() {
    assert_finished(0);
}

#[test]
fn chaos_on_two_vcpus_runs_to_its_summary() {
    assert_finished(1);
}

#[test]
fn chaos_on_three_vcpus_runs_to_its_summary() {
    assert_finished(2);
}

#[test]
fn chaos_on_four_vcpus_runs_to_its_summary() {
    assert_finished(3);
}

// With read-as-zero / write-ignored no hole access aborts, and the program
// checks that none did.
#[test]
fn chaos_with_unmapped_raz_takes_no_abort() {
    let Some(r) = run(RAZ) else { return };
    let console = &r.console;
    assert_eq!(r.exit_code, Some(0), "{console}");
    let (_, ops, aborts, _, verdict) =
        summary(console).unwrap_or_else(|| panic!("no summary line:\n{console}"));
    assert_eq!(
        (ops, aborts, verdict.as_str()),
        (5000, 0, "PASS"),
        "{console}"
    );
    assert!(console.contains("no hole access aborted"), "{console}");
}

// Cut while every vCPU is busy: the timeout stops them all, joins every
// thread and says so; the guest never got to its summary.
#[test]
fn chaos_cut_by_the_timeout_stops_cleanly() {
    let Some(r) = run(CUT) else { return };
    let console = &r.console;
    assert_eq!(r.exit_code, Some(VMM_TIMEOUT), "{console}");
    assert!(
        console.contains("did not power off within 2 s"),
        "{console}"
    );
    assert!(
        console.contains("chaos: seed 6, 1000000000 ops on 2 core(s)"),
        "{console}"
    );
    assert!(summary(console).is_none(), "{console}");
}

#[test]
fn the_summary_line_parses() {
    assert_eq!(
        summary("x\nchaos: seed 3, 8000 ops, 812 aborts, 95 interrupts, PASS\n"),
        Some((3, 8000, 812, 95, "PASS".to_string()))
    );
    assert_eq!(summary("chaos: seed 3, 8000 ops on 3 core(s)"), None);
}
