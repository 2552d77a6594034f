//! End-to-end: every GIC scenario on the VMM (userspace GICv2 on KVM) and,
//! independently, on QEMU's own emulated GICv2.
//!
//! - The VMM runs all scenarios in one batch (one boot of L1 when nested);
//!   each must pass, with exit status 0.
//! - QEMU runs each scenario as a plain (TCG) machine, all at once; each
//!   must give exactly the verdict [`qemu_expected`] names: `PASS`, or, for
//!   a known deviation of QEMU's model from the specification, exactly the
//!   failure recorded in `docs/qemu-gicv2-deviations.md`. Anything else,
//!   better or worse, fails the test.
//! - The results go into a table (scenario | VMM | QEMU GICv2), printed
//!   on stderr and left in `target/uirq-scenarios.txt`, which
//!   `cargo xtask test` prints after the tests.

use std::sync::OnceLock;

use uirq_abi::boot::Program;
use uirq_tests::{available, batch, job, Batch, Problem};
use xtask::qemu_plain::{self, PlainRun};

/// Seconds the VMM gives one scenario before it stops the guest; they take
/// milliseconds.
const VMM_TIMEOUT: &str = "30";

/// Known deviations of QEMU's GICv2 from the specification, as
/// (scenario, the exact verdict QEMU gives), each explained in
/// `docs/qemu-gicv2-deviations.md`. None found with QEMU 7.2.
const QEMU_DEVIATIONS: &[(&str, &str)] = &[];

/// QEMU's verdict for `scenario`: `PASS`, unless a deviation is recorded.
fn qemu_expected(scenario: &str) -> &'static str {
    QEMU_DEVIATIONS
        .iter()
        .find(|(name, _)| *name == scenario)
        .map_or("PASS", |(_, verdict)| verdict)
}

fn scenarios() -> Vec<Program> {
    Program::scenarios().collect()
}

static VMM: OnceLock<Batch> = OnceLock::new();
static QEMU: OnceLock<Result<Vec<PlainRun>, Problem>> = OnceLock::new();

fn vmm() -> &'static Batch {
    let args: Vec<[&'static str; 4]> = scenarios()
        .into_iter()
        .map(|p| ["--program", p.name(), "--timeout", VMM_TIMEOUT])
        .collect();
    let jobs: Vec<&[&str]> = args.iter().map(|a| &a[..]).collect();
    batch(&VMM, "scenarios", &jobs)
}

fn qemu() -> &'static Result<Vec<PlainRun>, Problem> {
    QEMU.get_or_init(|| {
        xtask::l1::ensure_qemu().map_err(Problem::CannotRun)?;
        let artifacts = uirq_tests::artifacts()?;
        let elf = qemu_plain::elf_of(&artifacts.guest_image);
        std::thread::scope(|s| {
            let runs: Vec<_> = scenarios()
                .into_iter()
                .map(|p| {
                    let elf = &elf;
                    s.spawn(move || qemu_plain::run(elf, p, [0, 0], 1, qemu_plain::DEFAULT_TIMEOUT))
                })
                .collect();
            runs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("QEMU runner panicked".into()))
                })
                .collect::<Result<Vec<_>, String>>()
                .map_err(Problem::Failed)
        })
    })
}

/// QEMU's run of scenario number `index` (see [`available`]).
fn qemu_run(index: usize) -> Option<&'static PlainRun> {
    available(qemu()).map(|runs| &runs[index])
}

fn index_of(name: &str) -> usize {
    scenarios()
        .iter()
        .position(|p| p.name() == name)
        .unwrap_or_else(|| panic!("no scenario `{name}` in uirq_abi::boot::Program"))
}

fn check_scenario(name: &str) {
    let index = index_of(name);
    if let Some(r) = job(vmm(), index) {
        assert_eq!(
            qemu_plain::verdict(&r.console, name),
            "PASS",
            "on the VMM:\n{}",
            r.console
        );
        assert_eq!(r.exit_code, Some(0), "VMM exit status:\n{}", r.console);
    }
    if let Some(r) = qemu_run(index) {
        assert!(!r.timed_out, "QEMU timed out:\n{}", r.console);
        assert_eq!(
            qemu_plain::verdict(&r.console, name),
            qemu_expected(name),
            "on QEMU's GICv2:\n{}",
            r.console
        );
    }
}

macro_rules! scenario_tests {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check_scenario($name);
            }
        )*

        #[test]
        fn every_scenario_has_a_test() {
            let mut tested = [$($name),*];
            tested.sort_unstable();
            let mut all: Vec<&str> = scenarios().iter().map(|p| p.name()).collect();
            all.sort_unstable();
            assert_eq!(tested.to_vec(), all);
        }
    };
}

scenario_tests! {
    oneshot_virtual_timer => "oneshot",
    physical_timer_ppi_30 => "ptimer",
    priority_mask => "pmr",
    preemption_nests_a_higher_priority_interrupt => "preempt",
    eoimode_split_drop_then_deactivate => "eoimode",
    level_interrupt_retriggers_while_asserted => "level",
    sgis_to_self => "sgi",
    spi_pending_and_active_set_clear => "spi-state",
    disabled_distributor_and_cpu_interface => "disabled",
    spurious_acknowledge => "spurious",
    register_rules => "regs",
    an_access_to_nothing_takes_a_synchronous_external_abort => "unmapped",
}

/// Builds the side-by-side table, prints it on stderr and leaves it where
/// `cargo xtask test` prints it from.
#[test]
fn results_table() {
    let cell = |r: Option<String>| r.unwrap_or_else(|| "not run".into());
    let rows: Vec<(String, String, String)> = scenarios()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let vmm = match vmm() {
                Ok((_, results)) => Some(qemu_plain::verdict(&results[i].console, p.name())),
                Err(_) => None,
            };
            let qemu = match qemu() {
                Ok(runs) if runs[i].timed_out => Some("timed out".to_string()),
                Ok(runs) => Some(qemu_plain::verdict(&runs[i].console, p.name())),
                Err(_) => None,
            };
            let qemu = qemu.map(|q| {
                if q != "PASS" && q == qemu_expected(p.name()) {
                    format!("{q} (known QEMU deviation)")
                } else {
                    q
                }
            });
            (p.name().to_string(), cell(vmm), cell(qemu))
        })
        .collect();
    let mut text = String::from("GIC scenarios, the VMM's model against QEMU's:\n");
    text.push_str(&qemu_plain::table(&rows));
    eprintln!("\n{text}");
    let path = qemu_plain::table_path();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&path, &text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
