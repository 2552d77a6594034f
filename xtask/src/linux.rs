//! Linux as the VMM's guest.
//!
//! `cargo xtask run --linux`, `cargo xtask bench-boot` and the end-to-end
//! tests boot an arm64 Linux kernel on the VMM (`--kernel`) with an
//! initramfs generated here, whose `/init` is `uirq-linux-init`. By default
//! the kernel is the Debian one the nested environment already caches (the
//! same kernel as L1's). This module builds that initramfs and the VMM
//! invocation, and reads back what the init printed: when it started, the
//! kernel's uptime then, the line it read, `/proc/interrupts`, and the VMM's
//! `@@exits` statistics (taken from the job's tagged reports, never from
//! its console, where the guest could have printed one:
//! `crate::jobs::JobResult::report`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cpio::Archive;
use crate::project::{self, Artifacts};
use crate::Result;

/// The start of every line `uirq-linux-init` prints.
pub const INIT_PREFIX: &str = "uirq-linux-init: ";
/// The init's first line, which the harness times from the VMM's start:
/// `uirq-linux-init: started, kernel uptime <secs> s`.
pub const STARTED: &str = "uirq-linux-init: started";
/// Printed when the init waits for a line on its console.
pub const READY_FOR_LINE: &str = "uirq-linux-init: ready for a line";
/// Precedes the line the init read.
pub const READ_LINE: &str = "uirq-linux-init: read line: ";
/// The kernel command line by default: the PL011 as console, a panic
/// resets (so the VMM exits non-zero instead of waiting for its timeout),
/// and little kernel chatter on the slow emulated console.
pub const DEFAULT_CMDLINE: &str = "console=ttyAMA0 panic=-1 quiet rdinit=/init";
/// Guest RAM by default: a Debian kernel does not boot in the VMM's default
/// 64 MiB.
pub const DEFAULT_RAM_MIB: &str = "256";
/// The VMM's `--timeout` by default, in seconds: a nested Linux boot takes
/// 30-120 s.
pub const DEFAULT_TIMEOUT_S: &str = "600";
/// Asks the init to wait this many seconds for a line (kernel command line).
pub const READ_LINE_PARAM: &str = "uirq.read-line=";

const STARTED_UPTIME: &str = "uirq-linux-init: started, kernel uptime ";
const INFO: &str = "uirq-linux-init: kernel ";
const INTERRUPTS_BEGIN: &str = "uirq-linux-init: /proc/interrupts";
const INTERRUPTS_END: &str = "uirq-linux-init: end of /proc/interrupts";

/// The guest initramfs: `/init` and the directories it mounts on, and the
/// console node the kernel opens for init's stdio before anything is
/// mounted.
pub fn initramfs_archive(init: &[u8]) -> Archive {
    let mut archive = Archive::new();
    archive
        .dir("dev")
        .char_device("dev/console", 0o600, 5, 1)
        .dir("proc")
        .dir("sys")
        .file("init", 0o755, init);
    archive
}

/// Where the generated guest initramfs goes.
pub fn initramfs_path() -> PathBuf {
    project::target_dir().join("linux").join("initramfs.cpio")
}

/// Writes the guest initramfs with the built init; returns its path.
pub fn write_initramfs(artifacts: &Artifacts) -> Result<PathBuf> {
    let init = &artifacts.linux_init;
    let bytes = std::fs::read(init).map_err(|e| format!("cannot read {}: {e}", init.display()))?;
    let path = initramfs_path();
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Written aside and renamed, so a concurrent run never reads half of it.
    let partial = dir.join(format!("initramfs.cpio.{}", std::process::id()));
    let mut file = std::fs::File::create(&partial)
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    initramfs_archive(&bytes)
        .finish(&mut file)
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    std::fs::rename(&partial, &path)
        .map_err(|e| format!("cannot store {}: {e}", path.display()))?;
    Ok(path)
}

