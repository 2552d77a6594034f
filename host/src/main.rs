//! `uirq-vmm`: runs the uirq firmware, or any payload that follows Linux's
//! arm64 boot protocol (a Linux `Image`), on KVM with the GIC in userspace.
//!
//! The process exit code is the guest's verdict (the status it passed to
//! PSCI SYSTEM_OFF), or one of the VMM's own codes in `uirq_abi::exit`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use uirq_abi::boot::{
    Program, DEFAULT_CHAOS_OPS, DEFAULT_CHAOS_SEED, DEFAULT_IPIS, DEFAULT_IPI_TIMEOUT_US,
    DEFAULT_PERIOD_US, DEFAULT_TICKS,
};
use uirq_abi::exit::VMM_ERROR;
use uirq_host::boot::{self, Boot, KernelFiles, MachineSize};
use uirq_host::exit::Unmapped;
use uirq_host::irqchip::Injection;

/// Run the uirq guest firmware, or a Linux kernel, on KVM with a userspace GICv2.
#[derive(Debug, Parser)]
#[command(name = "uirq-vmm", version, about, after_help = programs_help(), args_override_self = true)]
struct Args {
    /// Flat firmware image to load at the start of guest RAM (the project's
    /// firmware; `--program` picks what it runs).
    #[arg(long, value_name = "PATH", required_unless_present_any = ["kernel", "dump_dtb", "probe"], conflicts_with = "kernel")]
    image: Option<PathBuf>,

    /// A kernel to boot as QEMU's `-kernel` does (Linux's arm64 boot
    /// protocol): an arm64 `Image`, gzip-compressed or not, or a raw binary
    /// (loaded at RAM base + 0x80000). It gets a generated device tree in x0.
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,

    /// An initrd for `--kernel`, placed below the device tree and named in
    /// its /chosen node.
    #[arg(
        long,
        value_name = "PATH",
        requires = "kernel",
        conflicts_with = "image"
    )]
    initrd: Option<PathBuf>,

    /// The kernel command line (/chosen/bootargs), at most 2047 characters.
    #[arg(
        long,
        value_name = "STRING",
        default_value = "",
        requires = "kernel",
        conflicts_with = "image"
    )]
    cmdline: String,

    /// Boot `--kernel` with this device tree instead of the generated one
    /// (used as it is: it must name its own command line and initrd).
    #[arg(long, value_name = "PATH", requires = "kernel", conflicts_with_all = ["initrd", "cmdline"])]
    dtb: Option<PathBuf>,

    /// Write the generated device tree to PATH and exit without running.
    #[arg(long, value_name = "PATH")]
    dump_dtb: Option<PathBuf>,

    /// At the end, print the exits by kind and by device as one
    /// `@@exits {json}` line on stdout.
    #[arg(long)]
    exit_stats: bool,

    /// Program the firmware runs (see the list below; firmware only).
    #[arg(long, default_value = "timer", value_parser = parse_program)]
    program: Program,

    /// Number of vCPUs, 1 to 8 (a GICv2 has at most eight CPU interfaces).
    /// vCPU 0 boots the firmware; the others wait, powered off, for the
    /// guest's PSCI CPU_ON.
    #[arg(long, default_value_t = 1, value_parser = parse_cpus)]
    cpus: usize,

    /// Number of timer interrupts the `timer` program takes (per core for
    /// `smp-timer`).
    #[arg(long, default_value_t = DEFAULT_TICKS, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    ticks: u64,

    /// Number of IPIs the `ipi-stress` program sends, over all cores.
    #[arg(long, default_value_t = DEFAULT_IPIS, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    ipis: u64,

    /// How long an `ipi-stress` sender waits for each acknowledgement before
    /// it has the receiver check for a lost IPI, in microseconds.
    #[arg(long, value_name = "US", default_value_t = DEFAULT_IPI_TIMEOUT_US, value_parser = clap::value_parser!(u64).range(1_000..=60_000_000))]
    ipi_timeout_us: u64,

    /// Who calls KVM_IRQ_LINE for a vCPU: `owner` (only that vCPU's own
    /// thread, which other threads kick; race-free) or `cross-thread`
    /// (whichever thread changed the GIC's output: loses interrupts on
    /// current kernels, kept to reproduce that).
    #[arg(long, value_name = "MODE", default_value = "owner", value_parser = parse_injection)]
    irq_injection: Injection,

    /// Timer period of the `timer` and `smp-timer` programs, in microseconds.
    #[arg(long, default_value_t = DEFAULT_PERIOD_US, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    period_us: u64,

    /// Seed of the `chaos` program's random choices (same seed, same
    /// operations).
    #[arg(long, default_value_t = DEFAULT_CHAOS_SEED, value_parser = clap::value_parser!(u64).range(1..))]
    seed: u64,

    /// Operations the `chaos` program makes, over all cores.
    #[arg(long, default_value_t = DEFAULT_CHAOS_OPS, value_parser = clap::value_parser!(u64).range(1..))]
    ops: u64,

    /// How a guest access to an address no device claims is answered:
    /// `abort` (a synchronous external abort, as hardware and QEMU's `virt`
    /// answer; needs KVM_CAP_ARM_INJECT_EXT_DABT) or `raz` (loads read as
    /// zero, stores are ignored).
    #[arg(long, value_name = "MODE", default_value = "abort", value_parser = parse_unmapped)]
    unmapped: Unmapped,

    /// Samples per measurement for the `bench` program.
    #[arg(long, default_value_t = uirq_abi::bench::DEFAULT_SAMPLES, value_parser = clap::value_parser!(u64).range(1..=uirq_abi::bench::MAX_SAMPLES))]
    samples: u64,

    /// With the `bench` program: print every sample too, in counter ticks,
    /// as `@@samples {json}` lines after the `@@bench` report.
    #[arg(long)]
    raw_samples: bool,

    /// Discarded warm-up samples per measurement for the `bench` program.
    #[arg(long, default_value_t = uirq_abi::bench::DEFAULT_WARMUP, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    warmup: u64,

    /// Interrupt controller: `user` (this VMM's GICv2 model) or `kernel`
    /// (KVM's in-kernel vGICv2, for comparison).
    #[arg(long, default_value = "user", value_parser = parse_irqchip)]
    irqchip: IrqchipArg,

    /// Kick the vCPU out of KVM_RUN every this many microseconds: the
    /// workaround for kernels that do not wake a vCPU waiting in WFI for its
    /// timer when the irqchip is in userspace (Linux before 4ce98bf0865c).
    #[arg(long, value_name = "US", value_parser = clap::value_parser!(u64).range(100..=10_000_000))]
    kick_every_us: Option<u64>,

    /// Skip the start-up check of whether this kernel wakes a vCPU waiting
    /// in WFI for its own timer with the irqchip in userspace. By default a
    /// run with the userspace irqchip and no --kick-every-us runs it (a
    /// throwaway VM, a few milliseconds) and, where the kernel lacks the fix
    /// (Linux commit 4ce98bf0865c), kicks the vCPUs every 1000 us and says
    /// so.
    #[arg(long)]
    no_probe: bool,

    /// Print what the host kernel offers and exit: its release, the KVM API
    /// version, every KVM capability this VMM uses or could use (present or
    /// absent, with its number), and whether a vCPU waiting in WFI wakes
    /// for its own timer with the irqchip in userspace (checked live in a
    /// throwaway VM), and whether raising and lowering a vCPU's IRQ line
    /// from another thread loses changes (checked live for
    /// --irq-line-check-ms). Only --kvm-device, --json and
    /// --irq-line-check-ms matter with it.
    #[arg(long, conflicts_with_all = ["no_probe", "dump_dtb"])]
    probe: bool,

    /// With --probe: print the report as one JSON document on one line.
    #[arg(long, requires = "probe")]
    json: bool,

    /// With --probe: how long the cross-thread KVM_IRQ_LINE check raises
    /// and lowers a vCPU's IRQ line from another thread while the vCPU's
    /// thread enters KVM_RUN (it ends sooner at the first lost change); 0
    /// skips it. The race is rare: more time, a firmer answer.
    #[arg(long, value_name = "MS", requires = "probe", default_value_t = uirq_host::host_kernel::IRQ_LINE_CHECK_MS, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    irq_line_check_ms: u64,

    /// The KVM device to use.
    #[arg(long, value_name = "PATH", default_value = "/dev/kvm")]
    kvm_device: PathBuf,

    /// Guest RAM in MiB.
    #[arg(long, default_value_t = uirq_abi::layout::RAM_SIZE_DEFAULT >> 20, value_parser = clap::value_parser!(u64).range(1..=uirq_abi::layout::RAM_SIZE_MAX >> 20))]
    ram_mib: u64,

    /// Stop a guest that has not powered off after this many seconds (exit code 124).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<Duration>,

    /// Run without the sandbox, for debugging. By default every thread runs,
    /// once the VM is built, under a seccomp filter that allows only the
    /// system calls it needs; a call outside it stops the VMM (exit code
    /// 125) with a line naming the thread and the call.
    #[arg(long)]
    no_seccomp: bool,

    /// Write a trace of the run to PATH, for ui.perfetto.dev or
    /// chrome://tracing (Chrome's trace-event JSON): per vCPU, in and out of
    /// KVM_RUN, each exit with the register it touched, timer level reports,
    /// KVM_IRQ_LINE calls and kicks; the GIC model's events (pending,
    /// acknowledge, EOI, deactivate); with --program bench, the guest's own
    /// timestamps of each timer interrupt. Keeps the run's first 500000
    /// records.
    #[arg(long, value_name = "PATH")]
    trace: Option<PathBuf>,

    /// More log output (-v: exit statistics, -vv: the device models' debug messages).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn parse_program(name: &str) -> Result<Program, String> {
    Program::from_name(name).ok_or_else(|| {
        let names: Vec<_> = Program::ALL.iter().map(|p| p.name()).collect();
        format!("unknown program (known: {})", names.join(", "))
    })
}

