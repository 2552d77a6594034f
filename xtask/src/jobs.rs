//! Running VMM invocations ("jobs") wherever this machine can.
//!
//! On an aarch64 KVM host each job is a direct run of the VMM. Anywhere else
//! all jobs of a batch run inside one boot of the nested L1 Linux: booting
//! L1 costs seconds, a VMM run milliseconds, so batching is what keeps the
//! end-to-end tests fast.

use std::process::Command;
use std::time::Duration;

use crate::l1;
use crate::process::{run_bounded, Ended};
use crate::project::{is_native_kvm_host, Artifacts};
use crate::Result;

/// A job's optional first field: send the VMM SIGINT this many
/// milliseconds after it started, as Ctrl-C would (the L1 init knows the
/// same prefix). For the tests of a clean stop.
pub const SIGINT_AFTER: &str = "@sigint-after-ms=";

/// Splits a job's `@sigint-after-ms=N` field off its VMM arguments.
pub fn split_sigint(args: &[String]) -> (Option<Duration>, &[String]) {
    match args.split_first() {
        Some((first, rest)) => match first.strip_prefix(SIGINT_AFTER) {
            Some(ms) => (Some(Duration::from_millis(ms.parse().unwrap_or(0))), rest),
            None => (None, args),
        },
        None => (None, args),
    }
}

/// Where the jobs ran.
#[derive(Clone, Debug)]
pub struct Environment {
    /// `native` (aarch64 KVM host) or `nested` (L1 under QEMU).
    pub kind: &'static str,
    /// The kernel that ran the VMM.
    pub kernel: String,
    /// QEMU's version line when nested.
    pub qemu: Option<String>,
}

/// One finished job.
#[derive(Clone, Debug)]
pub struct JobResult {
    /// The VMM arguments (without `--image`).
    pub args: Vec<String>,
    /// What the VMM and the guest printed, stdout and stderr together.
    pub console: String,
    /// The VMM's exit code; `None` if the job never finished.
    pub exit_code: Option<i32>,
}

/// Runs every job with the VMM and firmware in `artifacts`.
///
/// `stream` is given each console line as it arrives. `wall_timeout` bounds the whole
/// batch (for a native run, each job).
pub fn run(
    artifacts: &Artifacts,
    jobs: &[Vec<String>],
    label: &str,
    stream: Option<&dyn Fn(&str)>,
    wall_timeout: Duration,
) -> Result<(Environment, Vec<JobResult>)> {
    if is_native_kvm_host() {
        let kernel = crate::output_of(Command::new("uname").arg("-r"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let mut results = Vec::new();
        for args in jobs {
            results.push(run_native(artifacts, args, stream, wall_timeout)?);
        }
        let env = Environment {
            kind: "native",
            kernel,
            qemu: None,
        };
        return Ok((env, results));
    }
    nested(artifacts, jobs, label, stream, wall_timeout, None)
}

/// Runs `jobs` in the nested environment on the kernel from Debian package
/// `kernel_package` (for tests that need a particular kernel). Fails on an
/// aarch64 KVM host, whose kernel is what it is.
pub fn run_on_kernel(
    artifacts: &Artifacts,
    jobs: &[Vec<String>],
    label: &str,
    wall_timeout: Duration,
    kernel_package: &str,
) -> Result<(Environment, Vec<JobResult>)> {
    if is_native_kvm_host() {
        return Err(format!(
            "this is an aarch64 KVM host: its own kernel runs the VMM, so {kernel_package} cannot be chosen"
        ));
    }
    nested(
        artifacts,
        jobs,
        label,
        None,
        wall_timeout,
        Some(kernel_package),
    )
}

fn nested(
    artifacts: &Artifacts,
    jobs: &[Vec<String>],
    label: &str,
    stream: Option<&dyn Fn(&str)>,
    wall_timeout: Duration,
    kernel_package: Option<&str>,
) -> Result<(Environment, Vec<JobResult>)> {
    let (versions, outputs) =
        l1::run_jobs(artifacts, jobs, label, stream, wall_timeout, kernel_package)?;
    let env = Environment {
        kind: "nested",
        kernel: versions.kernel,
        qemu: Some(versions.qemu),
    };
    let results = jobs
        .iter()
        .zip(outputs)
        .map(|(args, out)| JobResult {
            args: args.clone(),
            console: out.console,
            exit_code: out.exit_code,
        })
        .collect();
    Ok((env, results))
}

fn run_native(
    artifacts: &Artifacts,
    args: &[String],
    stream: Option<&dyn Fn(&str)>,
    wall_timeout: Duration,
) -> Result<JobResult> {
    let mut console = String::new();
    let (sigint_after, vmm_args) = split_sigint(args);
    // With a SIGINT field, Ctrl-C as a terminal sends it: SIGINT to the VMM
    // after a while, which `timeout` from coreutils does without a shell.
    let mut cmd = match sigint_after {
        Some(after) => {
            let mut c = Command::new("timeout");
            c.arg("--signal=INT")
                .arg("--preserve-status")
                .arg(format!("{:.3}", after.as_secs_f64()))
                .arg(&artifacts.vmm);
            c
        }
        None => Command::new(&artifacts.vmm),
    };
    cmd.arg("--image")
        .arg(&artifacts.guest_image)
        .args(vmm_args);
    let ended = run_bounded(&mut cmd, wall_timeout, |_, line| {
        if let Some(show) = stream {
            show(&line);
        }
        console.push_str(&line);
        console.push('\n');
    })?;
    let Ended::Exited(status) = ended else {
        return Err(format!(
            "the VMM did not finish within {} s and was stopped",
            wall_timeout.as_secs()
        ));
    };
    let exit_code = status
        .code()
        .or_else(|| std::os::unix::process::ExitStatusExt::signal(&status).map(|s| 128 + s));
    Ok(JobResult {
        args: args.to_vec(),
        console,
        exit_code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sigint_field_is_split_off_the_vmm_arguments() {
        let job: Vec<String> = ["@sigint-after-ms=1500", "--cpus", "2"]
            .map(String::from)
            .to_vec();
        let (after, args) = split_sigint(&job);
        assert_eq!(after, Some(Duration::from_millis(1500)));
        assert_eq!(args, &job[1..]);
        let plain: Vec<String> = vec!["--cpus".into()];
        assert_eq!(split_sigint(&plain), (None, &plain[..]));
        assert_eq!(split_sigint(&[]), (None, &[][..]));
    }
}
