//! `cargo xtask bench-boot`: how long Linux takes to reach its init on the
//! VMM with the userspace GIC and with KVM's in-kernel vGICv2, and what it
//! costs in exits to the VMM; with `--vmm uirq,qemu`, also under QEMU with
//! KVM, with its own userspace GICv2 (`kernel_irqchip=off`) and with the
//! in-kernel one.
//!
//! All boots run in one batch (one boot of L1 when nested), alternating
//! runs (uirq/user, uirq/kernel, then QEMU's, again and again) so that a
//! drift in the machine's speed during the batch touches all alike. Each
//! boot is the Debian kernel with the generated initramfs, timed from the
//! VMM's spawn to the init's first line (`@mark=`), with the kernel's own
//! uptime at that line, and, for `uirq-vmm`, its `--exit-stats` (QEMU's
//! exits are not seen). QEMU gets the same kernel, initramfs, command line,
//! RAM and vCPUs; it writes the device tree itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uirq_abi::report;

use crate::bench::{RunKey, VmmChoice};
use crate::jobs::{self, Environment, JobResult};
use crate::{build, check_output_path, l1, linux, progress, Result};

/// The irqchips, in the order their boots alternate.
pub const IRQCHIPS: [&str; 2] = ["user", "kernel"];

/// Upper bound for one boot under QEMU (`uirq-vmm`'s boots have
/// `--timeout`, `linux::DEFAULT_TIMEOUT_S`): the same.
const QEMU_BOOT_TIMEOUT: Duration = Duration::from_secs(600);

/// Command-line options of `bench-boot`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Boots per irqchip.
    pub runs: usize,
    /// vCPUs of the guest.
    pub cpus: usize,
    /// VMMs to boot on, in order: `uirq`, `qemu`.
    pub vmms: Vec<&'static str>,
    /// Where to write the JSON.
    pub json: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            runs: 3,
            cpus: 1,
            vmms: vec!["uirq"],
            json: None,
        }
    }
}

impl Options {
    /// The runs one round of boots makes, in order.
    pub fn keys(&self) -> Vec<RunKey> {
        self.vmms
            .iter()
            .flat_map(|&vmm| IRQCHIPS.map(|irqchip| RunKey { vmm, irqchip }))
            .collect()
    }
}

/// The command line of `bench-boot`; [`Options`] once converted.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct Args {
    /// Boots per irqchip, 1 to 50.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=50))]
    pub runs: usize,
    /// vCPUs of the Linux guest, 1 to 8.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=8))]
    pub cpus: usize,
    /// The VMMs to boot on, comma-separated: `uirq` (this project's) and
    /// `qemu` (QEMU with KVM, its own GICv2 and the in-kernel one).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "uirq")]
    pub vmm: Vec<VmmChoice>,
    /// Write the results as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

impl From<Args> for Options {
    fn from(a: Args) -> Self {
        Self {
            runs: a.runs,
            cpus: a.cpus,
            vmms: VmmChoice::names(&a.vmm),
            json: a.json,
        }
    }
}

/// One boot's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Boot {
    /// `uirq` or `qemu`.
    pub vmm: String,
    /// `user` or `kernel`.
    pub irqchip: String,
    /// The VMM's spawn to the init's first line, in seconds.
    pub start_to_init_s: f64,
    /// The kernel's uptime at the init's first line, in seconds.
    pub uptime_at_init_s: Option<f64>,
    /// How long the VMM ran the guest, in milliseconds (NaN under QEMU).
    pub run_ms: f64,
    /// Exits to the VMM by kind (none under QEMU, whose are not seen).
    pub exits: BTreeMap<String, u64>,
    /// The VMM's whole `--exit-stats` report (by device, ioctls, ...);
    /// null under QEMU.
    pub vmm_report: Value,
    /// What the init reported about the machine.
    pub info: Option<linux::InitInfo>,
}