/// `--irqchip` values (the KVM type only exists on aarch64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IrqchipArg {
    User,
    Kernel,
}

fn parse_irqchip(s: &str) -> Result<IrqchipArg, String> {
    match s {
        "user" => Ok(IrqchipArg::User),
        "kernel" => Ok(IrqchipArg::Kernel),
        _ => Err("expected `user` or `kernel`".into()),
    }
}

fn parse_cpus(s: &str) -> Result<usize, String> {
    const MAX: usize = uirq_gicv2::MAX_CPUS;
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX).contains(&n) => Ok(n),
        Ok(_) => Err(format!(
            "must be 1 to {MAX}: a GICv2 has at most {MAX} CPU interfaces"
        )),
        Err(_) => Err("not a number of vCPUs".into()),
    }
}

fn parse_injection(s: &str) -> Result<Injection, String> {
    match s {
        "owner" => Ok(Injection::OwnerThread),
        "cross-thread" => Ok(Injection::CrossThread),
        _ => Err("expected `owner` or `cross-thread`".into()),
    }
}

fn parse_unmapped(s: &str) -> Result<Unmapped, String> {
    [Unmapped::Abort, Unmapped::ReadAsZero]
        .into_iter()
        .find(|u| u.name() == s)
        .ok_or_else(|| "expected `abort` or `raz`".into())
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| "not a number of seconds".to_string())?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err("must be more than 0 and at most 86400 seconds".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn programs_help() -> String {
    let mut s = String::from("Programs:\n");
    for p in Program::ALL {
        s.push_str(&format!("  {:<10} {}\n", p.name(), p.summary()));
    }
    s.push_str(
        "\nExit code: the guest's status (0 success, 1 check failed, 2 unexpected exception,\n\
         3 firmware panic, 4 unknown program), 124 timeout, 125 VMM error, 126 guest reset or crash,\n\
         130 stopped by SIGINT/SIGTERM.",
    );
    s
}

/// The log filter: `UIRQ_LOG` when it is set (and not empty), else the
/// level `-v` asks for. A `UIRQ_LOG` that is not a filter is an error, not
/// a reason to log at the default level: whoever set it wanted something.
fn log_filter(
    verbose: u8,
    setting: Option<&std::ffi::OsStr>,
) -> Result<tracing_subscriber::EnvFilter, String> {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let Some(value) = setting.filter(|v| !v.is_empty()) else {
        return Ok(tracing_subscriber::EnvFilter::new(default));
    };
    let text = value.to_str().ok_or_else(|| {
        format!(
            "UIRQ_LOG={} is not valid text",
            std::path::Path::new(value).display()
        )
    })?;
    tracing_subscriber::EnvFilter::try_new(text)
        .map_err(|e| format!("UIRQ_LOG={text:?} is not a log filter ({e}); try UIRQ_LOG=debug"))
}

/// Whether the log may be coloured: only when standard error is a
/// terminal, and never when `NO_COLOR` (its value given as `no_color`) is
/// set and not empty (<https://no-color.org>).
fn log_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

fn init_logging(filter: tracing_subscriber::EnvFilter) {
    use std::io::IsTerminal;
    let colour = log_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}

/// The tag for the VMM's report lines (`uirq_abi::report`), from
/// `UIRQ_REPORT_TAG`: `None` when unset; an error when it is not a tag.
fn report_tag(setting: Option<&std::ffi::OsStr>) -> Result<Option<String>, String> {
    use uirq_abi::report::{valid_tag, TAG_ENV, TAG_MAX, TAG_MIN};
    let Some(value) = setting else {
        return Ok(None);
    };
    match value.to_str() {
        Some(tag) if valid_tag(tag) => Ok(Some(tag.to_string())),
        _ => Err(format!(
            "{TAG_ENV} must be {TAG_MIN} to {TAG_MAX} letters and digits, not {:?}",
            value.to_string_lossy()
        )),
    }
}

/// A report line: `@@exits <tag> {json}`, or without a tag when the VMM
/// was given none.
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
fn report_line(keyword: &str, tag: Option<&str>, json: &str) -> String {
    match tag {
        Some(tag) => format!("{keyword} {tag} {json}"),
        None => format!("{keyword} {json}"),
    }
}

/// RAM the chosen firmware program needs from the start of guest RAM
/// beyond the firmware's own footprint (which is checked from the image's
/// header when it is loaded): the benchmark writes its results at a fixed
/// place in RAM (`uirq_abi::bench::RESULTS_ADDR`).
fn program_ram(program: Program) -> Option<(u64, &'static str)> {
    use uirq_abi::bench::{RESULTS_ADDR, RESULTS_SIZE};
    match program {
        Program::Bench => Some((
            RESULTS_ADDR + RESULTS_SIZE - uirq_abi::layout::RAM_BASE,
            "its result buffer",
        )),
        _ => None,
    }
}

/// Refuses, at argument parsing, a program that cannot fit in `--ram-mib`.
fn check_program_ram(args: &Args) -> Result<(), String> {
    if args.image.is_none() {
        return Ok(());
    }
    let Some((needed, what)) = program_ram(args.program) else {
        return Ok(());
    };
    let ram = args.ram_mib << 20;
    if needed <= ram {
        return Ok(());
    }
    Err(format!(
        "--program {} needs at least {} MiB of guest RAM ({what} ends {needed:#x} bytes into RAM), but --ram-mib is {}",
        args.program.name(),
        needed.div_ceil(1 << 20),
        args.ram_mib
    ))
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => {
            // --help or --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, not clap's usage block, and the VMM's own error code
            // (clap's default, 2, would read as a guest status).
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid command line");
            eprintln!(
                "uirq-vmm: {}; see --help",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(VMM_ERROR as u8);
        }
    };
    let checked = check_program_ram(&args)
        .map_err(|e| format!("{e}; see --help"))
        .and_then(|()| log_filter(args.verbose, std::env::var_os("UIRQ_LOG").as_deref()))
        .and_then(|filter| {
            let tag = report_tag(std::env::var_os(uirq_abi::report::TAG_ENV).as_deref())?;
            Ok((filter, tag))
        });
    let (filter, tag) = match checked {
        Ok(both) => both,
        Err(e) => {
            eprintln!("uirq-vmm: {e}");
            return ExitCode::from(VMM_ERROR as u8);
        }
    };
    init_logging(filter);
    if args.probe {
        return match probe(&args) {
            Ok(code) => code,
            Err(err) => {
                eprintln!("uirq-vmm: {}", chain(&err));
                ExitCode::from(VMM_ERROR as u8)
            }
        };
    }
    match prepare(&args).and_then(|boot| match boot {
        Some(boot) => run(&args, boot, tag.as_deref()),
        None => Ok(ExitCode::SUCCESS),
    }) {
        Ok(code) => code,
        Err(err) => {
            // One plain sentence: the error and its causes, no backtrace.
            eprintln!("uirq-vmm: {}", chain(&err));
            ExitCode::from(VMM_ERROR as u8)
        }
    }
}

fn chain(err: &anyhow::Error) -> String {
    err.chain()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Reads and checks the payload before anything else happens (any machine
/// can tell a kernel that does not fit); with `--dump-dtb`, writes the
/// device tree and returns `None`: nothing to run.
fn prepare(args: &Args) -> anyhow::Result<Option<Boot>> {
    use anyhow::Context;
    let ram_size = args.ram_mib << 20;
    let size = MachineSize {
        ram_size,
        cpus: args.cpus,
    };
    let boot = match (&args.kernel, &args.image) {
        (Some(kernel), _) => Some(boot::kernel(
            &KernelFiles {
                kernel: Some(kernel),
                initrd: args.initrd.as_deref(),
                cmdline: &args.cmdline,
                dtb: args.dtb.as_deref(),
            },
            size,
        )?),
        (None, Some(image)) => {
            let bytes = boot::read_file("firmware image", image, ram_size)?;
            Some(Boot::firmware(bytes, boot_args(args), ram_size)?)
        }
        (None, None) => None,
    };
    if let Some(path) = &args.dump_dtb {
        let tree = match boot.as_ref().and_then(|b| b.loads.last()) {
            Some(boot::Load::Bytes { bytes, .. }) if args.kernel.is_some() => bytes.clone(),
            _ => boot::device_tree(size, &args.cmdline, None)?,
        };
        std::fs::write(path, &tree)
            .with_context(|| format!("cannot write the device tree to {}", path.display()))?;
        return Ok(None);
    }
    if let Some(b) = &boot {
        tracing::info!("{}", b.summary);
    }
    Ok(boot)
}

/// The boot registers for the chosen program (`uirq_abi::boot`).
// Only a KVM host runs the guest; the build machine still tests this.
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
fn boot_args(args: &Args) -> [u64; 3] {
    let n = args.program.number();
    match args.program {
        Program::Timer | Program::SmpTimer => [n, args.ticks, args.period_us],
        Program::Bench => [n, args.samples, args.warmup],
        Program::IpiStress => [n, args.ipis, args.ipi_timeout_us],
        Program::Chaos => [n, args.seed, args.ops],
        // The scenario checks what this VMM was told to answer.
        Program::Unmapped => [n, u64::from(args.unmapped == Unmapped::ReadAsZero), 0],
        _ => [n, 0, 0],
    }
}

/// `--probe`: the host kernel's report, as text or (`--json`) one JSON
/// document, on standard output.
#[cfg(target_arch = "aarch64")]
fn probe(args: &Args) -> anyhow::Result<ExitCode> {
    let report = uirq_host::kvm::host_probe::probe(
        &args.kvm_device,
        std::time::Duration::from_millis(args.irq_line_check_ms),
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(target_arch = "aarch64"))]
fn probe(_args: &Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "uirq-vmm needs an aarch64 Linux host with KVM, and this is {}; `cargo xtask probe` boots one under QEMU",
        std::env::consts::ARCH
    )
}

/// The start-up decision for `--irqchip`, `--kick-every-us` and
/// `--no-probe`.
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
fn kick_plan(args: &Args) -> uirq_host::host_kernel::KickPlan {
    use uirq_host::host_kernel::{plan_kicks, IrqchipKind};
    let irqchip = match args.irqchip {
        IrqchipArg::User => IrqchipKind::User,
        IrqchipArg::Kernel => IrqchipKind::Kernel,
    };
    plan_kicks(args.kick_every_us, irqchip, args.no_probe)
}

/// The kick period of the run: the user's, or, where the start-up check
/// finds the WFI wake-up bug, the workaround's (with a notice). A check
/// that cannot open KVM changes nothing: the run itself says what is
/// wrong.
#[cfg(target_arch = "aarch64")]
fn kick_period_us(args: &Args) -> Option<u64> {
    use uirq_host::host_kernel::{self, KickPlan, Uname, WfiVerdict};
    match kick_plan(args) {
        KickPlan::Given(us) => Some(us),
        KickPlan::None => None,
        KickPlan::Check => {
            let kvm = match uirq_host::kvm::vm::open_kvm(&args.kvm_device) {
                Ok(kvm) => kvm,
                Err(e) => {
                    tracing::debug!("WFI wake-up check not run: {e}");
                    return None;
                }
            };
            let check = uirq_host::kvm::host_probe::check_wfi(&kvm);
            tracing::info!(
                "WFI wake-up check: {} in {:.1} ms ({})",
                check.verdict.name(),
                check.cost_us as f64 / 1000.0,
                check.detail
            );
            match check.verdict {
                WfiVerdict::BugPresent => {
                    eprintln!(
                        "{}",
                        host_kernel::auto_kick_notice(&Uname::current().release)
                    )
                }
                WfiVerdict::Inconclusive => {
                    eprintln!("{}", host_kernel::inconclusive_notice(&check.detail))
                }
                WfiVerdict::Wakes | WfiVerdict::NotRun => {}
            }
            host_kernel::kicks_after_check(check.verdict)
        }
    }
}

#[cfg(target_arch = "aarch64")]
fn run(args: &Args, boot: Boot, tag: Option<&str>) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use uirq_host::console::Output;
    use uirq_host::kvm::{self, clock, Irqchip, RunOptions, VmConfig};
    use uirq_host::probe::NoProbe;
    use uirq_host::probes::bench::BenchProbe;
    use uirq_host::probes::stopped_timer::StoppedTimerProbe;
    use uirq_host::probes::trace::{self, Recording};

    let started = std::time::Instant::now();
    // Created before anything runs: a path that cannot be written fails
    // at once, and once under the sandbox this thread can open nothing.
    let recording = match &args.trace {
        Some(path) => Some(
            Recording::create(path, clock::guest_now, trace::DEFAULT_BUDGET)
                .with_context(|| format!("cannot write the trace to {}", path.display()))?,
        ),
        None => None,
    };
    // Before the sandbox: the check builds a VM of its own and a thread.
    let kick_every_us = kick_period_us(args);
    if !args.no_seccomp {
        // Before any thread starts: each one puts itself under its filter.
        uirq_host::seccomp::enable(kvm::kick::kick_signal())?;
    }
    // After the sandbox is on: the writer thread enters its own filter.
    let output = Output::stdout().context("cannot start the console's output thread")?;
    let bench = args.program == Program::Bench && args.kernel.is_none();
    let irqchip = match args.irqchip {
        IrqchipArg::User => Irqchip::User,
        IrqchipArg::Kernel => Irqchip::Kernel,
    };
    let config = VmConfig {
        kvm_device: args.kvm_device.clone(),
        irqchip,
        boot,
        ram_size: args.ram_mib << 20,
        cpus: args.cpus,
        console: Box::new(output.writer()),
        unmapped: args.unmapped,
        gic_observer: recording
            .as_ref()
            .map(|r| Box::new(r.gic_observer()) as Box<dyn uirq_gicv2::Observer>),
    };
    let options = RunOptions {
        timeout: args.timeout,
        kick_every: kick_every_us.map(Duration::from_micros),
        injection: args.irq_injection,
        bench,
        console_input: true,
    };
    if bench {
        let (report, traces) = run_probed(config, &options, recording.as_ref(), |cpu, vm| {
            BenchProbe::new(
                clock::guest_now,
                vm.phase.clone(),
                cpu == 0 && irqchip == Irqchip::User,
            )
        })?;
        let out = Reports::after(output, tag);
        log_stats(args, started, &report, &out);
        let guest = report
            .results
            .as_deref()
            .and_then(|bytes| uirq_host::bench::decode(bytes).ok())
            .map(|r| guest_ticks(&r.vtimer))
            .unwrap_or_default();
        finish_trace(args, recording, &traces, &guest, &report);
        if report.outcome == (kvm::Outcome::PoweredOff { status: 0 }) {
            bench_report(irqchip.name(), args, &report, &out)?;
        }
        Ok(verdict(args, &report, None))
    } else if args.timeout.is_some() {
        let (report, traces) = run_probed(config, &options, recording.as_ref(), |_, _| {
            StoppedTimerProbe::new(clock::guest_now)
        })?;
        let out = Reports::after(output, tag);
        log_stats(args, started, &report, &out);
        finish_trace(args, recording, &traces, &[], &report);
        let freq = clock::frequency().max(1);
        // A level report more than 50 ms late that only the stop's kick
        // brought is the signature of the WFI wake-up bug.
        let late = report.vcpus.iter().find_map(|v| {
            v.probe
                .stopped
                .and_then(|t| uirq_host::probes::stopped_timer::missed_wakeup(&t, freq / 20))
        });
        Ok(verdict(args, &report, late.map(|l| l * 1000 / freq)))
    } else {
        let (report, traces) = run_probed(config, &options, recording.as_ref(), |_, _| NoProbe)?;
        let out = Reports::after(output, tag);
        log_stats(args, started, &report, &out);
        finish_trace(args, recording, &traces, &[], &report);
        Ok(verdict(args, &report, None))
    }
}

/// Runs the VM watched by the probes `make` makes and, when the run is
/// traced, a trace probe beside each; returns the report and each vCPU's
/// trace records (none without a recording).
#[cfg(target_arch = "aarch64")]
#[allow(clippy::type_complexity)]
fn run_probed<P: uirq_host::probe::Probe>(
    config: uirq_host::kvm::VmConfig,
    options: &uirq_host::kvm::RunOptions,
    recording: Option<&uirq_host::probes::trace::Recording>,
    mut make: impl FnMut(usize, &uirq_host::kvm::vm::Vm) -> P,
) -> anyhow::Result<(
    uirq_host::kvm::RunReport<P>,
    Vec<
        Vec<(
            uirq_host::probes::trace::Stamp,
            uirq_host::probes::trace::VcpuRecord,
        )>,
    >,
)> {
    let Some(recording) = recording else {
        return Ok((uirq_host::kvm::run(config, options, make)?, Vec::new()));
    };
    let report = uirq_host::kvm::run(config, options, |cpu, vm| {
        (make(cpu, vm), recording.probe())
    })?;
    let mut traces = Vec::with_capacity(report.vcpus.len());
    let report = report.map_probes(|(probe, trace)| {
        traces.push(trace.records);
        probe
    });
    Ok((report, traces))
}

/// The guest's own timestamps of each measured timer interrupt (CPU 0 takes
/// them all in the benchmark).
#[cfg(target_arch = "aarch64")]
fn guest_ticks(
    samples: &[uirq_abi::bench::VtimerSample],
) -> Vec<uirq_host::probes::trace::GuestTick> {
    samples
        .iter()
        .map(|s| uirq_host::probes::trace::GuestTick {
            cpu: 0,
            deadline: s.deadline,
            vector: s.entry,
            acked: s.after_ack,
            eoi: s.after_eoi,
        })
        .collect()
}

/// Writes the trace of a traced run and says where it went; a trace that
/// cannot be written is reported but does not change the run's verdict.
#[cfg(target_arch = "aarch64")]
fn finish_trace<P>(
    args: &Args,
    recording: Option<uirq_host::probes::trace::Recording>,
    traces: &[Vec<(
        uirq_host::probes::trace::Stamp,
        uirq_host::probes::trace::VcpuRecord,
    )>],
    guest: &[uirq_host::probes::trace::GuestTick],
    report: &uirq_host::kvm::RunReport<P>,
) {
    let Some(recording) = recording else { return };
    let path = recording.path().to_path_buf();
    let mut about = serde_json::Map::new();
    about.insert("tool".into(), "uirq-vmm".into());
    about.insert("version".into(), env!("CARGO_PKG_VERSION").into());
    about.insert("program".into(), args.program.name().into());
    about.insert(
        "irqchip".into(),
        format!("{:?}", args.irqchip).to_lowercase().into(),
    );
    about.insert("cpus".into(), args.cpus.into());
    about.insert("timebase".into(), report.timebase.clone().into());
    let frequency = uirq_host::kvm::clock::frequency();
    match recording.finish(traces, guest, frequency, about) {
        Ok(w) if w.dropped > 0 => eprintln!(
            "uirq-vmm: trace written to {} ({} records; the {} after them were not kept)",
            path.display(),
            w.records,
            w.dropped
        ),
        Ok(w) => eprintln!(
            "uirq-vmm: trace written to {} ({} records)",
            path.display(),
            w.records
        ),
        Err(e) => eprintln!(
            "uirq-vmm: cannot write the trace to {}: {e}",
            path.display()
        ),
    }
}

/// Where the run's reports go: standard output, after the guest's console
/// output has drained (so they come after it, on lines of their own), with
/// the run's tag. Nowhere, when standard output is not being read: the
/// VMM does not wait for a reader that never comes (`crate::console`).
#[cfg(target_arch = "aarch64")]
struct Reports<'a> {
    tag: Option<&'a str>,
    stdout: bool,
}

