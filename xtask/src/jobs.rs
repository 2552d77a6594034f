//! Running VMM invocations ("jobs") wherever this machine can.
//!
//! On an aarch64 KVM host each job is a direct run of the VMM. Anywhere else
//! all jobs of a batch run inside one boot of the nested L1 Linux: booting
//! L1 costs seconds, a VMM run milliseconds, so batching is what keeps the
//! end-to-end tests fast.
//!
//! A job is a list of VMM arguments, optionally preceded by fields (any
//! order) that say how to run it:
//!
//! - `@sigint-after-ms=N`: send the VMM SIGINT N ms after it started, as
//!   Ctrl-C would ([`SIGINT_AFTER`]);
//! - `@mark=TEXT`: time the first output line that contains TEXT, from the
//!   VMM's spawn ([`MARK_FIELD`], [`JobResult::mark`]);
//! - `@stdin=TEXT`: write TEXT and a newline to the VMM's stdin once the
//!   mark was seen (at once without a mark) and keep it open until the VMM
//!   exits ([`STDIN_FIELD`]). Without it the VMM's stdin is empty;
//! - `@env=NAME=VALUE`: the VMM runs with NAME set to VALUE in its
//!   environment (any number of them; [`ENV_FIELD`]). A native VMM inherits
//!   xtask's environment as well; a nested one gets only these, which is
//!   how `UIRQ_LOG` ([`with_log_filter`]) and `NO_COLOR` reach it in L1;
//! - `@stdout-unread`: the VMM's standard output is a pipe that nobody
//!   reads, so it fills and stays full; only its standard error reaches the
//!   console ([`STDOUT_UNREAD`]). For the test that a stalled reader
//!   neither blocks the guest nor keeps the VMM from exiting;
//! - `@timeout-s=N`: the job's process is killed (SIGKILL) N seconds after
//!   it started, and its exit code is then 137 ([`TIMEOUT_FIELD`]). The VMM
//!   bounds itself (`--timeout`); QEMU does not, so a `@qemu` job without
//!   this field gets [`QEMU_TIMEOUT`];
//! - `@qemu`: the remaining arguments are QEMU's, not the VMM's: the job
//!   runs `qemu-system-aarch64` with KVM where the VMM would run (Debian's
//!   arm64 build inside L1, `crate::qemu_l1`; the one on `PATH` on an
//!   aarch64 KVM host), for comparisons of the same firmware on QEMU's
//!   GICs ([`QEMU_FIELD`]). No `--image` is added; the files named by
//!   QEMU's `-kernel`, `-initrd` and `-dtb` ([`QEMU_FILE_OPTIONS`]) are
//!   paths on this machine, copied into L1 like the VMM's. Every other
//!   field works as for the VMM. QEMU exits 0 when the guest powers off,
//!   whatever the guest's verdict: that is read from the console.
//!
//! A job without `--image` or `--kernel` boots the firmware (`--image` is
//! added). Files named by `--image`, `--kernel`, `--initrd` and `--dtb` are
//! paths on this machine; the nested run copies them into L1. So are the
//! files the VMM writes with `--trace` and `--dump-dtb`: the nested run
//! has the VMM write them inside L1 and brings them back
//! ([`JobResult::fetched`]).
//!
//! **What a job gives back.** Its console ([`JobResult::console`], the
//! guest's and the VMM's text, bounded by [`BoundedText`]), its exit code,
//! and the VMM's reports ([`JobResult::report`]): the `@@bench`,
//! `@@samples` and `@@exits` lines, believed only with the batch's tag
//! (`uirq_abi::report`). Every VMM of a batch gets the tag in
//! `UIRQ_REPORT_TAG`: from the L1 init when nested, from [`new_tag`] when
//! native. A report line without it is the guest's text like any other,
//! and stays in the console.
//!
//! Every job also gives back what it cost where it ran
//! ([`JobResult::peak_rss_kib`], [`JobResult::wall`]): the process's peak
//! resident set from `wait4`'s `ru_maxrss`, and the time from its spawn to
//! its exit, measured in L1 when nested (so L1's boot is not in it).

use std::process::Command;
use std::time::{Duration, Instant};

use uirq_abi::report;

use crate::bounded::BoundedText;
use crate::l1;
use crate::process::{run_bounded_measured, Ended, Feed};
use crate::project::{is_native_kvm_host, Artifacts};
use crate::Result;