/// The jobs of a benchmark: `o.runs` boots per run, alternating.
pub fn jobs(kernel: &std::path::Path, initrd: &std::path::Path, o: &Options) -> Vec<Vec<String>> {
    let keys = o.keys();
    (0..o.runs)
        .flat_map(|_| keys.iter().copied())
        .map(|key| {
            if key.vmm == "qemu" {
                return qemu_boot_job(kernel, initrd, key.irqchip, o.cpus);
            }
            let extra = [
                "--cpus",
                &o.cpus.to_string(),
                "--irqchip",
                key.irqchip,
                "--exit-stats",
            ]
            .map(String::from);
            linux::boot_job(kernel, initrd, &[linux::started_mark()], &extra)
        })
        .collect()
}

/// The same boot under QEMU with KVM: the same kernel, initramfs, command
/// line, RAM and vCPUs; QEMU writes the device tree (`virt` with a GICv2,
/// its own with `irqchip` `user`: `kernel_irqchip=off`).
pub fn qemu_boot_job(
    kernel: &std::path::Path,
    initrd: &std::path::Path,
    irqchip: &str,
    cpus: usize,
) -> Vec<String> {
    let fields = jobs::JobFields {
        qemu: true,
        mark: Some(linux::STARTED.to_string()),
        timeout: Some(QEMU_BOOT_TIMEOUT),
        ..Default::default()
    };
    let mut job = fields.to_args();
    job.extend(crate::qemu_plain::board(
        crate::qemu_plain::Machine::kvm(irqchip != "user"),
        cpus,
        linux::DEFAULT_RAM_MIB,
    ));
    job.extend(
        [
            "-kernel",
            &kernel.to_string_lossy(),
            "-initrd",
            &initrd.to_string_lossy(),
            "-append",
            linux::DEFAULT_CMDLINE,
        ]
        .map(String::from),
    );
    job
}

/// Builds everything, runs the benchmark and reports it. Returns the JSON
/// document.
pub fn run(o: &Options) -> Result<Value> {
    run_with(&build::all()?, o)
}

/// Runs the benchmark with already built `artifacts` and reports it.
pub fn run_with(artifacts: &crate::project::Artifacts, o: &Options) -> Result<Value> {
    // Before the long run, not after it.
    if let Some(path) = &o.json {
        check_output_path(path, "--json")?;
    }
    let kernel = l1::ensure_kernel()?;
    let initrd = linux::write_initramfs(artifacts)?;
    let jobs = jobs(&kernel, &initrd, o);
    let total = jobs.len();
    progress(format!(
        "booting Linux {total} times ({} per run, alternating {}; {} vCPU{}); a nested boot takes 30-120 s",
        o.runs,
        o.keys().iter().map(RunKey::label).collect::<Vec<_>>().join(", "),
        o.cpus,
        if o.cpus == 1 { "" } else { "s" }
    ));
    let started = Instant::now();
    let booted = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let (env, results) = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut last = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if last.elapsed() >= Duration::from_secs(30) {
                    last = Instant::now();
                    progress(format!(
                        "bench-boot running, {} s, {} of {total} boots reached init",
                        started.elapsed().as_secs(),
                        booted.load(Ordering::Relaxed)
                    ));
                }
            }
        });
        let show = |line: &str| {
            if line.contains(linux::STARTED) {
                let n = booted.fetch_add(1, Ordering::Relaxed) + 1;
                progress(format!("boot {n} of {total} reached init: {}", line.trim()));
            }
        };
        // The boots, the L1 boot and a margin; each boot is bounded by its
        // own --timeout as well.
        let wall = Duration::from_secs(600 + 300 * total as u64);
        let r = jobs::run(artifacts, &jobs, "bench-boot", Some(&show), wall);
        done.store(true, Ordering::Relaxed);
        r
    })?;
    let boots = collect(&results, &o.keys())?;
    let doc = combine(&env, o, &boots);
    print!("{}", table(&doc));
    progress(format!("bench-boot took {} s", started.elapsed().as_secs()));
    if let Some(path) = &o.json {
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        progress(format!("wrote {}", path.display()));
    }
    Ok(doc)
}

