//! End-to-end: an arm64 Linux (Debian's kernel, the one the nested
//! environment runs as L1) as the VMM's guest, on the userspace GIC.
//!
//! The guest's initramfs holds `uirq-linux-init`, which reports when it
//! started, prints `/proc/interrupts` and powers off. All jobs run in one
//! batch (one boot of L1 when nested); each test checks one job, or two.
//! What the interrupts show:
//!
//! - the virtual timer (PPI 27, `arch_timer`) ticked on every CPU: the
//!   level KVM reports reaches the model, and the model each vCPU;
//! - with two vCPUs, CPU1 took IPIs (SGIs through `GICD_SGIR`, routed by
//!   the model, injected by the target vCPU's own thread);
//! - the PL011's interrupt (SPI 1) fired for the bytes the VMM fed from its
//!   stdin, and the line reached the init through the tty.

use std::sync::OnceLock;

use uirq_tests::{batch_with, job, linux_boot_files, Batch, JobResult, LINUX_BATCH_WALL_TIMEOUT};
use xtask::linux::{self, Interrupts};

const ONE_CPU: usize = 0;
const TWO_CPUS: usize = 1;
const READ_LINE: usize = 2;

/// What the VMM writes to its stdin in the `READ_LINE` job.
const STDIN_LINE: &str = "hello-from-the-vmm-stdin";

/// Each job's own bound (the batch has its own, for all of them).
const TIMEOUT_S: &str = "600";

fn jobs(artifacts: &xtask::project::Artifacts) -> Result<Vec<Vec<String>>, uirq_tests::Problem> {
    let (kernel, initrd) = linux_boot_files(artifacts)?;
    let owned = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let on = |cpus: &str| owned(&["--cpus", cpus, "--irqchip", "user", "--timeout", TIMEOUT_S]);
    let read_line_cmdline = format!("{} {}30", linux::DEFAULT_CMDLINE, linux::READ_LINE_PARAM);
    let mut read_line_args = owned(&["--cmdline", &read_line_cmdline]);
    read_line_args.extend(on("1"));
    Ok(vec![
        linux::boot_job(&kernel, &initrd, &[linux::started_mark()], &on("1")),
        linux::boot_job(&kernel, &initrd, &[linux::started_mark()], &on("2")),
        // The pl011 driver drops what arrives before its port is open, so
        // the line goes in once the init says it is listening.
        linux::boot_job(
            &kernel,
            &initrd,
            &[
                format!("{}{}", xtask::jobs::MARK_FIELD, linux::READY_FOR_LINE),
                format!("{}{STDIN_LINE}", xtask::jobs::STDIN_FIELD),
            ],
            &read_line_args,
        ),
    ])
}

static BATCH: OnceLock<Batch> = OnceLock::new();

fn run(index: usize) -> Option<&'static JobResult> {
    job(
        batch_with(&BATCH, "linux", jobs, LINUX_BATCH_WALL_TIMEOUT),
        index,
    )
}

/// The job's `/proc/interrupts`, as the init printed it.
fn interrupts(r: &JobResult) -> Interrupts {
    Interrupts::from_console(&r.console)
        .unwrap_or_else(|| panic!("no /proc/interrupts in the console:\n{}", r.console))
}

/// Job `index` reached init, which saw `cpus` CPUs, and powered off.
fn assert_boots_to_init(index: usize, cpus: u32) {
    let Some(r) = run(index) else { return };
    let console = &r.console;
    assert_eq!(
        r.exit_code,
        Some(0),
        "the guest did not power off:\n{console}"
    );
    let mark = r
        .mark
        .unwrap_or_else(|| panic!("the init never started:\n{console}"));
    let uptime = linux::uptime_at_init(console)
        .unwrap_or_else(|| panic!("no uptime in the init's first line:\n{console}"));
    eprintln!(
        "{cpus} vCPU(s): VMM start to init {:.2} s, kernel uptime at init {uptime:.2} s",
        mark.as_secs_f64()
    );
    let info = linux::init_info(console)
        .unwrap_or_else(|| panic!("no line about the machine from the init:\n{console}"));
    assert_eq!(info.cpus, cpus, "CPUs online:\n{console}");
    assert!(
        console.contains("uirq-linux-init: end of /proc/interrupts"),
        "{console}"
    );
    assert!(!console.contains("uirq-linux-init: error"), "{console}");
}

#[test]
fn linux_boots_to_init_on_one_vcpu_and_powers_off() {
    assert_boots_to_init(ONE_CPU, 1);
}

#[test]
fn linux_boots_to_init_on_two_vcpus_and_powers_off() {
    assert_boots_to_init(TWO_CPUS, 2);
}

#[test]
fn the_virtual_timer_ticks_on_every_cpu() {
    for (index, cpus) in [(ONE_CPU, 1), (TWO_CPUS, 2)] {
        let Some(r) = run(index) else { return };
        let irqs = interrupts(r);
        assert_eq!(irqs.cpus, cpus, "{}", r.console);
        let timer = irqs
            .find("arch_timer")
            .unwrap_or_else(|| panic!("no arch_timer row:\n{}", r.console));
        assert_eq!(timer.counts.len(), cpus, "{}", r.console);
        for (cpu, n) in timer.counts.iter().enumerate() {
            assert!(*n > 0, "no timer interrupt on CPU{cpu}:\n{}", r.console);
        }
    }
}

#[test]
fn ipis_reach_the_second_cpu() {
    let Some(r) = run(TWO_CPUS) else { return };
    let irqs = interrupts(r);
    let ipis: Vec<(String, u64)> = irqs
        .ipis()
        .map(|row| (format!("{} {}", row.label, row.description), row.on_cpu(1)))
        .collect();
    assert!(!ipis.is_empty(), "no IPI rows:\n{}", r.console);
    let on_cpu1: u64 = ipis.iter().map(|(_, n)| n).sum();
    assert!(on_cpu1 > 0, "CPU1 took no IPI ({ipis:?}):\n{}", r.console);
}

#[test]
fn a_line_on_the_vmm_stdin_reaches_the_guest_init() {
    let Some(r) = run(READ_LINE) else { return };
    let console = &r.console;
    assert_eq!(r.exit_code, Some(0), "{console}");
    assert!(r.mark.is_some(), "the init never got ready:\n{console}");
    assert_eq!(linux::line_read(console), Some(STDIN_LINE), "{console}");
}

// The pl011 driver sends what fits in the FIFO without waiting for its
// transmit interrupt, so only the received line makes the count certain.
#[test]
fn the_pl011_interrupt_is_taken_for_the_received_line() {
    for index in [ONE_CPU, TWO_CPUS, READ_LINE] {
        let Some(r) = run(index) else { return };
        let irqs = interrupts(r);
        let uart = irqs
            .find("pl011")
            .unwrap_or_else(|| panic!("no pl011 row in job {index}:\n{}", r.console));
        if index == READ_LINE {
            assert!(uart.total() > 0, "no PL011 interrupt:\n{}", r.console);
        }
    }
}