#[cfg(target_arch = "aarch64")]
impl<'a> Reports<'a> {
    /// Ends the guest's console output and says where reports may go.
    fn after(output: uirq_host::console::Output, tag: Option<&'a str>) -> Self {
        let finished = output.finish();
        if finished.dropped > 0 {
            eprintln!(
                "uirq-vmm: {} bytes of the guest's console output were dropped: standard output was not read fast enough",
                finished.dropped
            );
        }
        if !finished.drained {
            eprintln!(
                "uirq-vmm: standard output is not being read; the rest of the guest's output and the run's reports were not written"
            );
        } else if finished.mid_line {
            println!();
        }
        Self {
            tag,
            stdout: finished.drained,
        }
    }

    /// A tagged report line (`uirq_abi::report`).
    fn report(&self, keyword: &str, json: &str) {
        if self.stdout {
            println!("{}", report_line(keyword, self.tag, json));
        }
    }

    /// A line for people.
    fn text(&self, line: &str) {
        if self.stdout {
            println!("{line}");
        }
    }
}

/// `-v`: each vCPU thread's exits and ioctls; `--exit-stats`: all of them
/// as one `@@exits <tag> {json}` line.
#[cfg(target_arch = "aarch64")]
fn log_stats<P>(
    args: &Args,
    started: std::time::Instant,
    report: &uirq_host::kvm::RunReport<P>,
    out: &Reports<'_>,
) {
    if args.exit_stats {
        let json = exit_stats_json(
            args.irqchip,
            args.cpus,
            started.elapsed(),
            &report.total_stats(),
        );
        out.report(uirq_abi::report::EXITS, &json.to_string());
    }
    for (cpu, v) in report.vcpus.iter().enumerate() {
        let s = &v.stats;
        tracing::info!(
            cpu,
            exits = s.exits,
            mmio_reads = s.mmio_reads,
            mmio_writes = s.mmio_writes,
            mmio_unclaimed = s.mmio_unclaimed,
            eintr = s.interrupted,
            timer_level_changes = s.level_changes,
            irq_line_calls = s.irq_line_calls,
            kicks_sent = s.kicks_sent,
            "vcpu statistics"
        );
    }
}

