//! End-to-end: a short `bench-latency` run with both irqchips, checked for
//! the JSON document's shape and for sane figures.

use serde_json::Value;

fn run_short_bench() -> Option<(Value, String)> {
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
    };
    let outcome = uirq_tests::preflight().and_then(|()| {
        let artifacts = uirq_tests::artifacts()?;
        xtask::bench::run_with(&artifacts, &options).map_err(uirq_tests::Problem::Failed)
    });
    uirq_tests::available(&outcome)?;
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let svg = std::fs::read_to_string(&plot).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    Some((doc, svg))
}

#[test]
fn a_short_benchmark_writes_sane_figures_for_both_irqchips() {
    let Some((doc, svg)) = run_short_bench() else {
        return;
    };
    let env = &doc["environment"];
    for key in [
        "kind",
        "host_kernel",
        "cntfrq_hz",
        "vcpus",
        "samples",
        "timebase",
    ] {
        assert!(!env[key].is_null(), "environment.{key} missing: {env}");
    }
    assert!(env["cntfrq_hz"].as_u64().unwrap() > 0);
    assert_eq!(env["samples"], 300);

    let results = doc["results"].as_array().expect("results");
    assert_eq!(results.len(), 8, "2 irqchips x 4 measurements");
    assert_eq!(env["vcpus"], 2);
    for chip in ["user", "kernel"] {
        for name in ["vtimer", "sgi", "mmio", "ipi"] {
            let m = results
                .iter()
                .find(|m| m["irqchip"] == chip && m["measurement"] == name)
                .unwrap_or_else(|| panic!("no {chip}/{name} in {doc}"));
            assert_eq!(m["count"], 300, "{m}");
            assert_eq!(m["negative"], 0, "negative samples: {m}");
            assert!(
                m["outliers"].as_u64().is_some(),
                "outliers not reported: {m}"
            );
            let p = |k: &str| {
                m[k].as_f64()
                    .unwrap_or_else(|| panic!("{k} missing in {m}"))
            };
            assert!(p("min_ns") > 0.0, "{m}");
            assert!(
                p("min_ns") <= p("p50_ns") && p("p50_ns") <= p("p90_ns"),
                "{m}"
            );
            assert!(
                p("p90_ns") <= p("p99_ns") && p("p99_ns") <= p("p999_ns"),
                "{m}"
            );
            assert!(p("p999_ns") <= p("max_ns"), "{m}");
            let exits = m["exits_per_sample"]["total"].as_f64().unwrap();
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
    let ratios = doc["ratios"].as_array().expect("ratios");
    assert_eq!(ratios.len(), 4);
    let stages = doc["stages"].as_array().expect("stages");
    assert!(
        stages
            .iter()
            .any(|s| s["stage"] == "deadline_to_vmm" && s["count"] == 300),
        "{doc}"
    );
    assert!(
        doc["vmm"]["work_share_of_user_vtimer_p50"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let rss = doc["vmm"]["user_rss_kib_apart_from_guest_ram"]
        .as_u64()
        .expect("VMM RSS reported");
    assert!(rss > 0 && rss < 64 * 1024, "{rss} KiB");
    assert!(
        svg.starts_with("<svg") && svg.matches("<path").count() == 8,
        "{svg}"
    );
}
