//! xtask's command line: every verb and its options, with clap.
//!
//! In the library, not the binary, so that tests can check that the
//! commands the README and docs/ show still parse (`host/tests/docs.rs`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::XTASK_ERROR;

/// What `cargo xtask --help` adds after the list of commands.
const AFTER_HELP: &str = "\
Environment:
  UIRQ_L1_KERNEL          use this aarch64 kernel image for the nested run instead of the cached one
                          (also the default Linux guest of `run --linux` and `bench-boot`)
  UIRQ_L1_KERNEL_PACKAGE  Debian package to take the kernel from (default: the pinned one)
  UIRQ_RUN_WALL_TIMEOUT   seconds after which `run` stops everything (default 900, or the
                          VMM's --timeout plus 300 s for the boot when that is longer)
  UIRQ_LOG                the VMM's log filter (`run` passes it to the VMM, nested or not)
  NO_COLOR                set and not empty: no colour anywhere (xtask, cargo, the VMM)
  A variable that is set must hold a usable value: one that does not is an error, never
  a reason to fall back to the default.

Every step xtask runs (QEMU, the VMM, cargo, apt-get, dpkg) runs in a process group of its
own with a time limit; Ctrl-C, SIGTERM or a timeout stops the whole group.

Exit status: `run` exits with the guest's or the VMM's status (see `cargo xtask run -- --help`);
every failure of xtask itself (bad arguments, a failed build, a missing tool) exits with 101.";

/// cargo xtask: build, run and test uirq.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    after_help = AFTER_HELP,
    disable_version_flag = true
)]
pub struct Cli {
    /// The verb; none prints the help.
    #[command(subcommand)]
    pub verb: Option<Verb>,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Build the firmware and the VMM and run them on KVM.
    ///
    /// Directly on an aarch64 Linux host with /dev/kvm, otherwise inside an aarch64 Linux
    /// booted under QEMU (installed and downloaded once, cached in target/l1; both are
    /// checked before anything is built). Arguments after `--` go to the VMM as they are
    /// (try `cargo xtask run -- --help`). UIRQ_LOG reaches the VMM wherever it runs.
    /// The exit status is the guest's.
    ///
    /// With --linux, boot an arm64 Linux as the VMM's guest instead of the firmware: the
    /// Debian kernel cached in target/l1 (the nested environment's own) with a generated
    /// initramfs whose /init prints when it started, the kernel's uptime then and
    /// /proc/interrupts, and powers off. Ends with
    /// `linux: VMM start to init X s, kernel uptime at init Y s, exit N`.
    /// Defaults: --kernel (the cached vmlinuz) --initrd target/linux/initramfs.cpio
    /// --cmdline "console=ttyAMA0 panic=-1 quiet rdinit=/init" --ram-mib 256 --timeout 600.
    /// VMM ARGS come after them and the VMM takes the last of a repeated option, so your own
    /// --kernel, --initrd, --cmdline, --ram-mib or --timeout replace the defaults (--cpus N,
    /// --irqchip kernel, --exit-stats, --dtb PATH pass through too). Files are paths on this
    /// machine; a nested run copies them into L1. The exit status is the VMM's (0: the guest
    /// powered off).
    #[command(verbatim_doc_comment)]
    Run {
        /// Boot Debian's arm64 Linux instead of the firmware.
        #[arg(long)]
        linux: bool,
        /// Arguments for the VMM, after `--`, passed as they are.
        #[arg(last = true, value_name = "VMM ARGS")]
        vmm_args: Vec<String>,
    },
    /// What the host kernel offers the VMM: `uirq-vmm --probe`, run where `run` runs it.
    ///
    /// Builds the VMM and runs `uirq-vmm --probe` directly on an aarch64 Linux host with
    /// /dev/kvm, otherwise inside the nested aarch64 Linux (its kernel is the one reported;
    /// UIRQ_L1_KERNEL_PACKAGE picks another). Prints the kernel's release, the KVM API
    /// version, every KVM capability the VMM uses or could use (present or absent, with its
    /// number), whether a vCPU waiting in WFI wakes for its own timer with the irqchip in
    /// userspace (Linux commit 4ce98bf0865c), and whether a vCPU's IRQ line raised and lowered
    /// from another thread loses changes (the cross-thread KVM_IRQ_LINE race), each checked
    /// live in a throwaway VM.
    #[command(verbatim_doc_comment)]
    Probe {
        /// Print the report as one JSON document on one line.
        #[arg(long)]
        json: bool,
        /// How long the cross-thread KVM_IRQ_LINE check runs (default 1000; 0 skips it).
        #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
        irq_line_check_ms: Option<u64>,
    },
    /// Formatting, clippy for every target, documentation, unit tests, end-to-end tests.
    Test,
    /// Interrupt latency, userspace GIC vs KVM's in-kernel vGICv2.
    ///
    /// Interrupt latency through the userspace GIC and KVM's in-kernel vGICv2, side by side
    /// (default: both, 10000 samples per measurement, 2 vCPUs: vtimer, sgi, mmio and the ipi
    /// from vCPU 0 to vCPU 1). With --vmm uirq,qemu, QEMU with KVM runs the same firmware in
    /// the same boot, on its own userspace GICv2 and on KVM's, and every VMM's footprint on a
    /// trivial guest is measured.
    #[command(verbatim_doc_comment)]
    BenchLatency(crate::bench::Args),
    /// Linux boot time to init, userspace GIC vs KVM's in-kernel vGICv2.
    ///
    /// Linux boot time on the VMM with the userspace GIC and with KVM's in-kernel vGICv2:
    /// N boots of each (default 3, 1 vCPU), alternating, in one batch. Per irqchip: VMM start
    /// to init and the kernel's uptime at init (median, min, max), and the median exits to
    /// the VMM per boot by kind. With --vmm uirq,qemu the same boots also run under QEMU with
    /// KVM (times only). Fails if a boot does not power off cleanly or never reaches init.
    #[command(verbatim_doc_comment)]
    BenchBoot(crate::boot_bench::Args),
    /// Build the firmware image, the VMM and the inits; print their paths.
    Build,
    /// The conformance suite of the userspace-irqchip path on several kernels, as a matrix.
    ///
    /// One nested boot per kernel (Debian arm64 packages, fetched and cached in target/l1 like
    /// the default L1 kernel), each running: the timer program with no flags, every GIC
    /// scenario, the SMP scenarios and smp-timer on 4 vCPUs, ipi-stress with the owner-thread
    /// rule (nothing may be lost) and with cross-thread injection (lost IPIs counted; every one
    /// must still be accounted for), and a short benchmark. Prints a matrix (check x kernel);
    /// exits 1 if any check failed. Default kernels: the pinned one, the newest Debian 12 6.1
    /// kernel, and 6.1.0-47 (Linux 6.1.170, without the WFI wake-up fix).
    #[command(verbatim_doc_comment)]
    Kernels {
        /// Debian kernel packages (linux-image-6.1.0-47-arm64-unsigned), or paths to kernel
        /// images of your own (anything with a `/`: ./arch/arm64/boot/Image).
        #[arg(value_name = "PACKAGE")]
        packages: Vec<String>,
        /// Write the matrix as JSON to PATH.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
    },
    /// Draw part of a VMM trace (`cargo xtask run -- --trace FILE`) as an SVG timeline.
    ///
    /// One row per track (each vCPU, each GIC CPU interface, the guest's own timestamps),
    /// slices as bars and instants as ticks, over one timer interrupt (--interrupt N, from
    /// its level report to its EOI) or a time range (--from/--to, in the trace's µs).
    /// The full trace loads in ui.perfetto.dev.
    #[command(verbatim_doc_comment)]
    TraceSvg {
        /// The trace (Chrome trace-event JSON, as the VMM's --trace writes it).
        trace: PathBuf,
        /// Where to write the SVG.
        svg: PathBuf,
        /// The n-th timer interrupt of the run (from 1).
        #[arg(long, value_name = "N", conflicts_with_all = ["from", "to"], value_parser = clap::value_parser!(u64).range(1..))]
        interrupt: Option<u64>,
        /// Start of the window, µs into the trace.
        #[arg(long, value_name = "US", requires = "to")]
        from: Option<f64>,
        /// End of the window, µs into the trace.
        #[arg(long, value_name = "US", requires = "from")]
        to: Option<f64>,
        /// The picture's title.
        #[arg(long, default_value = "uirq-vmm trace")]
        title: String,
    },
}