/// The job that boots `kernel` with `initrd`: `fields` (job fields such
/// as `@mark=`), the defaults, then `extra` VMM arguments. The VMM takes the
/// last of repeated options, so `extra` may replace any default. With a
/// `--dtb` in `extra` the default initrd and command line are left out: the
/// VMM refuses them next to a device tree, which names its own.
pub fn boot_job(kernel: &Path, initrd: &Path, fields: &[String], extra: &[String]) -> Vec<String> {
    let own_dtb = extra
        .iter()
        .any(|a| a == "--dtb" || a.starts_with("--dtb="));
    let mut job = fields.to_vec();
    job.extend([
        "--kernel".to_string(),
        kernel.to_string_lossy().into_owned(),
    ]);
    if !own_dtb {
        job.extend([
            "--initrd".to_string(),
            initrd.to_string_lossy().into_owned(),
            "--cmdline".to_string(),
            DEFAULT_CMDLINE.to_string(),
        ]);
    }
    job.extend(["--ram-mib", DEFAULT_RAM_MIB, "--timeout", DEFAULT_TIMEOUT_S].map(String::from));
    job.extend_from_slice(extra);
    job
}

/// The `@mark=` field that times the init's first line.
pub fn started_mark() -> String {
    format!("{}{STARTED}", crate::jobs::MARK_FIELD)
}

/// The rest of the first line of `console` that holds `prefix`, after it
/// (kernel messages may share the line's start).
fn after<'a>(console: &'a str, prefix: &str) -> Option<&'a str> {
    console
        .lines()
        .find_map(|l| l.find(prefix).map(|i| &l[i + prefix.len()..]))
}

/// The kernel's uptime, in seconds, when the init started.
pub fn uptime_at_init(console: &str) -> Option<f64> {
    after(console, STARTED_UPTIME)?
        .trim()
        .strip_suffix(" s")?
        .parse()
        .ok()
}

/// The line the init read from its console, if it read one.
pub fn line_read(console: &str) -> Option<&str> {
    after(console, READ_LINE)
}

/// What the init reports about the machine it runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitInfo {
    /// The guest kernel's release.
    pub kernel: String,
    /// CPUs online.
    pub cpus: u32,
    /// `CNTFRQ_EL0`, when the init could read it.
    pub counter_hz: Option<u64>,
}

/// Parses `uirq-linux-init: kernel <release>, <n> CPU(s) online, counter
/// frequency <hz> Hz|unknown`.
pub fn init_info(console: &str) -> Option<InitInfo> {
    let rest = after(console, INFO)?;
    let mut parts = rest.split(", ");
    let kernel = parts.next()?.to_string();
    let cpus = parts.next()?.split_whitespace().next()?.parse().ok()?;
    let freq = parts.next()?.strip_prefix("counter frequency ")?;
    let counter_hz = freq.strip_suffix(" Hz").and_then(|f| f.parse().ok());
    Some(InitInfo {
        kernel,
        cpus,
        counter_hz,
    })
}

/// The VMM's `@@exits` line (`--exit-stats`).
#[derive(Clone, Debug, PartialEq)]
pub struct ExitStats {
    /// `user` or `kernel`.
    pub irqchip: String,
    /// vCPUs of the run.
    pub cpus: u64,
    /// How long the guest ran, in milliseconds.
    pub run_ms: f64,
    /// Exits to the VMM by kind.
    pub exits: BTreeMap<String, u64>,
    /// The whole report, with whatever else the VMM put in it.
    pub raw: Value,
}

