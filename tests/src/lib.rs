//! Shared harness of the end-to-end tests.
//!
//! Every test in a test binary names the VMM invocation it needs; the first
//! test to ask runs *all* of the binary's invocations in one batch (one boot
//! of the nested L1 Linux, or direct runs on an aarch64 KVM host) and the
//! others reuse the results. Each test then checks its own job's output.
//!
//! A test that cannot run here (no QEMU and no way to install it, no
//! kernel) says so loudly on stderr; with `CI=true` in the environment that
//! is a failure, not a skip. A batch that could run but failed (a build
//! error, L1 dying, a wedged guest) always fails the tests.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

pub use xtask::jobs::{Environment, JobResult};
use xtask::project::Artifacts;

/// Why a batch has no results.
#[derive(Clone, Debug)]
pub enum Problem {
    /// This machine cannot run it: skipped loudly, a failure under CI.
    CannotRun(String),
    /// It ran, or was built, and failed: always a test failure.
    Failed(String),
}

/// The results of one batch of VMM runs, or why there are none.
pub type Batch = Result<(Environment, Vec<JobResult>), Problem>;

/// Checks that this machine can run the VMM, natively or nested (QEMU
/// present or installable, the L1 kernel cached or fetchable).
pub fn preflight() -> Result<(), Problem> {
    if xtask::project::is_native_kvm_host() {
        return Ok(());
    }
    xtask::l1::ensure_qemu().map_err(Problem::CannotRun)?;
    xtask::l1::ensure_kernel().map_err(Problem::CannotRun)?;
    Ok(())
}

/// Upper bound for a whole batch, boot included: generous for a slow
/// emulated boot, but a wedged guest still fails the suite in minutes.
pub const BATCH_WALL_TIMEOUT: Duration = Duration::from_secs(600);

/// Upper bound for a batch of Linux boots, L1's boot included: a nested
/// Linux boot on the VMM takes 30-120 s, so a few of them need more than
/// [`BATCH_WALL_TIMEOUT`].
pub const LINUX_BATCH_WALL_TIMEOUT: Duration = Duration::from_secs(1200);

/// The variables through which `cargo xtask test` names what it built.
const ARTIFACT_VARS: [&str; 4] = [
    "UIRQ_GUEST_IMAGE",
    "UIRQ_VMM",
    "UIRQ_L1_INIT",
    "UIRQ_LINUX_INIT",
];

/// The artifacts under test: the ones `cargo xtask test` built and named
/// in the environment, or a fresh build when the tests run on their own
/// (none of the variables set). Some but not all of them set, or one that
/// names no file, is an error, not a reason to build something else.
pub fn artifacts() -> Result<Artifacts, Problem> {
    let values = ARTIFACT_VARS.map(std::env::var_os);
    artifacts_from(&values).unwrap_or_else(|| xtask::build::all().map_err(Problem::Failed))
}

/// [`artifacts`] from the variables' values, in [`ARTIFACT_VARS`] order;
/// `None` when none is set.
fn artifacts_from(values: &[Option<std::ffi::OsString>; 4]) -> Option<Result<Artifacts, Problem>> {
    if values.iter().all(Option::is_none) {
        return None;
    }
    let mut paths = Vec::new();
    for (name, value) in ARTIFACT_VARS.iter().zip(values) {
        let Some(value) = value else {
            let set: Vec<&str> = ARTIFACT_VARS
                .iter()
                .zip(values)
                .filter(|(_, v)| v.is_some())
                .map(|(n, _)| *n)
                .collect();
            return Some(Err(Problem::Failed(format!(
                "{name} is not set, but {} is: set all of {} or none",
                set.join(", "),
                ARTIFACT_VARS.join(", ")
            ))));
        };
        let path = PathBuf::from(value);
        if !path.is_file() {
            return Some(Err(Problem::Failed(format!(
                "{name}={} does not name a file",
                path.display()
            ))));
        }
        paths.push(path);
    }
    let [guest_image, vmm, l1_init, linux_init]: [PathBuf; 4] = paths.try_into().ok()?;
    Some(Ok(Artifacts {
        guest_image,
        vmm,
        l1_init,
        linux_init,
    }))
}

/// Whether `CI` says this is a CI run: `true`/`1`/`yes` or
/// `false`/`0`/`no`/empty (case aside), unset meaning no. Anything else
/// is an error: a CI that means yes must not have its skipped tests pass.
pub fn ci(value: Option<&str>) -> Result<bool, String> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(_) => Err(format!(
            "CI={:?} is neither true (true, 1, yes) nor false (false, 0, no, empty)",
            value.unwrap_or_default()
        )),
    }
}

/// VMM argument lists as the job runner takes them.
pub fn owned(jobs: &[&[&str]]) -> Vec<Vec<String>> {
    jobs.iter()
        .map(|j| j.iter().map(|s| s.to_string()).collect())
        .collect()
}

/// Runs `jobs` once per process (the first caller pays) and returns the
/// batch. `cell` is the test binary's own static.
pub fn batch<'a>(cell: &'a OnceLock<Batch>, label: &str, jobs: &[&[&str]]) -> &'a Batch {
    cell.get_or_init(|| {
        let jobs = owned(jobs);
        preflight()?;
        let artifacts = artifacts()?;
        xtask::jobs::run(&artifacts, &jobs, label, None, BATCH_WALL_TIMEOUT)
            .map_err(Problem::Failed)
    })
}

