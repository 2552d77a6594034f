//! `cargo xtask bench-latency`: interrupt latency through the userspace GIC,
//! set against KVM's in-kernel vGICv2 in the same run and, with `--vmm
//! uirq,qemu`, against QEMU's own userspace GICv2 (`kernel_irqchip=off`)
//! and QEMU on the in-kernel vGICv2.
//!
//! Each (VMM, irqchip) is one run of the firmware's `bench` program (all
//! in one boot of L1 when nested). Under QEMU no VMM reads the firmware's
//! result buffer, so the firmware prints it (`uirq_abi::bench_dump`) and
//! this module summarises it with `uirq_host::bench`, the code `uirq-vmm`
//! uses for its own runs: every figure of every row is computed the same
//! way. Each VMM also runs a trivial guest (`oneshot`) once per irqchip,
//! for its peak memory and its start-to-exit time ([`Footprint`]).
//!
//! `uirq-vmm` prints one `@@bench <tag> {json}` line with
//! the statistics it computed from the firmware's result buffer and its own
//! timeline (the tag makes it the VMM's: `uirq_abi::report`) and, with
//! `--raw`, every sample in `@@samples` lines. Both are the types of
//! `uirq_abi::bench_json`, which the VMM writes and this module reads; it
//! puts the runs side by side, whole, in a `bench_json::Document`, adds the
//! environment and the ratios, prints the tables and writes the JSON and
//! the SVG plot. Where those go is checked before the runs start, so a
//! typo costs seconds, not the benchmark.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use uirq_abi::bench_json::{
    self, Document, Footprint, Measurement, Ratio, RawSamples, RunReport, SampleChunk, VmmWork,
    SCHEMA_VERSION,
};
use uirq_abi::boot::Program;
use uirq_abi::{bench_dump, report};

use crate::jobs::{self, Environment, JobResult};
use crate::{build, check_output_path, progress, Result};

/// Command-line options of `bench-latency`.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Samples per measurement.
    pub samples: u64,
    /// Warm-up samples per measurement.
    pub warmup: u64,
    /// Irqchips to measure, in order.
    pub irqchips: Vec<&'static str>,
    /// VMMs to measure, in order: `uirq`, `qemu`.
    pub vmms: Vec<&'static str>,
    /// vCPUs of the benchmark VM: 2 or more adds the ipi measurement.
    pub cpus: usize,
    /// Where to write the JSON.
    pub json: Option<PathBuf>,
    /// Where to write the SVG plot.
    pub plot: Option<PathBuf>,
    /// Put every sample in the JSON, not only the summaries.
    pub raw: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            samples: 10_000,
            warmup: 100,
            irqchips: vec!["user", "kernel"],
            vmms: vec!["uirq"],
            cpus: 2,
            json: None,
            plot: None,
            raw: false,
        }
    }
}

/// The measurements the VMM may report, in table order (`ipi` only with 2
/// or more vCPUs).
pub const MEASUREMENTS: [&str; 4] = ["vtimer", "sgi", "mmio", "ipi"];

/// Which irqchips `bench-latency` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IrqchipChoice {
    /// The userspace GIC only.
    User,
    /// KVM's in-kernel vGICv2 only.
    Kernel,
    /// Both, the userspace GIC first.
    Both,
}

impl IrqchipChoice {
    /// The irqchips to measure, in order.
    pub fn irqchips(self) -> Vec<&'static str> {
        match self {
            IrqchipChoice::User => vec!["user"],
            IrqchipChoice::Kernel => vec!["kernel"],
            IrqchipChoice::Both => vec!["user", "kernel"],
        }
    }
}

/// A VMM `bench-latency` can measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum VmmChoice {
    /// This project's `uirq-vmm`.
    Uirq,
    /// `qemu-system-aarch64` with KVM (`-M virt,gic-version=2`), its own
    /// userspace GICv2 with `kernel_irqchip=off`.
    Qemu,
}

impl VmmChoice {
    /// The names of `choices` in the order given, each once.
    pub fn names(choices: &[VmmChoice]) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for c in choices {
            if !names.contains(&c.name()) {
                names.push(c.name());
            }
        }
        names
    }

    /// Its name in rows and JSON.
    pub fn name(self) -> &'static str {
        match self {
            VmmChoice::Uirq => "uirq",
            VmmChoice::Qemu => "qemu",
        }
    }
}

/// The command line of `bench-latency`; [`Options`] once converted.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct Args {
    /// Samples per measurement, 1 to 16384.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=16_384))]
    pub samples: u64,
    /// Warm-up samples per measurement, 1 to 10000.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub warmup: u64,
    /// The irqchips to measure.
    #[arg(long, value_enum, default_value_t = IrqchipChoice::Both)]
    pub irqchip: IrqchipChoice,
    /// The VMMs to measure, comma-separated: `uirq` (this project's) and
    /// `qemu` (QEMU with KVM: its own userspace GICv2 with
    /// kernel_irqchip=off, KVM's vGICv2 with kernel_irqchip=on).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "uirq")]
    pub vmm: Vec<VmmChoice>,
    /// vCPUs of the benchmark VM, 1 to 8; 2 or more adds the ipi measurement.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=8))]
    pub cpus: usize,
    /// Write the results as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write an SVG plot of the latency distributions to PATH.
    #[arg(long, value_name = "PATH.svg")]
    pub plot: Option<PathBuf>,
    /// Put every sample, in counter ticks and ns, into the JSON (without it,
    /// the JSON holds summaries only; schema: docs/bench-json.md).
    #[arg(long)]
    pub raw: bool,
}

impl From<Args> for Options {
    fn from(a: Args) -> Self {
        Self {
            samples: a.samples,
            warmup: a.warmup,
            irqchips: a.irqchip.irqchips(),
            vmms: VmmChoice::names(&a.vmm),
            cpus: a.cpus,
            json: a.json,
            plot: a.plot,
            raw: a.raw,
        }
    }
}

/// Builds everything, runs the benchmark and reports it. Returns the
/// document `--json` writes.
pub fn run(o: &Options) -> Result<Document> {
    run_with(&build::all()?, o)
}

/// Runs the benchmark with already built `artifacts` and reports it.
pub fn run_with(artifacts: &crate::project::Artifacts, o: &Options) -> Result<Document> {
    // Before the long run, not after it.
    if let Some(path) = &o.json {
        check_output_path(path, "--json")?;
    }
    if let Some(path) = &o.plot {
        check_output_path(path, "--plot")?;
    }
    let keys = run_keys(o);
    let elf = crate::qemu_plain::elf_of(&artifacts.guest_image);
    // The benchmark runs first, then one trivial guest per run: the
    // footprints.
    let mut jobs: Vec<Vec<String>> = keys
        .iter()
        .map(|k| bench_job(&elf, o, *k))
        .chain(keys.iter().map(|k| footprint_job(&elf, *k)))
        .collect();
    // Which QEMU ran the qemu rows, in its own words.
    let with_qemu = o.vmms.contains(&"qemu");
    if with_qemu {
        jobs.push(qemu_version_job());
    }

    progress(format!(
        "measuring {} x {} samples per run ({}, {} vCPU{})",
        if o.cpus >= 2 { 4 } else { 3 },
        o.samples,
        keys.iter()
            .map(RunKey::label)
            .collect::<Vec<_>>()
            .join(", "),
        o.cpus,
        if o.cpus == 1 { "" } else { "s" }
    ));
    let started = Instant::now();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (env, results) = std::thread::scope(|scope| {
        // The progress indicator: the runs print nothing per sample.
        scope.spawn(|| {
            let mut last = Instant::now();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if last.elapsed() >= Duration::from_secs(10) {
                    last = Instant::now();
                    progress(format!(
                        "benchmark running, {} s",
                        started.elapsed().as_secs()
                    ));
                }
            }
        });
        let show = |line: &str| {
            let report = [report::BENCH, report::SAMPLES]
                .iter()
                .any(|k| line.strip_prefix(k).is_some_and(|r| r.starts_with(' ')));
            // The firmware's dump under QEMU is for this module, not for
            // people.
            if !report && !line.starts_with(bench_dump::PREFIX) {
                println!("{line}");
            }
        };
        let r = jobs::run(
            artifacts,
            &jobs,
            "bench",
            Some(&show),
            Duration::from_secs(2400),
        );
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    })?;

    let (bench_results, rest) = results.split_at(keys.len());
    let (footprint_results, version) = rest.split_at(keys.len());
    let mut runs = Vec::new();
    for (key, r) in keys.iter().zip(bench_results) {
        ensure_exited(r, &format!("the {} run", key.label()))?;
        runs.push(match key.vmm {
            "qemu" => read_dumped_run(r, key.irqchip, o.raw, unix_now())?,
            _ => read_run(r, key.irqchip, o.raw)?,
        });
    }
    let mut footprints = Vec::new();
    for (key, r) in keys.iter().zip(footprint_results) {
        footprints.push(footprint(*key, r)?);
    }
    let mut doc = combine(&env, o, runs, footprints, unix_now());
    doc.environment.peer_qemu = version
        .first()
        .and_then(|r| {
            r.console
                .lines()
                .find(|l| l.starts_with("QEMU emulator version"))
        })
        .map(str::to_string);
    if with_qemu && doc.environment.peer_qemu.is_none() {
        return Err(format!(
            "QEMU did not say its version:\n{}",
            version.first().map_or("", |r| r.console.as_str())
        ));
    }
    print!("{}", tables(&doc));
    progress(format!("benchmark took {} s", started.elapsed().as_secs()));
    if let Some(path) = &o.json {
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        progress(format!("wrote {}", path.display()));
    }
    if let Some(path) = &o.plot {
        std::fs::write(path, plot_svg(&doc))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        progress(format!("wrote {}", path.display()));
    }
    Ok(doc)
}

