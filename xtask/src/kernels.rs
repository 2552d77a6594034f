//! `cargo xtask kernels`: the conformance suite of the userspace-irqchip
//! path, run on several kernels, one nested boot each, as a matrix.
//!
//! The suite ([`suite`]) is what this project knows to break on a kernel:
//! the VMM's probe of the kernel (its live WFI wake-up check, and a 20 s
//! look for the cross-thread `KVM_IRQ_LINE` race), the plain
//! timer program with no flags (the VMM works around the WFI wake-up bug
//! where the probe finds it) and with `--no-probe` (where the bug hangs
//! it until its timeout), every GIC scenario, the SMP
//! scenarios and `smp-timer` on 4 vCPUs, `ipi-stress` under the
//! owner-thread rule (no IPI may be lost) and with cross-thread injection
//! (the kernel race: lost IPIs are counted, and every one must still be
//! accounted for), and a short benchmark. Each check is one VMM job with a
//! `--timeout`, so a kernel that hangs a guest costs that timeout and
//! shows as `exit 124`, not a wedged matrix.
//!
//! Kernels are Debian arm64 packages, fetched and cached like the default
//! L1 kernel (`crate::l1`). The default set: the pinned kernel, the newest
//! Debian 12 6.1 kernel, and 6.1.0-47 (Linux 6.1.170), which lacks the WFI
//! fix (4ce98bf0865c).

use std::time::Duration;

use serde_json::{json, Value};
use uirq_abi::boot::Program;
use uirq_abi::report;

use crate::jobs::{self, JobResult};
use crate::project::Artifacts;
use crate::Result;

/// Linux 6.1.170, Debian's last 6.1 kernel without the WFI wake-up fix.
pub const KERNEL_WITHOUT_WFI_FIX: &str = "linux-image-6.1.0-47-arm64-unsigned";

/// Upper bound for one kernel's boot and suite.
const WALL_PER_KERNEL: Duration = Duration::from_secs(1800);

/// How a check reads its job's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Judge {
    /// Exit 0.
    Status,
    /// Exit 0 and the scenario's `scenario NAME: PASS` line.
    Scenario,
    /// `ipi-stress`'s last line; a pass needs exit 0 (nothing lost).
    IpiNoneLost,
    /// `ipi-stress`'s last line; a pass needs every IPI received, lost
    /// ones included (found and recovered by the program).
    IpiAccounted,
    /// The benchmark's report: vtimer p50 and p99.
    Bench,
    /// `uirq-vmm --probe --json`: the live WFI wake-up check's verdict.
    Probe,
    /// `uirq-vmm --probe --json`: the cross-thread `KVM_IRQ_LINE` check's
    /// verdict.
    ProbeIrqLine,
}

/// One check of the suite: a name, the VMM arguments, how to judge it.
#[derive(Clone, Debug)]
pub struct Check {
    /// What the matrix calls it.
    pub name: String,
    /// The VMM arguments of its job.
    pub job: Vec<String>,
    judge: Judge,
}

fn check(name: &str, args: &[&str], judge: Judge) -> Check {
    Check {
        name: name.to_string(),
        job: args.iter().map(|s| s.to_string()).collect(),
        judge,
    }
}

/// The conformance suite, in matrix order.
pub fn suite() -> Vec<Check> {
    let mut checks = vec![
        check("probe: WFI wake-up", &["--probe", "--json"], Judge::Probe),
        // The race is rare: a longer look than the probe's default second.
        check(
            "probe: cross-thread KVM_IRQ_LINE",
            &["--probe", "--json", "--irq-line-check-ms", "20000"],
            Judge::ProbeIrqLine,
        ),
        check("timer, no flags", &["--timeout", "60"], Judge::Status),
        // Without the probe's automatic kick: a kernel with the WFI bug
        // hangs here, and the VMM names the bug when the timeout ends it.
        check(
            "timer, --no-probe",
            &["--no-probe", "--timeout", "20"],
            Judge::Status,
        ),
    ];
    for p in Program::scenarios() {
        checks.push(check(
            p.name(),
            &["--program", p.name(), "--timeout", "30"],
            Judge::Scenario,
        ));
    }
    for p in Program::smp_scenarios() {
        checks.push(check(
            p.name(),
            &["--cpus", "4", "--program", p.name(), "--timeout", "60"],
            Judge::Scenario,
        ));
    }
    checks.push(check(
        "smp-timer",
        &["--cpus", "4", "--program", "smp-timer", "--timeout", "60"],
        Judge::Status,
    ));
    let stress = ["--cpus", "2", "--program", "ipi-stress", "--ipis", "20000"];
    checks.push(check(
        "ipi-stress, owner thread",
        &[&stress[..], &["--timeout", "300"]].concat(),
        Judge::IpiNoneLost,
    ));
    checks.push(check(
        "ipi-stress, cross-thread",
        &[
            &stress[..],
            &["--irq-injection", "cross-thread", "--timeout", "300"],
        ]
        .concat(),
        Judge::IpiAccounted,
    ));
    checks.push(check(
        "bench vtimer p50/p99",
        &[
            "--program",
            "bench",
            "--samples",
            "500",
            "--cpus",
            "1",
            "--timeout",
            "300",
        ],
        Judge::Bench,
    ));
    checks
}

