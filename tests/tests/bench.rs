//! End-to-end: a short `bench-latency --raw` run with both irqchips, checked
//! for the JSON document's shape and for sane figures.

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

#[test]
fn a_short_benchmark_writes_sane_figures_for_both_irqchips() {
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

    assert_eq!(doc.runs.len(), 2);
    for (run, chip) in doc.runs.iter().zip(["user", "kernel"]) {
        assert_eq!(run.irqchip, chip);
        assert_eq!(run.schema_version, SCHEMA_VERSION);
        assert_eq!(run.tool, "uirq-vmm");
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
            let exits = m.exits_per_sample.total;
            let (lo, hi) = match (chip, name) {
                // Level report, GICC_IAR, GICC_EOIR: the floor with a trapping GIC.
                ("user", "vtimer") => (3.0, 3.5),
                // GICD_SGIR, GICC_IAR, GICC_EOIR.
                ("user", "sgi") => (3.0, 3.5),
                // The one GICD_TYPER read.
                ("user", "mmio") => (1.0, 1.1),
                // vCPU 0's GICD_SGIR; vCPU 1's kick (EINTR), GICC_IAR and
                // GICC_EOIR.
                ("user", "ipi") => (4.0, 5.0),
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
    assert!(doc.runs[1].stages.is_empty(), "no timeline with KVM's vGIC");
    assert_eq!(doc.ratios.len(), 4);
    let work = doc.vmm_work.as_ref().expect("the VMM's work per interrupt");
    assert!(work.share_of_user_vtimer_p50.unwrap() > 0.0);
    let rss = user.vmm_rss_kib.expect("VMM RSS reported");
    assert!(rss > 0 && rss < 64 * 1024, "{rss} KiB");
    assert!(
        svg.starts_with("<svg") && svg.matches("<path").count() == 8,
        "{svg}"
    );
    assert_eq!(svg.matches("class=\"x-axis-title\"").count(), 4);
}