/// Seconds since the Unix epoch (0 on a clock set before it).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Guest RAM of the trivial guest, in MiB: what `crate::qemu_plain` gives
/// QEMU, and so what `uirq-vmm` gets too.
pub const GUEST_RAM_MIB: u64 = crate::qemu_plain::RAM_MIB;

/// Upper bound for one run under QEMU, in seconds (the VMM's runs have
/// `--timeout`).
pub const QEMU_TIMEOUT_S: u64 = 1200;

/// One run of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunKey {
    /// `uirq` or `qemu`.
    pub vmm: &'static str,
    /// `user` or `kernel`.
    pub irqchip: &'static str,
}

impl RunKey {
    /// `vmm/irqchip`, as rows and ratios name a run.
    pub fn label(&self) -> String {
        format!("{}/{}", self.vmm, self.irqchip)
    }
}

/// The runs `o` asks for, in order: each VMM with each irqchip.
pub fn run_keys(o: &Options) -> Vec<RunKey> {
    o.vmms
        .iter()
        .flat_map(|&vmm| {
            o.irqchips
                .iter()
                .map(move |&irqchip| RunKey { vmm, irqchip })
        })
        .collect()
}

/// The job of the benchmark run `key`: `uirq-vmm`'s arguments, or QEMU's
/// after the `@qemu` field, for the firmware ELF `elf`.
pub fn bench_job(elf: &Path, o: &Options, key: RunKey) -> Vec<String> {
    if key.vmm == "qemu" {
        return qemu_job(
            elf,
            key.irqchip,
            Program::Bench,
            [o.samples, o.warmup],
            o.cpus,
        );
    }
    let mut args = [
        "--program",
        "bench",
        "--samples",
        &o.samples.to_string(),
        "--warmup",
        &o.warmup.to_string(),
        "--irqchip",
        key.irqchip,
        "--cpus",
        &o.cpus.to_string(),
        "--timeout",
        "1200",
    ]
    .map(String::from)
    .to_vec();
    if o.raw {
        args.push("--raw-samples".into());
    }
    args
}

/// The job of `key`'s trivial guest: `oneshot` (one timer interrupt, then
/// SYSTEM_OFF) on one vCPU with [`GUEST_RAM_MIB`].
pub fn footprint_job(elf: &Path, key: RunKey) -> Vec<String> {
    if key.vmm == "qemu" {
        return qemu_job(elf, key.irqchip, Program::OneShot, [0, 0], 1);
    }
    [
        "--program",
        "oneshot",
        "--irqchip",
        key.irqchip,
        "--cpus",
        "1",
        "--ram-mib",
        &GUEST_RAM_MIB.to_string(),
        "--timeout",
        "60",
    ]
    .map(String::from)
    .to_vec()
}

/// A `@qemu` job: the firmware `elf` as `program` (with `args` in the boot
/// block) under QEMU with KVM on `cpus` vCPUs, with QEMU's own GICv2
/// (`irqchip` `user`: `kernel_irqchip=off`, the interrupt controller in
/// QEMU, which needs KVM_CAP_ARM_USER_IRQ exactly as `uirq-vmm` does) or
/// KVM's (`kernel`).
pub fn qemu_job(
    elf: &Path,
    irqchip: &str,
    program: Program,
    args: [u64; 2],
    cpus: usize,
) -> Vec<String> {
    crate::qemu_plain::kvm_job(
        irqchip != "user",
        elf,
        program,
        args,
        cpus,
        Duration::from_secs(QEMU_TIMEOUT_S),
    )
}

/// The job that asks the QEMU that runs the qemu rows for its version.
pub fn qemu_version_job() -> Vec<String> {
    let fields = crate::jobs::JobFields {
        qemu: true,
        timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let mut job = fields.to_args();
    job.push("-version".into());
    job
}

/// Fails unless `r` ran to its end with exit code 0.
fn ensure_exited(r: &JobResult, what: &str) -> Result<()> {
    match r.exit_code {
        Some(0) => Ok(()),
        Some(code) => Err(format!("{what} failed (exit code {code}):\n{}", r.console)),
        None => Err(format!(
            "{what} failed (no exit code: it never finished):\n{}",
            r.console
        )),
    }
}

/// The footprint of `key` from its trivial guest's job `r`.
pub fn footprint(key: RunKey, r: &JobResult) -> Result<Footprint> {
    let what = format!("the {} trivial guest (oneshot)", key.label());
    ensure_exited(r, &what)?;
    // QEMU exits 0 whatever the guest decided: the verdict is its line.
    if !r.console.contains("scenario oneshot: PASS") {
        return Err(format!("{what} did not pass:\n{}", r.console));
    }
    Ok(Footprint {
        vmm: key.vmm.into(),
        irqchip: key.irqchip.into(),
        guest_ram_mib: GUEST_RAM_MIB,
        peak_rss_kib: r.peak_rss_kib,
        start_to_exit_ms: r.wall.map(|d| d.as_secs_f64() * 1e3),
    })
}

/// The run of `chip` under QEMU, from the firmware's dump of its result
/// buffer in `r`'s console, summarised as `uirq-vmm` summarises its own
/// (`uirq_host::bench::run_report`); exits per sample are unknown there.
pub fn read_dumped_run(
    r: &JobResult,
    chip: &'static str,
    raw: bool,
    unix_secs: u64,
) -> Result<RunReport> {
    let what = format!("the qemu/{chip} run");
    let size = uirq_abi::bench::RESULTS_SIZE as usize;
    let words = bench_dump::decode_lines(r.console.lines(), (size / 8) as u64)
        .map_err(|e| format!("{what}'s buffer dump: {e}:\n{}", r.console))?;
    let bytes = bench_dump::rebuild(&words, size).ok_or_else(|| {
        format!("{what}'s buffer dump does not fill the regions its header names")
    })?;
    let results =
        uirq_host::bench::decode(&bytes).map_err(|e| format!("{what}'s result buffer: {e}"))?;
    let mut run = uirq_host::bench::run_report(
        &results,
        uirq_host::bench::RunContext {
            tool: "xtask",
            vmm: "qemu",
            irqchip: chip,
            vcpus: results.header.cpus,
            exits: None,
            timeline: Vec::new(),
            timebase: "guest counter only (QEMU's own work is not seen)".into(),
            vmm_rss_kib: None,
            unix_secs,
        },
    );
    if raw {
        for (m, (_, ticks)) in run
            .results
            .iter_mut()
            .zip(uirq_host::bench::sample_ticks(&results))
        {
            m.raw = Some(RawSamples::from_ticks(ticks, results.header.cntfrq));
        }
    }
    Ok(run)
}

/// The run of `chip` as its VMM reported it: the `@@bench` report and,
/// with `raw`, every sample from the `@@samples` reports joined into its
/// measurements.
pub fn read_run(r: &JobResult, chip: &str, raw: bool) -> Result<RunReport> {
    let text = r
        .report(report::BENCH)
        .ok_or_else(|| format!("the {chip} irqchip run printed no figures:\n{}", r.console))?;
    let mut run = decode_report(text).map_err(|e| format!("the {chip} run's figures: {e}"))?;
    if run.irqchip != chip || run.vmm != "uirq" {
        return Err(format!(
            "the {chip} run's figures are for the {} irqchip",
            run.irqchip
        ));
    }
    if raw {
        let chunks = r
            .reports_of(report::SAMPLES)
            .map(serde_json::from_str::<SampleChunk>)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| format!("the {chip} run's samples do not parse: {e}"))?;
        attach_samples(&mut run, &chunks)?;
    }
    Ok(run)
}