/// A job field: send the VMM SIGINT this many milliseconds after it
/// started, as Ctrl-C would (the L1 init knows the same fields). For the
/// tests of a clean stop.
pub const SIGINT_AFTER: &str = "@sigint-after-ms=";
/// A job field: time the first line of the VMM's output that contains the
/// text after `=`.
pub const MARK_FIELD: &str = "@mark=";
/// A job field: the text after `=`, plus a newline, goes to the VMM's stdin.
pub const STDIN_FIELD: &str = "@stdin=";
/// A job field: the VMM's stdout is a pipe nobody reads.
pub const STDOUT_UNREAD: &str = "@stdout-unread";
/// A job field: `NAME=VALUE` after `=` goes into the VMM's environment.
pub const ENV_FIELD: &str = "@env=";
/// A job field: the job's process is killed this many seconds after it
/// started.
pub const TIMEOUT_FIELD: &str = "@timeout-s=";
/// A job field: the job's arguments are QEMU's (see the module
/// documentation).
pub const QEMU_FIELD: &str = "@qemu";
/// The bound of a `@qemu` job that has no [`TIMEOUT_FIELD`]: a wedged
/// guest under QEMU never ends by itself.
pub const QEMU_TIMEOUT: Duration = Duration::from_secs(120);
/// The VMM's log filter (`tracing`'s syntax), read by `uirq-vmm`.
pub const LOG_ENV: &str = "UIRQ_LOG";

/// The VMM options that name a file to load, whose value is a path on the
/// build machine.
pub const FILE_OPTIONS: [&str; 4] = ["--image", "--kernel", "--initrd", "--dtb"];

/// QEMU's options that name a file to load, for `@qemu` jobs: paths on the
/// build machine, like [`FILE_OPTIONS`]' values.
pub const QEMU_FILE_OPTIONS: [&str; 3] = ["-kernel", "-initrd", "-dtb"];

/// A job field the nested run adds itself, one per [`OUTPUT_OPTIONS`]
/// value: the L1 init sends that file back after the VMM exited.
pub const FETCH_FIELD: &str = "@fetch=";

/// The VMM options that name a file the VMM writes, whose value is a path
/// on the build machine.
pub const OUTPUT_OPTIONS: [&str; 2] = ["--trace", "--dump-dtb"];

/// How to run a job, from its leading fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFields {
    /// `@sigint-after-ms=`
    pub sigint_after: Option<Duration>,
    /// `@mark=`
    pub mark: Option<String>,
    /// `@stdin=`
    pub stdin: Option<String>,
    /// `@stdout-unread`
    pub stdout_unread: bool,
    /// `@env=NAME=VALUE`, in order.
    pub env: Vec<(String, String)>,
    /// `@timeout-s=`
    pub timeout: Option<Duration>,
    /// `@qemu`
    pub qemu: bool,
}

impl JobFields {
    /// The fields as job arguments, in a fixed order.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(after) = self.sigint_after {
            out.push(format!("{SIGINT_AFTER}{}", after.as_millis()));
        }
        if let Some(mark) = &self.mark {
            out.push(format!("{MARK_FIELD}{mark}"));
        }
        if let Some(text) = &self.stdin {
            out.push(format!("{STDIN_FIELD}{text}"));
        }
        if self.stdout_unread {
            out.push(STDOUT_UNREAD.to_string());
        }
        for (name, value) in &self.env {
            out.push(format!("{ENV_FIELD}{name}={value}"));
        }
        if let Some(timeout) = self.timeout {
            out.push(format!("{TIMEOUT_FIELD}{}", timeout.as_secs()));
        }
        if self.qemu {
            out.push(QEMU_FIELD.to_string());
        }
        out
    }

    /// How long the job's process may run before it is killed: the
    /// [`TIMEOUT_FIELD`], else [`QEMU_TIMEOUT`] for QEMU; `None` for a
    /// VMM, which bounds itself.
    pub fn bound(&self) -> Option<Duration> {
        self.timeout.or_else(|| self.qemu.then_some(QEMU_TIMEOUT))
    }
}

/// `job` with `@env=UIRQ_LOG=FILTER` in front when `filter` is given and
/// not empty, so the VMM logs as asked wherever it runs (a nested VMM
/// does not inherit xtask's environment).
pub fn with_log_filter(job: Vec<String>, filter: Option<&str>) -> Vec<String> {
    match filter.filter(|f| !f.is_empty()) {
        Some(f) => std::iter::once(format!("{ENV_FIELD}{LOG_ENV}={f}"))
            .chain(job)
            .collect(),
        None => job,
    }
}