/// Parses the VMM's `--exit-stats` report (the JSON of its tagged
/// `@@exits` line, `crate::jobs::JobResult::report`): an error when it
/// does not have the documented shape.
pub fn exit_stats(text: &str) -> Result<ExitStats> {
    let bad = |why: &str| format!("the VMM's exit statistics {why}: {text}");
    let v: Value = serde_json::from_str(text).map_err(|e| bad(&format!("do not parse ({e})")))?;
    let exits = v["exits"]
        .as_object()
        .ok_or_else(|| bad("have no `exits` map"))?
        .iter()
        .map(|(kind, n)| {
            n.as_u64()
                .map(|n| (kind.clone(), n))
                .ok_or_else(|| bad(&format!("count `{kind}` as {n}")))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    Ok(ExitStats {
        irqchip: v["irqchip"].as_str().unwrap_or("?").to_string(),
        cpus: v["cpus"].as_u64().unwrap_or(0),
        run_ms: v["run_ms"].as_f64().unwrap_or(f64::NAN),
        exits,
        raw: v,
    })
}

/// One row of `/proc/interrupts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IrqRow {
    /// What precedes the colon: a Linux irq number, `IPI0`, `Err`, ...
    pub label: String,
    /// The count per CPU column (one value only for rows like `Err`).
    pub counts: Vec<u64>,
    /// The rest, whitespace collapsed: `GIC-0 27 Level arch_timer`,
    /// `Rescheduling interrupts`.
    pub description: String,
}

impl IrqRow {
    /// The count on every CPU together.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The count on CPU `cpu` (0 when the row has no such column).
    pub fn on_cpu(&self, cpu: usize) -> u64 {
        self.counts.get(cpu).copied().unwrap_or(0)
    }
}

/// `/proc/interrupts`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interrupts {
    /// CPU columns (`CPU0 CPU1 ...` in the header).
    pub cpus: usize,
    /// The rows, in order.
    pub rows: Vec<IrqRow>,
}