/// Decodes a `@@bench` report, refusing one of another schema version.
pub fn decode_report(text: &str) -> Result<RunReport> {
    // The version alone first: a VMM of another schema is named as such,
    // not as a missing field.
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let version = value.get("schema_version").and_then(|v| v.as_u64());
    if version != Some(u64::from(SCHEMA_VERSION)) {
        return Err(format!(
            "schema version {}, this xtask reads {SCHEMA_VERSION} (a VMM built from other sources?)",
            version.map_or("none".into(), |v| v.to_string())
        ));
    }
    serde_json::from_value(value).map_err(|e| format!("do not decode: {e}"))
}

/// Joins `chunks` into the raw samples of each of `run`'s measurements;
/// every measurement must get exactly its samples, and every chunk must
/// belong to one.
pub fn attach_samples(run: &mut RunReport, chunks: &[SampleChunk]) -> Result<()> {
    if let Some(c) = chunks
        .iter()
        .find(|c| !run.results.iter().any(|m| m.measurement == c.measurement))
    {
        return Err(format!(
            "the {} run printed samples of a measurement it does not have ({})",
            run.irqchip, c.measurement
        ));
    }
    for m in &mut run.results {
        let expected = m.summary.count + m.summary.negative;
        let ticks = bench_json::join(&m.measurement, chunks, expected)
            .map_err(|e| format!("the {} run's {} samples: {e}", run.irqchip, m.measurement))?;
        m.raw = Some(RawSamples::from_ticks(ticks, run.cntfrq_hz));
    }
    Ok(())
}

/// `a / b` where that is a number.
fn ratio(a: f64, b: f64) -> Option<f64> {
    let r = a / b;
    (b != 0.0 && r.is_finite()).then_some(r)
}

/// The measurement `name` of the run `label` (`vmm/irqchip`) among `runs`.
fn find<'a>(runs: &'a [RunReport], label: &str, name: &str) -> Option<&'a Measurement> {
    runs.iter()
        .filter(|r| format!("{}/{}", r.vmm, r.irqchip) == label)
        .flat_map(|r| &r.results)
        .find(|m| m.measurement == name)
}

/// The ratios the document gives, as (of, over): the userspace GIC over
/// the in-kernel one in each VMM, this VMM's userspace GIC over QEMU's,
/// and the in-kernel vGIC under each VMM (where only the VMM differs).
pub const RATIOS: [(&str, &str); 4] = [
    ("uirq/user", "uirq/kernel"),
    ("uirq/user", "qemu/user"),
    ("qemu/user", "qemu/kernel"),
    ("uirq/kernel", "qemu/kernel"),
];

/// The output document: the environment, the VMM's `runs` whole, and the
/// figures derived from them, stamped `unix_secs` seconds after the epoch.
pub fn combine(
    env: &Environment,
    o: &Options,
    runs: Vec<RunReport>,
    footprints: Vec<Footprint>,
    unix_secs: u64,
) -> Document {
    let ratios = RATIOS
        .into_iter()
        .flat_map(|(of, over)| {
            let runs = &runs;
            MEASUREMENTS.into_iter().filter_map(move |name| {
                let (a, b) = (find(runs, of, name)?, find(runs, over, name)?);
                Some(Ratio {
                    measurement: name.into(),
                    of: of.into(),
                    over: over.into(),
                    p50: ratio(a.summary.p50_ns, b.summary.p50_ns),
                    p99: ratio(a.summary.p99_ns, b.summary.p99_ns),
                })
            })
        })
        .collect();
    // The VMM's own work per timer interrupt against the user path's p50.
    let vmm_work = runs
        .iter()
        .filter(|r| r.vmm == "uirq" && r.irqchip == "user")
        .flat_map(|r| &r.stages)
        .find(|s| s.stage == "vmm_work_per_irq")
        .map(|s| VmmWork {
            per_timer_irq_p50_ns: s.summary.p50_ns,
            share_of_user_vtimer_p50: find(&runs, "uirq/user", "vtimer")
                .and_then(|m| ratio(s.summary.p50_ns, m.summary.p50_ns)),
        });
    Document {
        schema_version: SCHEMA_VERSION,
        tool: "xtask".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        timestamp: bench_json::rfc3339_utc(unix_secs),
        environment: bench_json::Environment {
            kind: env.kind.into(),
            host_kernel: env.kernel.clone(),
            qemu: env.qemu.clone(),
            vmms: o.vmms.iter().map(|v| v.to_string()).collect(),
            peer_qemu: None,
            build_machine: std::env::consts::ARCH.into(),
            samples: o.samples,
            warmup: o.warmup,
            vcpus: o.cpus as u64,
            raw_samples: o.raw,
        },
        runs,
        ratios,
        footprints,
        vmm_work,
    }
}

/// "1 us", "10 us", "100 us", "1 ms" for 10^decade nanoseconds.
fn decade_label(decade: i32) -> String {
    let units = ["ns", "us", "ms", "s"];
    let unit = (decade.max(0) / 3).min(3);
    let value = 10i64.pow((decade.max(0) - 3 * unit) as u32);
    format!("{value} {}", units[unit as usize])
}

/// A duration in ns as people read it: `812 ns`, `3.4 us`, `1.25 ms` (`-` for none).
pub fn ns(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x >= 1e6 {
        format!("{:.2} ms", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} us", x / 1e3)
    } else {
        format!("{x:.0} ns")
    }
}

/// Fewest samples for which the tables show p99.9: with fewer, the 99.9th
/// percentile is the largest sample, which the max column already shows.
pub const P999_MIN_SAMPLES: u64 = 1000;

