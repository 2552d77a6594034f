//! End-to-end: the firmware on QEMU with KVM, where the VMM runs.
//!
//! One batch (one boot of L1 when nested): the `timer` program on QEMU
//! with KVM and QEMU's userspace GICv2 (`kernel_irqchip=off`), the same
//! with KVM's in-kernel vGICv2 (`kernel_irqchip=on`), and the same program
//! on the VMM. They are the three sides `bench-latency --vmm uirq,qemu`
//! compares; here each must run to its summary line and report what it
//! cost (peak RSS and wall time, measured where it ran).

use std::sync::OnceLock;
use std::time::Duration;

use uirq_abi::boot::Program;
use uirq_tests::{batch_with, job, parse_timer_summary, Batch, Problem, BATCH_WALL_TIMEOUT};
use xtask::project::Artifacts;
use xtask::qemu_plain;

const QEMU_USER_GIC: usize = 0;
const QEMU_KERNEL_GIC: usize = 1;
const VMM: usize = 2;
/// A guest that never stops, on QEMU: only the job's bound ends it.
const QEMU_SPIN: usize = 3;

/// Timer ticks per run: the program's default.
const TICKS: u64 = 10;
/// The bound of each QEMU run; the VMM's is its `--timeout`.
const QEMU_TIMEOUT: Duration = Duration::from_secs(120);
/// The bound of the QEMU run that never ends by itself.
const SPIN_TIMEOUT: Duration = Duration::from_secs(5);

fn jobs(artifacts: &Artifacts) -> Result<Vec<Vec<String>>, Problem> {
    // The batch needs QEMU for L1 as well as L1 itself: a machine that
    // cannot fetch it cannot run this test.
    if !xtask::project::is_native_kvm_host() {
        xtask::qemu_l1::ensure_payload().map_err(Problem::CannotRun)?;
    }
    let elf = qemu_plain::elf_of(&artifacts.guest_image);
    if !elf.is_file() {
        return Err(Problem::Failed(format!(
            "no firmware ELF at {}",
            elf.display()
        )));
    }
    let qemu = |kernel_irqchip| {
        qemu_plain::kvm_job(
            kernel_irqchip,
            &elf,
            Program::Timer,
            [TICKS, 0],
            1,
            QEMU_TIMEOUT,
        )
    };
    let vmm = ["--ticks", "10", "--timeout", "60"]
        .map(String::from)
        .to_vec();
    let spin = qemu_plain::kvm_job(false, &elf, Program::Spin, [0, 0], 1, SPIN_TIMEOUT);
    Ok(vec![qemu(false), qemu(true), vmm, spin])
}

static BATCH: OnceLock<Batch> = OnceLock::new();

fn run(index: usize) -> Option<&'static uirq_tests::JobResult> {
    job(
        batch_with(&BATCH, "qemu-kvm", jobs, BATCH_WALL_TIMEOUT),
        index,
    )
}

/// Job `index` printed the timer program's summary with every tick, exited
/// 0, and came back with a plausible peak RSS (at least `min_rss_kib`)
/// and wall time.
fn assert_timer_run(index: usize, min_rss_kib: u64) {
    let Some(r) = run(index) else { return };
    let console = &r.console;
    // QEMU exits 0 on the guest's SYSTEM_OFF whatever its verdict; the
    // VMM exits with the guest's status. Both are 0 for a good run.
    assert_eq!(r.exit_code, Some(0), "{console}");
    let (n, min, median, max) =
        parse_timer_summary(console).unwrap_or_else(|| panic!("no summary line in:\n{console}"));
    assert_eq!(n, TICKS, "{console}");
    assert!(min <= median && median <= max, "{console}");
    let rss = r.peak_rss_kib.expect("no peak RSS");
    // The guest's 128 MiB are mapped but mostly untouched; the process
    // itself is at least a few MiB and far below L1's 1 GiB.
    assert!(
        (min_rss_kib..1 << 20).contains(&rss),
        "peak RSS {rss} KiB\n{console}"
    );
    let wall = r.wall.expect("no wall time");
    // Ten 10 ms ticks at the least; well inside the bound.
    assert!(
        wall >= Duration::from_millis(100) && wall < QEMU_TIMEOUT,
        "wall {wall:?}\n{console}"
    );
    eprintln!(
        "job {index}: peak RSS {rss} KiB, wall {:.1} ms; {}",
        wall.as_secs_f64() * 1e3,
        console
            .lines()
            .find(|l| l.starts_with("timer: ") && l.contains("interrupts"))
            .unwrap_or_default()
    );
}

#[test]
fn the_timer_program_runs_on_qemu_with_its_userspace_gic() {
    assert_timer_run(QEMU_USER_GIC, 8 << 10);
}

#[test]
fn the_timer_program_runs_on_qemu_with_the_in_kernel_vgic() {
    assert_timer_run(QEMU_KERNEL_GIC, 8 << 10);
}

#[test]
fn the_vmm_job_of_the_same_batch_reports_its_cost_too() {
    assert_timer_run(VMM, 1 << 10);
}

/// The `GICD_IIDR` the timer program printed.
fn distributor_iidr(console: &str) -> Option<&str> {
    console
        .lines()
        .find_map(|l| l.strip_prefix("timer: GICD_IIDR = "))
        .and_then(|rest| rest.split_whitespace().next())
}

// `kernel_irqchip` really chooses the GIC: the two runs read different
// distributor identities (QEMU's model and KVM's vGICv2 each report their
// own implementation), so neither fell back to the other.
#[test]
fn kernel_irqchip_chooses_between_two_different_gics() {
    let (Some(user), Some(kernel)) = (run(QEMU_USER_GIC), run(QEMU_KERNEL_GIC)) else {
        return;
    };
    let a = distributor_iidr(&user.console).expect("no GICD_IIDR line (userspace GIC)");
    let b = distributor_iidr(&kernel.console).expect("no GICD_IIDR line (in-kernel vGIC)");
    assert_ne!(a, b, "both runs read GICD_IIDR {a}");
}

// QEMU has no timeout of its own: a guest that never powers off is ended
// by the job's bound, with SIGKILL's status, and still reports its cost.
#[test]
fn a_qemu_that_never_ends_is_killed_at_its_bound() {
    let Some(r) = run(QEMU_SPIN) else { return };
    assert_eq!(r.exit_code, Some(128 + 9), "{}", r.console);
    let wall = r.wall.expect("no wall time");
    assert!(
        wall >= SPIN_TIMEOUT && wall < SPIN_TIMEOUT + Duration::from_secs(10),
        "wall {wall:?}"
    );
    assert!(r.peak_rss_kib.is_some_and(|k| k > 0));
}