/// The `--exit-stats` report: every exit by kind (the MMIO ones also by
/// device), and the ioctls the exits led to.
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
fn exit_stats_json(
    irqchip: IrqchipArg,
    cpus: usize,
    elapsed: Duration,
    s: &uirq_host::exit::Stats,
) -> serde_json::Value {
    // The counts saturate (`uirq_host::exit::Stats`): so do the differences.
    let kicks_and_signals = s.interrupted.saturating_sub(s.level_reports);
    let other = s
        .exits
        .saturating_sub(s.mmio_reads)
        .saturating_sub(s.mmio_writes)
        .saturating_sub(s.interrupted);
    let devices: serde_json::Map<String, serde_json::Value> = s
        .mmio_by_device
        .iter()
        .map(|(name, n)| (name.to_string(), n.into()))
        .chain([("unclaimed".to_string(), s.mmio_unclaimed.into())])
        .collect();
    serde_json::json!({
        "irqchip": match irqchip { IrqchipArg::User => "user", IrqchipArg::Kernel => "kernel" },
        "cpus": cpus,
        "run_ms": elapsed.as_secs_f64() * 1e3,
        "total": s.exits,
        "exits": {
            "mmio_read": s.mmio_reads,
            "mmio_write": s.mmio_writes,
            "timer_level_report": s.level_reports,
            "kick_or_signal": kicks_and_signals,
            "other": other,
        },
        "mmio_by_device": devices,
        "ioctls": {
            "irq_line": s.irq_line_calls,
            "kicks_sent": s.kicks_sent,
        },
    })
}