/// One cell of the matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// Whether the check passed.
    pub pass: bool,
    /// What to show: `PASS`, `exit 124`, `0 lost`, figures.
    pub text: String,
    /// Figures for the JSON (lost IPIs, latencies), if any.
    pub figures: Value,
}

/// `ipi-stress`'s last line, `ipi-stress: S sent, R received, L lost,
/// latency p50/p99 = A/B ns`, as (S, R, L, A, B); the end-to-end tests
/// read it too.
pub fn ipi_stress_summary(console: &str) -> Option<(u64, u64, u64, u64, u64)> {
    let line = console
        .lines()
        .rev()
        .find(|l| l.starts_with("ipi-stress: ") && l.contains(" sent, "))?;
    let rest = line.strip_prefix("ipi-stress: ")?;
    let (sent, rest) = rest.split_once(" sent, ")?;
    let (received, rest) = rest.split_once(" received, ")?;
    let (lost, rest) = rest.split_once(" lost, latency p50/p99 = ")?;
    let (p50, p99) = rest.strip_suffix(" ns")?.split_once('/')?;
    Some((
        sent.parse().ok()?,
        received.parse().ok()?,
        lost.parse().ok()?,
        p50.parse().ok()?,
        p99.parse().ok()?,
    ))
}

/// Judges `result` as `check` asks.
fn judge(check: &Check, result: &JobResult) -> Cell {
    let code = result.exit_code;
    let failed = |what: String| Cell {
        pass: false,
        text: what,
        figures: json!({ "exit_code": code }),
    };
    let exit_text = match code {
        Some(c) => format!("exit {c}"),
        None => "no exit".to_string(),
    };
    match check.judge {
        Judge::Status if code == Some(0) => Cell {
            pass: true,
            text: "PASS".into(),
            figures: json!({ "exit_code": 0 }),
        },
        Judge::Scenario
            if code == Some(0)
                && result
                    .console
                    .contains(&format!("scenario {}: PASS", check.name)) =>
        {
            Cell {
                pass: true,
                text: "PASS".into(),
                figures: json!({ "exit_code": 0 }),
            }
        }
        Judge::Status | Judge::Scenario => failed(exit_text),
        Judge::IpiNoneLost | Judge::IpiAccounted => match ipi_stress_summary(&result.console) {
            Some((sent, received, lost, _, _)) => {
                let pass = match check.judge {
                    Judge::IpiNoneLost => code == Some(0) && lost == 0,
                    _ => sent == received && matches!(code, Some(0 | 1)),
                };
                Cell {
                    pass,
                    text: format!("{lost} lost of {sent}"),
                    figures: json!({
                        "exit_code": code, "sent": sent, "received": received, "lost": lost,
                    }),
                }
            }
            None => failed(format!("{exit_text}, no summary")),
        },
        Judge::Probe | Judge::ProbeIrqLine => {
            let report = result
                .console
                .lines()
                .find(|l| l.starts_with('{'))
                .and_then(|l| serde_json::from_str::<Value>(l).ok());
            match (code, report) {
                (Some(0), Some(j)) if check.judge == Judge::Probe => {
                    let wfi = &j["wfi_wakeup"];
                    let name = wfi["verdict"].as_str().unwrap_or("missing").to_string();
                    let text = match name.as_str() {
                        "wakes" => "wakes".to_string(),
                        "bug_present" => "bug (no 4ce98bf0865c)".to_string(),
                        other => other.replace('_', " "),
                    };
                    Cell {
                        pass: name == "wakes" || name == "bug_present",
                        text,
                        figures: json!({
                            "exit_code": 0,
                            "verdict": name,
                            "cost_us": wfi["cost_us"],
                            "report_after_us": wfi["report_after_us"],
                        }),
                    }
                }
                (Some(0), Some(j)) => {
                    let x = &j["cross_thread_irq_line"];
                    let name = x["verdict"].as_str().unwrap_or("missing").to_string();
                    let raises = x["raises"].as_u64().unwrap_or(0);
                    let text = match name.as_str() {
                        "loses" => format!(
                            "lost at change {}",
                            raises * 2 - u64::from(x["raises_lost"] != 0)
                        ),
                        "none_lost" => format!("none lost in {}", raises * 2),
                        other => other.replace('_', " "),
                    };
                    Cell {
                        // Either answer is a finding; only "could not
                        // tell" fails the cell.
                        pass: name == "loses" || name == "none_lost",
                        text,
                        figures: json!({
                            "exit_code": 0,
                            "verdict": name,
                            "raises": x["raises"],
                            "raises_lost": x["raises_lost"],
                            "lowers_lost": x["lowers_lost"],
                            "entries": x["entries"],
                            "cost_us": x["cost_us"],
                        }),
                    }
                }
                _ => failed(format!("{exit_text}, no report")),
            }
        }
        Judge::Bench => {
            let vtimer = result
                .report(report::BENCH)
                .and_then(|text| serde_json::from_str::<uirq_abi::bench_json::RunReport>(text).ok())
                .and_then(|r| r.results.into_iter().find(|m| m.measurement == "vtimer"));
            match (code, vtimer) {
                (Some(0), Some(m)) => Cell {
                    pass: true,
                    text: format!(
                        "{} / {}",
                        crate::bench::ns(m.summary.p50_ns),
                        crate::bench::ns(m.summary.p99_ns)
                    ),
                    figures: json!({
                        "exit_code": 0,
                        "vtimer_p50_ns": m.summary.p50_ns,
                        "vtimer_p99_ns": m.summary.p99_ns,
                        "samples": m.summary.count,
                    }),
                },
                _ => failed(format!("{exit_text}, no report")),
            }
        }
    }
}

