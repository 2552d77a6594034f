//! `cargo xtask`: the project's build, run and test commands.
//!
//! ```text
//! cargo xtask run [-- VMM ARGS]   build everything and boot the firmware
//! cargo xtask run --linux [-- VMM ARGS]   boot Linux on the VMM instead
//! cargo xtask probe [--json]      what the host kernel offers the VMM
//! cargo xtask test                every check and test, as CI runs them
//! cargo xtask bench-latency       interrupt latency, userspace GIC vs in-kernel vGIC
//! cargo xtask bench-boot          Linux boot to init, userspace GIC vs in-kernel vGIC
//! cargo xtask build               build the firmware image, VMM and the inits
//! cargo xtask trace-svg IN OUT    part of a VMM trace as an SVG timeline
//! cargo xtask kernels [PACKAGE]   the conformance suite on several kernels
//! cargo xtask help [COMMAND]      the commands, or one command's options
//! ```
//!
//! The command line is clap's; a usage error, like every other failure of
//! xtask itself, exits with [`XTASK_ERROR`] (101), a code no guest status
//! or VMM code uses, and `--help` anywhere exits 0.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use xtask::cli::{parse, Parsed, Verb};
use xtask::{
    build, jobs, l1, linux, process, progress, project, run_checked, toolchain, Result, Tally,
    XTASK_ERROR,
};

fn main() -> ExitCode {
    let verb = match parse(std::env::args()) {
        Parsed::Verb(verb) => verb,
        Parsed::Print { text, code: 0 } => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Parsed::Print { text, code } => {
            eprint!("{text}");
            return ExitCode::from(code);
        }
    };
    let result = match verb {
        Verb::Run { linux, vmm_args } => run(linux, vmm_args),
        Verb::Probe {
            json,
            irq_line_check_ms,
        } => probe(json, irq_line_check_ms),
        Verb::Test => test(),
        Verb::Build => build_only(),
        Verb::BenchLatency(args) => build::for_running(false)
            .and_then(|a| xtask::bench::run_with(&a, &args.into()))
            .map(|_| ExitCode::SUCCESS),
        Verb::BenchBoot(args) => build::for_running(true)
            .and_then(|a| xtask::boot_bench::run_with(&a, &args.into()))
            .map(|_| ExitCode::SUCCESS),
        Verb::Kernels { packages, json } => kernels(packages, json.as_deref()),
        Verb::TraceSvg {
            trace,
            svg,
            interrupt,
            from,
            to,
            title,
        } => trace_svg(&trace, &svg, interrupt, from.zip(to), &title),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("xtask: error: {msg}");
            ExitCode::from(XTASK_ERROR)
        }
    }
}