/// The exit code and closing message for how the run ended. `missed_ms`:
/// how late a timer report came that only the stop's kick brought (the WFI
/// wake-up bug), if one did.
#[cfg(target_arch = "aarch64")]
fn verdict<P>(
    args: &Args,
    report: &uirq_host::kvm::RunReport<P>,
    missed_ms: Option<u64>,
) -> ExitCode {
    use uirq_abi::exit::{Status, VMM_GUEST_ABNORMAL, VMM_INTERRUPTED, VMM_TIMEOUT};
    use uirq_host::kvm::Outcome;

    let on = |cpu: Option<usize>| match (cpu, args.cpus) {
        (Some(c), n) if n > 1 => format!(" (on vCPU {c})"),
        _ => String::new(),
    };
    match report.outcome {
        Outcome::PoweredOff { status } => match Status::from_number(status) {
            Some(Status::Success) => ExitCode::SUCCESS,
            Some(s) => {
                eprintln!(
                    "uirq-vmm: the guest powered off reporting failure{}: {}",
                    on(report.ended_by),
                    s.describe()
                );
                ExitCode::from(s as u8)
            }
            None => {
                eprintln!("uirq-vmm: the guest powered off with unknown status {status}");
                ExitCode::from(Status::Failure as u8)
            }
        },
        Outcome::Stopped if report.interrupted => {
            eprintln!("uirq-vmm: interrupted; stopped every vCPU");
            ExitCode::from(VMM_INTERRUPTED as u8)
        }
        Outcome::Stopped => {
            let secs = args.timeout.map_or(0.0, |t| t.as_secs_f64());
            eprintln!(
                "uirq-vmm: the guest did not power off within {secs} s; stopped it (--timeout)"
            );
            if let Some(ms) = missed_ms {
                eprintln!(
                    "uirq-vmm: the guest's virtual timer had fired {ms} ms earlier, but KVM reported it only when the timeout kicked the vCPU: this kernel does not wake a vCPU waiting in WFI when the irqchip is in userspace (fixed by Linux commit 4ce98bf0865c, in 6.12.88 and later 6.1 stable releases); `--kick-every-us 1000` works around it (the VMM turns it on by itself where its start-up check finds the bug, unless --no-probe)"
                );
            }
            ExitCode::from(VMM_TIMEOUT as u8)
        }
        Outcome::Reset => {
            eprintln!(
                "uirq-vmm: the guest requested a reset{}, which this VMM does not support",
                on(report.ended_by)
            );
            ExitCode::from(VMM_GUEST_ABNORMAL as u8)
        }
        Outcome::Crashed => {
            eprintln!(
                "uirq-vmm: KVM reported that the guest crashed{}",
                on(report.ended_by)
            );
            ExitCode::from(VMM_GUEST_ABNORMAL as u8)
        }
    }
}