/// Lays out `rows` (the first is the header) in columns as wide as their
/// widest cell, two spaces apart, each line after `indent`. `right[c]`
/// right-aligns column `c` (numbers); the others are left-aligned.
fn layout(rows: &[Vec<String>], right: &[bool], indent: &str) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::from(indent);
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            if right.get(c).copied().unwrap_or(false) {
                let _ = write!(line, "{cell:>w$}", w = widths[c]);
            } else {
                let _ = write!(line, "{cell:<w$}", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn cells<const N: usize>(texts: [&str; N]) -> Vec<String> {
    texts.iter().map(|t| t.to_string()).collect()
}

/// `vmm/irqchip` of a run.
fn label(r: &RunReport) -> String {
    format!("{}/{}", r.vmm, r.irqchip)
}

/// The human-readable tables for `doc`.
pub fn tables(doc: &Document) -> String {
    let mut out = String::new();
    let env = &doc.environment;
    let _ = writeln!(
        out,
        "\nInterrupt latency, {} ({} kernel{}){}, {} vCPU{}, {} samples per measurement",
        env.kind,
        env.host_kernel,
        env.qemu
            .as_deref()
            .map(|q| format!(", {q}"))
            .unwrap_or_default(),
        env.peer_qemu
            .as_deref()
            .map(|q| format!("; qemu rows: {q} with KVM"))
            .unwrap_or_default(),
        env.vcpus,
        if env.vcpus == 1 { "" } else { "s" },
        env.samples,
    );
    // The comparison first: one row per run, p50 / p99 per measurement.
    let present: Vec<&str> = MEASUREMENTS
        .into_iter()
        .filter(|name| {
            doc.runs
                .iter()
                .any(|r| r.results.iter().any(|m| m.measurement == *name))
        })
        .collect();
    let mut header = vec!["run".to_string()];
    header.extend(present.iter().map(|m| format!("{m} p50 / p99")));
    let mut rows = vec![header];
    for r in &doc.runs {
        let mut row = vec![label(r)];
        for name in &present {
            row.push(
                r.results
                    .iter()
                    .find(|m| m.measurement == *name)
                    .map_or("-".into(), |m| {
                        format!("{} / {}", ns(m.summary.p50_ns), ns(m.summary.p99_ns))
                    }),
            );
        }
        rows.push(row);
    }
    let mut right = vec![true; present.len() + 1];
    right[0] = false;
    out.push_str(&layout(&rows, &right, ""));
    if !doc.ratios.is_empty() {
        let _ = writeln!(out, "\nratios:");
        let x = |r: Option<f64>| r.map_or("-".into(), |r| format!("x{r:.2}"));
        let mut rows = vec![cells(["measure", "run", "over", "p50", "p99"])];
        for r in &doc.ratios {
            rows.push(vec![
                r.measurement.clone(),
                r.of.clone(),
                r.over.clone(),
                x(r.p50),
                x(r.p99),
            ]);
        }
        out.push_str(&layout(&rows, &[false, false, false, true, true], "  "));
    }
    if !doc.footprints.is_empty() {
        let _ = writeln!(
            out,
            "\nfootprint on a trivial guest (oneshot: one timer interrupt; {} MiB guest RAM):",
            doc.footprints[0].guest_ram_mib
        );
        let mut rows = vec![cells(["run", "peak RSS", "start to exit"])];
        for f in &doc.footprints {
            rows.push(vec![
                format!("{}/{}", f.vmm, f.irqchip),
                f.peak_rss_kib
                    .map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
                f.start_to_exit_ms
                    .map_or("-".into(), |ms| format!("{ms:.1} ms")),
            ]);
        }
        out.push_str(&layout(&rows, &[false, true, true], "  "));
    }

    let _ = writeln!(out, "\nevery run:");
    let mut runs = vec![cells([
        "run",
        "CNTFRQ Hz",
        "vCPUs",
        "guest anomalies",
        "VMM memory",
    ])];
    for r in &doc.runs {
        runs.push(vec![
            label(r),
            r.cntfrq_hz.to_string(),
            r.vcpus.to_string(),
            r.guest_anomalies.to_string(),
            r.vmm_rss_kib
                .map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        ]);
    }
    out.push_str(&layout(&runs, &[false, true, true, true, true], ""));
    let _ = writeln!(
        out,
        "\n(p99.9 from {P999_MIN_SAMPLES} samples; exits: exits to the VMM per sample, - where not seen; outl.: samples above Q3 + 3 IQR, kept; neg.: samples that ended before they began)"
    );
    let mut rows = vec![cells([
        "run", "measure", "count", "min", "p50", "p90", "p99", "p99.9", "max", "exits", "outl.",
        "neg.",
    ])];
    for r in &doc.runs {
        for m in &r.results {
            let s = &m.summary;
            rows.push(vec![
                label(r),
                m.measurement.clone(),
                s.count.to_string(),
                ns(s.min_ns),
                ns(s.p50_ns),
                ns(s.p90_ns),
                ns(s.p99_ns),
                if s.count >= P999_MIN_SAMPLES {
                    ns(s.p999_ns)
                } else {
                    "-".into()
                },
                ns(s.max_ns),
                m.exits_per_sample
                    .as_ref()
                    .map_or("-".into(), |e| format!("{:.2}", e.total)),
                s.outliers.to_string(),
                s.negative.to_string(),
            ]);
        }
    }
    let mut right = vec![true; 12];
    right[..2].copy_from_slice(&[false, false]);
    out.push_str(&layout(&rows, &right, ""));
    for r in doc.runs.iter().filter(|r| !r.stages.is_empty()) {
        let _ = writeln!(out, "\nvirtual-timer path through {}, by stage:", label(r));
        let mut rows = vec![cells(["stage", "p50", "p99", "interval"])];
        for s in &r.stages {
            rows.push(vec![
                s.stage.clone(),
                ns(s.summary.p50_ns),
                ns(s.summary.p99_ns),
                s.interval.clone(),
            ]);
        }
        out.push_str(&layout(&rows, &[false, true, true, false], "  "));
    }
    if let Some(w) = &doc.vmm_work {
        let _ = writeln!(
            out,
            "\nVMM work per timer interrupt: p50 {}{}",
            ns(w.per_timer_irq_p50_ns),
            w.share_of_user_vtimer_p50
                .map(|s| format!(" = {:.1}% of the user path's p50", s * 100.0))
                .unwrap_or_default()
        );
    }
    out
}

/// The histogram of `m` as edges and counts, if it has samples.
fn histogram(m: &Measurement) -> Option<(&[f64], &[u64])> {
    let h = &m.summary.histogram;
    (h.edges_ns.len() == h.counts.len() + 1 && h.counts.iter().any(|&c| c > 0))
        .then_some((h.edges_ns.as_slice(), h.counts.as_slice()))
}

/// The decades (powers of ten, in ns) the plot's time axis spans: every
/// histogram of every run, so all panels share it.
pub fn x_domain(doc: &Document) -> (i32, i32) {
    let edges = doc
        .runs
        .iter()
        .flat_map(|r| &r.results)
        .filter_map(histogram)
        .flat_map(|(edges, _)| [edges[0], edges[edges.len() - 1]]);
    let (lo, hi) = edges.fold((f64::INFINITY, 0.0f64), |(lo, hi), e| {
        (lo.min(e), hi.max(e))
    });
    if !lo.is_finite() {
        return (2, 5);
    }
    let lo = lo.max(1.0).log10().floor() as i32;
    let hi = (hi.max(1.0).log10().ceil() as i32).max(lo + 1);
    (lo, hi)
}

/// A tick step for an axis spanning `max`: 1, 2 or 5 times a power of
/// ten, giving at most `most` steps (1 for an empty or unusable span).
/// The latency plot's axes and `trace_svg`'s time axis use it.
pub(crate) fn tick_step(max: f64, most: u32) -> f64 {
    let raw = max / f64::from(most);
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// One irqchip's histogram in a panel of the plot.
struct Series<'a> {
    chip: &'a str,
    color: &'a str,
    m: &'a Measurement,
    edges: &'a [f64],
    counts: &'a [u64],
}

/// An SVG with one panel per measurement, the latency distributions of
/// every irqchip in it on one logarithmic time axis shared by all panels.
///
/// Written by hand: a few panels of step lines, ticks and labels need no
/// plotting library, and the output stays small and diffable. Each panel is
/// a `<g class="panel">` with its time axis's range in `data-x-domain-ns`;
/// ticks, their labels and the axis titles carry classes of their own
/// (`x-tick`, `x-tick-label`, `y-tick`, `y-tick-label`, `x-axis-title`,
/// `y-axis-title`).
pub fn plot_svg(doc: &Document) -> String {
    const W: f64 = 960.0;
    const PANEL_H: f64 = 220.0;
    const GAP: f64 = 64.0;
    const LEFT: f64 = 90.0;
    const RIGHT: f64 = 40.0;
    const TOP: f64 = 50.0;
    let colors = [
        ("uirq/user", "#1f77b4"),
        ("uirq/kernel", "#ff7f0e"),
        ("qemu/user", "#2ca02c"),
        ("qemu/kernel", "#d62728"),
    ];
    let names: Vec<&str> = MEASUREMENTS
        .into_iter()
        .filter(|name| {
            colors
                .iter()
                .any(|(c, _)| find(&doc.runs, c, name).is_some())
        })
        .collect();
    let (lo, hi) = x_domain(doc);
    let px = |v: f64| {
        LEFT + (v.max(1.0).log10() - f64::from(lo)) / f64::from(hi - lo) * (W - LEFT - RIGHT)
    };
    let h = TOP + names.len() as f64 * (PANEL_H + GAP);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"24\" font-size=\"16\">Interrupt latency by VMM and irqchip: {} ({}, {} samples)</text>\n",
        colors
            .iter()
            .filter(|(run, _)| doc.runs.iter().any(|r| label(r) == *run))
            .map(|(run, _)| *run)
            .collect::<Vec<_>>()
            .join(", "),
        doc.environment.kind,
        doc.environment.samples
    );
    for (row, name) in names.iter().enumerate() {
        let y0 = TOP + row as f64 * (PANEL_H + GAP);
        let (top, bottom) = (y0 + 24.0, y0 + PANEL_H);
        let series: Vec<Series> = colors
            .iter()
            .filter_map(|&(chip, color)| {
                let m = find(&doc.runs, chip, name)?;
                let (edges, counts) = histogram(m)?;
                Some(Series {
                    chip,
                    color,
                    m,
                    edges,
                    counts,
                })
            })
            .collect();
        let _ = writeln!(
            s,
            "<g class=\"panel\" data-measurement=\"{name}\" data-x-domain-ns=\"{} {}\">\n\
             <text x=\"{LEFT}\" y=\"{}\" font-size=\"14\">{name}</text>",
            10f64.powi(lo),
            10f64.powi(hi),
            y0 + 14.0
        );
        // Share of a series' samples in its fullest bin, in percent.
        let peak = series
            .iter()
            .map(|x| {
                let total = x.counts.iter().sum::<u64>() as f64;
                x.counts.iter().copied().max().unwrap_or(0) as f64 / total * 100.0
            })
            .fold(0.0, f64::max)
            .max(1.0);
        let step = tick_step(peak, 5);
        let y_max = (peak / step).ceil() * step;
        let py = |percent: f64| bottom - percent / y_max * (bottom - top);
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"black\"/>\
             <line x1=\"{LEFT}\" y1=\"{top}\" x2=\"{LEFT}\" y2=\"{bottom}\" stroke=\"black\"/>",
            W - RIGHT
        );
        for decade in lo..=hi {
            let x = px(10f64.powi(decade));
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#ddd\"/>\
                 <line class=\"x-tick\" x1=\"{x:.1}\" y1=\"{bottom}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"black\"/>\
                 <text class=\"x-tick-label\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                bottom + 5.0,
                bottom + 18.0,
                decade_label(decade)
            );
        }
        let decimals = if step >= 1.0 {
            0
        } else {
            (-step.log10().floor()) as usize
        };
        let ticks = (y_max / step).round() as u32;
        for k in 0..=ticks {
            let value = f64::from(k) * step;
            let y = py(value);
            let _ = writeln!(
                s,
                "<line class=\"y-tick\" x1=\"{}\" y1=\"{y:.1}\" x2=\"{LEFT}\" y2=\"{y:.1}\" stroke=\"black\"/>\
                 <text class=\"y-tick-label\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{value:.decimals$}</text>",
                LEFT - 5.0,
                LEFT - 8.0,
                y + 4.0
            );
        }
        for (i, x) in series.iter().enumerate() {
            let Series {
                chip,
                color,
                m,
                edges,
                counts,
            } = x;
            let total = counts.iter().sum::<u64>() as f64;
            let mut d = format!("M{:.1},{:.1}", px(edges[0]), bottom);
            for (k, c) in counts.iter().enumerate() {
                let y = py(*c as f64 / total * 100.0);
                let _ = write!(
                    d,
                    " L{:.1},{y:.1} L{:.1},{y:.1}",
                    px(edges[k]),
                    px(edges[k + 1])
                );
            }
            let _ = write!(d, " L{:.1},{bottom:.1}", px(edges[edges.len() - 1]));
            let _ = writeln!(
                s,
                "<path d=\"{d}\" fill=\"{color}\" fill-opacity=\"0.25\" stroke=\"{color}\"/>"
            );
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" fill=\"{color}\" text-anchor=\"end\">{chip}: p50 {}</text>",
                W - RIGHT,
                y0 + 14.0 + 14.0 * i as f64,
                ns(m.summary.p50_ns)
            );
        }
        let mid = (top + bottom) / 2.0;
        let _ = writeln!(
            s,
            "<text class=\"x-axis-title\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">latency, log scale (ns, us, ms)</text>\n\
             <text class=\"y-axis-title\" x=\"24\" y=\"{mid}\" text-anchor=\"middle\" transform=\"rotate(-90 24 {mid})\">samples per bin (%)</text>\n\
             </g>",
            (LEFT + W - RIGHT) / 2.0,
            bottom + 36.0,
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use uirq_abi::bench::{Header, IpiSample, MmioSample, SgiSample, VtimerSample};
    use uirq_abi::bench_json::{ExitsPerSample, Histogram, Stage, Summary};
    use uirq_host::bench::{GuestResults, IrqTimeline, RunContext};

    use crate::jobs::JobConsole;

    const TAG: &str = "0123456789abcdef0123456789abcdef";

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn decade_labels_name_powers_of_ten() {
        let labels: Vec<String> = (0..8).map(decade_label).collect();
        assert_eq!(
            labels,
            ["1 ns", "10 ns", "100 ns", "1 us", "10 us", "100 us", "1 ms", "10 ms"]
        );
    }

    /// `bench-latency`'s arguments as xtask's command line parses them.
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse_args(a: &[&str]) -> std::result::Result<Options, clap::Error> {
        use clap::Parser;
        let argv = std::iter::once("bench-latency".to_string()).chain(args(a));
        Cli::try_parse_from(argv).map(|c| c.args.into())
    }

    #[test]
    fn options_parse_and_bad_ones_are_refused() {
        let o = parse_args(&[
            "--samples",
            "2000",
            "--json",
            "out.json",
            "--irqchip",
            "user",
        ])
        .unwrap();
        assert_eq!(o.samples, 2000);
        assert_eq!(o.irqchips, vec!["user"]);
        assert_eq!(o.json, Some(PathBuf::from("out.json")));
        assert_eq!(o.cpus, 2, "two vCPUs by default, for the ipi measurement");
        assert_eq!(parse_args(&["--cpus", "1"]).unwrap().cpus, 1);
        assert_eq!(
            parse_args(&["--irqchip", "kernel"]).unwrap().irqchips,
            ["kernel"]
        );
        assert!(!o.raw, "summaries only by default");
        assert!(parse_args(&["--raw"]).unwrap().raw);
        assert_eq!(parse_args(&[]).unwrap(), Options::default());
        assert_eq!(parse_args(&[]).unwrap().vmms, ["uirq"]);
        assert_eq!(
            parse_args(&["--vmm", "uirq,qemu"]).unwrap().vmms,
            ["uirq", "qemu"]
        );
        // Said twice, measured once.
        assert_eq!(
            parse_args(&["--vmm", "qemu", "--vmm", "qemu,uirq"])
                .unwrap()
                .vmms,
            ["qemu", "uirq"]
        );
        for bad in [
            &["--samples"][..],
            &["--samples", "0"],
            &["--samples", "16385"],
            &["--warmup", "0"],
            &["--cpus", "9"],
            &["--cpus", "0"],
            &["--irqchip", "x"],
            &["--vmm", "kvmtool"],
            &["--vmm", ""],
            &["--raw", "yes"],
            &["--nope"],
        ] {
            assert!(parse_args(bad).is_err(), "{bad:?}");
        }
    }

    /// A firmware result buffer of `n` samples per measurement, two CPUs,
    /// with `anomalies` flagged and a few samples ending before they begin.
    fn guest_results(n: u64, anomalies: u64) -> GuestResults {
        let k = |i: u64| 1_000 + 7 * i;
        GuestResults {
            header: Header {
                magic: uirq_abi::bench::MAGIC,
                version: uirq_abi::bench::VERSION,
                cntfrq: 62_500_000,
                samples: n,
                warmup: 10,
                anomalies,
                ipi_samples: n,
                cpus: 2,
            },
            vtimer: (0..n)
                .map(|i| VtimerSample {
                    deadline: k(i),
                    entry: k(i) + 300 + i % 17,
                    after_ack: k(i) + 400,
                    after_eoi: k(i) + 500,
                })
                .collect(),
            sgi: (0..n)
                .map(|i| SgiSample {
                    write: k(i),
                    entry: if i % 1000 == 999 {
                        k(i) - 3
                    } else {
                        k(i) + 200
                    },
                })
                .collect(),
            mmio: (0..n)
                .map(|i| MmioSample {
                    start: k(i),
                    end: k(i) + 60 + i % 5,
                })
                .collect(),
            ipi: (0..n)
                .map(|i| IpiSample {
                    write: k(i),
                    entry: k(i) + 800 + i % 3,
                })
                .collect(),
        }
    }

    /// The VMM's report of `results`, made by the VMM's own code.
    fn vmm_report(results: &GuestResults, irqchip: &'static str) -> RunReport {
        let exits = ExitsPerSample::from_counts(1, 1, 1, 0, results.header.samples);
        let timeline = results
            .vtimer
            .iter()
            .map(|s| IrqTimeline {
                level_seen: s.deadline + 100,
                irq_line: s.deadline + 150,
                iar: s.entry + 10,
                eoi: s.entry + 20,
                vmm_ticks: 40,
                irq_line_ticks: 9,
                exits: 3,
            })
            .collect();
        uirq_host::bench::run_report(
            results,
            RunContext {
                tool: "uirq-vmm",
                vmm: "uirq",
                irqchip,
                vcpus: 2,
                exits: Some([exits.clone(), exits.clone(), exits.clone(), exits]),
                timeline: if irqchip == "user" {
                    timeline
                } else {
                    Vec::new()
                },
                timebase: "one counter".into(),
                vmm_rss_kib: Some(3000),
                unix_secs: 1_796_258_315,
            },
        )
    }

    /// What xtask collects of the VMM's console: `@@bench`, then with `raw`
    /// the `@@samples` lines, as the VMM prints them.
    fn job(results: &GuestResults, report: &RunReport, raw: bool) -> JobResult {
        let mut console = JobConsole::default();
        console.line("bench (user irqchip):", TAG, None);
        let line = format!(
            "{} {TAG} {}",
            report::BENCH,
            serde_json::to_string(report).unwrap()
        );
        console.line(&line, TAG, None);
        if raw {
            for c in uirq_host::bench::sample_chunks(results) {
                let line = format!(
                    "{} {TAG} {}",
                    report::SAMPLES,
                    serde_json::to_string(&c).unwrap()
                );
                assert!(line.len() < crate::process::MAX_LINE);
                console.line(&line, TAG, None);
            }
        }
        let (console, reports) = console.finish();
        JobResult {
            console,
            exit_code: Some(0),
            reports,
            ..JobResult::default()
        }
    }

    fn env() -> Environment {
        Environment {
            kind: "nested",
            kernel: "6.12".into(),
            qemu: Some("QEMU 7.2".into()),
        }
    }

    // The VMM's report, written by the VMM's code, through its console
    // line, decodes in xtask to exactly what the VMM had; with raw samples,
    // to that plus every sample, as the VMM's own ticks.
    #[test]
    fn the_vmm_report_round_trips_into_xtask() {
        let results = guest_results(3000, 7);
        let report = vmm_report(&results, "user");
        let plain = read_run(&job(&results, &report, false), "user", false).unwrap();
        assert_eq!(plain, report);
        let raw = read_run(&job(&results, &report, true), "user", true).unwrap();
        let ticks = uirq_host::bench::sample_ticks(&results);
        assert_eq!(raw.results.len(), ticks.len());
        for (m, (name, ticks)) in raw.results.iter().zip(ticks) {
            assert_eq!(m.measurement, name);
            let r = m.raw.as_ref().expect("raw samples attached");
            assert_eq!(r.ticks, ticks);
            assert_eq!(r.ns.len(), 3000);
            assert_eq!(r.ns[0], r.ticks[0] as f64 * 16.0, "62.5 MHz: 16 ns a tick");
        }
        let mut without = raw.clone();
        for m in &mut without.results {
            m.raw = None;
        }
        assert_eq!(without, report, "nothing else changed");
        assert!(
            read_run(&job(&results, &report, false), "user", true).is_err(),
            "raw samples asked for and missing"
        );
        assert!(read_run(&job(&results, &report, false), "kernel", false).is_err());
    }

    /// The console of a QEMU run of `results`: what the firmware prints,
    /// the dump among other lines.
    fn qemu_console(results: &GuestResults) -> String {
        let buffer = uirq_host::fuzzing::bench_decode::encode(results);
        let words = bench_dump::words_of(&buffer).unwrap();
        let mut out = String::from("bench: measuring\n");
        bench_dump::write(words.len() as u64, words, &mut out).unwrap();
        out.push_str(&format!(
            "bench: 4 x {} samples recorded\n",
            results.header.samples
        ));
        out
    }

    // A run under QEMU is summarised exactly as the VMM summarises its
    // own: the same figures from the same buffer, without exit counts.
    #[test]
    fn a_qemu_run_s_dump_gives_the_vmm_s_figures() {
        let results = guest_results(1200, 3);
        let r = JobResult {
            console: qemu_console(&results),
            exit_code: Some(0),
            ..JobResult::default()
        };
        let run = read_dumped_run(&r, "user", true, 1_796_258_315).unwrap();
        let vmm = vmm_report(&results, "user");
        assert_eq!((run.vmm.as_str(), run.irqchip.as_str()), ("qemu", "user"));
        assert_eq!(run.tool, "xtask");
        assert_eq!(run.results.len(), 4);
        for (q, u) in run.results.iter().zip(&vmm.results) {
            assert_eq!(q.summary, u.summary, "{}", q.measurement);
            assert_eq!(q.exits_per_sample, None);
            assert_eq!(q.raw.as_ref().unwrap().ticks.len(), 1200);
        }
        assert_eq!(run.guest_anomalies, 3);
        assert!(run.stages.is_empty());
        // A cut dump is an error that says so, not a short run.
        let cut: String = r
            .console
            .lines()
            .filter(|l| !l.starts_with("bench-dump 7 "))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = read_dumped_run(
            &JobResult {
                console: cut,
                ..JobResult::default()
            },
            "user",
            false,
            0,
        )
        .unwrap_err();
        assert!(
            err.contains("dump line 8 came where line 7 was due"),
            "{err}"
        );
        let err = read_dumped_run(&JobResult::default(), "kernel", false, 0).unwrap_err();
        assert!(
            err.starts_with("the qemu/kernel run's buffer dump: no `bench-dump begin` line"),
            "{err}"
        );
    }

    #[test]
    fn qemu_jobs_name_the_irqchip_and_the_program() {
        let o = Options {
            samples: 300,
            warmup: 5,
            vmms: vec!["uirq", "qemu"],
            ..Options::default()
        };
        let keys = run_keys(&o);
        let labels: Vec<String> = keys.iter().map(RunKey::label).collect();
        assert_eq!(
            labels,
            ["uirq/user", "uirq/kernel", "qemu/user", "qemu/kernel"]
        );
        let elf = Path::new("/fw/uirq-guest");
        let job = bench_job(elf, &o, keys[2]).join(" ");

        assert!(
            job.contains(
                "@timeout-s=1200 @qemu -accel kvm -nodefaults -M virt,gic-version=2,kernel_irqchip=off -cpu host -smp 2 -m 128 "
            ),
            "{job}"
        );
        // The boot block names the bench program and its samples.
        let words = uirq_abi::boot::block::words(Program::Bench.number(), [300, 5]);
        for (addr, value) in words {
            assert!(
                job.contains(&format!("loader,addr={addr:#x},data={value:#x},")),
                "{job}"
            );
        }
        let kernel = bench_job(elf, &o, keys[3]).join(" ");
        assert!(kernel.contains("kernel_irqchip=on"), "{kernel}");
        let uirq = bench_job(elf, &o, keys[0]);
        assert!(!uirq.iter().any(|a| a.starts_with('@')), "{uirq:?}");
        let trivial = footprint_job(elf, keys[1]).join(" ");
        assert_eq!(
            trivial,
            "--program oneshot --irqchip kernel --cpus 1 --ram-mib 128 --timeout 60"
        );
        assert_eq!(qemu_version_job(), ["@timeout-s=60", "@qemu", "-version"]);
        let trivial = footprint_job(elf, keys[2]).join(" ");
        assert!(trivial.contains(" -smp 1 -m 128 "), "{trivial}");
    }

    #[test]
    fn reports_of_another_schema_version_are_refused() {
        let results = guest_results(10, 0);
        let mut report = vmm_report(&results, "user");
        report.schema_version = SCHEMA_VERSION + 1;
        let err = read_run(&job(&results, &report, false), "user", false).unwrap_err();
        assert!(
            err.contains("schema version 3, this xtask reads 2"),
            "{err}"
        );
        let err = decode_report("{\"irqchip\":\"user\"}").unwrap_err();
        assert!(err.contains("schema version none"), "{err}");
    }

    // What the guest and the VMM reported reaches the file: the anomaly
    // count, every stage with its histogram, and the samples when asked.
    #[test]
    fn every_reported_field_reaches_the_json_document() {
        let results = guest_results(1200, 7);
        let user = read_run(
            &job(&results, &vmm_report(&results, "user"), true),
            "user",
            true,
        );
        let kernel = read_run(
            &job(&results, &vmm_report(&results, "kernel"), true),
            "kernel",
            true,
        );
        let o = Options {
            raw: true,
            ..Options::default()
        };
        let doc = combine(
            &env(),
            &o,
            vec![user.unwrap(), kernel.unwrap()],
            footprints(),
            0,
        );
        let text = serde_json::to_string_pretty(&doc).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["schema_version"], SCHEMA_VERSION);
        assert_eq!(v["tool"], "xtask");
        assert_eq!(v["tool_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(v["environment"]["raw_samples"], true);
        let user = &v["runs"][0];
        assert_eq!(user["guest_anomalies"], 7);
        assert_eq!(user["tool"], "uirq-vmm");
        assert_eq!(user["timestamp"], "2026-12-03T00:38:35Z");
        let stages = user["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 6);
        for s in stages {
            let counts = s["histogram"]["counts"].as_array().unwrap();
            assert!(!counts.is_empty(), "{s}");
            assert_eq!(
                s["histogram"]["edges_ns"].as_array().unwrap().len(),
                counts.len() + 1
            );
        }
        assert_eq!(v["runs"][1]["guest_anomalies"], 7);
        let sgi = &user["results"][1];
        assert_eq!(sgi["negative"], 1);
        assert_eq!(sgi["raw"]["ticks"].as_array().unwrap().len(), 1200);
        assert_eq!(sgi["raw"]["ticks"][999], -3);
        assert_eq!(sgi["raw"]["ns"][999], -48.0);
        // The whole document reads back as written.
        assert_eq!(serde_json::from_str::<Document>(&text).unwrap(), doc);
        // Without --raw, summaries only.
        let plain = combine(
            &env(),
            &Options::default(),
            vec![vmm_report(&results, "user")],
            Vec::new(),
            0,
        );
        let text = serde_json::to_string(&plain).unwrap();
        assert!(!text.contains("\"raw\""), "{text}");
        assert!(text.contains("\"guest_anomalies\":7"));
    }

    fn summary(count: u64, p50: f64, lo: f64, hi: f64) -> Summary {
        Summary {
            count,
            negative: count / 500,
            outliers: count / 100,
            min_ns: p50 * 0.8,
            p50_ns: p50,
            p90_ns: p50 * 1.5,
            p99_ns: p50 * 3.0,
            p999_ns: p50 * 9.0,
            max_ns: p50 * 40.0,
            mean_ns: p50 * 1.1,
            histogram: Histogram {
                edges_ns: vec![lo, (lo * hi).sqrt(), hi],
                counts: vec![count / 4, count - count / 4],
            },
        }
    }

    fn footprints() -> Vec<Footprint> {
        [("uirq", "user", 5200), ("qemu", "user", 61_000)]
            .into_iter()
            .map(|(vmm, irqchip, rss)| Footprint {
                vmm: vmm.into(),
                irqchip: irqchip.into(),
                guest_ram_mib: 64,
                peak_rss_kib: Some(rss),
                start_to_exit_ms: Some(rss as f64 / 100.0),
            })
            .collect()
    }

    /// A run of `chip` with its vtimer p50 at `p50` ns and `count` samples,
    /// sgi at a tenth of both, and mmio in a much lower range.
    fn synthetic(chip: &str, p50: f64, count: u64) -> RunReport {
        synthetic_of("uirq", chip, p50, count)
    }

    /// The same for `vmm` (QEMU's runs have no exit counts).
    fn synthetic_of(vmm: &str, chip: &str, p50: f64, count: u64) -> RunReport {
        let m = |name: &str, summary: Summary, exits: f64| Measurement {
            measurement: name.into(),
            interval: format!("{name} interval"),
            summary,
            exits_per_sample: (vmm == "uirq").then(|| ExitsPerSample {
                total: exits,
                ..ExitsPerSample::default()
            }),
            raw: None,
        };
        RunReport {
            schema_version: SCHEMA_VERSION,
            tool: if vmm == "uirq" { "uirq-vmm" } else { "xtask" }.into(),
            tool_version: "0.1.0".into(),
            timestamp: "2026-12-03T00:38:35Z".into(),
            vmm: vmm.into(),
            irqchip: chip.into(),
            cntfrq_hz: 62_500_000,
            samples: count,
            warmup: 100,
            guest_anomalies: 0,
            timebase: "t".into(),
            vcpus: 2,
            results: vec![
                m("vtimer", summary(count, p50, 1e3, 1e6), 3.0),
                m("sgi", summary(count / 10, p50 / 10.0, 1e3, 1e5), 3.0),
                m("mmio", summary(count, 250.0, 100.0, 2000.0), 1.0),
            ],
            stages: if chip == "user" && vmm == "uirq" {
                vec![Stage {
                    stage: "vmm_work_per_irq".into(),
                    interval: "time outside KVM_RUN".into(),
                    summary: summary(count, p50 / 20.0, 100.0, 1e4),
                }]
            } else {
                Vec::new()
            },
            vmm_rss_kib: (chip == "user" && vmm == "uirq").then_some(3072),
        }
    }

    fn synthetic_doc() -> Document {
        combine(
            &env(),
            &Options::default(),
            vec![
                synthetic("user", 1_234_567.0, 10_000),
                synthetic("kernel", 4_000.0, 1000),
            ],
            Vec::new(),
            0,
        )
    }

    /// All four runs: QEMU's userspace GIC at twice this VMM's p50.
    fn synthetic_four() -> Document {
        combine(
            &env(),
            &Options {
                vmms: vec!["uirq", "qemu"],
                ..Options::default()
            },
            vec![
                synthetic("user", 1_000_000.0, 2000),
                synthetic("kernel", 100_000.0, 2000),
                synthetic_of("qemu", "user", 2_000_000.0, 2000),
                synthetic_of("qemu", "kernel", 125_000.0, 2000),
            ],
            footprints(),
            0,
        )
    }

    #[test]
    fn runs_combine_with_ratios_and_the_vmm_work() {
        let doc = synthetic_doc();
        assert_eq!(doc.ratios.len(), 3);
        let r = &doc.ratios[0];
        assert_eq!(r.measurement, "vtimer");
        assert_eq!(
            (r.of.as_str(), r.over.as_str()),
            ("uirq/user", "uirq/kernel")
        );
        assert!((r.p50.unwrap() - 308.641_75).abs() < 1e-3);
        let w = doc.vmm_work.as_ref().unwrap();
        assert!((w.share_of_user_vtimer_p50.unwrap() - 0.05).abs() < 1e-12);
        let mut zero = synthetic("kernel", 0.0, 10);
        zero.results.truncate(1);
        let doc = combine(
            &env(),
            &Options::default(),
            vec![synthetic("user", 1.0, 10), zero],
            Vec::new(),
            0,
        );
        assert_eq!(doc.ratios[0].p50, None, "no ratio to 0");
        assert!(serde_json::to_string(&doc).is_ok());
    }

    // With QEMU's runs: every pair of RATIOS, per measurement, in order;
    // the VMM work is this VMM's user run's.
    #[test]
    fn four_runs_give_every_ratio_between_vmms_and_irqchips() {
        let doc = synthetic_four();
        let pairs: Vec<(String, String, String)> = doc
            .ratios
            .iter()
            .map(|r| (r.measurement.clone(), r.of.clone(), r.over.clone()))
            .collect();
        assert_eq!(pairs.len(), 4 * 3);
        assert_eq!(
            pairs[3],
            ("vtimer".into(), "uirq/user".into(), "qemu/user".into())
        );
        let uq = &doc.ratios[3];
        assert!((uq.p50.unwrap() - 0.5).abs() < 1e-12, "{uq:?}");
        let kk = &doc.ratios[9];
        assert_eq!(
            (kk.of.as_str(), kk.over.as_str()),
            ("uirq/kernel", "qemu/kernel")
        );
        assert!((kk.p50.unwrap() - 0.8).abs() < 1e-12);
        assert!(doc.vmm_work.is_some());
        assert_eq!(doc.environment.vmms, ["uirq", "qemu"]);
        let text = tables(&doc);
        // One row per run, p50 / p99 per measurement.
        assert!(
            text.contains(
                "\nrun             vtimer p50 / p99        sgi p50 / p99   mmio p50 / p99\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\nqemu/user      2.00 ms / 6.00 ms"),
            "{text}"
        );
        // QEMU's exits are not seen: a dash, not a zero.
        let row = text
            .lines()
            .find(|l| l.starts_with("qemu/user    vtimer"))
            .unwrap();
        assert!(row.contains(" 80.00 ms      -     20 "), "{row}");
        assert!(
            text.contains("  uirq/user   5.1 MiB        52.0 ms"),
            "{text}"
        );
        assert!(
            text.contains("  qemu/user  59.6 MiB       610.0 ms"),
            "{text}"
        );
        // The plot has a series of each run in each panel.
        let svg = plot_svg(&doc);
        for run in ["uirq/user", "uirq/kernel", "qemu/user", "qemu/kernel"] {
            assert_eq!(svg.matches(&format!(">{run}: p50 ")).count(), 3, "{run}");
        }
        let back: Document = serde_json::from_str(&serde_json::to_string(&doc).unwrap()).unwrap();
        assert_eq!(back, doc);
    }

    // The tables line up whatever the numbers' lengths (987.7 us next to
    // 200 ns, 10000 samples next to 100): each column is as wide as its
    // widest cell. p99.9 shows from 1000 samples (the kernel's vtimer and
    // mmio, the user's sgi) and not below (the kernel's sgi, 100 samples).
    #[test]
    fn tables_line_up_and_show_p999_only_from_1000_samples() {
        let text = tables(&synthetic_doc());
        let expected = "
Interrupt latency, nested (6.12 kernel, QEMU 7.2), 2 vCPUs, 10000 samples per measurement
run           vtimer p50 / p99        sgi p50 / p99   mmio p50 / p99
uirq/user    1.23 ms / 3.70 ms  123.5 us / 370.4 us  250 ns / 750 ns
uirq/kernel   4.0 us / 12.0 us      400 ns / 1.2 us  250 ns / 750 ns

ratios:
  measure  run        over             p50      p99
  vtimer   uirq/user  uirq/kernel  x308.64  x308.64
  sgi      uirq/user  uirq/kernel  x308.64  x308.64
  mmio     uirq/user  uirq/kernel    x1.00    x1.00

every run:
run          CNTFRQ Hz  vCPUs  guest anomalies  VMM memory
uirq/user     62500000      2                0     3.0 MiB
uirq/kernel   62500000      2                0           -

(p99.9 from 1000 samples; exits: exits to the VMM per sample, - where not seen; outl.: samples above Q3 + 3 IQR, kept; neg.: samples that ended before they began)
run          measure  count       min       p50       p90       p99     p99.9       max  exits  outl.  neg.
uirq/user    vtimer   10000  987.7 us   1.23 ms   1.85 ms   3.70 ms  11.11 ms  49.38 ms   3.00    100    20
uirq/user    sgi       1000   98.8 us  123.5 us  185.2 us  370.4 us   1.11 ms   4.94 ms   3.00     10     2
uirq/user    mmio     10000    200 ns    250 ns    375 ns    750 ns    2.2 us   10.0 us   1.00    100    20
uirq/kernel  vtimer    1000    3.2 us    4.0 us    6.0 us   12.0 us   36.0 us  160.0 us   3.00     10     2
uirq/kernel  sgi        100    320 ns    400 ns    600 ns    1.2 us         -   16.0 us   3.00      1     0
uirq/kernel  mmio      1000    200 ns    250 ns    375 ns    750 ns    2.2 us   10.0 us   1.00     10     2

virtual-timer path through uirq/user, by stage:
  stage                 p50       p99  interval
  vmm_work_per_irq  61.7 us  185.2 us  time outside KVM_RUN

VMM work per timer interrupt: p50 61.7 us = 5.0% of the user path's p50
";
        assert_eq!(text, expected, "got:\n{text}");
    }

    #[test]
    fn p999_shows_from_exactly_1000_samples() {
        let cell = |count: u64| {
            let mut doc = synthetic_doc();
            doc.runs.truncate(1);
            doc.runs[0].results.truncate(1);
            doc.runs[0].results[0].summary.count = count;
            let text = tables(&doc);
            let row = text
                .lines()
                .find(|l| {
                    l.starts_with("uirq/user ") && l.contains("vtimer") && l.contains(" 1.23 ms ")
                })
                .unwrap()
                .to_string();
            row.split_whitespace().nth(11).unwrap().to_string()
        };
        assert_eq!(cell(999), "-");
        assert_eq!(cell(1000), "11.11");
        assert_eq!(cell(1001), "11.11");
    }

    /// The `(class, attribute)` values of the elements of `class` in `svg`.
    fn attribute_of(svg: &str, class: &str, attribute: &str) -> Vec<String> {
        let needle = format!("class=\"{class}\"");
        svg.match_indices(&needle)
            .map(|(at, _)| {
                let rest = &svg[at..];
                let tag_end = rest.find('>').unwrap();
                let key = format!(" {attribute}=\"");
                let from = rest[..tag_end].find(&key).unwrap() + key.len();
                let len = rest[from..].find('"').unwrap();
                rest[from..from + len].to_string()
            })
            .collect()
    }

    /// The text of each element of `class`.
    fn texts_of(svg: &str, class: &str) -> Vec<String> {
        let needle = format!("class=\"{class}\"");
        svg.match_indices(&needle)
            .map(|(at, _)| {
                let rest = &svg[at..];
                let from = rest.find('>').unwrap() + 1;
                let len = rest[from..].find('<').unwrap();
                rest[from..from + len].to_string()
            })
            .collect()
    }

    // Every panel has both axis titles, with units, tick marks with labels
    // on both axes, and one time range: the same ticks at the same places,
    // though vtimer, sgi and mmio span different decades.
    #[test]
    fn the_plot_has_titled_ticked_axes_and_one_time_range() {
        let svg = plot_svg(&synthetic_doc());
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let panels: Vec<&str> = svg.split("<g class=\"panel\"").skip(1).collect();
        assert_eq!(panels.len(), 3);
        assert_eq!(
            svg.matches("<path").count(),
            6,
            "two irqchips x three measurements"
        );
        let domains = attribute_of(&svg, "panel", "data-x-domain-ns");
        assert_eq!(
            domains, ["100 1000000"; 3],
            "mmio from 100 ns, vtimer to 1 ms"
        );
        let mut first_ticks = None;
        for panel in &panels {
            let panel = &panel[..panel.find("</g>").unwrap()];
            assert_eq!(
                texts_of(panel, "x-axis-title"),
                ["latency, log scale (ns, us, ms)"]
            );
            assert_eq!(texts_of(panel, "y-axis-title"), ["samples per bin (%)"]);
            let x_labels = texts_of(panel, "x-tick-label");
            assert_eq!(x_labels, ["100 ns", "1 us", "10 us", "100 us", "1 ms"]);
            let x_at = attribute_of(panel, "x-tick-label", "x");
            assert_eq!(
                attribute_of(panel, "x-tick", "x1"),
                x_at,
                "a mark under each label"
            );
            match &first_ticks {
                None => first_ticks = Some(x_at),
                Some(first) => assert_eq!(&x_at, first, "same ticks, same places"),
            }
            let y_labels = texts_of(panel, "y-tick-label");
            assert!(y_labels.len() >= 3, "{y_labels:?}");
            assert_eq!(y_labels[0], "0");
            let y: Vec<f64> = y_labels.iter().map(|l| l.parse().unwrap()).collect();
            assert!(y.windows(2).all(|w| w[0] < w[1]), "{y:?}");
            assert!(
                *y.last().unwrap() >= 75.0,
                "the fullest bin holds 75%: {y:?}"
            );
            assert_eq!(attribute_of(panel, "y-tick", "y1").len(), y_labels.len());
        }
    }

    #[test]
    fn tick_steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(tick_step(75.0, 5), 20.0);
        assert_eq!(tick_step(100.0, 5), 20.0);
        assert_eq!(tick_step(9.0, 5), 2.0);
        assert_eq!(tick_step(1.0, 5), 0.2);
        assert_eq!(tick_step(3.0, 5), 1.0);
    }
}