/// One kernel's column.
#[derive(Clone, Debug)]
pub struct Column {
    /// The Debian package.
    pub package: String,
    /// The release the L1 init reported (`uname -r`).
    pub release: String,
    /// One cell per check, in suite order.
    pub cells: Vec<Cell>,
}

/// The default kernels: the pinned one, the newest Debian 12 6.1 kernel
/// apt knows (if any), and the one without the WFI fix.
pub fn default_packages() -> Vec<String> {
    let mut packages = vec![crate::l1::KERNEL_PACKAGE.to_string()];
    if let Some(newest) = newest_6_1() {
        if newest != KERNEL_WITHOUT_WFI_FIX {
            packages.push(newest);
        }
    }
    packages.push(KERNEL_WITHOUT_WFI_FIX.to_string());
    packages
}

/// The newest `linux-image-6.1.0-N-arm64-unsigned` apt lists.
fn newest_6_1() -> Option<String> {
    let listing = crate::output_of(std::process::Command::new("apt-cache").args([
        "search",
        "--names-only",
        r"^linux-image-6\.1\.0-[0-9]+-arm64-unsigned$",
    ]))
    .ok()?;
    newest_abi(listing.lines().filter_map(|l| l.split_whitespace().next()))
}

/// Of `packages` (`linux-image-6.1.0-N-arm64-unsigned`), the highest N.
fn newest_abi<'a>(packages: impl Iterator<Item = &'a str>) -> Option<String> {
    packages
        .filter_map(|p| {
            let n: u32 = p
                .strip_prefix("linux-image-6.1.0-")?
                .strip_suffix("-arm64-unsigned")?
                .parse()
                .ok()?;
            Some((n, p.to_string()))
        })
        .max()
        .map(|(_, p)| p)
}