impl Interrupts {
    /// Parses the text of `/proc/interrupts`. Lines that are not rows (a
    /// kernel message that slipped in) are skipped.
    pub fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
        let header = lines.next()?;
        let cpus = header
            .split_whitespace()
            .take_while(|w| w.starts_with("CPU"))
            .count();
        if cpus == 0 {
            return None;
        }
        let rows = lines
            .filter_map(|line| {
                let (label, rest) = line.split_once(':')?;
                let label = label.trim();
                if label.is_empty() || label.contains(char::is_whitespace) {
                    return None;
                }
                let mut words = rest.split_whitespace().peekable();
                let mut counts = Vec::new();
                while counts.len() < cpus {
                    match words.peek().and_then(|w| w.parse::<u64>().ok()) {
                        Some(n) => {
                            counts.push(n);
                            words.next();
                        }
                        None => break,
                    }
                }
                if counts.is_empty() {
                    return None;
                }
                Some(IrqRow {
                    label: label.to_string(),
                    counts,
                    description: words.collect::<Vec<_>>().join(" "),
                })
            })
            .collect();
        Some(Self { cpus, rows })
    }

    /// Parses the `/proc/interrupts` the init printed in `console`.
    pub fn from_console(console: &str) -> Option<Self> {
        let mut inside = false;
        let mut text = String::new();
        for line in console.lines() {
            if line.contains(INTERRUPTS_END) {
                return Self::parse(&text);
            }
            if inside {
                text.push_str(line);
                text.push('\n');
            } else if line.contains(INTERRUPTS_BEGIN) {
                inside = true;
            }
        }
        None
    }

    /// The first row whose description (or label) contains `needle`.
    pub fn find(&self, needle: &str) -> Option<&IrqRow> {
        self.rows
            .iter()
            .find(|r| r.description.contains(needle) || r.label == needle)
    }

    /// The inter-processor interrupt rows (`IPI0`, `IPI1`, ...).
    pub fn ipis(&self) -> impl Iterator<Item = &IrqRow> {
        self.rows.iter().filter(|r| {
            r.label
                .strip_prefix("IPI")
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The console of `cargo xtask run --linux -- --cpus 2` (Debian's
    /// 6.12.117 on the userspace GIC, nested under QEMU 7.2), as captured.
    const CONSOLE: &str = "\
uirq-linux-init: started, kernel uptime 86.68 s
uirq-linux-init: kernel 6.12.117+deb12-arm64, 2 CPUs online, counter frequency 62500000 Hz
uirq-linux-init: /proc/interrupts
           CPU0       CPU1       
 11:      14795      14945 GIC-0  27 Level     arch_timer
 13:          0          0 GIC-0  33 Level     uart-pl011
IPI0:        71         57       Rescheduling interrupts
IPI1:       843        550       Function call interrupts
IPI2:         0          0       CPU stop interrupts
IPI3:         0          0       CPU stop NMIs
IPI4:         0          0       Timer broadcast interrupts
IPI5:         0          0       IRQ work interrupts
IPI6:         0          0       CPU backtrace interrupts
IPI7:         0          0       KGDB roundup interrupts
Err:          0
uirq-linux-init: end of /proc/interrupts
[   91.565470] reboot: Power down
";

    /// The init waiting for, and reading, a line fed to the VMM's stdin.
    const READ_LINE_CONSOLE: &str = "\
uirq-linux-init: ready for a line
hello-from-the-vmm-stdin
uirq-linux-init: read line: hello-from-the-vmm-stdin
";

    /// The VMM's `--exit-stats` report after a 1-vCPU boot, as captured.
    const EXITS_REPORT: &str = r#"{"cpus":1,"exits":{"kick_or_signal":0,"mmio_read":22917,"mmio_write":13650,"other":1,"timer_level_report":12571},"ioctls":{"irq_line":23616,"kicks_sent":0},"irqchip":"user","mmio_by_device":{"gicc":34923,"gicd":63,"uart":1581,"unclaimed":0},"run_ms":94582.689872,"total":49139}"#;

    #[test]
    fn proc_interrupts_parses_into_rows_per_cpu() {
        let irqs = Interrupts::from_console(CONSOLE).expect("the section is found");
        assert_eq!(irqs.cpus, 2);
        assert_eq!(irqs.rows.len(), 11);
        let timer = irqs.find("arch_timer").unwrap();
        assert_eq!(timer.label, "11");
        assert_eq!(timer.counts, [14795, 14945]);
        assert_eq!(timer.description, "GIC-0 27 Level arch_timer");
        let uart = irqs.find("pl011").unwrap();
        assert_eq!(uart.description, "GIC-0 33 Level uart-pl011");
        assert_eq!((uart.total(), uart.on_cpu(1), uart.on_cpu(7)), (0, 0, 0));
        let ipis: Vec<&str> = irqs.ipis().map(|r| r.label.as_str()).collect();
        assert_eq!(
            ipis,
            ["IPI0", "IPI1", "IPI2", "IPI3", "IPI4", "IPI5", "IPI6", "IPI7"]
        );
        assert_eq!(irqs.ipis().map(|r| r.on_cpu(1)).sum::<u64>(), 607);
        assert_eq!(
            irqs.find("Rescheduling interrupts").unwrap().counts,
            [71, 57]
        );
        let err = irqs.find("Err").unwrap();
        assert_eq!(
            (err.counts.as_slice(), err.description.as_str()),
            (&[0][..], "")
        );
    }

    #[test]
    fn a_single_cpu_table_and_stray_lines_are_handled() {
        // From `cargo xtask run --linux` (one vCPU), with a kernel message
        // slipped in.
        let text = "\n           CPU0       \n 11:      12714 GIC-0  27 Level     arch_timer\n[   3.2] random: crng init done\nIPI0:         0       Rescheduling interrupts\n";
        let irqs = Interrupts::parse(text).unwrap();
        assert_eq!(irqs.cpus, 1);
        assert_eq!(irqs.rows.len(), 2, "{irqs:?}");
        assert_eq!(irqs.find("arch_timer").unwrap().counts, [12714]);
        assert_eq!(Interrupts::parse("no header here"), None);
        assert_eq!(
            Interrupts::from_console("uirq-linux-init: /proc/interrupts\n"),
            None
        );
    }

    #[test]
    fn the_init_lines_are_read_back() {
        assert_eq!(uptime_at_init(CONSOLE), Some(86.68));
        assert_eq!(
            line_read(READ_LINE_CONSOLE),
            Some("hello-from-the-vmm-stdin")
        );
        assert_eq!(line_read(CONSOLE), None);
        assert_eq!(
            init_info(CONSOLE),
            Some(InitInfo {
                kernel: "6.12.117+deb12-arm64".into(),
                cpus: 2,
                counter_hz: Some(62_500_000),
            })
        );
        let one = "uirq-linux-init: kernel 6.1.0, 1 CPU online, counter frequency unknown";
        assert_eq!(init_info(one).unwrap().counter_hz, None);
        assert_eq!(init_info(one).unwrap().cpus, 1);
        // A kernel message ahead of the init's text on the same line.
        assert_eq!(
            uptime_at_init("[ 9.1] x uirq-linux-init: started, kernel uptime 9.50 s"),
            Some(9.5)
        );
        assert_eq!(uptime_at_init("nothing"), None);
        assert_eq!(line_read("uirq-linux-init: no line within 30 s"), None);
    }

    #[test]
    fn exit_statistics_parse_and_a_malformed_report_is_an_error() {
        let stats = exit_stats(EXITS_REPORT).unwrap();
        assert_eq!(stats.irqchip, "user");
        assert_eq!(stats.cpus, 1);
        assert_eq!(stats.run_ms, 94582.689872);
        assert_eq!(stats.exits.len(), 5);
        assert_eq!(stats.exits["mmio_read"], 22917);
        assert_eq!(stats.exits["timer_level_report"], 12571);
        assert_eq!(stats.raw["mmio_by_device"]["gicc"], 34923);
        assert!(exit_stats("no stats").is_err());
        assert!(exit_stats("{").is_err());
        assert!(exit_stats("{\"exits\":{\"mmio\":-1}}").is_err());
        assert!(exit_stats("{\"irqchip\":\"user\"}").is_err());
    }

    #[test]
    fn the_boot_job_puts_fields_first_and_the_user_s_arguments_last() {
        let job = boot_job(
            Path::new("/k/vmlinuz"),
            Path::new("/t/initramfs.cpio"),
            &[started_mark()],
            &["--cpus".to_string(), "2".to_string()],
        );
        assert_eq!(job[0], "@mark=uirq-linux-init: started");
        assert_eq!(
            &job[1..5],
            ["--kernel", "/k/vmlinuz", "--initrd", "/t/initramfs.cpio"]
        );
        assert_eq!(&job[job.len() - 2..], ["--cpus", "2"]);
        let at = job.iter().position(|a| a == "--cmdline").unwrap();
        assert_eq!(job[at + 1], DEFAULT_CMDLINE);
        // A device tree of one's own names its own initrd and command line.
        let job = boot_job(
            Path::new("/k"),
            Path::new("/i"),
            &[],
            &["--dtb".to_string(), "my.dtb".to_string()],
        );
        assert!(
            !job.iter().any(|a| a == "--initrd" || a == "--cmdline"),
            "{job:?}"
        );
        assert_eq!(&job[..2], ["--kernel", "/k"]);
    }

    #[test]
    fn the_initramfs_holds_the_init_and_the_console_node() {
        let mut out = Vec::new();
        initramfs_archive(b"\x7fELF").finish(&mut out).unwrap();
        let names: Vec<&[u8]> = [
            &b"dev\0"[..],
            b"dev/console\0",
            b"proc\0",
            b"sys\0",
            b"init\0",
        ]
        .to_vec();
        for name in names {
            assert!(out.windows(name.len()).any(|w| w == name), "{name:?}");
        }
        assert!(out.windows(4).any(|w| w == b"\x7fELF"));
    }
}
