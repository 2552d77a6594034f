//! The independent check: the firmware on QEMU's own emulated GICv2.
//!
//! The firmware's memory map is QEMU `virt`'s, so the same ELF boots on
//! plain (TCG) emulation, with no KVM and no VMM:
//!
//! ```text
//! qemu-system-aarch64 -M virt,gic-version=2 -cpu max -m 128 ... -kernel uirq-guest
//! ```
//!
//! There the GIC is QEMU's `hw/intc/arm_gic.c`, an implementation written
//! independently of the VMM's model, so a scenario that passes on both
//! checks the model against a second reading of the specification, and one
//! that passes on neither points at the guest.
//!
//! With `-smp N` the board has N CPUs, of which QEMU starts only the first;
//! the others stay powered off until the firmware starts them with PSCI
//! `CPU_ON`, as under the VMM. QEMU's GICv2 then has N CPU interfaces
//! (`GICD_TYPER.CPUNumber` = N - 1), which is how the firmware counts them.
//!
//! QEMU enters an ELF with `x0` = 0, so the program is passed in the boot
//! block instead (`uirq_abi::boot::block`): four 8-byte values that QEMU's
//! generic loader device writes into RAM before the first instruction. The
//! firmware powers off with PSCI SYSTEM_OFF (HVC, which `virt` without EL2
//! answers itself), so QEMU exits; its exit status says nothing about the
//! verdict, which is read from the console. Every run is bounded: QEMU is
//! killed when the timeout passes.
//!
//! The same arguments with another [`Machine`] run the firmware on QEMU
//! with KVM ([`Machine::kvm`]), with QEMU's userspace GICv2
//! (`kernel_irqchip=off`) or KVM's in-kernel vGICv2 (`kernel_irqchip=on`):
//! a `@qemu` job ([`kvm_job`], `crate::jobs::QEMU_FIELD`) where the VMM
//! would run, for comparisons with it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use uirq_abi::boot::{block, Program};

use crate::bounded::BoundedText;
use crate::l1::QEMU;
use crate::process::{run_bounded, Ended, Pipe};
use crate::Result;

/// Guest RAM of every QEMU run, in MiB.
pub const RAM_MIB: u64 = 128;

/// Upper bound for one scenario on plain QEMU; they take about a second.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// One finished (or stopped) run.
#[derive(Clone, Debug)]
pub struct PlainRun {
    /// What the firmware printed (QEMU's stdout), and QEMU's stderr after
    /// it.
    pub console: String,
    /// Whether the timeout expired and QEMU was killed.
    pub timed_out: bool,
}

/// The firmware ELF that `build::guest` leaves next to the flat image
/// (`uirq-guest.bin` → `uirq-guest`).
pub fn elf_of(image: &Path) -> PathBuf {
    image.with_extension("")
}

/// The machine QEMU is asked for: its board options, its CPU, and its
/// accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// `-M`'s value.
    pub board: &'static str,
    /// `-cpu`'s value.
    pub cpu: &'static str,
    /// `-accel`'s value; `None` is QEMU's default, emulation (TCG).
    pub accel: Option<&'static str>,
}

impl Machine {
    /// Plain emulation with QEMU's own GICv2, the independent check.
    pub const EMULATED: Machine = Machine {
        board: "virt,gic-version=2",
        cpu: "max",
        accel: None,
    };

    /// KVM with the host's CPU and a GICv2: QEMU's userspace model
    /// (`kernel_irqchip=off`) or KVM's in-kernel vGICv2 (`on`).
    pub fn kvm(kernel_irqchip: bool) -> Machine {
        Machine {
            board: if kernel_irqchip {
                "virt,gic-version=2,kernel_irqchip=on"
            } else {
                "virt,gic-version=2,kernel_irqchip=off"
            },
            cpu: "host",
            accel: Some("kvm"),
        }
    }
}

/// The QEMU arguments that run `elf` as `program` with `args` (`x1`,
/// `x2`) on `cpus` CPUs, without the program name.
pub fn arguments(elf: &Path, program: Program, args: [u64; 2], cpus: usize) -> Vec<String> {
    arguments_on(Machine::EMULATED, elf, program, args, cpus)
}