/// Prints the benchmark's figures: a short table for people, one
/// `@@bench <tag> {json}` line for `cargo xtask bench-latency` and, with
/// `--raw-samples`, the `@@samples <tag> {json}` lines of every sample.
#[cfg(target_arch = "aarch64")]
fn bench_report(
    irqchip: &'static str,
    args: &Args,
    report: &uirq_host::kvm::RunReport<uirq_host::probes::bench::BenchProbe>,
    to: &Reports<'_>,
) -> anyhow::Result<()> {
    use uirq_abi::bench::Phase;
    use uirq_host::bench::{self, ExitsPerSample, RunContext};
    use uirq_host::exit::Stats;

    let bytes = report
        .results
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("the benchmark result buffer could not be read"))?;
    let results = bench::decode(bytes)?;
    let n = results.header.samples;
    // A measurement's exits, from every vCPU (an IPI's exits happen on the
    // sender and on the receiver).
    let exits = |p: Phase| {
        let mut s = Stats::default();
        for v in &report.vcpus {
            s.add(v.probe.stats(p));
        }
        let other = s
            .exits
            .saturating_sub(s.level_reports)
            .saturating_sub(s.mmio_reads)
            .saturating_sub(s.mmio_writes);
        ExitsPerSample::from_counts(s.level_reports, s.mmio_reads, s.mmio_writes, other, n)
    };
    let timeline: Vec<_> = report
        .vcpus
        .first()
        .map(|v| v.probe.timeline.iter().copied().collect())
        .unwrap_or_default();
    let unix_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let out = bench::run_report(
        &results,
        RunContext {
            tool: "uirq-vmm",
            vmm: "uirq",
            irqchip,
            vcpus: args.cpus as u64,
            exits: Some([
                exits(Phase::Vtimer),
                exits(Phase::Sgi),
                exits(Phase::Mmio),
                exits(Phase::Ipi),
            ]),
            timeline,
            timebase: report.timebase.clone(),
            vmm_rss_kib: report.vmm_rss_kib,
            unix_secs,
        },
    );
    to.text(&format!(
        "bench ({irqchip} irqchip, {n} samples, CNTFRQ {} Hz):",
        out.cntfrq_hz
    ));
    for m in &out.results {
        to.text(&format!(
            "  {:<7} p50 {:>10.0} ns  p99 {:>10.0} ns  exits/sample {:.2}",
            m.measurement,
            m.summary.p50_ns,
            m.summary.p99_ns,
            m.exits_per_sample.as_ref().map_or(0.0, |e| e.total)
        ));
    }
    to.report(uirq_abi::report::BENCH, &serde_json::to_string(&out)?);
    if args.raw_samples {
        for chunk in bench::sample_chunks(&results) {
            to.report(uirq_abi::report::SAMPLES, &serde_json::to_string(&chunk)?);
        }
    }
    Ok(())
}