/// Like [`batch`] for jobs that need the built artifacts to be written
/// (a Linux boot names the kernel and the generated initramfs): `make`
/// turns the artifacts into the jobs; the batch is bounded by `wall`.
pub fn batch_with<'a>(
    cell: &'a OnceLock<Batch>,
    label: &str,
    make: impl FnOnce(&Artifacts) -> Result<Vec<Vec<String>>, Problem>,
    wall: Duration,
) -> &'a Batch {
    cell.get_or_init(|| {
        preflight()?;
        let artifacts = artifacts()?;
        let jobs = make(&artifacts)?;
        xtask::jobs::run(&artifacts, &jobs, label, None, wall).map_err(Problem::Failed)
    })
}

/// The kernel and initramfs a Linux guest boots with: the cached Debian
/// kernel (its absence means the test cannot run here) and the initramfs
/// generated around the built `uirq-linux-init`.
pub fn linux_boot_files(artifacts: &Artifacts) -> Result<(PathBuf, PathBuf), Problem> {
    let kernel = xtask::l1::ensure_kernel().map_err(Problem::CannotRun)?;
    let initrd = xtask::linux::write_initramfs(artifacts).map_err(Problem::Failed)?;
    Ok((kernel, initrd))
}

/// The value of `result`, or `None` when it could not run here and this is
/// not CI (after saying so loudly). Panics when it failed, and under
/// `CI=true` when it could not run.
pub fn available<T>(result: &Result<T, Problem>) -> Option<&T> {
    match result {
        Ok(value) => Some(value),
        Err(Problem::Failed(why)) => panic!("end-to-end run failed: {why}"),
        Err(Problem::CannotRun(why)) => {
            let msg = format!("end-to-end test NOT RUN: {why}");
            let value = std::env::var_os("CI").map(|v| v.to_string_lossy().into_owned());
            let under_ci = ci(value.as_deref()).unwrap_or_else(|e| panic!("{e}"));
            if under_ci {
                panic!("{msg} (CI=true: a test that cannot run is a failure)");
            }
            eprintln!("\n!!!!! {msg}\n");
            None
        }
    }
}

/// The result of job `index` of `batch` (see [`available`]).
pub fn job(batch: &Batch, index: usize) -> Option<&JobResult> {
    available(batch).map(|(_, results)| &results[index])
}

const SUMMARY_MIDDLE: &str = " interrupts, latency min/median/max = ";

/// The lines of `console` that have the shape of the timer summary line.
pub fn summary_lines(console: &str) -> impl Iterator<Item = &str> {
    console
        .lines()
        .filter(|l| l.starts_with("timer: ") && l.contains(SUMMARY_MIDDLE))
}

/// Parses the timer program's summary line,
/// `timer: N interrupts, latency min/median/max = A/B/C ns`, into
/// `(N, A, B, C)`.
pub fn parse_timer_summary(console: &str) -> Option<(u64, u64, u64, u64)> {
    let line = summary_lines(console).next()?;
    let rest = line.strip_prefix("timer: ")?;
    let (count, rest) = rest.split_once(SUMMARY_MIDDLE)?;
    let figures = rest.strip_suffix(" ns")?;
    let v: Vec<u64> = figures
        .split('/')
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    match v.as_slice() {
        [a, b, c] => Some((count.parse().ok()?, *a, *b, *c)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_values_are_read_or_refused() {
        for (value, expected) in [
            (None, Ok(false)),
            (Some(""), Ok(false)),
            (Some("false"), Ok(false)),
            (Some("0"), Ok(false)),
            (Some("true"), Ok(true)),
            (Some("TRUE"), Ok(true)),
            (Some("1"), Ok(true)),
        ] {
            assert_eq!(ci(value), expected, "{value:?}");
        }
        let err = ci(Some("sometimes")).unwrap_err();
        assert!(err.starts_with("CI=\"sometimes\" is neither"), "{err}");
    }

    #[test]
    fn artifact_variables_are_all_or_none() {
        assert!(artifacts_from(&[None, None, None, None]).is_none());
        let here = std::env::current_exe().unwrap().into_os_string();
        let all = [
            Some(here.clone()),
            Some(here.clone()),
            Some(here.clone()),
            Some(here.clone()),
        ];
        let a = artifacts_from(&all).unwrap().unwrap();
        assert_eq!(a.vmm.as_os_str(), here);
        let some = [Some(here.clone()), None, Some(here.clone()), None];
        match artifacts_from(&some) {
            Some(Err(Problem::Failed(why))) => assert!(
                why.starts_with("UIRQ_VMM is not set, but UIRQ_GUEST_IMAGE, UIRQ_L1_INIT is"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
        let missing = [
            Some(here.clone()),
            Some("/no/such/vmm".into()),
            Some(here.clone()),
            Some(here),
        ];
        match artifacts_from(&missing) {
            Some(Err(Problem::Failed(why))) => {
                assert_eq!(why, "UIRQ_VMM=/no/such/vmm does not name a file")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn summary_line_parses_and_malformed_ones_do_not() {
        let c = "timer: 10 ticks of 10000 us\ntick 1: 5 ns\ntimer: 10 interrupts, latency min/median/max = 1/2/3 ns\n";
        assert_eq!(parse_timer_summary(c), Some((10, 1, 2, 3)));
        assert_eq!(
            parse_timer_summary("timer: 10 interrupts, latency min/median/max = 1/2 ns"),
            None
        );
        assert_eq!(
            parse_timer_summary("timer: x interrupts, latency min/median/max = 1/2/3 ns"),
            None
        );
        assert_eq!(parse_timer_summary("nothing here"), None);
    }
}
