//! End-to-end: a short `bench-latency --vmm uirq,qemu --raw` run, both
//! irqchips under both VMMs (four runs in one boot), checked for the JSON
//! document's shape and for sane figures; and the firmware's buffer dump
//! on plain QEMU, read back as a run.

use uirq_abi::bench_json::{Document, SCHEMA_VERSION};

fn run_short_bench() -> Option<(Document, Document, String)> {
    let dir = std::env::temp_dir().join(format!("uirq-bench-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("out.json");
    let plot = dir.join("out.svg");
    let options = xtask::bench::Options {
        samples: 300,
        warmup: 20,
        irqchips: vec!["user", "kernel"],
        vmms: vec!["uirq", "qemu"],
        cpus: 2,
        json: Some(json.clone()),
        plot: Some(plot.clone()),
        raw: true,
    };
    let outcome = uirq_tests::preflight().and_then(|()| {
        let artifacts = uirq_tests::artifacts()?;
        xtask::bench::run_with(&artifacts, &options).map_err(uirq_tests::Problem::Failed)
    });
    let returned = uirq_tests::available(&outcome)?.clone();
    let written: Document = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let svg = std::fs::read_to_string(&plot).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    Some((returned, written, svg))
}

/// The four runs, in order.
const RUNS: [(&str, &str); 4] = [
    ("uirq", "user"),
    ("uirq", "kernel"),
    ("qemu", "user"),
    ("qemu", "kernel"),
];

#[test]
fn a_short_benchmark_writes_sane_figures_for_both_irqchips_under_both_vmms() {
    let Some((returned, doc, svg)) = run_short_bench() else {
        return;
    };
    assert_eq!(doc, returned, "the file holds what the run returned");
    assert_eq!(doc.schema_version, SCHEMA_VERSION);
    assert_eq!(doc.tool, "xtask");
    assert!(
        doc.timestamp.ends_with('Z') && doc.timestamp.len() == 20,
        "{}",
        doc.timestamp
    );
    let env = &doc.environment;
    assert!(!env.kind.is_empty() && !env.host_kernel.is_empty());
    assert_eq!((env.samples, env.vcpus), (300, 2));
    assert!(env.raw_samples);
    assert_eq!(env.vmms, ["uirq", "qemu"]);
    let peer = env.peer_qemu.as_deref().expect("the QEMU of the qemu rows");
    assert!(peer.starts_with("QEMU emulator version "), "{peer}");

    assert_eq!(doc.runs.len(), 4);
    for (run, (vmm, chip)) in doc.runs.iter().zip(RUNS) {
        let chip = &*format!("{vmm}/{chip}");
        assert_eq!(format!("{}/{}", run.vmm, run.irqchip), chip);
        assert_eq!(run.schema_version, SCHEMA_VERSION);
        assert_eq!(run.tool, if vmm == "uirq" { "uirq-vmm" } else { "xtask" });
        assert!(run.cntfrq_hz > 0);
        assert_eq!((run.samples, run.vcpus), (300, 2));
        assert_eq!(run.guest_anomalies, 0, "{chip}");
        assert!(!run.timebase.is_empty());
        let names: Vec<&str> = run.results.iter().map(|m| m.measurement.as_str()).collect();
        assert_eq!(names, ["vtimer", "sgi", "mmio", "ipi"], "{chip}");
        for m in &run.results {
            let name = m.measurement.as_str();
            let s = &m.summary;
            assert_eq!(s.count, 300, "{chip}/{name}: {s:?}");
            assert_eq!(s.negative, 0, "{chip}/{name}: negative samples");
            assert!(s.min_ns > 0.0, "{chip}/{name}: {s:?}");
            let ordered = [s.min_ns, s.p50_ns, s.p90_ns, s.p99_ns, s.p999_ns, s.max_ns];
            assert!(
                ordered.windows(2).all(|w| w[0] <= w[1]),
                "{chip}/{name}: {s:?}"
            );
            assert_eq!(s.histogram.counts.iter().sum::<u64>(), 300);
            let raw = m.raw.as_ref().expect("raw samples with --raw");
            assert_eq!((raw.ticks.len(), raw.ns.len()), (300, 300));
            let max = raw.ns.iter().copied().fold(0.0, f64::max);
            assert_eq!(
                max, s.max_ns,
                "{chip}/{name}: the samples are the summary's"
            );
            if vmm == "qemu" {
                // QEMU's exits are not seen, and not made up.
                assert!(m.exits_per_sample.is_none(), "{chip}/{name}");
                continue;
            }
            let exits = m.exits_per_sample.as_ref().unwrap().total;
            let (lo, hi) = match (chip, name) {
                // Level report, GICC_IAR, GICC_EOIR: the floor with a trapping GIC.
                ("uirq/user", "vtimer") => (3.0, 3.5),
                // GICD_SGIR, GICC_IAR, GICC_EOIR.
                ("uirq/user", "sgi") => (3.0, 3.5),
                // The one GICD_TYPER read.
                ("uirq/user", "mmio") => (1.0, 1.1),
                // vCPU 0's GICD_SGIR; vCPU 1's kick (EINTR), GICC_IAR and
                // GICC_EOIR.
                ("uirq/user", "ipi") => (4.0, 5.0),
                // The in-kernel vGIC keeps everything in the kernel.
                _ => (0.0, 0.1),
            };
            assert!(
                (lo..hi).contains(&exits),
                "{chip}/{name}: {exits} exits per sample"
            );
        }
    }
    let user = &doc.runs[0];
    assert!(
        user.stages
            .iter()
            .any(|s| s.stage == "deadline_to_vmm" && s.summary.count == 300),
        "{:?}",
        user.stages
    );
    assert!(user
        .stages
        .iter()
        .all(|s| !s.summary.histogram.counts.is_empty()));
    for run in &doc.runs[1..] {
        assert!(run.stages.is_empty(), "no timeline without this VMM's GIC");
    }
    // Four measurements, four pairs of runs.
    assert_eq!(doc.ratios.len(), 16);
    for r in &doc.ratios {
        let (p50, p99) = (r.p50.unwrap(), r.p99.unwrap());
        assert!(p50 > 0.0 && p50.is_finite() && p99 > 0.0, "{r:?}");
    }
    let work = doc.vmm_work.as_ref().expect("the VMM's work per interrupt");
    assert!(work.share_of_user_vtimer_p50.unwrap() > 0.0);
    let rss = user.vmm_rss_kib.expect("VMM RSS reported");
    assert!(rss > 0 && rss < 64 * 1024, "{rss} KiB");
    // Every VMM's footprint on the trivial guest.
    assert_eq!(doc.footprints.len(), 4);
    for (f, (vmm, chip)) in doc.footprints.iter().zip(RUNS) {
        assert_eq!((f.vmm.as_str(), f.irqchip.as_str()), (vmm, chip));
        assert_eq!(f.guest_ram_mib, 128);
        let rss = f.peak_rss_kib.expect("peak RSS");
        // More than a process's bare minimum, less than guest RAM and a
        // generous VMM.
        assert!((1024..512 * 1024).contains(&rss), "{f:?}");
        let ms = f.start_to_exit_ms.expect("start to exit");
        assert!(ms > 0.0 && ms < 60_000.0, "{f:?}");
    }
    assert!(
        svg.starts_with("<svg") && svg.matches("<path").count() == 16,
        "{svg}"
    );
    assert_eq!(svg.matches("class=\"x-axis-title\"").count(), 4);
}

// The firmware's dump on plain QEMU (TCG, no KVM, no VMM reading guest
// memory) reads back as a whole run: the encoding the QEMU rows of the
// benchmark rely on, checked on the real firmware's real output.
#[test]
fn the_firmware_s_dump_on_plain_qemu_reads_back_as_a_run() {
    let outcome = (|| -> Result<xtask::qemu_plain::PlainRun, uirq_tests::Problem> {
        xtask::l1::ensure_qemu().map_err(uirq_tests::Problem::CannotRun)?;
        let artifacts = uirq_tests::artifacts()?;
        let elf = xtask::qemu_plain::elf_of(&artifacts.guest_image);
        xtask::qemu_plain::run(
            &elf,
            uirq_abi::boot::Program::Bench,
            [200, 5],
            2,
            xtask::qemu_plain::DEFAULT_TIMEOUT,
        )
        .map_err(uirq_tests::Problem::Failed)
    })();
    let Some(run) = uirq_tests::available(&outcome) else {
        return;
    };
    assert!(!run.timed_out, "{}", run.console);
    let result = xtask::jobs::JobResult {
        console: run.console.clone(),
        exit_code: Some(0),
        ..Default::default()
    };
    let report =
        xtask::bench::read_dumped_run(&result, "user", true, 0).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = report
        .results
        .iter()
        .map(|m| m.measurement.as_str())
        .collect();
    assert_eq!(names, ["vtimer", "sgi", "mmio", "ipi"]);
    for m in &report.results {
        assert_eq!(
            m.summary.count + m.summary.negative,
            200,
            "{}",
            m.measurement
        );
        assert!(m.summary.p50_ns > 0.0, "{}", m.measurement);
        assert_eq!(m.raw.as_ref().unwrap().ticks.len(), 200);
    }
    assert_eq!((report.samples, report.warmup, report.vcpus), (200, 5, 2));
}
