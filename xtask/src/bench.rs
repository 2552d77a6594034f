//! `cargo xtask bench-latency`: interrupt latency through the userspace GIC,
//! set against KVM's in-kernel vGICv2 in the same run.
//!
//! Each irqchip is one run of `uirq-vmm --program bench` (both in one boot
//! of L1 when nested). The VMM prints one `@@bench <tag> {json}` line with
//! the statistics it computed from the firmware's result buffer and its own
//! timeline (the tag makes it the VMM's: `uirq_abi::report`); this module
//! puts the runs side by side, adds the environment, prints the tables and
//! writes the JSON and the SVG plot. Where those go is checked before the
//! runs start, so a typo costs seconds, not the benchmark.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uirq_abi::report;

use crate::jobs::{self, Environment};
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
    /// vCPUs of the benchmark VM: 2 or more adds the ipi measurement.
    pub cpus: usize,
    /// Where to write the JSON.
    pub json: Option<PathBuf>,
    /// Where to write the SVG plot.
    pub plot: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            samples: 10_000,
            warmup: 100,
            irqchips: vec!["user", "kernel"],
            cpus: 2,
            json: None,
            plot: None,
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
}

impl From<Args> for Options {
    fn from(a: Args) -> Self {
        Self {
            samples: a.samples,
            warmup: a.warmup,
            irqchips: a.irqchip.irqchips(),
            cpus: a.cpus,
            json: a.json,
            plot: a.plot,
        }
    }
}

/// Builds everything, runs the benchmark and reports it. Returns the
/// combined JSON document.
pub fn run(o: &Options) -> Result<Value> {
    run_with(&build::all()?, o)
}

