//! `uirq-vmm`: runs the uirq firmware on KVM with the GIC in userspace.
//!
//! The process exit code is the guest's verdict (the status it passed to
//! PSCI SYSTEM_OFF), or one of the VMM's own codes in `uirq_abi::exit`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use uirq_abi::boot::{Program, DEFAULT_PERIOD_US, DEFAULT_TICKS};
use uirq_abi::exit::VMM_ERROR;

/// Run the uirq guest firmware on KVM with a userspace GICv2.
#[derive(Debug, Parser)]
#[command(name = "uirq-vmm", version, about, after_help = programs_help(), args_override_self = true)]
struct Args {
    /// Flat firmware image to load at the start of guest RAM.
    #[arg(long, value_name = "PATH")]
    image: PathBuf,

    /// Program the firmware runs (see the list below).
    #[arg(long, default_value = "timer", value_parser = parse_program)]
    program: Program,

    /// Number of timer interrupts the `timer` program takes.
    #[arg(long, default_value_t = DEFAULT_TICKS, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    ticks: u64,

    /// Timer period of the `timer` program, in microseconds.
    #[arg(long, default_value_t = DEFAULT_PERIOD_US, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    period_us: u64,

    /// Guest RAM in MiB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    ram_mib: u64,

    /// Stop a guest that has not powered off after this many seconds (exit code 124).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<Duration>,

    /// More log output (-v: exit statistics, -vv: every exit).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn parse_program(name: &str) -> Result<Program, String> {
    Program::from_name(name).ok_or_else(|| {
        let names: Vec<_> = Program::ALL.iter().map(|p| p.name()).collect();
        format!("unknown program (known: {})", names.join(", "))
    })
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
        s.push_str(&format!("  {:<8} {}\n", p.name(), p.summary()));
    }
    s.push_str(
        "\nExit code: the guest's status (0 success, 1 check failed, 2 unexpected exception,\n\
         3 firmware panic, 4 unknown program), 124 timeout, 125 VMM error, 126 guest reset or crash.",
    );
    s
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("UIRQ_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
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
    init_logging(args.verbose);
    match run(&args) {
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

#[cfg(target_arch = "aarch64")]
fn run(args: &Args) -> anyhow::Result<ExitCode> {
    use uirq_abi::exit::{Status, VMM_GUEST_ABNORMAL, VMM_TIMEOUT};
    use uirq_host::kvm::{self, Outcome, VmConfig};

    let image = uirq_host::memory::read_image(&args.image)?;
    let config = VmConfig {
        image,
        ram_size: args.ram_mib << 20,
        boot_args: [args.program.number(), args.ticks, args.period_us],
        console: Box::new(std::io::stdout()),
    };
    let (outcome, stats) = kvm::run(config, args.timeout)?;
    tracing::info!(
        exits = stats.exits,
        mmio_reads = stats.mmio_reads,
        mmio_writes = stats.mmio_writes,
        mmio_unclaimed = stats.mmio_unclaimed,
        eintr = stats.interrupted,
        timer_level_changes = stats.level_changes,
        irq_line_calls = stats.irq_line_calls,
        "vcpu0 statistics"
    );
    Ok(match outcome {
        Outcome::PoweredOff { status } => match Status::from_number(status) {
            Some(Status::Success) => ExitCode::SUCCESS,
            Some(s) => {
                eprintln!(
                    "uirq-vmm: the guest powered off reporting failure: {}",
                    s.describe()
                );
                ExitCode::from(s as u8)
            }
            None => {
                eprintln!("uirq-vmm: the guest powered off with unknown status {status}");
                ExitCode::from(Status::Failure as u8)
            }
        },
        Outcome::Stopped => {
            let secs = args.timeout.map_or(0.0, |t| t.as_secs_f64());
            eprintln!(
                "uirq-vmm: the guest did not power off within {secs} s; stopped it (--timeout)"
            );
            ExitCode::from(VMM_TIMEOUT as u8)
        }
        Outcome::Reset => {
            eprintln!("uirq-vmm: the guest requested a reset, which this VMM does not support");
            ExitCode::from(VMM_GUEST_ABNORMAL as u8)
        }
        Outcome::Crashed => {
            eprintln!("uirq-vmm: KVM reported that the guest crashed");
            ExitCode::from(VMM_GUEST_ABNORMAL as u8)
        }
    })
}

#[cfg(not(target_arch = "aarch64"))]
fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "uirq-vmm needs an aarch64 Linux host with KVM, and this is {}; `cargo xtask run` boots one under QEMU",
        std::env::consts::ARCH
    )
}

#[cfg(test)]
mod tests {
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
        for bad in [
            &["uirq-vmm"][..],
            &["uirq-vmm", "--image", "g", "--program", "nope"],
            &["uirq-vmm", "--image", "g", "--timeout", "0"],
            &["uirq-vmm", "--image", "g", "--timeout", "soon"],
            &["uirq-vmm", "--image", "g", "--ticks", "0"],
        ] {
            assert!(Args::try_parse_from(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
