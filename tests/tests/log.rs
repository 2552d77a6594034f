//! End-to-end: the VMM's log settings reach it wherever it runs. Nested,
//! the VMM in L1 does not inherit xtask's environment: `UIRQ_LOG` goes in
//! as the job field `cargo xtask run` adds (`xtask::jobs::with_log_filter`),
//! `-v` as an argument, and `NO_COLOR` as a field too.

use std::sync::OnceLock;

use uirq_tests::{batch_with, job, owned, parse_timer_summary, Batch, BATCH_WALL_TIMEOUT};
use xtask::jobs;

const DEBUG_FILTER: usize = 0;
const DEFAULT_LEVEL: usize = 1;
const VERBOSE: usize = 2;
const DEBUG_NO_COLOR: usize = 3;

/// A debug line every run of the firmware logs at its end: the console
/// input thread saw its standard input end (it is empty in a job).
const DEBUG_LINE: &str = "console input ended";
/// An info line `-v` shows.
const INFO_LINE: &str = "seccomp: every thread under its allowlist";

fn jobs() -> Vec<Vec<String>> {
    let ticks = owned(&[&["--ticks", "3"]]).remove(0);
    vec![
        jobs::with_log_filter(ticks.clone(), Some("debug")),
        ticks.clone(),
        owned(&[&["-v", "--ticks", "3"]]).remove(0),
        std::iter::once(format!("{}NO_COLOR=1", jobs::ENV_FIELD))
            .chain(jobs::with_log_filter(ticks, Some("uirq_host=debug,debug")))
            .collect(),
    ]
}

static BATCH: OnceLock<Batch> = OnceLock::new();

fn run(index: usize) -> Option<&'static jobs::JobResult> {
    job(
        batch_with(&BATCH, "log", |_| Ok(jobs()), BATCH_WALL_TIMEOUT),
        index,
    )
}

#[test]
fn uirq_log_reaches_the_vmm_and_its_debug_lines_appear() {
    let Some(r) = run(DEBUG_FILTER) else { return };
    assert_eq!(r.exit_code, Some(0), "{}", r.console);
    assert!(r.console.contains(DEBUG_LINE), "{}", r.console);
    assert!(r.console.contains("DEBUG"), "{}", r.console);
    assert_eq!(parse_timer_summary(&r.console).map(|s| s.0), Some(3));
}

#[test]
fn without_uirq_log_or_v_there_are_no_debug_or_info_lines() {
    let Some(r) = run(DEFAULT_LEVEL) else { return };
    assert_eq!(r.exit_code, Some(0), "{}", r.console);
    assert!(!r.console.contains(DEBUG_LINE), "{}", r.console);
    assert!(!r.console.contains(INFO_LINE), "{}", r.console);
}

#[test]
fn v_shows_info_lines_but_not_debug_ones() {
    let Some(r) = run(VERBOSE) else { return };
    assert_eq!(r.exit_code, Some(0), "{}", r.console);
    assert!(r.console.contains(INFO_LINE), "{}", r.console);
    assert!(!r.console.contains(DEBUG_LINE), "{}", r.console);
}

#[test]
fn no_color_keeps_escape_codes_out_of_the_log() {
    let Some(r) = run(DEBUG_NO_COLOR) else { return };
    assert_eq!(r.exit_code, Some(0), "{}", r.console);
    assert!(r.console.contains(DEBUG_LINE), "{}", r.console);
    assert!(!r.console.contains('\u{1b}'), "{:?}", r.console);
}