/// `kernels`: the suite on each kernel, the matrix, its JSON.
fn kernels(packages: Vec<String>, json: Option<&Path>) -> Result<ExitCode> {
    use xtask::kernels;
    let packages = if packages.is_empty() {
        kernels::default_packages()
    } else {
        packages
    };
    if let Some(path) = json {
        std::fs::File::create(path)
            .map_err(|e| format!("cannot write the matrix to {}: {e}", path.display()))?;
    }
    let artifacts = build::for_running(false)?;
    let columns = kernels::run(&artifacts, &packages)?;
    let checks = kernels::suite();
    println!("{}", kernels::table(&checks, &columns));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&kernels::to_json(&checks, &columns))
            .map_err(|e| format!("cannot encode the matrix: {e}"))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write the matrix to {}: {e}", path.display()))?;
        progress(format!("wrote {}", path.display()));
    }
    let all = columns.iter().all(|c| c.cells.iter().all(|cell| cell.pass));
    Ok(if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `trace-svg`: reads the trace, draws the window, writes the picture.
fn trace_svg(
    trace: &Path,
    svg: &Path,
    interrupt: Option<u64>,
    range: Option<(f64, f64)>,
    title: &str,
) -> Result<ExitCode> {
    use xtask::trace_svg::{render, Window};
    let text = std::fs::read_to_string(trace)
        .map_err(|e| format!("cannot read the trace {}: {e}", trace.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a trace (not JSON: {e})", trace.display()))?;
    let window = match (interrupt, range) {
        (_, Some((from, to))) => Window::Range(from, to),
        (n, None) => Window::Interrupt(n.unwrap_or(1) as usize),
    };
    let picture = render(&json, window, title)?;
    std::fs::write(svg, picture).map_err(|e| format!("cannot write {}: {e}", svg.display()))?;
    progress(format!("{} written", svg.display()));
    Ok(ExitCode::SUCCESS)
}

/// Where `tests/tests/smp.rs` leaves its table of SMP scenario verdicts.
const SMP_TABLE: &str = "uirq-smp-scenarios.txt";

fn build_only() -> Result<ExitCode> {
    let a = build::all()?;
    println!("firmware image: {}", a.guest_image.display());
    println!("VMM:            {}", a.vmm.display());
    println!("L1 init:        {}", a.l1_init.display());
    println!("Linux init:     {}", a.linux_init.display());
    Ok(ExitCode::SUCCESS)
}

/// Seconds after which `cargo xtask run` stops everything: the
/// environment's `UIRQ_RUN_WALL_TIMEOUT`, else 900, or the VMM's own
/// `--timeout` plus 300 s (the nested boot and the VMM's own stop) when
/// that is longer, so a long run the user bounded themselves is not cut.
fn run_wall_timeout(env: Option<&str>, vmm_args: &[String]) -> Result<u64> {
    const DEFAULT: u64 = 900;
    const MARGIN: u64 = 300;
    if let Some(value) = env {
        return value
            .trim()
            .parse()
            .ok()
            .filter(|&s: &u64| s > 0)
            .ok_or_else(|| format!("UIRQ_RUN_WALL_TIMEOUT={value:?} is not a number of seconds"));
    }
    // The VMM takes the last of repeated options (clap's args_override_self).
    let vmm_timeout = vmm_args
        .windows(2)
        .rev()
        .filter(|w| w[0] == "--timeout")
        .find_map(|w| w[1].parse::<f64>().ok());
    Ok(match vmm_timeout {
        Some(t) if t.is_finite() && t > 0.0 => DEFAULT.max(t.ceil() as u64 + MARGIN),
        _ => DEFAULT,
    })
}

fn run(linux: bool, args: Vec<String>) -> Result<ExitCode> {
    let artifacts = build::for_running(linux)?;
    let job = if linux {
        let kernel = l1::ensure_kernel()?;
        let initrd = linux::write_initramfs(&artifacts)?;
        progress(format!(
            "Linux guest, by default {} with {}; a nested boot takes 30-120 s",
            kernel.display(),
            initrd.display()
        ));
        linux::boot_job(&kernel, &initrd, &[linux::started_mark()], &args)
    } else {
        args
    };
    let job = jobs::with_log_filter(job, xtask::env_text(jobs::LOG_ENV)?.as_deref());
    let wall = run_wall_timeout(xtask::env_text("UIRQ_RUN_WALL_TIMEOUT")?.as_deref(), &job)?;
    let (env, results) = jobs::run(
        &artifacts,
        &[job],
        "run",
        Some(&|line: &str| println!("{line}")),
        Duration::from_secs(wall),
    )?;
    let result = &results[0];
    match env.qemu {
        Some(q) => progress(format!("ran nested: L1 kernel {}, {q}", env.kernel)),
        None => progress(format!("ran natively on kernel {}", env.kernel)),
    }
    let code = result
        .exit_code
        .ok_or("the VMM did not finish (no exit status came back)")?;
    for file in &result.fetched {
        match &file.result {
            Ok(bytes) => progress(format!(
                "{}: {bytes} bytes, brought back from L1",
                file.path
            )),
            Err(e) => return Err(format!("{} was not written: {e}", file.path)),
        }
    }
    if linux {
        println!("{}", linux_summary(result.mark, &result.console, code));
    }
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// `probe`: `uirq-vmm --probe` where the VMM runs, its output as it
/// comes (the report on standard output; where it ran on standard error).
fn probe(json: bool, irq_line_check_ms: Option<u64>) -> Result<ExitCode> {
    let artifacts = build::for_running(false)?;
    let (env, results) = jobs::run(
        &artifacts,
        &[probe_job(json, irq_line_check_ms)],
        "probe",
        Some(&|line: &str| println!("{line}")),
        PROBE_WALL_TIMEOUT + Duration::from_millis(irq_line_check_ms.unwrap_or(0)),
    )?;
    match env.qemu {
        Some(q) => progress(format!("probed nested: L1 kernel {}, {q}", env.kernel)),
        None => progress(format!("probed natively on kernel {}", env.kernel)),
    }
    let code = results[0]
        .exit_code
        .ok_or("the VMM did not finish (no exit status came back)")?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Bounds `probe`, the nested boot included, beyond the time given to the
/// cross-thread check.
const PROBE_WALL_TIMEOUT: Duration = Duration::from_secs(300);

/// The VMM invocation of `probe`.
fn probe_job(json: bool, irq_line_check_ms: Option<u64>) -> Vec<String> {
    let mut job = vec!["--probe".to_string()];
    if json {
        job.push("--json".to_string());
    }
    if let Some(ms) = irq_line_check_ms {
        job.extend(["--irq-line-check-ms".to_string(), ms.to_string()]);
    }
    job
}

/// The closing line of `run --linux`.
fn linux_summary(mark: Option<Duration>, console: &str, code: i32) -> String {
    let uptime =
        linux::uptime_at_init(console).map_or("unknown".to_string(), |s| format!("{s:.2} s"));
    match mark {
        Some(m) => format!(
            "linux: VMM start to init {:.2} s, kernel uptime at init {uptime}, exit {code}",
            m.as_secs_f64()
        ),
        None => format!(
            "linux: the init never started (no `{}` line), exit {code}",
            linux::STARTED
        ),
    }
}

fn test() -> Result<ExitCode> {
    toolchain::ensure()?;
    let guest = build::guest_manifest();
    let target_dir = project::target_dir();
    // The firmware is not a workspace member: name its manifest, and share
    // the target directory. Arguments after `--` go to the tool, not cargo.
    let guest_cargo = |args: &[&str]| {
        let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        let mut cmd = project::cargo();
        cmd.args(&args[..split])
            .arg("--manifest-path")
            .arg(&guest)
            .arg("--target-dir")
            .arg(&target_dir)
            .args(&args[split..]);
        cmd
    };
    let cargo = |args: &[&str]| {
        let mut cmd = project::cargo();
        cmd.args(args);
        cmd
    };

    step(
        "formatting (workspace)",
        cargo(&["fmt", "--all", "--check"]),
    )?;
    step("formatting (guest)", {
        let mut cmd = project::cargo();
        cmd.args(["fmt", "--check", "--manifest-path"]).arg(&guest);
        cmd
    })?;
    step(
        "clippy, build machine",
        cargo(&[
            "clippy",
            "--quiet",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "clippy, aarch64-unknown-linux-musl (VMM with its KVM code, L1 init)",
        cargo(&[
            "clippy",
            "--quiet",
            "--workspace",
            "--all-targets",
            "--target",
            toolchain::LINUX_TARGET,
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "clippy, aarch64-unknown-none (firmware)",
        guest_cargo(&[
            "clippy",
            "--quiet",
            "--target",
            toolchain::GUEST_TARGET,
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "clippy, firmware drivers' unit tests (build machine)",
        guest_cargo(&[
            "clippy", "--quiet", "--lib", "--tests", "--", "-D", "warnings",
        ]),
    )?;
    docs(&guest, &target_dir)?;
    let mut tally = Tally::default();
    test_step(
        "unit tests (workspace)",
        cargo(&["test", "--workspace", "--exclude", "uirq-tests"]),
        &mut tally,
    )?;
    test_step(
        "unit tests (firmware drivers)",
        guest_cargo(&["test", "--lib"]),
        &mut tally,
    )?;
    gicv2_crate_steps()?;

    let artifacts = build::all()?;
    let mut e2e = cargo(&["test", "--package", "uirq-tests"]);
    e2e.env("UIRQ_GUEST_IMAGE", &artifacts.guest_image)
        .env("UIRQ_VMM", &artifacts.vmm)
        .env("UIRQ_L1_INIT", &artifacts.l1_init)
        .env("UIRQ_LINUX_INIT", &artifacts.linux_init);
    // The scenario tests leave tables of their results (VMM against QEMU's
    // GICv2, one CPU and several); stale ones from an earlier run must not
    // be shown.
    let tables = [
        xtask::qemu_plain::table_path(),
        xtask::project::target_dir().join(SMP_TABLE),
    ];
    for table in &tables {
        let _ = std::fs::remove_file(table);
    }
    let e2e_result = test_step(
        "end-to-end tests (firmware on the VMM on KVM, GIC scenarios also on QEMU's GICv2)",
        e2e,
        &mut tally,
    );
    for table in &tables {
        match std::fs::read_to_string(table) {
            Ok(text) => eprintln!("\n{text}"),
            Err(_) => progress(format!(
                "no scenario table at {} (those scenario tests did not run)",
                table.display()
            )),
        }
    }
    e2e_result?;
    progress("all checks and tests passed");
    // One plain closing line with the totals of every test run above.
    println!("{} passed, {} failed", tally.passed, tally.failed);
    Ok(ExitCode::SUCCESS)
}

/// The documentation of every crate, with rustdoc's warnings (a broken
/// intra-doc link, say) as errors: the workspace for the build machine and
/// for `aarch64-unknown-linux-musl` (the VMM's aarch64-only KVM modules),
/// and the firmware for `aarch64-unknown-none`.
fn docs(guest: &std::path::Path, target_dir: &std::path::Path) -> Result<()> {
    let doc = |target: Option<&str>| {
        let mut cmd = project::cargo();
        cmd.args(["doc", "--quiet", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings");
        if let Some(target) = target {
            cmd.args(["--target", target]);
        }
        cmd
    };
    let mut workspace = doc(None);
    workspace.arg("--workspace");
    step("documentation, build machine", workspace)?;
    let mut musl = doc(Some(toolchain::LINUX_TARGET));
    musl.arg("--workspace");
    step(
        "documentation, aarch64-unknown-linux-musl (the VMM's KVM modules)",
        musl,
    )?;
    let mut firmware = doc(Some(toolchain::GUEST_TARGET));
    firmware
        .arg("--manifest-path")
        .arg(guest)
        .arg("--target-dir")
        .arg(target_dir);
    step("documentation, aarch64-unknown-none (firmware)", firmware)
}

/// Like [`step`] for a `cargo test` run: echoes its output and adds its
/// `test result:` lines to `tally`. Bounded by [`process::TEST_LIMIT`].
fn test_step(what: &str, mut cmd: std::process::Command, tally: &mut Tally) -> Result<()> {
    progress(format!("== {what}"));
    let shown = format!("`{}`", process::render(&cmd));
    let ended = process::run_bounded_stdout(&mut cmd, process::TEST_LIMIT, |line| {
        println!("{line}");
        tally.add_line(&line);
    })
    .map_err(|e| format!("{what}: {e}"))?;
    match ended {
        process::Ended::Exited(status) if status.success() => Ok(()),
        process::Ended::Exited(status) => Err(format!("{what}: {shown} failed ({status})")),
        process::Ended::Killed => Err(format!(
            "{what}: {shown} did not finish within {} min and was stopped",
            process::TEST_LIMIT.as_secs() / 60
        )),
    }
}

/// The line `uirq-gicv2`'s `embed` example ends with when the interrupt
/// it raises has been taken and ended.
const GICV2_EMBED_LINE: &str = "irq_line(0) = false: interrupt 27 taken and ended";

/// The `uirq-gicv2` crate as its users get it (its tests ran with the
/// workspace's): its example runs on the build machine and prints its last
/// line, and `cargo package` accepts it (`--allow-dirty`: the tree may have
/// uncommitted changes while it is worked on).
fn gicv2_crate_steps() -> Result<()> {
    let what = "uirq-gicv2: the embed example runs";
    progress(format!("== {what}"));
    let mut cmd = project::cargo();
    cmd.args(["run", "--quiet", "-p", "uirq-gicv2", "--example", "embed"]);
    let mut saw_end = false;
    let ended = process::run_bounded_stdout(&mut cmd, process::CARGO_LIMIT, |line| {
        println!("{line}");
        saw_end |= line == GICV2_EMBED_LINE;
    })
    .map_err(|e| format!("{what}: {e}"))?;
    match ended {
        process::Ended::Exited(status) if status.success() && saw_end => {}
        process::Ended::Exited(status) => {
            return Err(format!(
                "{what}: {cmd:?} exited ({status}) without printing `{GICV2_EMBED_LINE}`"
            ))
        }
        process::Ended::Killed => return Err(format!("{what}: {cmd:?} was stopped")),
    }
    let mut cmd = project::cargo();
    cmd.args(["package", "-p", "uirq-gicv2", "--allow-dirty"]);
    step("uirq-gicv2: cargo package", cmd)
}

/// One cargo step of `test`, bounded by [`process::CARGO_LIMIT`].
fn step(what: &str, mut cmd: std::process::Command) -> Result<()> {
    progress(format!("== {what}"));
    run_checked(&mut cmd, process::CARGO_LIMIT).map_err(|e| format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_run_wall_timeout_follows_the_environment_then_the_vmm_timeout() {
        assert_eq!(run_wall_timeout(None, &args(&[])), Ok(900));
        assert_eq!(run_wall_timeout(None, &args(&["--timeout", "5"])), Ok(900));
        assert_eq!(
            run_wall_timeout(None, &args(&["--timeout", "7200", "--cpus", "2"])),
            Ok(7500)
        );
        assert_eq!(
            run_wall_timeout(Some("60"), &args(&["--timeout", "7200"])),
            Ok(60)
        );
        assert!(run_wall_timeout(Some("soon"), &args(&[])).is_err());
        assert!(run_wall_timeout(Some("0"), &args(&[])).is_err());
    }

    #[test]
    fn probe_runs_the_vmm_s_probe() {
        assert_eq!(probe_job(false, None), ["--probe"]);
        assert_eq!(probe_job(true, None), ["--probe", "--json"]);
        assert_eq!(
            probe_job(false, Some(0)),
            ["--probe", "--irq-line-check-ms", "0"]
        );
    }

    #[test]
    fn the_linux_summary_gives_both_times_or_says_init_never_started() {
        let console = "uirq-linux-init: started, kernel uptime 38.5 s\n";
        assert_eq!(
            linux_summary(Some(Duration::from_millis(41_234)), console, 0),
            "linux: VMM start to init 41.23 s, kernel uptime at init 38.50 s, exit 0"
        );
        assert_eq!(
            linux_summary(None, "Kernel panic", 126),
            "linux: the init never started (no `uirq-linux-init: started` line), exit 126"
        );
    }
}