#[cfg(not(target_arch = "aarch64"))]
fn run(_args: &Args, _boot: Boot, _tag: Option<&str>) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "uirq-vmm needs an aarch64 Linux host with KVM, and this is {}; `cargo xtask run` boots one under QEMU",
        std::env::consts::ARCH
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_log_is_coloured_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        let matrix = [
            (true, None, true),
            (true, Some(""), true),
            (true, Some("1"), false),
            (true, Some("false"), false),
            (false, None, false),
            (false, Some(""), false),
            (false, Some("1"), false),
        ];
        for (terminal, no_color, expected) in matrix {
            assert_eq!(
                super::log_colour(terminal, no_color.map(OsStr::new)),
                expected,
                "terminal {terminal}, NO_COLOR {no_color:?}"
            );
        }
    }

    use super::*;

    #[test]
    fn command_line_defaults_and_limits() {
        let a = Args::try_parse_from(["uirq-vmm", "--image", "g.bin"]).unwrap();
        assert_eq!(a.program, Program::Timer);
        assert_eq!(a.ticks, DEFAULT_TICKS);
        assert!(a.timeout.is_none());
        let a = Args::try_parse_from([
            "uirq-vmm",
            "--image",
            "g",
            "--program",
            "spin",
            "--timeout",
            "2.5",
        ])
        .unwrap();
        assert_eq!(a.program, Program::Spin);
        assert_eq!(a.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(a.cpus, 1);
        assert_eq!(a.irq_injection, Injection::OwnerThread);
        assert!(!a.raw_samples, "summaries only by default");
        let a = Args::try_parse_from(["uirq-vmm", "--image", "g", "--raw-samples"]).unwrap();
        assert!(a.raw_samples);
        let a = Args::try_parse_from([
            "uirq-vmm",
            "--image",
            "g",
            "--cpus",
            "4",
            "--program",
            "ipi-stress",
            "--ipis",
            "50000",
            "--irq-injection",
            "cross-thread",
        ])
        .unwrap();
        assert_eq!(a.cpus, 4);
        assert_eq!(a.irq_injection, Injection::CrossThread);
        assert_eq!(
            boot_args(&a),
            [Program::IpiStress.number(), 50_000, DEFAULT_IPI_TIMEOUT_US]
        );
        let err = Args::try_parse_from(["uirq-vmm", "--image", "g", "--cpus", "9"]).unwrap_err();
        assert!(
            err.to_string().contains("at most 8 CPU interfaces"),
            "{err}"
        );
        for bad in [
            &["uirq-vmm"][..],
            &["uirq-vmm", "--image", "g", "--program", "nope"],
            &["uirq-vmm", "--image", "g", "--timeout", "0"],
            &["uirq-vmm", "--image", "g", "--timeout", "soon"],
            &["uirq-vmm", "--image", "g", "--ticks", "0"],
            &["uirq-vmm", "--image", "g", "--cpus", "0"],
            &["uirq-vmm", "--image", "g", "--cpus", "9"],
            &["uirq-vmm", "--image", "g", "--irq-injection", "sometimes"],
        ] {
            assert!(Args::try_parse_from(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_kernel_or_an_image_but_not_both() {
        let a = Args::try_parse_from([
            "uirq-vmm",
            "--kernel",
            "Image",
            "--initrd",
            "i.cpio",
            "--cmdline",
            "console=ttyAMA0",
        ])
        .unwrap();
        assert_eq!(a.kernel.as_deref(), Some(std::path::Path::new("Image")));
        assert!(a.image.is_none());
        Args::try_parse_from(["uirq-vmm", "--dump-dtb", "out.dtb", "--cpus", "2"]).unwrap();
        Args::try_parse_from(["uirq-vmm", "--kernel", "k", "--dtb", "t.dtb"]).unwrap();
        for bad in [
            &["uirq-vmm", "--image", "g", "--kernel", "k"][..],
            &["uirq-vmm", "--image", "g", "--initrd", "i"],
            &["uirq-vmm", "--image", "g", "--cmdline", "x"],
            &["uirq-vmm", "--kernel", "k", "--dtb", "t", "--initrd", "i"],
            &["uirq-vmm", "--kernel", "k", "--dtb", "t", "--cmdline", "x"],
        ] {
            assert!(Args::try_parse_from(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn unmapped_accesses_abort_unless_told_otherwise() {
        let a = Args::try_parse_from(["uirq-vmm", "--image", "g"]).unwrap();
        assert_eq!(a.unmapped, Unmapped::Abort);
        let a =
            Args::try_parse_from(["uirq-vmm", "--image", "g", "--program", "unmapped"]).unwrap();
        assert_eq!(boot_args(&a), [Program::Unmapped.number(), 0, 0]);
        let a = Args::try_parse_from([
            "uirq-vmm",
            "--image",
            "g",
            "--program",
            "unmapped",
            "--unmapped",
            "raz",
        ])
        .unwrap();
        assert_eq!(a.unmapped, Unmapped::ReadAsZero);
        assert_eq!(boot_args(&a), [Program::Unmapped.number(), 1, 0]);
        let err =
            Args::try_parse_from(["uirq-vmm", "--image", "g", "--unmapped", "zero"]).unwrap_err();
        assert!(
            err.to_string().contains("expected `abort` or `raz`"),
            "{err}"
        );
    }

    #[test]
    fn chaos_takes_its_seed_and_operations() {
        let a = Args::try_parse_from(["uirq-vmm", "--image", "g", "--program", "chaos"]).unwrap();
        assert_eq!(
            boot_args(&a),
            [
                Program::Chaos.number(),
                DEFAULT_CHAOS_SEED,
                DEFAULT_CHAOS_OPS
            ]
        );
        let a = Args::try_parse_from([
            "uirq-vmm",
            "--image",
            "g",
            "--program",
            "chaos",
            "--seed",
            "7",
            "--ops",
            "500",
        ])
        .unwrap();
        assert_eq!(boot_args(&a), [Program::Chaos.number(), 7, 500]);
        for bad in [["--seed", "0"], ["--ops", "0"], ["--seed", "x"]] {
            let mut argv = vec!["uirq-vmm", "--image", "g"];
            argv.extend(bad);
            assert!(Args::try_parse_from(argv).is_err(), "{bad:?} was accepted");
        }
    }

    // A program whose fixed RAM use does not fit in --ram-mib is refused
    // at argument parsing, with the numbers; with a kernel, or a program
    // without such needs, nothing is said.
    #[test]
    fn a_program_that_needs_more_ram_than_given_is_refused_at_once() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["uirq-vmm", "--image", "g"];
            argv.extend(extra);
            Args::try_parse_from(argv).unwrap()
        };
        let err = check_program_ram(&parse(&["--ram-mib", "8", "--program", "bench"])).unwrap_err();
        assert_eq!(
            err,
            "--program bench needs at least 34 MiB of guest RAM (its result buffer ends 0x2141000 bytes into RAM), but --ram-mib is 8"
        );
        assert!(check_program_ram(&parse(&["--ram-mib", "33", "--program", "bench"])).is_err());
        check_program_ram(&parse(&["--ram-mib", "34", "--program", "bench"])).unwrap();
        check_program_ram(&parse(&["--program", "bench"])).unwrap();
        check_program_ram(&parse(&["--ram-mib", "8", "--program", "timer"])).unwrap();
        let kernel = Args::try_parse_from(["uirq-vmm", "--kernel", "k", "--ram-mib", "8"]).unwrap();
        check_program_ram(&kernel).unwrap();
    }

    #[test]
    fn an_invalid_log_filter_is_an_error_not_the_default() {
        use std::ffi::OsStr;
        assert_eq!(log_filter(0, None).unwrap().to_string(), "warn");
        assert_eq!(
            log_filter(2, Some(OsStr::new(""))).unwrap().to_string(),
            "debug"
        );
        assert_eq!(
            log_filter(0, Some(OsStr::new("uirq_host=trace")))
                .unwrap()
                .to_string(),
            "uirq_host=trace"
        );
        let err = log_filter(0, Some(OsStr::new("uirq_host=loud"))).unwrap_err();
        assert!(
            err.starts_with("UIRQ_LOG=\"uirq_host=loud\" is not a log filter ("),
            "{err}"
        );
    }

    #[test]
    fn the_report_tag_is_checked_and_carried_on_each_report_line() {
        use std::ffi::OsStr;
        let tag = "0123456789abcdef0123456789abcdef";
        assert_eq!(report_tag(None), Ok(None));
        assert_eq!(report_tag(Some(OsStr::new(tag))), Ok(Some(tag.to_string())));
        for bad in [
            "",
            "short",
            "0123456789abcdef 0123",
            "0123456789abcdef\n@@uirq",
        ] {
            let err = report_tag(Some(OsStr::new(bad))).unwrap_err();
            assert!(
                err.starts_with("UIRQ_REPORT_TAG must be 16 to 64 letters and digits"),
                "{err}"
            );
        }
        assert_eq!(
            report_line("@@exits", Some(tag), "{}"),
            format!("@@exits {tag} {{}}")
        );
        assert_eq!(report_line("@@bench", None, "{}"), "@@bench {}");
        let line = report_line(uirq_abi::report::EXITS, Some(tag), "{\"total\":3}");
        assert_eq!(
            uirq_abi::report::find(&line, uirq_abi::report::EXITS, tag),
            Some(("", "{\"total\":3}"))
        );
    }

    #[test]
    fn exit_statistics_add_up_by_kind() {
        let mut s = uirq_host::exit::Stats {
            exits: 100,
            mmio_reads: 30,
            mmio_writes: 20,
            mmio_unclaimed: 1,
            interrupted: 45,
            level_reports: 40,
            irq_line_calls: 80,
            ..Default::default()
        };
        s.mmio_by_device.add("gicc", 35);
        s.mmio_by_device.add("uart", 14);
        let j = exit_stats_json(IrqchipArg::User, 2, Duration::from_millis(1500), &s);
        let kinds = j["exits"].as_object().unwrap();
        let sum: u64 = kinds.values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(sum, j["total"].as_u64().unwrap(), "{j}");
        assert_eq!(j["exits"]["kick_or_signal"], 5);
        assert_eq!(j["exits"]["other"], 5);
        assert_eq!(j["mmio_by_device"]["gicc"], 35);
        assert_eq!(j["mmio_by_device"]["unclaimed"], 1);
        assert_eq!(j["run_ms"], 1500.0);
        assert_eq!(j["irqchip"], "user");
    }

    // --probe needs no payload and ignores the run's options (a job adds
    // --image anyway); --json only goes with it, and --probe does not go
    // with --no-probe or --dump-dtb.
    #[test]
    fn probe_needs_nothing_else_and_json_needs_probe() {
        let a = Args::try_parse_from(["uirq-vmm", "--probe"]).unwrap();
        assert!(a.probe && !a.json);
        let a = Args::try_parse_from(["uirq-vmm", "--probe", "--json"]).unwrap();
        assert!(a.probe && a.json);
        let a = Args::try_parse_from([
            "uirq-vmm",
            "--image",
            "g",
            "--probe",
            "--ticks",
            "5",
            "--kvm-device",
            "/dev/other",
        ])
        .unwrap();
        assert!(a.probe);
        assert_eq!(a.kvm_device, PathBuf::from("/dev/other"));
        for bad in [
            &["uirq-vmm", "--image", "g", "--json"][..],
            &["uirq-vmm", "--probe", "--no-probe"],
            &["uirq-vmm", "--probe", "--dump-dtb", "x.dtb"],
        ] {
            assert!(Args::try_parse_from(bad).is_err(), "{bad:?} was accepted");
        }
        let help = <Args as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        for option in ["--probe", "--json", "--no-probe", "4ce98bf0865c"] {
            assert!(help.contains(option), "{option}: {help}");
        }
    }

    // The check runs for a userspace-irqchip run without a period of its
    // own, unless --no-probe; --kick-every-us wins; the in-kernel vGIC
    // needs none.
    #[test]
    fn the_start_up_check_follows_the_command_line() {
        use uirq_host::host_kernel::KickPlan;
        let plan = |extra: &[&str]| {
            let mut argv = vec!["uirq-vmm", "--image", "g"];
            argv.extend(extra);
            kick_plan(&Args::try_parse_from(argv).unwrap())
        };
        assert_eq!(plan(&[]), KickPlan::Check);
        assert_eq!(plan(&["--no-probe"]), KickPlan::None);
        assert_eq!(plan(&["--kick-every-us", "500"]), KickPlan::Given(500));
        assert_eq!(
            plan(&["--kick-every-us", "500", "--no-probe"]),
            KickPlan::Given(500)
        );
        assert_eq!(plan(&["--irqchip", "kernel"]), KickPlan::None);
        assert_eq!(
            plan(&["--irqchip", "kernel", "--kick-every-us", "2000"]),
            KickPlan::Given(2000)
        );
    }

    // The sandbox is on unless asked otherwise, and --help says how.
    #[test]
    fn seccomp_is_on_by_default() {
        let a = Args::try_parse_from(["uirq-vmm", "--image", "g"]).unwrap();
        assert!(!a.no_seccomp);
        let a = Args::try_parse_from(["uirq-vmm", "--image", "g", "--no-seccomp"]).unwrap();
        assert!(a.no_seccomp);
        let help = <Args as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        assert!(help.contains("--no-seccomp"), "{help}");
    }
}