/// The last lines of a console, for a failure message.
fn tail(console: &str) -> String {
    let lines: Vec<&str> = console.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Reads each job's figures (the jobs of `keys`, round after round);
/// fails, naming every bad boot, when a boot did not power off cleanly,
/// never reached init, or (`uirq-vmm`) printed no statistics.
pub fn collect(results: &[JobResult], keys: &[RunKey]) -> Result<Vec<Boot>> {
    let mut boots = Vec::new();
    let mut failures = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let key = keys[i % keys.len()];
        let qemu = key.vmm == "qemu";
        let what = format!("boot {} ({})", i + 1, key.label());
        let stats = match r.report(report::EXITS).map(linux::exit_stats).transpose() {
            Ok(stats) => stats,
            Err(e) => {
                failures.push(format!("{what}: {e}"));
                continue;
            }
        };
        let problem = match (r.exit_code, r.mark, &stats) {
            (Some(0), Some(_), Some(_)) => None,
            (Some(0), Some(_), None) if qemu => None,
            (code, _, _) if code != Some(0) => Some(format!(
                "exited with {} instead of powering off (0)",
                code.map_or("nothing".to_string(), |c| c.to_string())
            )),
            (_, None, _) => Some(format!("never printed `{}`", linux::STARTED)),
            _ => Some(
                "gave no exit statistics (no tagged `@@exits` report, --exit-stats)".to_string(),
            ),
        };
        if let Some(problem) = problem {
            failures.push(format!(
                "{what} {problem}; its last lines:\n{}",
                tail(&r.console)
            ));
            continue;
        }
        let Some(mark) = r.mark else {
            continue;
        };
        let (run_ms, exits, vmm_report) = match stats {
            Some(s) => (s.run_ms, s.exits, s.raw),
            None => (f64::NAN, BTreeMap::new(), Value::Null),
        };
        boots.push(Boot {
            vmm: key.vmm.to_string(),
            irqchip: key.irqchip.to_string(),
            start_to_init_s: mark.as_secs_f64(),
            uptime_at_init_s: linux::uptime_at_init(&r.console),
            run_ms,
            exits,
            vmm_report,
            info: linux::init_info(&r.console),
        });
    }
    if failures.is_empty() {
        Ok(boots)
    } else {
        Err(format!(
            "{} of {} boots failed:\n{}",
            failures.len(),
            results.len(),
            failures.join("\n\n")
        ))
    }
}

/// The median of `values` (the mean of the middle two for an even count);
/// NaN for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

