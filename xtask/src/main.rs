//! `cargo xtask`: the project's build, run and test commands.
//!
//! ```text
//! cargo xtask run [-- VMM ARGS]   build everything and boot the firmware
//! cargo xtask run --linux [-- VMM ARGS]   boot Linux on the VMM instead
//! cargo xtask test                every check and test, as CI runs them
//! cargo xtask bench-latency       interrupt latency, userspace GIC vs in-kernel vGIC
//! cargo xtask bench-boot          Linux boot to init, userspace GIC vs in-kernel vGIC
//! cargo xtask build               build the firmware image, VMM and the inits
//! ```

use std::process::ExitCode;
use std::time::Duration;

use xtask::{
    build, jobs, l1, linux, process, progress, project, run_checked, toolchain, Result, Tally,
};

const HELP: &str = "\
cargo xtask <command>

Commands:
  run [-- VMM ARGS]   Build the firmware and the VMM and run them on KVM: directly on an
                      aarch64 Linux host with /dev/kvm, otherwise inside an aarch64 Linux
                      booted under QEMU (installed and downloaded once, cached in target/l1).
                      Arguments after `--` go to the VMM (try `-- --help`).
                      The exit status is the guest's.
  run --linux [-- VMM ARGS]
                      Boot an arm64 Linux as the VMM's guest instead of the firmware: the
                      Debian kernel cached in target/l1 (the nested environment's own) with
                      a generated initramfs whose /init prints when it started, the
                      kernel's uptime then and /proc/interrupts, and powers off. Ends with
                      `linux: VMM start to init X s, kernel uptime at init Y s, exit N`.
                      Defaults: --kernel <cached vmlinuz> --initrd target/linux/initramfs.cpio
                      --cmdline \"console=ttyAMA0 panic=-1 quiet rdinit=/init\" --ram-mib 256
                      --timeout 600. VMM ARGS come after them and the VMM takes the last of a
                      repeated option, so your own --kernel, --initrd, --cmdline, --ram-mib
                      or --timeout replace the defaults (--cpus N, --irqchip kernel,
                      --exit-stats, --dtb PATH pass through too). Files are paths on this
                      machine; a nested run copies them into L1.
                      The exit status is the VMM's (0: the guest powered off).
  test                Formatting, clippy for every target, unit tests, end-to-end tests.
  bench-latency [--samples N] [--warmup N] [--irqchip user|kernel|both] [--cpus N] [--json PATH] [--plot PATH.svg]
                      Interrupt latency through the userspace GIC and KVM's in-kernel vGICv2,
                      side by side (default: both, 10000 samples per measurement, 2 vCPUs:
                      vtimer, sgi, mmio and the ipi from vCPU 0 to vCPU 1).
  bench-boot [--runs N] [--cpus N] [--json PATH]
                      Linux boot time on the VMM with the userspace GIC and with KVM's
                      in-kernel vGICv2: N boots of each (default 3, 1 vCPU), alternating, in
                      one batch. Per irqchip: VMM start to init and the kernel's uptime at
                      init (median, min, max), and the median exits to the VMM per boot by
                      kind. Fails if a boot does not power off cleanly or never reaches init.
  build               Build the firmware image, the VMM and the inits; print their paths.
  help                This text.

Environment:
  UIRQ_L1_KERNEL          use this aarch64 kernel image for the nested run instead of the cached one
                          (also the default Linux guest of `run --linux` and `bench-boot`)
  UIRQ_L1_KERNEL_PACKAGE  Debian package to take the kernel from (default: the pinned one)
  UIRQ_RUN_WALL_TIMEOUT   seconds after which `run` stops everything (default 900, or the
                          VMM's --timeout plus 300 s for the boot when that is longer)
  A variable that is set must hold a usable value: one that does not is an error, never
  a reason to fall back to the default.

Every step xtask runs (QEMU, the VMM, cargo, apt-get, dpkg) runs in a process group of its
own with a time limit; Ctrl-C, SIGTERM or a timeout stops the whole group.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (verb, rest) = match args.split_first() {
        Some((v, rest)) => (v.as_str(), rest),
        None => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
    };
    let result = match verb {
        "run" => run(rest),
        "test" => test(rest),
        "build" => build_only(rest),
        "bench-latency" => xtask::bench::parse_args(rest)
            .and_then(|o| xtask::bench::run(&o))
            .map(|_| ExitCode::SUCCESS),
        "bench-boot" => xtask::boot_bench::parse_args(rest)
            .and_then(|o| xtask::boot_bench::run(&o))
            .map(|_| ExitCode::SUCCESS),
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command `{other}`; see `cargo xtask help`")),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("xtask: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Splits `[--] args...`: everything after `--` is for the VMM; anything
/// before it is an error (`run` has taken its `--linux` off already).
fn vmm_args(rest: &[String]) -> Result<Vec<String>> {
    match rest.split_first() {
        None => Ok(Vec::new()),
        Some((first, tail)) if first == "--" => Ok(tail.to_vec()),
        Some((first, _)) => Err(format!(
            "unexpected argument `{first}`; `run` takes only `--linux`, and VMM arguments go after `--`, as in `cargo xtask run -- --ticks 20`"
        )),
    }
}

/// Where `tests/tests/smp.rs` leaves its table of SMP scenario verdicts.
const SMP_TABLE: &str = "uirq-smp-scenarios.txt";

fn build_only(rest: &[String]) -> Result<ExitCode> {
    if !rest.is_empty() {
        return Err("`build` takes no arguments".into());
    }
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

fn run(rest: &[String]) -> Result<ExitCode> {
    let (linux, rest) = match rest.split_first() {
        Some((first, tail)) if first == "--linux" => (true, tail),
        _ => (false, rest),
    };
    let args = vmm_args(rest)?;
    let artifacts = build::all()?;
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
    if linux {
        println!("{}", linux_summary(result.mark, &result.console, code));
    }
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
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

fn test(rest: &[String]) -> Result<ExitCode> {
    if !rest.is_empty() {
        return Err("`test` takes no arguments".into());
    }
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

/// Like [`step`] for a `cargo test` run: echoes its output and adds its
/// `test result:` lines to `tally`. Bounded by [`process::TEST_LIMIT`].
fn test_step(what: &str, mut cmd: std::process::Command, tally: &mut Tally) -> Result<()> {
    progress(format!("== {what}"));
    let shown = format!("{cmd:?}");
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