/// Runs the benchmark with already built `artifacts` and reports it.
pub fn run_with(artifacts: &crate::project::Artifacts, o: &Options) -> Result<Value> {
    // Before the long run, not after it.
    if let Some(path) = &o.json {
        check_output_path(path, "--json")?;
    }
    if let Some(path) = &o.plot {
        check_output_path(path, "--plot")?;
    }
    let jobs: Vec<Vec<String>> = o
        .irqchips
        .iter()
        .map(|chip| {
            [
                "--program",
                "bench",
                "--samples",
                &o.samples.to_string(),
                "--warmup",
                &o.warmup.to_string(),
                "--irqchip",
                chip,
                "--cpus",
                &o.cpus.to_string(),
                "--timeout",
                "1200",
            ]
            .map(String::from)
            .to_vec()
        })
        .collect();

    progress(format!(
        "measuring {} x {} samples per irqchip ({}, {} vCPU{})",
        if o.cpus >= 2 { 4 } else { 3 },
        o.samples,
        o.irqchips.join(", "),
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
            if !line.starts_with("@@bench ") {
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

    let mut runs = Vec::new();
    for (chip, r) in o.irqchips.iter().zip(&results) {
        if r.exit_code != Some(0) {
            return Err(format!(
                "the {chip} irqchip run failed (exit {:?}):\n{}",
                r.exit_code, r.console
            ));
        }
        let line = r
            .report(report::BENCH)
            .ok_or_else(|| format!("the {chip} irqchip run printed no figures:\n{}", r.console))?;
        let v: Value = serde_json::from_str(line)
            .map_err(|e| format!("the {chip} run's figures do not parse: {e}"))?;
        runs.push(v);
    }
    let doc = combine(&env, o, &runs);
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

fn f(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// Builds the output document from the environment and the VMM's runs.
pub fn combine(env: &Environment, o: &Options, runs: &[Value]) -> Value {
    let first = runs.first().cloned().unwrap_or(Value::Null);
    let mut results = Vec::new();
    let mut stages = Vec::new();
    let mut vmm = serde_json::Map::new();
    for run in runs {
        let chip = run.get("irqchip").cloned().unwrap_or(Value::Null);
        for m in run
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut m = m.clone();
            if let Some(obj) = m.as_object_mut() {
                obj.insert("irqchip".into(), chip.clone());
            }
            results.push(m);
        }
        for s in run
            .get("stages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut s = s.clone();
            if let Some(obj) = s.as_object_mut() {
                obj.insert("irqchip".into(), chip.clone());
                obj.remove("histogram");
            }
            stages.push(s);
        }
        if let Some(chip) = chip.as_str() {
            vmm.insert(
                format!("{chip}_rss_kib_apart_from_guest_ram"),
                run.get("vmm_rss_kib").cloned().unwrap_or(Value::Null),
            );
        }
    }
    // The VMM's own work per timer interrupt against the user path's p50.
    let user_p50 = results
        .iter()
        .find(|m| m["irqchip"] == "user" && m["measurement"] == "vtimer")
        .map(|m| f(m, "p50_ns"));
    let work_p50 = stages
        .iter()
        .find(|s| s["stage"] == "vmm_work_per_irq")
        .map(|s| f(s, "p50_ns"));
    if let (Some(u), Some(w)) = (user_p50, work_p50) {
        vmm.insert("work_per_timer_irq_p50_ns".into(), json!(w));
        vmm.insert("work_share_of_user_vtimer_p50".into(), json!(w / u));
    }
    let mut ratios = Vec::new();
    for name in MEASUREMENTS {
        let get = |chip: &str| {
            results
                .iter()
                .find(|m| m["irqchip"] == chip && m["measurement"] == name)
        };
        if let (Some(u), Some(k)) = (get("user"), get("kernel")) {
            ratios.push(json!({
                "measurement": name,
                "user_over_kernel_p50": f(u, "p50_ns") / f(k, "p50_ns"),
                "user_over_kernel_p99": f(u, "p99_ns") / f(k, "p99_ns"),
            }));
        }
    }
    json!({
        "environment": {
            "kind": env.kind,
            "host_kernel": env.kernel,
            "qemu": env.qemu,
            "build_machine": std::env::consts::ARCH,
            "cntfrq_hz": first.get("cntfrq_hz"),
            "vcpus": first.get("vcpus"),
            "samples": o.samples,
            "warmup": o.warmup,
            "timebase": first.get("timebase"),
        },
        "results": results,
        "ratios": ratios,
        "stages": stages,
        "vmm": vmm,
    })
}

/// "1 us", "10 us", "100 us", "1 ms" for 10^decade nanoseconds.
fn decade_label(decade: i32) -> String {
    let units = ["ns", "us", "ms", "s"];
    let unit = (decade.max(0) / 3).min(3);
    let value = 10i64.pow((decade.max(0) - 3 * unit) as u32);
    format!("{value} {}", units[unit as usize])
}

fn ns(x: f64) -> String {
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

/// The human-readable tables for `doc`.
pub fn tables(doc: &Value) -> String {
    let mut out = String::new();
    let env = &doc["environment"];
    let _ = writeln!(
        out,
        "\nInterrupt latency, {} ({} kernel{}), CNTFRQ {} Hz, {} vCPU, {} samples each",
        env["kind"].as_str().unwrap_or("?"),
        env["host_kernel"].as_str().unwrap_or("?"),
        env["qemu"]
            .as_str()
            .map(|q| format!(", {q}"))
            .unwrap_or_default(),
        env["cntfrq_hz"],
        env["vcpus"],
        env["samples"],
    );
    let _ = writeln!(
        out,
        "(exits: exits to the VMM per sample; outl.: samples above Q3 + 3 IQR, kept; neg.: samples that ended before they began)"
    );
    let _ = writeln!(
        out,
        "{:<7} {:<7} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6} {:>6} {:>5}",
        "irqchip",
        "measure",
        "count",
        "min",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "exits",
        "outl.",
        "neg."
    );
    for m in doc["results"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<7} {:<7} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6.2} {:>6} {:>5}",
            m["irqchip"].as_str().unwrap_or("?"),
            m["measurement"].as_str().unwrap_or("?"),
            m["count"],
            ns(f(m, "min_ns")),
            ns(f(m, "p50_ns")),
            ns(f(m, "p90_ns")),
            ns(f(m, "p99_ns")),
            ns(f(m, "p999_ns")),
            ns(f(m, "max_ns")),
            f(&m["exits_per_sample"], "total"),
            m["outliers"],
            m["negative"],
        );
    }
    let ratios = doc["ratios"]
        .as_array()
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    if !ratios.is_empty() {
        let _ = writeln!(out, "\nuser / kernel:");
        for r in ratios {
            let _ = writeln!(
                out,
                "  {:<7} p50 x{:.2}   p99 x{:.2}",
                r["measurement"].as_str().unwrap_or("?"),
                f(r, "user_over_kernel_p50"),
                f(r, "user_over_kernel_p99")
            );
        }
    }
    let stages = doc["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    if !stages.is_empty() {
        let _ = writeln!(
            out,
            "\nvirtual-timer path through the userspace GIC, by stage:"
        );
        for s in stages {
            let _ = writeln!(
                out,
                "  {:<24} p50 {:>10}  p99 {:>10}   {}",
                s["stage"].as_str().unwrap_or("?"),
                ns(f(s, "p50_ns")),
                ns(f(s, "p99_ns")),
                s["interval"].as_str().unwrap_or("")
            );
        }
    }
    let vmm = &doc["vmm"];
    if let Some(share) = vmm["work_share_of_user_vtimer_p50"].as_f64() {
        let _ = writeln!(
            out,
            "\nVMM work per timer interrupt: p50 {} = {:.1}% of the user path's p50",
            ns(f(vmm, "work_per_timer_irq_p50_ns")),
            share * 100.0
        );
    }
    if let Some(rss) = vmm["user_rss_kib_apart_from_guest_ram"].as_u64() {
        let _ = writeln!(
            out,
            "VMM resident memory apart from guest RAM: {:.1} MiB",
            rss as f64 / 1024.0
        );
    }
    out
}

/// An SVG with one panel per measurement, the latency distributions of
/// every irqchip in it on a logarithmic time axis.
///
/// Written by hand: three panels of step lines and a few labels need no
/// plotting library, and the output stays small and diffable.
pub fn plot_svg(doc: &Value) -> String {
    const W: f64 = 960.0;
    const PANEL_H: f64 = 220.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 40.0;
    const TOP: f64 = 50.0;
    let colors = [("user", "#1f77b4"), ("kernel", "#ff7f0e")];
    let results = doc["results"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = MEASUREMENTS
        .into_iter()
        .filter(|name| results.iter().any(|m| m["measurement"] == *name))
        .collect();
    let h = TOP + names.len() as f64 * (PANEL_H + 40.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"24\" font-size=\"16\">Interrupt latency: userspace GIC vs in-kernel vGICv2 ({}, {} samples; log time axis)</text>\n",
        doc["environment"]["kind"].as_str().unwrap_or("?"),
        doc["environment"]["samples"]
    );
    for (row, name) in names.iter().enumerate() {
        let y0 = TOP + row as f64 * (PANEL_H + 40.0);
        let series: Vec<(&str, &str, Vec<f64>, Vec<f64>)> = colors
            .iter()
            .filter_map(|(chip, color)| {
                let m = results
                    .iter()
                    .find(|m| m["irqchip"] == *chip && m["measurement"] == *name)?;
                let edges: Vec<f64> = m["histogram"]["edges_ns"]
                    .as_array()?
                    .iter()
                    .filter_map(Value::as_f64)
                    .collect();
                let counts: Vec<f64> = m["histogram"]["counts"]
                    .as_array()?
                    .iter()
                    .filter_map(Value::as_f64)
                    .collect();
                (edges.len() == counts.len() + 1 && !counts.is_empty())
                    .then_some((*chip, *color, edges, counts))
            })
            .collect();
        let _ = writeln!(
            s,
            "<text x=\"{LEFT}\" y=\"{}\" font-size=\"14\">{name}</text>",
            y0 + 14.0
        );
        if series.is_empty() {
            continue;
        }
        let lo = series
            .iter()
            .map(|x| x.2[0])
            .fold(f64::INFINITY, f64::min)
            .max(1.0)
            .log10()
            .floor();
        let hi = series
            .iter()
            .map(|x| x.2[x.2.len() - 1])
            .fold(0.0, f64::max)
            .log10()
            .ceil()
            .max(lo + 1.0);
        let peak = series
            .iter()
            .map(|x| x.3.iter().cloned().fold(0.0, f64::max) / x.3.iter().sum::<f64>())
            .fold(0.0, f64::max);
        let px = |v: f64| LEFT + (v.log10() - lo) / (hi - lo) * (W - LEFT - RIGHT);
        let (top, bottom) = (y0 + 24.0, y0 + PANEL_H);
        let py = |frac: f64| bottom - frac / peak * (bottom - top);
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"black\"/>",
            W - RIGHT
        );
        for decade in lo as i32..=hi as i32 {
            let x = px(10f64.powi(decade));
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#ddd\"/>\
                 <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                bottom + 14.0,
                decade_label(decade)
            );
        }
        for (i, (chip, color, edges, counts)) in series.iter().enumerate() {
            let total: f64 = counts.iter().sum();
            let mut d = format!("M{:.1},{:.1}", px(edges[0]), bottom);
            for (k, c) in counts.iter().enumerate() {
                let y = py(c / total);
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
            let p50 = results
                .iter()
                .find(|m| m["irqchip"] == *chip && m["measurement"] == *name)
                .map_or(f64::NAN, |m| f(m, "p50_ns"));
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" fill=\"{color}\" text-anchor=\"end\">{chip}: p50 {}</text>",
                W - RIGHT,
                y0 + 14.0 + 14.0 * i as f64,
                ns(p50)
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\">share of samples</text>",
            (top + bottom) / 2.0 + 40.0,
            (top + bottom) / 2.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(parse_args(&[]).unwrap(), Options::default());
        for bad in [
            &["--samples"][..],
            &["--samples", "0"],
            &["--samples", "16385"],
            &["--warmup", "0"],
            &["--cpus", "9"],
            &["--cpus", "0"],
            &["--irqchip", "x"],
            &["--nope"],
        ] {
            assert!(parse_args(bad).is_err(), "{bad:?}");
        }
    }

    fn run_json(chip: &str, p50: f64) -> Value {
        json!({
            "irqchip": chip, "cntfrq_hz": 62500000, "vcpus": 1, "timebase": "t",
            "vmm_rss_kib": 3000,
            "results": [
                {"measurement": "vtimer", "count": 10, "p50_ns": p50, "p99_ns": 2.0 * p50,
                 "exits_per_sample": {"total": 3.0},
                 "histogram": {"edges_ns": [100.0, 1000.0, 10000.0], "counts": [3, 7]}},
                {"measurement": "sgi", "count": 10, "p50_ns": p50 / 2.0, "p99_ns": p50,
                 "exits_per_sample": {"total": 3.0},
                 "histogram": {"edges_ns": [100.0, 1000.0], "counts": [10]}}
            ],
            "stages": if chip == "user" { json!([{"stage": "vmm_work_per_irq", "p50_ns": p50 / 20.0, "p99_ns": 1.0}]) } else { json!([]) }
        })
    }

    #[test]
    fn runs_combine_into_the_documented_shape_with_ratios() {
        let env = Environment {
            kind: "nested",
            kernel: "6.12".into(),
            qemu: Some("QEMU 7.2".into()),
        };
        let doc = combine(
            &env,
            &Options::default(),
            &[run_json("user", 4000.0), run_json("kernel", 1000.0)],
        );
        assert_eq!(doc["environment"]["kind"], "nested");
        assert_eq!(doc["environment"]["cntfrq_hz"], 62500000);
        let results = doc["results"].as_array().unwrap();
        assert_eq!(results.len(), 4);
        assert_eq!(results[0]["irqchip"], "user");
        assert_eq!(results[0]["measurement"], "vtimer");
        assert_eq!(results[2]["irqchip"], "kernel");
        assert_eq!(doc["ratios"][0]["user_over_kernel_p50"], 4.0);
        assert_eq!(doc["vmm"]["work_share_of_user_vtimer_p50"], 0.05);
        let text = tables(&doc);
        assert!(text.contains("p50 x4.00"), "{text}");
        assert!(text.contains("5.0% of the user path's p50"), "{text}");
        let svg = plot_svg(&doc);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(
            svg.matches("<path").count(),
            4,
            "two irqchips x two measurements"
        );
    }
}