/// True when `name` can be an environment variable's name in a job field:
/// letters, digits and `_`, not starting with a digit.
fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits a job's leading fields off its VMM arguments. A leading `@...`
/// that is not a known field, or a field without a usable value, is an
/// error (the VMM would only reject it less clearly).
pub fn split_fields(args: &[String]) -> Result<(JobFields, &[String])> {
    let mut fields = JobFields::default();
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        if !first.starts_with('@') {
            break;
        }
        if let Some(ms) = first.strip_prefix(SIGINT_AFTER) {
            let ms = ms
                .parse()
                .map_err(|_| format!("job field {first:?}: expected milliseconds"))?;
            fields.sigint_after = Some(Duration::from_millis(ms));
        } else if let Some(text) = first.strip_prefix(MARK_FIELD) {
            if text.is_empty() {
                return Err(format!("job field {first:?}: the mark needs a text"));
            }
            fields.mark = Some(text.to_string());
        } else if let Some(text) = first.strip_prefix(STDIN_FIELD) {
            fields.stdin = Some(text.to_string());
        } else if first == STDOUT_UNREAD {
            fields.stdout_unread = true;
        } else if first == QEMU_FIELD {
            fields.qemu = true;
        } else if let Some(s) = first.strip_prefix(TIMEOUT_FIELD) {
            match s.parse() {
                Ok(s) if s > 0 => fields.timeout = Some(Duration::from_secs(s)),
                _ => {
                    return Err(format!(
                        "job field {first:?}: expected a whole number of seconds, at least 1"
                    ))
                }
            }
        } else if let Some(setting) = first.strip_prefix(ENV_FIELD) {
            match setting.split_once('=') {
                Some((name, value)) if is_env_name(name) => {
                    fields.env.push((name.to_string(), value.to_string()))
                }
                _ => {
                    return Err(format!(
                        "job field {first:?}: expected {ENV_FIELD}NAME=VALUE with a NAME of letters, digits and _"
                    ))
                }
            }
        } else {
            return Err(format!(
                "unknown job field {first:?} (known: {SIGINT_AFTER}N, {MARK_FIELD}TEXT, {STDIN_FIELD}TEXT, {STDOUT_UNREAD}, {ENV_FIELD}NAME=VALUE, {TIMEOUT_FIELD}N, {QEMU_FIELD})"
            ));
        }
        rest = tail;
    }
    if fields.stdout_unread && fields.mark.is_some() {
        return Err(format!(
            "job fields {STDOUT_UNREAD} and {MARK_FIELD} do not go together: nothing reads the output the mark is looked for in"
        ));
    }
    Ok((fields, rest))
}

/// True when the VMM arguments name no guest (`--image` or `--kernel`),
/// so the firmware image is to be added.
pub fn needs_default_image(vmm_args: &[String]) -> bool {
    !vmm_args.iter().any(|a| {
        ["--image", "--kernel"]
            .iter()
            .any(|o| a == o || a.starts_with(&format!("{o}=")))
    })
}

/// Rewrites the file paths in `vmm_args` (the values of [`FILE_OPTIONS`],
/// as `--opt PATH` or `--opt=PATH`): `place` maps a path to its new name,
/// or to `None` to leave it as it is.
pub fn rewrite_file_args(
    vmm_args: &[String],
    place: impl FnMut(&str) -> Option<String>,
) -> Vec<String> {
    rewrite_option_values(vmm_args, &FILE_OPTIONS, place)
}

/// [`rewrite_file_args`] for a job's arguments, whoever reads them: QEMU's
/// [`QEMU_FILE_OPTIONS`] for a `@qemu` job (`-kernel PATH` or
/// `-kernel=PATH`, both of which QEMU takes), the VMM's otherwise.
pub fn rewrite_job_files(
    fields: &JobFields,
    args: &[String],
    place: impl FnMut(&str) -> Option<String>,
) -> Vec<String> {
    if fields.qemu {
        rewrite_option_values(args, &QEMU_FILE_OPTIONS, place)
    } else {
        rewrite_file_args(args, place)
    }
}

/// The paths the VMM will write ([`OUTPUT_OPTIONS`]' values), in order.
pub fn output_paths(vmm_args: &[String]) -> Vec<String> {
    let mut paths = Vec::new();
    rewrite_option_values(vmm_args, &OUTPUT_OPTIONS, |p| {
        paths.push(p.to_string());
        None
    });
    paths
}

/// The paths a job's process will write: the VMM's [`OUTPUT_OPTIONS`];
/// none for a `@qemu` job (QEMU takes `--trace` too, for something else).
pub fn job_outputs(fields: &JobFields, args: &[String]) -> Vec<String> {
    if fields.qemu {
        Vec::new()
    } else {
        output_paths(args)
    }
}