/// A `@qemu` job (`crate::jobs`) that runs `elf` as `program` on QEMU
/// with KVM ([`Machine::kvm`]), bounded by `timeout` (whole seconds, at
/// least one). `elf` is a path on this machine; a nested run copies it.
pub fn kvm_job(
    kernel_irqchip: bool,
    elf: &Path,
    program: Program,
    args: [u64; 2],
    cpus: usize,
    timeout: Duration,
) -> Vec<String> {
    let fields = crate::jobs::JobFields {
        qemu: true,
        timeout: Some(timeout.max(Duration::from_secs(1))),
        ..Default::default()
    };
    let mut job = fields.to_args();
    job.extend(arguments_on(
        Machine::kvm(kernel_irqchip),
        elf,
        program,
        args,
        cpus,
    ));
    job
}

/// [`arguments`] on `machine`.
pub fn arguments_on(
    machine: Machine,
    elf: &Path,
    program: Program,
    args: [u64; 2],
    cpus: usize,
) -> Vec<String> {
    let mut a = board(machine, cpus, &RAM_MIB.to_string());
    a.push("-kernel".into());
    a.push(elf.display().to_string());
    for (addr, value) in block::words(program.number(), args) {
        a.push("-device".into());
        a.push(format!("loader,addr={addr:#x},data={value:#x},data-len=8"));
    }
    a
}