/// What the command line asks for: a verb to run, or text to print and the
/// exit code to print it with (help: 0; a usage error: [`XTASK_ERROR`]).
#[derive(Debug)]
pub enum Parsed {
    /// Run this verb.
    Verb(Verb),
    /// Print `text` and exit with `code`.
    Print {
        /// The help, or the one-line usage error.
        text: String,
        /// 0 for help, [`XTASK_ERROR`] for an error.
        code: u8,
    },
}

/// Parses xtask's command line (`argv[0]` first). Help, asked for or shown
/// for a missing verb, exits 0; a usage error is one line on stderr and
/// [`XTASK_ERROR`], never clap's own 2, which is a guest status.
pub fn parse(argv: impl IntoIterator<Item = String>) -> Parsed {
    use clap::error::ErrorKind;
    match Cli::try_parse_from(argv) {
        Ok(Cli { verb: Some(verb) }) => Parsed::Verb(verb),
        Ok(Cli { verb: None }) => {
            use clap::CommandFactory;
            Parsed::Print {
                text: Cli::command().render_help().to_string(),
                code: 0,
            }
        }
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            Parsed::Print {
                text: e.to_string(),
                code: 0,
            }
        }
        Err(e) => {
            // clap's first line, and its tips (`use '-- --ticks'`), in one.
            let text = e.to_string();
            let said: Vec<&str> = text
                .lines()
                .take(1)
                .chain(text.lines().filter_map(|l| l.trim().strip_prefix("tip: ")))
                .map(|l| l.trim_start_matches("error: "))
                .collect();
            Parsed::Print {
                text: format!(
                    "xtask: error: {}; see `cargo xtask help`\n",
                    said.join("; ")
                ),
                code: XTASK_ERROR,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn parsed(a: &[&str]) -> Parsed {
        parse(std::iter::once("xtask".to_string()).chain(args(a)))
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// Each verb's options, as its `--help` must name them.
    const VERBS: [(&str, &[&str]); 8] = [
        ("run", &["--linux", "VMM ARGS"]),
        ("probe", &["--json"]),
        ("test", &[]),
        (
            "bench-latency",
            &[
                "--samples",
                "--warmup",
                "--irqchip",
                "--cpus",
                "--json",
                "--plot",
            ],
        ),
        ("bench-boot", &["--runs", "--cpus", "--json"]),
        ("build", &[]),
        ("trace-svg", &["--interrupt", "--from", "--to", "--title"]),
        ("kernels", &["PACKAGE", "--json"]),
    ];

    #[test]
    fn every_verb_has_help_that_exits_0_and_names_its_options() {
        for (verb, options) in VERBS {
            for help in [&[verb, "--help"][..], &[verb, "-h"], &["help", verb]] {
                let Parsed::Print { text, code } = parsed(help) else {
                    panic!("{help:?} did not print help");
                };
                assert_eq!(code, 0, "{help:?}");
                assert!(
                    text.contains(&format!("cargo xtask {verb}")),
                    "{help:?}: {text}"
                );
                for option in options {
                    assert!(
                        text.contains(option),
                        "{help:?} does not name {option}: {text}"
                    );
                }
            }
        }
        for top in [&[][..], &["--help"], &["help"]] {
            let Parsed::Print { text, code } = parsed(top) else {
                panic!("{top:?} did not print help");
            };
            assert_eq!(code, 0);
            for (verb, _) in VERBS {
                assert!(text.contains(verb), "{top:?} does not list {verb}");
            }
            assert!(text.contains("101"), "the help names xtask's exit code");
        }
    }

    #[test]
    fn vmm_arguments_after_the_double_dash_pass_verbatim() {
        let Parsed::Verb(Verb::Run { linux, vmm_args }) =
            parsed(&["run", "--", "--ticks", "5", "--linux", "--", "-v", "--help"])
        else {
            panic!("not a run");
        };
        assert!(!linux);
        assert_eq!(vmm_args, ["--ticks", "5", "--linux", "--", "-v", "--help"]);
        let Parsed::Verb(Verb::Run { linux, vmm_args }) =
            parsed(&["run", "--linux", "--", "--cpus", "2"])
        else {
            panic!("not a run");
        };
        assert!(linux);
        assert_eq!(vmm_args, ["--cpus", "2"]);
        let Parsed::Verb(Verb::Run { linux, vmm_args }) = parsed(&["run"]) else {
            panic!("not a run");
        };
        assert!(!linux && vmm_args.is_empty());
        let Parsed::Verb(Verb::BenchLatency(a)) =
            parsed(&["bench-latency", "--samples", "2000", "--irqchip", "user"])
        else {
            panic!("not bench-latency");
        };
        assert_eq!(a.samples, 2000);
        let Parsed::Verb(Verb::Probe {
            json,
            irq_line_check_ms,
        }) = parsed(&["probe", "--json", "--irq-line-check-ms", "20000"])
        else {
            panic!("not probe");
        };
        assert!(json);
        assert_eq!(irq_line_check_ms, Some(20000));
        let Parsed::Verb(Verb::Probe {
            json,
            irq_line_check_ms,
        }) = parsed(&["probe"])
        else {
            panic!("not probe");
        };
        assert!(!json);
        assert_eq!(irq_line_check_ms, None);
    }

    #[test]
    fn usage_errors_are_one_line_and_exit_with_xtask_s_code() {
        for bad in [
            &["run", "--ticks", "5"][..],
            &["nope"],
            &["test", "extra"],
            &["build", "--release"],
            &["bench-latency", "--samples", "0"],
            &["bench-boot", "--runs"],
            &["probe", "--", "--cpus", "2"],
            &["probe", "--jsn"],
            &["--version"],
        ] {
            let Parsed::Print { text, code } = parsed(bad) else {
                panic!("{bad:?} was accepted");
            };
            assert_eq!(code, XTASK_ERROR, "{bad:?}");
            assert_eq!(text.lines().count(), 1, "{bad:?}: {text}");
            assert!(
                text.starts_with("xtask: error: ") && text.ends_with("; see `cargo xtask help`\n"),
                "{bad:?}: {text}"
            );
        }
    }
}