/// Rewrites the values of `options` in `vmm_args` (as `--opt VALUE` or
/// `--opt=VALUE`): `place` maps a value to its new text, or to `None` to
/// leave it as it is.
pub fn rewrite_option_values(
    vmm_args: &[String],
    options: &[&str],
    mut place: impl FnMut(&str) -> Option<String>,
) -> Vec<String> {
    let mut out = Vec::with_capacity(vmm_args.len());
    let mut value_of_file_option = false;
    for arg in vmm_args {
        if value_of_file_option {
            value_of_file_option = false;
            out.push(place(arg).unwrap_or_else(|| arg.clone()));
            continue;
        }
        if options.contains(&arg.as_str()) {
            value_of_file_option = true;
            out.push(arg.clone());
            continue;
        }
        let joined = options.iter().find_map(|o| {
            arg.strip_prefix(o)
                .and_then(|r| r.strip_prefix('='))
                .map(|v| (o, v))
        });
        match joined {
            Some((option, value)) => match place(value) {
                Some(new) => out.push(format!("{option}={new}")),
                None => out.push(arg.clone()),
            },
            None => out.push(arg.clone()),
        }
    }
    out
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
#[derive(Clone, Debug, Default)]
pub struct JobResult {
    /// The job as given: fields and VMM arguments (without the implicit
    /// `--image`).
    pub args: Vec<String>,
    /// What the VMM and the guest printed, stdout and stderr together
    /// (the first and last few hundred KiB: `crate::bounded`), without the
    /// VMM's tagged reports.
    pub console: String,
    /// The VMM's exit code; `None` if the job never finished.
    pub exit_code: Option<i32>,
    /// With `@mark=TEXT`: the time from the VMM's spawn to the first line
    /// containing TEXT, if one came.
    pub mark: Option<Duration>,
    /// The VMM's reports that carried the batch's tag, in order.
    pub reports: Vec<Report>,
    /// The files the VMM wrote inside L1 ([`OUTPUT_OPTIONS`]), brought
    /// back to their paths here, in the order the options came (empty for
    /// a native run, where the VMM writes them itself).
    pub fetched: Vec<Fetched>,
    /// The process's peak resident set in KiB (`ru_maxrss` from `wait4`,
    /// in L1 when nested); `None` if it never finished or it was not
    /// reported.
    pub peak_rss_kib: Option<u64>,
    /// From the process's spawn to its exit, measured where it ran (in L1
    /// when nested); `None` if it never finished or it was not reported.
    pub wall: Option<Duration>,
}

/// A file the VMM wrote in L1, brought back to the build machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Its path on the build machine, as the job gave it.
    pub path: String,
    /// Its size, or why it is not there.
    pub result: std::result::Result<u64, String>,
}

impl JobResult {
    /// The text of the VMM's first report with `keyword`
    /// (`uirq_abi::report::BENCH`, `EXITS`), if it printed one with the
    /// batch's tag. Only the VMM can have printed it.
    pub fn report(&self, keyword: &str) -> Option<&str> {
        self.reports_of(keyword).next()
    }

    /// The texts of every report with `keyword`, in the order printed
    /// (`uirq_abi::report::SAMPLES`, of which a run prints several).
    pub fn reports_of<'a>(&'a self, keyword: &str) -> impl Iterator<Item = &'a str> + 'a {
        let keyword = report::VMM_REPORTS.into_iter().find(|k| *k == keyword);
        self.reports
            .iter()
            .filter(move |r| Some(r.keyword) == keyword)
            .map(|r| r.text.as_str())
    }
}

/// A report line of the VMM, with its tag checked and taken off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// `uirq_abi::report::BENCH`, `SAMPLES` or `EXITS`.
    pub keyword: &'static str,
    /// What followed the tag (a JSON document).
    pub text: String,
}

/// The most reports kept per job: the VMM prints one `@@bench` and one
/// `@@exits` at most, and with `--raw-samples` up to
/// `uirq_abi::bench_json::MAX_CHUNKS` `@@samples` (each line at most
/// `crate::process::MAX_LINE`, so a job's reports stay within 2.2 MiB).
pub const MAX_REPORTS: usize = 2 + uirq_abi::bench_json::MAX_CHUNKS;

/// Splits a VMM report carrying `tag` off a console line: the text before
/// it (guest output the line began with), and the report.
pub fn take_report<'a>(line: &'a str, tag: &str) -> Option<(&'a str, Report)> {
    report::VMM_REPORTS.into_iter().find_map(|keyword| {
        report::find(line, keyword, tag).map(|(before, text)| {
            (
                before,
                Report {
                    keyword,
                    text: text.to_string(),
                },
            )
        })
    })
}