/// Runs the suite on each of `packages`, one nested boot each.
pub fn run(artifacts: &Artifacts, packages: &[String]) -> Result<Vec<Column>> {
    let checks = suite();
    let jobs: Vec<Vec<String>> = checks.iter().map(|c| c.job.clone()).collect();
    let mut columns = Vec::new();
    for package in packages {
        crate::l1::ensure_kernel_package(Some(package))?;
        crate::progress(format!(
            "{package}: {} checks in one nested boot",
            checks.len()
        ));
        let (env, results) =
            jobs::run_on_kernel(artifacts, &jobs, "kernels", WALL_PER_KERNEL, package)?;
        let cells: Vec<Cell> = checks
            .iter()
            .zip(&results)
            .map(|(c, r)| judge(c, r))
            .collect();
        let passed = cells.iter().filter(|c| c.pass).count();
        crate::progress(format!(
            "{package} ({}): {passed} of {} checks passed",
            env.kernel,
            cells.len()
        ));
        columns.push(Column {
            package: package.clone(),
            release: env.kernel,
            cells,
        });
    }
    Ok(columns)
}

/// The matrix for people: a row per check, a column per kernel.
pub fn table(checks: &[Check], columns: &[Column]) -> String {
    let mut rows: Vec<Vec<String>> = vec![std::iter::once("check".to_string())
        .chain(columns.iter().map(|c| c.release.clone()))
        .collect()];
    for (i, check) in checks.iter().enumerate() {
        rows.push(
            std::iter::once(check.name.clone())
                .chain(columns.iter().map(|c| {
                    let cell = &c.cells[i];
                    if cell.pass || cell.text.starts_with("exit") {
                        cell.text.clone()
                    } else {
                        format!("FAIL: {}", cell.text)
                    }
                }))
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|col| {
            rows.iter()
                .map(|r| r[col].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if n == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&rule.join("  "));
            out.push('\n');
        }
    }
    out
}

/// The matrix as JSON: per kernel, per check, the verdict and figures.
pub fn to_json(checks: &[Check], columns: &[Column]) -> Value {
    json!({
        "tool": "xtask",
        "tool_version": env!("CARGO_PKG_VERSION"),
        "kernels": columns.iter().map(|c| json!({
            "package": c.package,
            "release": c.release,
            "checks": checks.iter().zip(&c.cells).map(|(check, cell)| json!({
                "name": check.name,
                "vmm_args": check.job,
                "pass": cell.pass,
                "text": cell.text,
                "figures": cell.figures,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i32, console: &str) -> JobResult {
        JobResult {
            exit_code: Some(code),
            console: console.to_string(),
            ..JobResult::default()
        }
    }

    #[test]
    fn the_suite_covers_every_scenario_with_a_timeout() {
        let checks = suite();
        for p in Program::scenarios().chain(Program::smp_scenarios()) {
            assert!(checks.iter().any(|c| c.name == p.name()), "{}", p.name());
        }
        // The probe runs no guest; every other job is bounded.
        for c in checks
            .iter()
            .filter(|c| !matches!(c.judge, Judge::Probe | Judge::ProbeIrqLine))
        {
            assert!(
                c.job.iter().any(|a| a == "--timeout"),
                "{} has no timeout",
                c.name
            );
        }
        let mut names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), checks.len(), "check names are unique");
    }

    #[test]
    fn verdicts_read_the_exit_code_and_the_guest_s_lines() {
        let checks = suite();
        let by = |name: &str| checks.iter().find(|c| c.name == name).unwrap();
        assert!(judge(by("timer, no flags"), &result(0, "")).pass);
        let hung = judge(by("timer, no flags"), &result(124, ""));
        assert!(!hung.pass);
        assert_eq!(hung.text, "exit 124");
        // A scenario passes only with its own PASS line.
        assert!(judge(by("pmr"), &result(0, "scenario pmr: PASS\n")).pass);
        assert!(!judge(by("pmr"), &result(0, "scenario level: PASS\n")).pass);
        let line = "ipi-stress: 20000 sent, 20000 received, 3 lost, latency p50/p99 = 1/2 ns\n";
        let owner = judge(by("ipi-stress, owner thread"), &result(1, line));
        assert!(!owner.pass, "a lost IPI fails the owner-thread rule");
        assert_eq!(owner.text, "3 lost of 20000");
        // Cross-thread: losses are the kernel's race; all accounted is a pass.
        assert!(judge(by("ipi-stress, cross-thread"), &result(1, line)).pass);
        let short = "ipi-stress: 20000 sent, 19999 received, 0 lost, latency p50/p99 = 1/2 ns\n";
        assert!(!judge(by("ipi-stress, cross-thread"), &result(0, short)).pass);
        assert_eq!(
            ipi_stress_summary(
                "x\nipi-stress: 5 sent, 4 received, 1 lost, latency p50/p99 = 1/2 ns"
            ),
            Some((5, 4, 1, 1, 2))
        );
        assert!(!judge(by("bench vtimer p50/p99"), &result(0, "")).pass);
        // The probe's verdict, read from its JSON line.
        let probe = by("probe: WFI wake-up");
        let doc = |v: &str| format!("{{\"wfi_wakeup\":{{\"verdict\":\"{v}\",\"cost_us\":900}}}}\n");
        let bug = judge(probe, &result(0, &doc("bug_present")));
        assert!(bug.pass);
        assert_eq!(bug.text, "bug (no 4ce98bf0865c)");
        assert_eq!(judge(probe, &result(0, &doc("wakes"))).text, "wakes");
        assert!(!judge(probe, &result(0, &doc("inconclusive"))).pass);
        assert!(!judge(probe, &result(125, "uirq-vmm: unknown option")).pass);
        let irq_line = by("probe: cross-thread KVM_IRQ_LINE");
        let doc = |v: &str, raises: u32, up: u32, down: u32| {
            format!("{{\"cross_thread_irq_line\":{{\"verdict\":\"{v}\",\"raises\":{raises},\"raises_lost\":{up},\"lowers_lost\":{down}}}}}\n")
        };
        let lost = judge(irq_line, &result(0, &doc("loses", 700, 1, 0)));
        assert!(lost.pass);
        assert_eq!(lost.text, "lost at change 1399");
        let lower = judge(irq_line, &result(0, &doc("loses", 700, 0, 1)));
        assert_eq!(lower.text, "lost at change 1400");
        let none = judge(irq_line, &result(0, &doc("none_lost", 5000, 0, 0)));
        assert!(none.pass);
        assert_eq!(none.text, "none lost in 10000");
        assert!(!judge(irq_line, &result(0, &doc("inconclusive", 0, 0, 0))).pass);
        // The WFI cell does not read the cross-thread verdict, nor the
        // other way round.
        assert!(
            !judge(
                irq_line,
                &result(0, "{\"wfi_wakeup\":{\"verdict\":\"wakes\"}}\n")
            )
            .pass
        );
    }

    #[test]
    fn the_newest_6_1_kernel_is_the_highest_abi_number() {
        let listed = [
            "linux-image-6.1.0-9-arm64-unsigned",
            "linux-image-6.1.0-47-arm64-unsigned",
            "linux-image-6.1.0-41-arm64-unsigned",
            "linux-image-6.12.117+deb12-arm64-unsigned",
        ];
        assert_eq!(
            newest_abi(listed.into_iter()).as_deref(),
            Some("linux-image-6.1.0-47-arm64-unsigned")
        );
        assert_eq!(newest_abi(std::iter::empty()), None);
    }

    #[test]
    fn the_matrix_lines_up_and_the_json_has_every_cell() {
        let checks = vec![
            check("timer, no flags", &["--timeout", "60"], Judge::Status),
            check(
                "pmr",
                &["--program", "pmr", "--timeout", "30"],
                Judge::Scenario,
            ),
        ];
        let columns = vec![
            Column {
                package: "a".into(),
                release: "6.12.117+deb12-arm64".into(),
                cells: vec![
                    judge(&checks[0], &result(0, "")),
                    judge(&checks[1], &result(124, "")),
                ],
            },
            Column {
                package: "b".into(),
                release: "6.1.0-47-arm64".into(),
                cells: vec![
                    judge(&checks[0], &result(124, "")),
                    judge(&checks[1], &result(0, "scenario pmr: PASS")),
                ],
            },
        ];
        let t = table(&checks, &columns);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        let col = lines[0].find("6.1.0-47").unwrap();
        assert_eq!(lines[2].find("exit 124"), Some(col));
        assert_eq!(lines[3].find("PASS"), Some(col));
        let j = to_json(&checks, &columns);
        assert_eq!(j["kernels"][1]["checks"][0]["pass"], false);
        assert_eq!(j["kernels"][1]["checks"][1]["text"], "PASS");
        assert_eq!(j["kernels"][0]["release"], "6.12.117+deb12-arm64");
    }
}
