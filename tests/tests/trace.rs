//! End to end: `cargo xtask run -- --trace PATH`, as a user types it, with
//! a path relative to where they are, leaves a trace there that loads as
//! Chrome trace-event JSON, and in which every timer interrupt of the run
//! shows its path in order: the timer's level report, `KVM_IRQ_LINE`
//! raising vCPU 0's line, the guest's acknowledge of PPI 27 and its EOI.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use uirq_tests::{available, preflight, Problem};

/// The virtual timer's interrupt id (PPI 27).
const VTIMER: u64 = 27;
/// Timer interrupts the run takes.
const TICKS: u64 = 5;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Runs `cargo xtask run -- --ticks 5 --trace out/trace.json` from a
/// scratch directory inside the workspace; returns the trace's path and
/// the command's exit code and output.
fn traced_run() -> Result<(PathBuf, i32, String), Problem> {
    preflight()?;
    let dir = workspace().join("target/tmp/trace-e2e");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("out"))
        .map_err(|e| Problem::Failed(format!("cannot create {}: {e}", dir.display())))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&dir)
        .args(["xtask", "run", "--", "--ticks"])
        .arg(TICKS.to_string())
        .args(["--trace", "out/trace.json", "--timeout", "120"])
        .output()
        .map_err(|e| Problem::Failed(format!("cannot run cargo xtask: {e}")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((
        dir.join("out/trace.json"),
        output.status.code().unwrap_or(-1),
        text,
    ))
}

fn arg_u64(event: &Value, name: &str) -> Option<u64> {
    event["args"][name].as_u64()
}

#[test]
fn each_timer_interrupt_shows_level_report_irq_line_acknowledge_and_eoi_in_order() {
    let outcome = traced_run();
    let Some((path, code, output)) = available(&outcome) else {
        return;
    };
    assert_eq!(*code, 0, "cargo xtask run failed:\n{output}");
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no trace at {}: {e}\n{output}", path.display()));
    let trace: Value = serde_json::from_str(&text).expect("the trace is valid JSON");
    assert!(trace["otherData"]["cntfrq"].as_u64().unwrap_or(0) > 0);
    assert_eq!(trace["otherData"]["dropped_records"], 0);
    let mut events: Vec<&Value> = trace["traceEvents"]
        .as_array()
        .expect("traceEvents is an array")
        .iter()
        .filter(|e| e["args"]["seq"].is_u64())
        .collect();
    events.sort_by_key(|e| arg_u64(e, "seq"));

    // Walk the run in order: each interrupt must go level report → PPI 27
    // pending in the model → KVM_IRQ_LINE (raise) → acknowledge → EOI
    // before the next begins.
    #[derive(Debug, PartialEq)]
    enum Want {
        Level,
        Pending,
        Raise,
        Acknowledge,
        Eoi,
    }
    let mut want = Want::Level;
    let mut complete = 0;
    for e in &events {
        let name = e["name"].as_str().unwrap_or_default();
        let id = arg_u64(e, "id");
        want = match (want, name) {
            (Want::Level, "timer level") if arg_u64(e, "level") == Some(1) => Want::Pending,
            (Want::Pending, "pending") if id == Some(VTIMER) => Want::Raise,
            (Want::Raise, "KVM_IRQ_LINE")
                if arg_u64(e, "level") == Some(1) && arg_u64(e, "target") == Some(0) =>
            {
                Want::Acknowledge
            }
            (Want::Acknowledge, "acknowledge") if id == Some(VTIMER) => Want::Eoi,
            (Want::Eoi, "EOI") if id == Some(VTIMER) => {
                complete += 1;
                Want::Level
            }
            // An acknowledge or EOI of the timer out of turn is a broken path.
            (w, "acknowledge" | "EOI") if id == Some(VTIMER) => {
                panic!(
                    "{name} of PPI 27 while waiting for {w:?} (seq {:?})",
                    arg_u64(e, "seq")
                )
            }
            (w, _) => w,
        };
    }
    assert_eq!(
        complete, TICKS,
        "{complete} complete timer interrupts in the trace, {TICKS} expected"
    );
    // The register names make it readable.
    assert!(events.iter().any(|e| e["name"] == "GICC_IAR read"));
    assert!(events.iter().any(|e| e["name"] == "GICC_EOIR write"));
    assert!(output.contains("brought back from L1") || xtask::project::is_native_kvm_host());
}