/// One job's console as it arrives: its text, bounded, and its tagged
/// reports set apart.
#[derive(Clone, Debug, Default)]
pub struct JobConsole {
    text: BoundedText,
    reports: Vec<Report>,
}

impl JobConsole {
    /// Takes one line of the job's output. A report with `tag` is set
    /// apart (and shown to `stream` without its tag); anything else is
    /// console text.
    pub fn line(&mut self, line: &str, tag: &str, stream: Option<&dyn Fn(&str)>) {
        match take_report(line, tag) {
            Some((before, r)) => {
                if !before.is_empty() {
                    self.text.push_line(before);
                    if let Some(show) = stream {
                        show(before);
                    }
                }
                if let Some(show) = stream {
                    show(&format!("{} {}", r.keyword, r.text));
                }
                if self.reports.len() < MAX_REPORTS {
                    self.reports.push(r);
                }
            }
            None => {
                self.text.push_line(line);
                if let Some(show) = stream {
                    show(line);
                }
            }
        }
    }

    /// The console text and the reports.
    pub fn finish(self) -> (String, Vec<Report>) {
        (self.text.into_string(), self.reports)
    }
}

/// A fresh tag for the VMMs of a native batch: 128 bits from
/// `/dev/urandom`, in hex (`uirq_abi::report`).
pub fn new_tag() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom for the run's tag: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
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
        let tag = new_tag()?;
        let mut results = Vec::new();
        for args in jobs {
            results.push(run_native(artifacts, args, &tag, stream, wall_timeout)?);
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
    // The files the VMM will write: each must be writable here before
    // the long nested run starts.
    for job in jobs {
        let (fields, args) = split_fields(job)?;
        for path in job_outputs(&fields, args) {
            std::fs::File::create(&path).map_err(|e| format!("cannot write {path}: {e}"))?;
        }
    }
    // The VMM in L1 writes to L1's console, a terminal, whatever this
    // process's output is: it gets NO_COLOR unless colour is wanted here.
    let colour = crate::stdout_colour();
    let sent: Vec<Vec<String>> = jobs.iter().map(|j| plain_unless(colour, j)).collect();
    let (versions, outputs) = l1::run_jobs(
        artifacts,
        &sent,
        label,
        stream,
        wall_timeout,
        kernel_package,
    )?;
    let env = Environment {
        kind: "nested",
        kernel: versions.kernel,
        qemu: Some(versions.qemu),
    };
    let results = jobs
        .iter()
        .zip(outputs)
        .map(|(args, out)| {
            let fetched = split_fields(args)
                .map(|(fields, args)| job_outputs(&fields, args))
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(k, path)| {
                    let result = match out.files.get(k) {
                        Some(Ok(bytes)) => std::fs::write(&path, bytes)
                            .map(|()| bytes.len() as u64)
                            .map_err(|e| format!("cannot write {path}: {e}")),
                        Some(Err(e)) => Err(e.clone()),
                        None => Err(format!("{path} did not come back from L1")),
                    };
                    Fetched { path, result }
                })
                .collect();
            JobResult {
                args: args.clone(),
                console: out.console,
                exit_code: out.exit_code,
                mark: out.mark,
                reports: out.reports,
                fetched,
                peak_rss_kib: out.peak_rss_kib,
                wall: out.wall,
            }
        })
        .collect();
    Ok((env, results))
}

/// `job` as sent into L1: with `@env=NO_COLOR=1` in front unless `colour`.
fn plain_unless(colour: bool, job: &[String]) -> Vec<String> {
    let plain = (!colour).then(|| format!("{ENV_FIELD}NO_COLOR=1"));
    plain.into_iter().chain(job.iter().cloned()).collect()
}