fn spread(values: &[f64]) -> Value {
    let known: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if known.is_empty() {
        return Value::Null;
    }
    json!({
        "median": median(&known),
        "min": known.iter().copied().fold(f64::INFINITY, f64::min),
        "max": known.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

/// Builds the output document from the environment and the boots.
pub fn combine(env: &Environment, o: &Options, boots: &[Boot]) -> Value {
    let info = boots.iter().find_map(|b| b.info.clone());
    let mut summary = Vec::new();
    for key in o.keys() {
        let mine: Vec<&Boot> = boots
            .iter()
            .filter(|b| b.vmm == key.vmm && b.irqchip == key.irqchip)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let kinds: BTreeSet<&String> = mine.iter().flat_map(|b| b.exits.keys()).collect();
        let exits: serde_json::Map<String, Value> = kinds
            .into_iter()
            .map(|kind| {
                let counts: Vec<f64> = mine
                    .iter()
                    .map(|b| b.exits.get(kind).copied().unwrap_or(0) as f64)
                    .collect();
                (kind.clone(), json!(median(&counts)))
            })
            .collect();
        let totals: Vec<f64> = mine
            .iter()
            .map(|b| b.exits.values().sum::<u64>() as f64)
            .collect();
        summary.push(json!({
            "vmm": key.vmm,
            "irqchip": key.irqchip,
            "runs": mine.len(),
            "start_to_init_s": spread(&mine.iter().map(|b| b.start_to_init_s).collect::<Vec<_>>()),
            "uptime_at_init_s": spread(&mine.iter().map(|b| b.uptime_at_init_s.unwrap_or(f64::NAN)).collect::<Vec<_>>()),
            "exits_median": if key.vmm == "qemu" { Value::Null } else { json!(exits) },
            "exits_total_median": if key.vmm == "qemu" { Value::Null } else { json!(median(&totals)) },
        }));
    }
    let runs: Vec<Value> = boots
        .iter()
        .enumerate()
        .map(|(i, b)| {
            json!({
                "boot": i + 1,
                "vmm": b.vmm,
                "irqchip": b.irqchip,
                "start_to_init_s": b.start_to_init_s,
                "uptime_at_init_s": b.uptime_at_init_s,
                "run_ms": if b.run_ms.is_nan() { Value::Null } else { json!(b.run_ms) },
                "exits": b.exits,
                "vmm_exit_stats": b.vmm_report,
            })
        })
        .collect();
    json!({
        "environment": {
            "kind": env.kind,
            "host_kernel": env.kernel,
            "qemu": env.qemu,
            "build_machine": std::env::consts::ARCH,
            "guest_kernel": info.as_ref().map(|i| i.kernel.clone()),
            "cntfrq_hz": info.as_ref().and_then(|i| i.counter_hz),
            "vcpus": o.cpus,
            "vmms": o.vmms,
            "runs_per_irqchip": o.runs,
        },
        "summary": summary,
        "runs": runs,
    })
}

fn secs(v: &Value) -> String {
    match (v["median"].as_f64(), v["min"].as_f64(), v["max"].as_f64()) {
        (Some(m), Some(lo), Some(hi)) => format!("{m:.2} s [{lo:.2} - {hi:.2}]"),
        _ => "-".into(),
    }
}

fn count(v: Option<f64>) -> String {
    match v {
        Some(x) if x.fract() == 0.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    }
}

/// The human-readable table for `doc`.
pub fn table(doc: &Value) -> String {
    let mut out = String::new();
    let env = &doc["environment"];
    let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let machine = format!(
        "{} kernel {}{}",
        if env["kind"] == "nested" {
            "L1"
        } else {
            "host"
        },
        text(&env["host_kernel"]),
        env["qemu"]
            .as_str()
            .map(|q| format!(", {q}"))
            .unwrap_or_default()
    );
    let plural = |v: &Value| if *v == 1 { "" } else { "s" };
    let _ = writeln!(
        out,
        "\nLinux boot to init, {} ({machine}); guest kernel {}, CNTFRQ {}, {} vCPU{}, {} boot{} per run",
        text(&env["kind"]),
        text(&env["guest_kernel"]),
        env["cntfrq_hz"]
            .as_u64()
            .map_or("unknown".to_string(), |hz| format!("{hz} Hz")),
        env["vcpus"],
        plural(&env["vcpus"]),
        env["runs_per_irqchip"],
        plural(&env["runs_per_irqchip"]),
    );
    let summary: Vec<&Value> = doc["summary"].as_array().into_iter().flatten().collect();
    let run = |s: &Value| format!("{}/{}", text(&s["vmm"]), text(&s["irqchip"]));
    let _ = writeln!(
        out,
        "{:<12} {:<38} kernel uptime at init: median [min - max]",
        "run", "VMM start to init: median [min - max]",
    );
    for s in &summary {
        let _ = writeln!(
            out,
            "{:<12} {:<38} {}",
            run(s),
            secs(&s["start_to_init_s"]),
            secs(&s["uptime_at_init_s"]),
        );
    }
    // Exits only where the VMM counted them.
    let summary: Vec<&Value> = summary
        .into_iter()
        .filter(|s| s["exits_median"].is_object())
        .collect();
    let kinds: BTreeSet<&String> = summary
        .iter()
        .filter_map(|s| s["exits_median"].as_object())
        .flat_map(|m| m.keys())
        .collect();
    let _ = writeln!(out, "\nexits to the VMM per boot (median):");
    let _ = write!(out, "{:<24}", "kind");
    for s in &summary {
        let _ = write!(out, " {:>12}", run(s));
    }
    let _ = writeln!(out);
    for kind in kinds {
        let _ = write!(out, "{kind:<24}");
        for s in &summary {
            let _ = write!(
                out,
                " {:>12}",
                count(s["exits_median"][kind.as_str()].as_f64())
            );
        }
        let _ = writeln!(out);
    }
    let _ = write!(out, "{:<24}", "total");
    for s in &summary {
        let _ = write!(out, " {:>12}", count(s["exits_total_median"].as_f64()));
    }
    let _ = writeln!(out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    /// `bench-boot`'s arguments as xtask's command line parses them.
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse_args(a: &[&str]) -> std::result::Result<Options, clap::Error> {
        use clap::Parser;
        let argv = std::iter::once("bench-boot".to_string()).chain(args(a));
        Cli::try_parse_from(argv).map(|c| c.args.into())
    }

    #[test]
    fn options_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_args(&[]).unwrap(), Options::default());
        let o = parse_args(&["--runs", "5", "--cpus", "2", "--json", "b.json"]).unwrap();
        assert_eq!(
            o,
            Options {
                runs: 5,
                cpus: 2,
                vmms: vec!["uirq"],
                json: Some(PathBuf::from("b.json"))
            }
        );
        let o = parse_args(&["--vmm", "uirq,qemu,uirq"]).unwrap();
        assert_eq!(o.vmms, ["uirq", "qemu"]);
        for bad in [
            &["--runs"][..],
            &["--runs", "0"],
            &["--runs", "51"],
            &["--cpus", "9"],
            &["--samples", "3"],
            &["--vmm", "kvmtool"],
        ] {
            assert!(parse_args(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn boots_alternate_irqchips_and_carry_the_mark_and_exit_stats() {
        let o = Options {
            runs: 2,
            cpus: 2,
            vmms: vec!["uirq"],
            json: None,
        };
        let jobs = jobs(std::path::Path::new("/k"), std::path::Path::new("/i"), &o);
        let chips: Vec<&str> = jobs
            .iter()
            .map(|j| {
                let at = j.iter().position(|a| a == "--irqchip").unwrap();
                j[at + 1].as_str()
            })
            .collect();
        assert_eq!(chips, ["user", "kernel", "user", "kernel"]);
        for j in &jobs {
            assert_eq!(j[0], "@mark=uirq-linux-init: started");
            assert!(j.contains(&"--exit-stats".to_string()));
            assert!(j.windows(2).any(|w| w == ["--cpus", "2"]));
        }
    }

    #[test]
    fn qemu_boots_get_the_same_kernel_initrd_command_line_ram_and_cpus() {
        let o = Options {
            runs: 2,
            cpus: 2,
            vmms: vec!["uirq", "qemu"],
            json: None,
        };
        let jobs = jobs(std::path::Path::new("/k"), std::path::Path::new("/i"), &o);
        assert_eq!(jobs.len(), 8);
        let qemu: Vec<String> = jobs.iter().map(|j| j.join(" ")).collect();
        assert!(
            qemu[2].starts_with("@mark=uirq-linux-init: started @timeout-s=600 @qemu "),
            "{}",
            qemu[2]
        );
        assert_eq!(
            QEMU_BOOT_TIMEOUT.as_secs().to_string(),
            linux::DEFAULT_TIMEOUT_S
        );
        assert!(qemu[2].contains("kernel_irqchip=off"), "{}", qemu[2]);
        assert!(qemu[3].contains("kernel_irqchip=on"), "{}", qemu[3]);
        assert!(
            qemu[6].contains("kernel_irqchip=off"),
            "round two: {}",
            qemu[6]
        );
        let uirq = &jobs[0];
        let value = |job: &[String], opt: &str| {
            let at = job.iter().position(|a| a == opt).unwrap();
            job[at + 1].clone()
        };
        assert_eq!(value(&jobs[2], "-kernel"), value(uirq, "--kernel"));
        assert_eq!(value(&jobs[2], "-initrd"), value(uirq, "--initrd"));
        assert_eq!(value(&jobs[2], "-append"), value(uirq, "--cmdline"));
        assert_eq!(value(&jobs[2], "-m"), value(uirq, "--ram-mib"));
        assert_eq!(value(&jobs[2], "-smp"), value(uirq, "--cpus"));
    }

    // QEMU's boots need no exit statistics (its exits are not seen) and
    // show in the time table, not the exits table.
    #[test]
    fn qemu_boots_are_timed_without_exit_statistics() {
        let o = Options {
            runs: 1,
            vmms: vec!["uirq", "qemu"],
            ..Options::default()
        };
        let init = "uirq-linux-init: started, kernel uptime 4.00 s\n";
        let results = [
            result(&console(10.0, "user", 100, ""), Some(0), Some(12.0)),
            result(&console(8.0, "kernel", 5, ""), Some(0), Some(9.0)),
            result(init, Some(0), Some(6.5)),
            result(init, Some(0), Some(5.0)),
        ];
        let boots = collect(&results, &o.keys()).unwrap();
        assert_eq!(boots[2].vmm, "qemu");
        assert!(boots[2].exits.is_empty());
        let env = Environment {
            kind: "nested",
            kernel: "6.12".into(),
            qemu: None,
        };
        let doc = combine(&env, &o, &boots);
        assert_eq!(doc["summary"][2]["vmm"], "qemu");
        assert_eq!(doc["summary"][2]["start_to_init_s"]["median"], 6.5);
        assert!(doc["summary"][2]["exits_median"].is_null());
        let text = table(&doc);
        assert!(
            text.contains("\nqemu/user    6.50 s [6.50 - 6.50]"),
            "{text}"
        );
        let exits_header = text.lines().find(|l| l.starts_with("kind")).unwrap();
        assert!(!exits_header.contains("qemu"), "{exits_header}");
        // A QEMU boot that never reached init still fails the benchmark.
        let err = collect(
            &[
                results[0].clone(),
                results[1].clone(),
                result("", Some(0), None),
            ],
            &o.keys(),
        )
        .unwrap_err();
        assert!(err.contains("boot 3 (qemu/user) never printed"), "{err}");
    }

    #[test]
    fn medians_take_the_middle() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
    }

    /// A job's result: the console, and the `@@exits` report after the
    /// first line that starts with `@@exits ` (as the job runner sets a
    /// tagged report apart).
    fn result(console: &str, exit: Option<i32>, mark_s: Option<f64>) -> JobResult {
        let (console, exits) = match console.split_once("@@exits ") {
            Some((before, report)) => (before.to_string(), Some(report.trim_end())),
            None => (console.to_string(), None),
        };
        JobResult {
            console,
            exit_code: exit,
            mark: mark_s.map(Duration::from_secs_f64),
            reports: exits
                .map(|text| jobs::Report {
                    keyword: report::EXITS,
                    text: text.to_string(),
                })
                .into_iter()
                .collect(),
            ..JobResult::default()
        }
    }

    fn console(uptime: f64, chip: &str, mmio: u64, extra: &str) -> String {
        format!(
            "uirq-linux-init: started, kernel uptime {uptime:.2} s\n\
             uirq-linux-init: kernel 6.12.117+deb12-arm64, 1 CPU online, counter frequency 62500000 Hz\n\
             @@exits {{\"irqchip\":\"{chip}\",\"cpus\":1,\"run_ms\":1000.0,\"exits\":{{\"mmio\":{mmio}{extra}}}}}\n"
        )
    }

    #[test]
    fn boots_are_summarised_per_irqchip_with_every_exit_kind() {
        let results = [
            result(
                &console(10.0, "user", 100, ",\"timer_level\":40"),
                Some(0),
                Some(12.0),
            ),
            result(&console(8.0, "kernel", 5, ""), Some(0), Some(9.0)),
            result(
                &console(11.0, "user", 300, ",\"timer_level\":60"),
                Some(0),
                Some(14.0),
            ),
            result(&console(9.0, "kernel", 7, ""), Some(0), Some(10.0)),
        ];
        let boots = collect(&results, &Options::default().keys()).unwrap();
        assert_eq!(boots.len(), 4);
        let env = Environment {
            kind: "nested",
            kernel: "6.12.117+deb12-arm64".into(),
            qemu: Some("QEMU emulator version 7.2.22".into()),
        };
        let doc = combine(&env, &Options::default(), &boots);
        assert_eq!(doc["environment"]["cntfrq_hz"], 62_500_000);
        assert_eq!(doc["environment"]["guest_kernel"], "6.12.117+deb12-arm64");
        let user = &doc["summary"][0];
        assert_eq!(
            (&user["vmm"], &user["irqchip"]),
            (&json!("uirq"), &json!("user"))
        );
        assert_eq!(user["runs"], 2);
        assert_eq!(user["start_to_init_s"]["median"], 13.0);
        assert_eq!(user["start_to_init_s"]["min"], 12.0);
        assert_eq!(user["uptime_at_init_s"]["max"], 11.0);
        assert_eq!(user["exits_median"]["mmio"], 200.0);
        assert_eq!(user["exits_median"]["timer_level"], 50.0);
        assert_eq!(user["exits_total_median"], 250.0);
        let kernel = &doc["summary"][1];
        assert_eq!(kernel["exits_median"]["mmio"], 6.0);
        assert!(kernel["exits_median"]["timer_level"].is_null());
        assert_eq!(doc["runs"].as_array().unwrap().len(), 4);
        let text = table(&doc);
        assert!(text.contains("13.00 s [12.00 - 14.00]"), "{text}");
        assert!(text.contains("CNTFRQ 62500000 Hz"), "{text}");
        assert!(text.contains("timer_level"), "{text}");
        // A kind the other irqchip never had shows as a dash there.
        let row = text.lines().find(|l| l.starts_with("timer_level")).unwrap();
        assert!(row.trim_end().ends_with('-'), "{row}");
    }

    #[test]
    fn a_boot_that_failed_or_never_reached_init_fails_the_benchmark() {
        let good = result(&console(10.0, "user", 1, ""), Some(0), Some(12.0));
        let reset = result("Kernel panic - not syncing", Some(126), None);
        let no_mark = result(&console(10.0, "user", 1, ""), Some(0), None);
        let no_stats = result(
            "uirq-linux-init: started, kernel uptime 1.00 s",
            Some(0),
            Some(1.0),
        );
        let keys = Options::default().keys();
        let err = collect(&[good.clone(), reset, no_mark, no_stats], &keys).unwrap_err();
        assert!(err.starts_with("3 of 4 boots failed"), "{err}");
        assert!(
            err.contains("boot 2 (uirq/kernel) exited with 126"),
            "{err}"
        );
        assert!(err.contains("Kernel panic"), "{err}");
        assert!(err.contains("boot 3 (uirq/user) never printed"), "{err}");
        assert!(
            err.contains("boot 4 (uirq/kernel) gave no exit statistics"),
            "{err}"
        );
        assert!(collect(&[good], &keys).is_ok());
        // The guest printing a report of its own proves nothing: only a
        // tagged one counts, and this console has none.
        let forged = JobResult {
            console: console(10.0, "user", 1, ""),
            exit_code: Some(0),
            mark: Some(Duration::from_secs(12)),
            ..JobResult::default()
        };
        let err = collect(&[forged], &keys).unwrap_err();
        assert!(err.contains("gave no exit statistics"), "{err}");
    }
}
