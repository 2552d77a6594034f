//! End-to-end: a payload that follows Linux's arm64 boot protocol but is not
//! Linux boots too.
//!
//! The firmware image carries an arm64 `Image` header, so `--kernel` loads it
//! as it would load Linux: at the 2 MiB aligned RAM base plus its
//! text_offset, entered with the generated device tree's address in `x0`.
//! Its `dt-info` program reads the GIC's and UART's addresses *from that
//! tree* and checks them against the memory map it was built with; bootargs
//! `uirq.program=NAME` picks another program. The same file with its header
//! magic cleared is a raw binary, which the VMM loads at RAM base + 0x80000
//! (the firmware moves itself to where it is linked). All jobs run in one
//! batch (one boot of L1 when nested).

use std::path::PathBuf;
use std::sync::OnceLock;

use uirq_tests::{batch_with, job, parse_timer_summary, Batch, JobResult, BATCH_WALL_TIMEOUT};

const DT_INFO_TWO_CPUS: usize = 0;
const DEFAULT_PROGRAM: usize = 1;
const SMP_TIMER_BY_BOOTARGS: usize = 2;
const IN_KERNEL_VGIC: usize = 3;
const RAW_BINARY: usize = 4;

/// Offset of the magic in the arm64 Image header (booting.rst 4).
const MAGIC_OFFSET: usize = 0x38;

/// The firmware image with its header magic cleared: not an Image any more.
fn raw_copy(image: &std::path::Path) -> Result<PathBuf, uirq_tests::Problem> {
    let failed = |e: std::io::Error| uirq_tests::Problem::Failed(format!("raw copy: {e}"));
    let mut bytes = std::fs::read(image).map_err(failed)?;
    assert_eq!(
        &bytes[MAGIC_OFFSET..MAGIC_OFFSET + 4],
        b"ARMd",
        "no Image header"
    );
    bytes[MAGIC_OFFSET..MAGIC_OFFSET + 4].fill(0);
    let path = xtask::project::target_dir().join("uirq-guest-raw.bin");
    std::fs::write(&path, bytes).map_err(failed)?;
    Ok(path)
}

fn jobs(artifacts: &xtask::project::Artifacts) -> Result<Vec<Vec<String>>, uirq_tests::Problem> {
    let image = artifacts.guest_image.display().to_string();
    let raw = raw_copy(&artifacts.guest_image)?.display().to_string();
    let job = |args: &[&str]| {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--timeout".to_string(), "60".to_string()]);
        v
    };
    Ok(vec![
        job(&[
            "--kernel",
            &image,
            "--cmdline",
            "uirq.program=dt-info",
            "--cpus",
            "2",
        ]),
        job(&["--kernel", &image]),
        job(&[
            "--kernel",
            &image,
            "--cmdline",
            "console=ttyAMA0 uirq.program=smp-timer",
            "--cpus",
            "2",
        ]),
        job(&[
            "--kernel",
            &image,
            "--cmdline",
            "uirq.program=timer",
            "--irqchip",
            "kernel",
        ]),
        job(&["--kernel", &raw, "--cmdline", "uirq.program=dt-info"]),
    ])
}

static BATCH: OnceLock<Batch> = OnceLock::new();

fn run(index: usize) -> Option<&'static JobResult> {
    job(
        batch_with(&BATCH, "boot-protocol", jobs, BATCH_WALL_TIMEOUT),
        index,
    )
}

/// The job ran `dt-info`, which found this VMM's map in the tree and
/// `cpus` CPUs, and powered off with success.
fn assert_dt_info(r: &JobResult, cpus: u32) {
    let c = &r.console;
    assert_eq!(r.exit_code, Some(0), "{c}");
    for line in [
        "dt-info: gic distributor 0x8000000 size 0x1000, cpu interface 0x8010000 size 0x2000",
        "dt-info: uart 0x9000000 interrupt spi 1 (id 33, level-high)",
        &format!("dt-info: cpus {cpus}"),
        "dt-info: PASS",
    ] {
        assert!(
            c.lines().any(|l| l.starts_with(line)),
            "no {line:?} in:\n{c}"
        );
    }
    assert!(c.contains("model \"uirq-vmm"), "{c}");
}

#[test]
fn a_boot_protocol_payload_reads_the_gic_and_uart_from_the_tree_in_x0() {
    let Some(r) = run(DT_INFO_TWO_CPUS) else {
        return;
    };
    assert_dt_info(r, 2);
    assert!(
        r.console
            .contains("dt-info: bootargs \"uirq.program=dt-info\""),
        "{}",
        r.console
    );
}

#[test]
fn without_bootargs_the_payload_reports_the_tree() {
    let Some(r) = run(DEFAULT_PROGRAM) else {
        return;
    };
    assert_dt_info(r, 1);
}

#[test]
fn bootargs_pick_the_program_and_secondaries_start_by_psci() {
    let Some(r) = run(SMP_TIMER_BY_BOOTARGS) else {
        return;
    };
    let c = &r.console;
    assert_eq!(r.exit_code, Some(0), "{c}");
    assert!(c.contains("smp-timer: 2 cores, PASS"), "{c}");
}

#[test]
fn the_payload_boots_on_the_in_kernel_vgic_too() {
    let Some(r) = run(IN_KERNEL_VGIC) else {
        return;
    };
    assert_eq!(r.exit_code, Some(0), "{}", r.console);
    let (n, ..) = parse_timer_summary(&r.console)
        .unwrap_or_else(|| panic!("no timer summary:\n{}", r.console));
    assert_eq!(n, uirq_abi::boot::DEFAULT_TICKS);
}

#[test]
fn a_file_without_the_image_header_boots_as_a_raw_binary() {
    let Some(r) = run(RAW_BINARY) else {
        return;
    };
    // Loaded at RAM base + 0x80000, away from where it is linked.
    assert!(r.console.contains("loaded at 0x40080000"), "{}", r.console);
    assert_dt_info(r, 1);
}