fn run_native(
    artifacts: &Artifacts,
    args: &[String],
    tag: &str,
    stream: Option<&dyn Fn(&str)>,
    wall_timeout: Duration,
) -> Result<JobResult> {
    let mut console = JobConsole::default();
    let (fields, vmm_args) = split_fields(args)?;
    let program = if fields.qemu {
        if !l1::qemu_installed() {
            return Err(format!(
                "a {QEMU_FIELD} job runs {} from PATH on this aarch64 KVM host, and it is not installed (on Debian or Ubuntu: `sudo apt-get install qemu-system-arm`)",
                l1::QEMU
            ));
        }
        std::path::PathBuf::from(l1::QEMU)
    } else {
        artifacts.vmm.clone()
    };
    // With a SIGINT field, Ctrl-C as a terminal sends it: SIGINT to the VMM
    // after a while, which `timeout` from coreutils does without a shell.
    let mut cmd = match fields.sigint_after {
        Some(after) => {
            let mut c = Command::new("timeout");
            c.arg("--signal=INT")
                .arg("--preserve-status")
                .arg(format!("{:.3}", after.as_secs_f64()))
                .arg(&program);
            c
        }
        None => Command::new(&program),
    };
    if !fields.qemu && needs_default_image(vmm_args) {
        cmd.arg("--image").arg(&artifacts.guest_image);
    }
    // The job's own bound ends it as the L1 init would, with SIGKILL's
    // status; the batch's bound is an error.
    let bound = fields.bound().filter(|b| *b < wall_timeout);
    cmd.args(vmm_args)
        .envs(fields.env.iter().map(|(n, v)| (n, v)))
        .env(report::TAG_ENV, tag);
    let stdin_text = fields.stdin.as_ref().map(|t| format!("{t}\n"));
    let feed = stdin_text.as_ref().map(|text| Feed {
        text: text.as_bytes(),
        after: fields.mark.as_deref(),
    });
    let mut mark = None;
    let spawned = Instant::now();
    // Holds the read end of the pipe nobody reads, until the VMM is done.
    let mut unread = None;
    if fields.stdout_unread {
        let (reader, writer) = crate::process::unread_pipe()
            .map_err(|e| format!("cannot make a pipe for {STDOUT_UNREAD}: {e}"))?;
        cmd.stdout(writer);
        unread = Some(reader);
    }
    let on_line = |_, line: String| {
        if let Some(text) = &fields.mark {
            if mark.is_none() && line.contains(text.as_str()) {
                mark = Some(spawned.elapsed());
            }
        }
        console.line(&line, tag, stream);
    };
    let (ended, peak_rss_kib) = run_bounded_measured(
        &mut cmd,
        bound.unwrap_or(wall_timeout),
        feed,
        unread.is_some(),
        on_line,
    )?;
    let wall = spawned.elapsed();
    drop(unread);
    let exit_code = match ended {
        Ended::Exited(status) => status
            .code()
            .or_else(|| std::os::unix::process::ExitStatusExt::signal(&status).map(|s| 128 + s)),
        Ended::Killed if bound.is_some() => Some(128 + libc::SIGKILL),
        Ended::Killed => {
            return Err(format!(
                "the VMM did not finish within {} s and was stopped",
                wall_timeout.as_secs()
            ))
        }
    };
    let (console, reports) = console.finish();
    Ok(JobResult {
        args: args.to_vec(),
        console,
        exit_code,
        mark,
        reports,
        // The VMM wrote its files here itself.
        fetched: Vec::new(),
        peak_rss_kib,
        wall: Some(wall),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fields_are_split_off_the_vmm_arguments_in_any_order() {
        let job = owned(&[
            "@stdin=hello there",
            "@sigint-after-ms=1500",
            "@mark=uirq-linux-init: started",
            "--cpus",
            "2",
        ]);
        let (fields, args) = split_fields(&job).unwrap();
        assert_eq!(
            fields,
            JobFields {
                sigint_after: Some(Duration::from_millis(1500)),
                mark: Some("uirq-linux-init: started".into()),
                stdin: Some("hello there".into()),
                stdout_unread: false,
                env: Vec::new(),
                timeout: None,
                qemu: false,
            }
        );
        assert_eq!(args, &job[3..]);
        // The fields come back in a fixed order.
        assert_eq!(
            fields.to_args(),
            [
                "@sigint-after-ms=1500",
                "@mark=uirq-linux-init: started",
                "@stdin=hello there"
            ]
        );
        let plain = owned(&["--cpus", "2", "@mark=late"]);
        assert_eq!(
            split_fields(&plain).unwrap(),
            (JobFields::default(), &plain[..])
        );
        assert_eq!(split_fields(&[]).unwrap(), (JobFields::default(), &[][..]));
        for bad in [
            "@sigint-after-ms=soon",
            "@mark=",
            "@nope=1",
            "@stdout-unread=1",
            "@env=UIRQ_LOG",
            "@env==debug",
            "@env=1X=2",
            "@env=A B=2",
            "@timeout-s=0",
            "@timeout-s=1.5",
            "@timeout-s=",
            "@qemu=1",
        ] {
            assert!(split_fields(&owned(&[bad])).is_err(), "{bad}");
        }
        let unread = owned(&["@stdout-unread", "--ticks", "5"]);
        let (fields, args) = split_fields(&unread).unwrap();
        assert!(fields.stdout_unread);
        assert_eq!(fields.to_args(), ["@stdout-unread"]);
        assert_eq!(args, &unread[1..]);
        let err = split_fields(&owned(&["@stdout-unread", "@mark=x"])).unwrap_err();
        assert!(err.contains("do not go together"), "{err}");
    }

    #[test]
    fn qemu_and_timeout_fields_are_parsed_rendered_and_bound_the_job() {
        let job = owned(&[
            "@qemu",
            "@mark=timer:",
            "@timeout-s=90",
            "-accel",
            "kvm",
            "-kernel",
            "/fw",
        ]);
        let (fields, args) = split_fields(&job).unwrap();
        assert!(fields.qemu);
        assert_eq!(fields.timeout, Some(Duration::from_secs(90)));
        assert_eq!(fields.mark.as_deref(), Some("timer:"));
        assert_eq!(args, &job[3..]);
        assert_eq!(fields.to_args(), ["@mark=timer:", "@timeout-s=90", "@qemu"]);
        assert_eq!(fields.bound(), Some(Duration::from_secs(90)));
        // QEMU never ends by itself on a wedged guest: it always has a
        // bound; the VMM has its own `--timeout`.
        let (plain_qemu, _) = split_fields(&owned(&["@qemu", "-M", "virt"])).unwrap();
        assert_eq!(plain_qemu.bound(), Some(QEMU_TIMEOUT));
        assert_eq!(JobFields::default().bound(), None);
        // A round trip keeps everything.
        let again = fields.to_args();
        assert_eq!(split_fields(&again).unwrap().0, fields);
        // The error lists the new fields.
        let err = split_fields(&owned(&["@qemu-please"])).unwrap_err();
        assert!(err.contains("@timeout-s=N, @qemu)"), "{err}");
    }

    // QEMU's file options are rewritten for a @qemu job (both spellings),
    // the VMM's are not (QEMU has none of them), and a VMM job is as it was.
    #[test]
    fn qemu_file_options_are_rewritten_only_for_qemu_jobs() {
        let args = owned(&[
            "-kernel",
            "/build/uirq-guest",
            "-initrd=/build/initrd",
            "-dtb",
            "/build/x.dtb",
            "--kernel",
            "/build/other",
            "-device",
            "loader,addr=0x41000000,data=0x1,data-len=8",
            "--trace",
            "events",
        ]);
        let place = |p: &str| Some(format!("/files/{}", p.trim_start_matches("/build/")));
        let qemu = JobFields {
            qemu: true,
            ..JobFields::default()
        };
        assert_eq!(
            rewrite_job_files(&qemu, &args, place),
            [
                "-kernel",
                "/files/uirq-guest",
                "-initrd=/files/initrd",
                "-dtb",
                "/files/x.dtb",
                "--kernel",
                "/build/other",
                "-device",
                "loader,addr=0x41000000,data=0x1,data-len=8",
                "--trace",
                "events",
            ]
        );
        let vmm = rewrite_job_files(&JobFields::default(), &args, place);
        assert_eq!(vmm[..6], args[..6]);
        assert_eq!(vmm[6], "/files/other");
        // QEMU's `--trace` is not a file to fetch; the VMM's is.
        assert!(job_outputs(&qemu, &args).is_empty());
        assert_eq!(job_outputs(&JobFields::default(), &args), ["events"]);
    }

    #[test]
    fn env_fields_carry_the_log_filter_and_no_color_into_the_job() {
        let job = with_log_filter(owned(&["@mark=x", "--ticks", "5"]), Some("uirq_host=debug"));
        assert_eq!(job[0], "@env=UIRQ_LOG=uirq_host=debug");
        let job = plain_unless(false, &job);
        let (fields, args) = split_fields(&job).unwrap();
        assert_eq!(
            fields.env,
            [
                ("NO_COLOR".to_string(), "1".to_string()),
                ("UIRQ_LOG".to_string(), "uirq_host=debug".to_string())
            ]
        );
        assert_eq!(fields.mark.as_deref(), Some("x"));
        assert_eq!(args, ["--ticks", "5"]);
        assert_eq!(
            fields.to_args(),
            [
                "@mark=x",
                "@env=NO_COLOR=1",
                "@env=UIRQ_LOG=uirq_host=debug"
            ]
        );
        // Unset or empty: nothing added; colour wanted: no NO_COLOR.
        assert_eq!(with_log_filter(owned(&["-v"]), None), ["-v"]);
        assert_eq!(with_log_filter(owned(&["-v"]), Some("")), ["-v"]);
        assert_eq!(plain_unless(true, &owned(&["-v"])), ["-v"]);
        // An empty value is a value.
        let (fields, _) = split_fields(&owned(&["@env=X_1="])).unwrap();
        assert_eq!(fields.env, [("X_1".to_string(), String::new())]);
    }

    const TAG: &str = "0123456789abcdef0123456789abcdef";

    // The VMM's tagged reports are set apart (and shown without the tag);
    // the guest's forged ones stay console text and are no report.
    #[test]
    fn only_tagged_reports_count_and_forged_ones_stay_text() {
        let shown = std::cell::RefCell::new(Vec::new());
        let show = |l: &str| shown.borrow_mut().push(l.to_string());
        let mut console = JobConsole::default();
        for line in [
            "tick 1: 5 ns".to_string(),
            "@@bench {\"irqchip\":\"forged\"}".to_string(),
            "@@exits 00000000000000000000000000000000 {\"total\":1}".to_string(),
            format!("@@exits {TAG} {{\"total\":49139}}"),
            format!("# prompt@@bench {TAG} {{\"irqchip\":\"user\"}}"),
        ] {
            console.line(&line, TAG, Some(&show));
        }
        let (text, reports) = console.finish();
        assert_eq!(
            text,
            "tick 1: 5 ns\n@@bench {\"irqchip\":\"forged\"}\n@@exits 00000000000000000000000000000000 {\"total\":1}\n# prompt\n"
        );
        let result = JobResult {
            reports,
            ..JobResult::default()
        };
        assert_eq!(result.report(report::EXITS), Some("{\"total\":49139}"));
        assert_eq!(result.report(report::BENCH), Some("{\"irqchip\":\"user\"}"));
        assert_eq!(
            shown.borrow()[3..],
            [
                "@@exits {\"total\":49139}",
                "# prompt",
                "@@bench {\"irqchip\":\"user\"}"
            ]
        );
        let tag = new_tag().unwrap();
        assert!(report::valid_tag(&tag) && tag != new_tag().unwrap());
    }

    // A run with raw samples prints many `@@samples` reports: all are kept,
    // in order, up to the bound, and none is mistaken for another kind.
    #[test]
    fn every_samples_report_is_kept_in_order_up_to_the_bound() {
        let mut console = JobConsole::default();
        console.line(&format!("@@bench {TAG} {{}}"), TAG, None);
        for i in 0..MAX_REPORTS + 3 {
            console.line(&format!("@@samples {TAG} {{\"first\":{i}}}"), TAG, None);
        }
        let (text, reports) = console.finish();
        assert!(text.is_empty(), "{text}");
        assert_eq!(reports.len(), MAX_REPORTS);
        let result = JobResult {
            reports,
            ..JobResult::default()
        };
        assert_eq!(result.report(report::BENCH), Some("{}"));
        let samples: Vec<&str> = result.reports_of(report::SAMPLES).collect();
        assert_eq!(samples.len(), MAX_REPORTS - 1);
        assert_eq!(samples[0], "{\"first\":0}");
        assert_eq!(samples[1], "{\"first\":1}");
        assert_eq!(result.reports_of(report::EXITS).count(), 0);
        assert_eq!(result.reports_of("@@other").count(), 0);
    }

    #[test]
    fn only_a_job_without_image_or_kernel_gets_the_firmware() {
        assert!(needs_default_image(&owned(&["--cpus", "2"])));
        assert!(needs_default_image(&owned(&["--initrd", "x"])));
        assert!(!needs_default_image(&owned(&["--image", "x"])));
        assert!(!needs_default_image(&owned(&["--kernel", "vmlinuz"])));
        assert!(!needs_default_image(&owned(&["--kernel=vmlinuz"])));
        assert!(!needs_default_image(&owned(&["--image=x.bin"])));
        assert!(needs_default_image(&owned(&["--images", "x"])));
    }

    #[test]
    fn file_arguments_are_rewritten_in_both_spellings_and_others_kept() {
        let job = owned(&[
            "--kernel",
            "/build/vmlinuz",
            "--initrd=/build/initrd.cpio",
            "--cmdline",
            "--kernel is not a file option here",
            "--dtb",
            "/missing.dtb",
            "--dump-dtb",
            "/out.dtb",
            "--cpus",
            "2",
        ]);
        let mut asked = Vec::new();
        let out = rewrite_file_args(&job, |p| {
            asked.push(p.to_string());
            (p != "/missing.dtb").then(|| format!("/files/{}", p.trim_start_matches("/build/")))
        });
        assert_eq!(
            out,
            [
                "--kernel",
                "/files/vmlinuz",
                "--initrd=/files/initrd.cpio",
                "--cmdline",
                "--kernel is not a file option here",
                "--dtb",
                "/missing.dtb",
                "--dump-dtb",
                "/out.dtb",
                "--cpus",
                "2",
            ]
        );
        assert_eq!(
            asked,
            ["/build/vmlinuz", "/build/initrd.cpio", "/missing.dtb"]
        );
    }
}