/// The board every QEMU run of this project gets, before what it loads:
/// `machine` with `cpus` CPUs and `ram_mib` MiB of RAM, the console on
/// stdio and nothing else, no reboot. With an accelerator, QEMU also gets
/// `-nodefaults`: no default devices, so no option ROM or other data file
/// is looked for (the QEMU in L1 has none).
pub fn board(machine: Machine, cpus: usize, ram_mib: &str) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    if let Some(accel) = machine.accel {
        a.extend(["-accel".into(), accel.into(), "-nodefaults".into()]);
    }
    a.extend(
        [
            "-M",
            machine.board,
            "-cpu",
            machine.cpu,
            "-smp",
            &cpus.to_string(),
            "-m",
            ram_mib,
            "-display",
            "none",
            "-serial",
            "stdio",
            "-monitor",
            "none",
            "-nic",
            "none",
            "-no-reboot",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    a
}

/// Runs `elf` as `program` on QEMU's emulated GICv2 with `cpus` CPUs and
/// returns what it printed. QEMU is killed after `timeout`.
pub fn run(
    elf: &Path,
    program: Program,
    args: [u64; 2],
    cpus: usize,
    timeout: Duration,
) -> Result<PlainRun> {
    if !elf.is_file() {
        return Err(format!("no firmware ELF at {}", elf.display()));
    }
    if !crate::l1::qemu_installed() {
        return Err(format!(
            "{QEMU} is not installed (on Debian or Ubuntu: `sudo apt-get install qemu-system-arm`)"
        ));
    }
    // Bounded as a job's console is (`crate::bounded`).
    let mut console = BoundedText::default();
    let mut errors = BoundedText::new(8 << 10, 8 << 10);
    let ended = run_bounded(
        Command::new(QEMU).args(arguments(elf, program, args, cpus)),
        timeout,
        |pipe, line| {
            let text = if pipe == Pipe::Stdout {
                &mut console
            } else {
                &mut errors
            };
            text.push_line(&line);
        },
    )?;
    let timed_out = matches!(ended, Ended::Killed);
    let mut console = console.into_string();
    console.push_str(&errors.into_string());
    Ok(PlainRun { console, timed_out })
}

/// What a scenario's verdict line says: `PASS`, `FAIL: <what>`, or a
/// description of why there is no (single) verdict line.
pub fn verdict(console: &str, scenario: &str) -> String {
    let prefix = format!("scenario {scenario}: ");
    let lines: Vec<&str> = console
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect();
    match lines.as_slice() {
        [one] => one.trim().to_string(),
        [] => "no verdict line".to_string(),
        _ => format!("{} verdict lines", lines.len()),
    }
}

/// A plain-text table of scenario results, one row per scenario:
/// `scenario | VMM | QEMU GICv2`, columns padded to line up.
pub fn table(rows: &[(String, String, String)]) -> String {
    let header = (
        "scenario".to_string(),
        "VMM (userspace GICv2 on KVM)".to_string(),
        "QEMU GICv2 (plain emulation)".to_string(),
    );
    let all: Vec<&(String, String, String)> = std::iter::once(&header).chain(rows).collect();
    let w0 = all.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = all.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let w2 = all.iter().map(|r| r.2.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (i, (a, b, c)) in all.iter().enumerate() {
        out.push_str(&format!("| {a:<w0$} | {b:<w1$} | {c:<w2$} |\n"));
        if i == 0 {
            let dashes = |w: usize| "-".repeat(w + 2);
            out.push_str(&format!("|{}|{}|{}|\n", dashes(w0), dashes(w1), dashes(w2)));
        }
    }
    out
}

/// Where the end-to-end scenario tests leave their results table, for
/// `cargo xtask test` to print after the tests.
pub fn table_path() -> PathBuf {
    crate::project::target_dir().join("uirq-scenarios.txt")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_carry_the_boot_block() {
        let a = arguments(Path::new("/fw"), Program::SgiSelf, [3, 4], 1);
        let joined = a.join(" ");
        assert!(
            joined.starts_with("-M virt,gic-version=2 -cpu max -smp 1 -m 128 "),
            "{joined}"
        );
        assert!(joined.contains("-kernel /fw "), "{joined}");
        assert!(joined.contains("loader,addr=0x41000000,data=0x746f6f6271726975,data-len=8"));
        assert!(joined.contains("loader,addr=0x41000008,data=0x16,data-len=8"));
        assert!(joined.contains("loader,addr=0x41000010,data=0x3,data-len=8"));
        assert!(joined.ends_with("loader,addr=0x41000018,data=0x4,data-len=8"));
        assert!(
            !joined.contains("virtualization"),
            "plain emulation: EL1 only"
        );
    }

    #[test]
    fn arguments_carry_the_cpu_count() {
        let a = arguments(Path::new("/fw"), Program::IpiStress, [20_000, 0], 4);
        let smp = a.iter().position(|s| s == "-smp").expect("-smp");
        assert_eq!(a[smp + 1], "4");
        assert_eq!(a.iter().filter(|s| *s == "-smp").count(), 1);
        let joined = a.join(" ");
        assert!(joined.contains("loader,addr=0x41000008,data=0x6,data-len=8"));
        assert!(joined.contains("loader,addr=0x41000010,data=0x4e20,data-len=8"));
    }

    #[test]
    fn kvm_jobs_are_qemu_jobs_on_the_chosen_gic_with_a_bound() {
        let job = kvm_job(
            false,
            Path::new("/fw"),
            Program::Timer,
            [5, 0],
            1,
            Duration::from_secs(60),
        );
        let (fields, args) = crate::jobs::split_fields(&job).unwrap();
        assert!(fields.qemu);
        assert_eq!(fields.timeout, Some(Duration::from_secs(60)));
        let joined = args.join(" ");
        assert!(
            joined.starts_with(
                "-accel kvm -nodefaults -M virt,gic-version=2,kernel_irqchip=off -cpu host -smp 1 -m 128 "
            ),
            "{joined}"
        );
        assert!(joined.contains("-kernel /fw "), "{joined}");
        assert!(joined.contains("loader,addr=0x41000010,data=0x5,data-len=8"));
        let on = kvm_job(
            true,
            Path::new("/fw"),
            Program::Timer,
            [5, 0],
            1,
            Duration::ZERO,
        );
        assert!(on.join(" ").contains("kernel_irqchip=on"));
        assert!(on.contains(&"@timeout-s=1".to_string()), "{on:?}");
    }

    #[test]
    fn elf_is_the_image_without_bin() {
        assert_eq!(
            elf_of(Path::new("/t/uirq-guest.bin")),
            Path::new("/t/uirq-guest")
        );
    }

    #[test]
    fn verdicts_are_read_from_exactly_one_line() {
        let c = "x\nscenario sgi: PASS\n";
        assert_eq!(verdict(c, "sgi"), "PASS");
        assert_eq!(
            verdict("scenario sgi: FAIL: got 1, expected 2\n", "sgi"),
            "FAIL: got 1, expected 2"
        );
        assert_eq!(verdict(c, "pmr"), "no verdict line");
        assert_eq!(
            verdict("scenario a: PASS\nscenario a: PASS\n", "a"),
            "2 verdict lines"
        );
        assert_eq!(
            verdict("scenario spi-state: PASS", "spi"),
            "no verdict line"
        );
    }

    #[test]
    fn table_lines_up() {
        let t = table(&[("sgi".into(), "PASS".into(), "PASS".into())]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("| scenario | VMM"));
        assert!(lines[1].starts_with("|----------|"));
        assert!(lines[2].starts_with("| sgi      | PASS "));
    }
}
