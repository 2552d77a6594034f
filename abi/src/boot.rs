//! How the VMM tells the firmware what to do.
//!
//! Like Linux's arm64 boot protocol passes the device tree address in `x0`,
//! the VMM sets three general-purpose registers before the first `KVM_RUN`:
//!
//! | register | meaning                                                   |
//! |----------|-----------------------------------------------------------|
//! | `x0`     | [`Program`] number                                        |
//! | `x1`     | first program argument (0 = the program's default)        |
//! | `x2`     | second program argument (0 = the program's default)       |
//!
//! A firmware started with `x0` = 0 (as QEMU's `-kernel` starts an ELF)
//! looks for a [`block`] in guest RAM, which QEMU's loader device can write;
//! with none it runs [`Program::Timer`] with its defaults, so zero is never a
//! program of its own.
//!
//! A firmware started by the Linux arm64 boot protocol
//! (Documentation/arch/arm64/booting.rst, the VMM's `--kernel`, QEMU's
//! `-kernel` with the flat image) finds the physical address of a device
//! tree in `x0` instead, and `x1` = `x2` = 0. Program numbers are small and
//! RAM starts at [`crate::layout::RAM_BASE`], so the two cannot be confused:
//! an `x0` at or above `RAM_BASE` is a device tree address. The program is
//! then named on the kernel command line (`/chosen/bootargs`) by a word
//! [`PROGRAM_BOOTARG`]`NAME`, and runs with its default arguments; without
//! one the firmware runs [`Program::DtInfo`].
//!
//! The registers above are those of the *boot* CPU. Every other CPU starts
//! powered off; the firmware starts the ones it needs itself with PSCI
//! `CPU_ON` (up to [`MAX_CPUS`]), and [`Program::min_cpus`] says how many
//! a program needs.

/// The most CPUs the firmware uses: a GICv2 serves at most eight CPU
/// interfaces (IHI 0048B, 1.3: "up to eight processors"). The firmware
/// reserves a stack for each and identifies CPU `i` by
/// `MPIDR_EL1.Aff0 = i`, which both KVM and QEMU `virt` give vCPU `i`.
pub const MAX_CPUS: usize = 8;

/// A program the firmware can run, chosen by the VMM with `x0`.
///
/// Each program's number, command-line name and summary are written once,
/// in one table, so they cannot disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Program {
    /// Periodic virtual-timer ticks through the GIC. `x1`: number of ticks
    /// (default [`DEFAULT_TICKS`]); `x2`: period in microseconds (default
    /// [`DEFAULT_PERIOD_US`]).
    Timer = 1,
    /// Spins forever with interrupts masked, never exits: the case a VMM
    /// timeout exists for.
    Spin = 2,
    /// Takes an unexpected synchronous exception (a misaligned load with
    /// alignment checking on), which the firmware must report and end with
    /// [`crate::exit::Status::Exception`].
    Fault = 3,
    /// The latency benchmark (`crate::bench`): `x1` samples per measurement
    /// (default [`crate::bench::DEFAULT_SAMPLES`]), `x2` warm-up samples
    /// (default [`crate::bench::DEFAULT_WARMUP`]).
    Bench = 4,
    /// Every core takes its own virtual-timer ticks (PPI 27 is banked per
    /// core). `x1`: ticks per core (default [`DEFAULT_TICKS`]); `x2`: period
    /// in microseconds (default [`DEFAULT_PERIOD_US`]).
    SmpTimer = 5,
    /// Cores exchange SGIs carrying sequence numbers and count lost ones.
    /// `x1`: total number of IPIs (default [`DEFAULT_IPIS`]); `x2`: how long
    /// a sender waits for an acknowledgement, in microseconds (default
    /// [`DEFAULT_IPI_TIMEOUT_US`]).
    IpiStress = 6,
    /// Prints what the device tree passed in `x0` by the Linux boot
    /// protocol says about the machine (the GIC's and the UART's addresses,
    /// the CPUs) and checks it against [`crate::layout`]. Fails when
    /// started without a device tree.
    DtInfo = 7,
    /// Random accesses across the machine (GIC frames, UART, unmapped
    /// holes), SGIs and short timer deadlines with IRQs unmasked, on every
    /// core; ends by itself with a summary line. `x1`: seed (default
    /// [`DEFAULT_CHAOS_SEED`]); `x2`: operations over all cores (default
    /// [`DEFAULT_CHAOS_OPS`]).
    Chaos = 8,
    /// Prints the text that follows [`ECHO_BOOTARG`] on the kernel command
    /// line, as it stands, and powers off with success: a guest whose
    /// output is whatever it is told, to show that nothing a guest prints
    /// can pass for the harness's own lines (`crate::report`). Needs the
    /// Linux boot protocol (`--kernel`), like [`Program::DtInfo`].
    Echo = 9,
    /// Scenario: one-shot virtual timer (TVAL), exactly one interrupt.
    OneShot = 16,
    /// Scenario: the EL1 physical timer through PPI 30.
    PhysTimer = 17,
    /// Scenario: masking by GICC_PMR, then unmasking delivers.
    PmrMask = 18,
    /// Scenario: a higher-priority interrupt preempts a lower-priority
    /// handler.
    Preemption = 19,
    /// Scenario: GICC_CTLR.EOImode = 1, priority drop by EOIR and
    /// deactivation by DIR.
    EoiModeSplit = 20,
    /// Scenario: a level interrupt still asserted at EOI is taken again.
    LevelRetrigger = 21,
    /// Scenario: SGIs to self through GICD_SGIR, with source CPU ids.
    SgiSelf = 22,
    /// Scenario: software pending set/clear and active set/clear on SPIs.
    SpiState = 23,
    /// Scenario: a disabled distributor or CPU interface signals nothing.
    Disabled = 24,
    /// Scenario: acknowledge with nothing pending returns 1023.
    Spurious = 25,
    /// Scenario: register read-back rules (read-only, RAZ/WI, masks, byte
    /// access).
    RegisterRules = 26,
    /// Scenario: loads and stores to an address no device claims
    /// ([`crate::layout::HOLE`]) take a synchronous external abort with the
    /// address in `FAR_EL1`, and the program resumes after each. `x1`: 0
    /// expects that abort (hardware, QEMU `virt`, the VMM's default); 1
    /// expects read-as-zero / write-ignored instead (the VMM's
    /// `--unmapped raz`, which passes it).
    Unmapped = 27,
    /// SMP scenario: SGI target lists and the three `GICD_SGIR` filters,
    /// observed on the right CPUs only, with the source CPU in `GICC_IAR`.
    SgiSmp = 32,
    /// SMP scenario: one SGI pending from two sources at once on one CPU,
    /// acknowledged twice, each time with its own source.
    SgiSources = 33,
    /// SMP scenario: `GICD_ITARGETSR0`-`7` read as each CPU's own bit; SPIs
    /// routed by `GICD_ITARGETSR`, and re-routed at run time.
    SpiRoute = 34,
    /// SMP scenario: an SPI targeted at several CPUs is taken by exactly
    /// one of them (the 1-N model).
    SpiOneOfN = 35,
}

/// Ticks the timer program takes when `x1` is zero.
pub const DEFAULT_TICKS: u64 = 10;
/// Timer period in microseconds when `x2` is zero.
pub const DEFAULT_PERIOD_US: u64 = 10_000;
/// IPIs `ipi-stress` sends when `x1` is zero.
pub const DEFAULT_IPIS: u64 = 20_000;
/// How long an `ipi-stress` sender waits for an acknowledgement when `x2`
/// is zero: generous, because nested emulation stalls vCPUs for
/// milliseconds at times.
pub const DEFAULT_IPI_TIMEOUT_US: u64 = 200_000;

/// The `chaos` program's seed when `x1` is zero.
pub const DEFAULT_CHAOS_SEED: u64 = 1;
/// Operations the `chaos` program makes, over all cores, when `x2` is zero.
pub const DEFAULT_CHAOS_OPS: u64 = 20_000;

/// The boot block: the other way to choose a program, for loaders that
/// cannot set registers.
///
/// QEMU's `-kernel` enters an ELF with `x0` = 0, but its generic loader
/// device can put 8-byte values anywhere in guest RAM before the first
/// instruction (`-device loader,addr=A,data=V,data-len=8`, little-endian).
/// So a host that cannot set `x0`-`x2` writes four words here instead:
///
/// | offset | value                                   |
/// |--------|-----------------------------------------|
/// | 0      | [`BOOT_BLOCK_MAGIC`]                    |
/// | 8      | [`Program`] number (what `x0` would be) |
/// | 16     | first argument (`x1`)                   |
/// | 24     | second argument (`x2`)                  |
///
/// The firmware looks at the block only when `x0` is 0, and only believes
/// it when the magic matches. The page lies above everything the firmware
/// occupies (its linker script asserts that image, BSS and stack end below
/// it) and below the benchmark's result buffer. QEMU loads no device tree
/// into RAM for an ELF that starts at the bottom of RAM (it would overlap
/// the image), so nothing else is written there either.
pub mod block {
    use crate::layout::{RAM_BASE, RAM_SIZE_DEFAULT};

    /// Guest physical address of the boot block (16 MiB into RAM).
    pub const ADDR: u64 = RAM_BASE + 0x0100_0000;
    /// Bytes reserved for it: one page, of which 32 are used.
    pub const SIZE: u64 = 0x1000;
    /// Number of 64-bit words in the block.
    pub const WORDS: usize = 4;
    /// "uirqboot", little-endian: what word 0 holds in a valid block.
    pub const MAGIC: u64 = u64::from_le_bytes(*b"uirqboot");

    /// The four words a loader writes to ask for `program` with `args`,
    /// as (guest physical address, value) pairs.
    pub const fn words(program: u64, args: [u64; 2]) -> [(u64, u64); WORDS] {
        [
            (ADDR, MAGIC),
            (ADDR + 8, program),
            (ADDR + 16, args[0]),
            (ADDR + 24, args[1]),
        ]
    }

    /// `(x0, x1, x2)` from the block's words, or `None` when the magic is
    /// missing (nobody wrote a block).
    pub const fn decode(words: [u64; WORDS]) -> Option<(u64, u64, u64)> {
        if words[0] == MAGIC {
            Some((words[1], words[2], words[3]))
        } else {
            None
        }
    }

    const _: () = {
        assert!(ADDR % SIZE == 0);
        assert!(ADDR + SIZE <= RAM_BASE + RAM_SIZE_DEFAULT);
        assert!(ADDR + SIZE <= crate::bench::RESULTS_ADDR);
    };
}

/// The boot block's magic, [`block::MAGIC`].
pub use block::MAGIC as BOOT_BLOCK_MAGIC;

/// The kernel command line word that names the program when the firmware is
/// started by the Linux boot protocol: `uirq.program=NAME`, `NAME` as
/// [`Program::name`] spells it. It has the `module.parameter=value` form
/// of Linux's own module parameters
/// (Documentation/admin-guide/kernel-parameters.rst), which a kernel that
/// does not know the module ignores rather than handing it to init.
pub const PROGRAM_BOOTARG: &str = "uirq.program=";

/// The kernel command line word that starts the `echo` program's text:
/// everything after it, to the end of the command line (so it is best
/// last), is printed, with each `\n` (a backslash and an `n`) a line
/// break: `uirq.program=echo uirq.echo=first line\nsecond line`.
pub const ECHO_BOOTARG: &str = "uirq.echo=";

/// (program, command-line name, summary), in number order.
const TABLE: [(Program, &str, &str); 25] = [
    (
        Program::Timer,
        "timer",
        "periodic virtual-timer interrupts through the GIC, with latencies",
    ),
    (
        Program::Spin,
        "spin",
        "spins forever with interrupts masked (tests the VMM timeout)",
    ),
    (
        Program::Fault,
        "fault",
        "takes an unexpected exception, which must be reported",
    ),
    (
        Program::Bench,
        "bench",
        "interrupt latency benchmark (used by `cargo xtask bench-latency`)",
    ),
    (
        Program::SmpTimer,
        "smp-timer",
        "every core takes its own virtual-timer ticks (needs --cpus 2 or more to mean much)",
    ),
    (
        Program::IpiStress,
        "ipi-stress",
        "cores exchange numbered SGIs; lost IPIs are detected and counted (needs --cpus 2+)",
    ),
    (
        Program::DtInfo,
        "dt-info",
        "prints the GIC's and UART's addresses from the device tree the boot protocol passed in x0 (needs --kernel)",
    ),
    (
        Program::Chaos,
        "chaos",
        "random GIC, UART, timer and unmapped accesses with interrupts on, every core; ends by itself (--seed, --ops)",
    ),
    (
        Program::Echo,
        "echo",
        "prints the text after uirq.echo= in the bootargs as it stands, \\n a line break (needs --kernel)",
    ),
    (
        Program::OneShot,
        "oneshot",
        "scenario: one-shot virtual timer, exactly one interrupt",
    ),
    (
        Program::PhysTimer,
        "ptimer",
        "scenario: EL1 physical timer through PPI 30",
    ),
    (Program::PmrMask, "pmr", "scenario: masking by GICC_PMR"),
    (
        Program::Preemption,
        "preempt",
        "scenario: a higher-priority interrupt preempts a handler",
    ),
    (
        Program::EoiModeSplit,
        "eoimode",
        "scenario: EOImode = 1, EOIR drops priority, DIR deactivates",
    ),
    (
        Program::LevelRetrigger,
        "level",
        "scenario: a level interrupt still asserted at EOI is taken again",
    ),
    (
        Program::SgiSelf,
        "sgi",
        "scenario: SGIs to self with source CPU ids",
    ),
    (
        Program::SpiState,
        "spi-state",
        "scenario: software pending/active set and clear on SPIs",
    ),
    (
        Program::Disabled,
        "disabled",
        "scenario: disabled distributor or CPU interface signals nothing",
    ),
    (
        Program::Spurious,
        "spurious",
        "scenario: acknowledge with nothing pending returns 1023",
    ),
    (
        Program::RegisterRules,
        "regs",
        "scenario: register read-back rules",
    ),
    (
        Program::Unmapped,
        "unmapped",
        "scenario: an access to an address no device claims takes a synchronous external abort",
    ),
    (
        Program::SgiSmp,
        "sgi-smp",
        "scenario: SGI target lists and filters across CPUs, source ids (3+ CPUs)",
    ),
    (
        Program::SgiSources,
        "sgi-sources",
        "scenario: one SGI pending from two sources, two acknowledges (2+ CPUs)",
    ),
    (
        Program::SpiRoute,
        "spi-route",
        "scenario: ITARGETSR banking, SPI routing and re-routing (2+ CPUs)",
    ),
    (
        Program::SpiOneOfN,
        "spi-1ofn",
        "scenario: an SPI targeting several CPUs is taken by exactly one (2+ CPUs)",
    ),
];

impl Program {
    /// Every program, in number order.
    pub const ALL: [Program; TABLE.len()] = {
        let mut all = [Program::Timer; TABLE.len()];
        let mut i = 0;
        while i < TABLE.len() {
            all[i] = TABLE[i].0;
            i += 1;
        }
        all
    };

    /// The single-CPU GIC scenarios: programs that check one behaviour each
    /// and report pass or fail (numbers 16 to 31).
    pub fn scenarios() -> impl Iterator<Item = Program> {
        Self::ALL
            .into_iter()
            .filter(|p| (16..32).contains(&p.number()))
    }

    /// The SMP GIC scenarios (numbers 32 and up): like [`Program::scenarios`],
    /// but they need several CPUs ([`Program::min_cpus`]).
    pub fn smp_scenarios() -> impl Iterator<Item = Program> {
        Self::ALL.into_iter().filter(|p| p.number() >= 32)
    }

    /// Every GIC scenario, single-CPU and SMP: the programs whose verdict
    /// is one `scenario <name>: PASS` or `FAIL` line.
    pub fn is_scenario(self) -> bool {
        self.number() >= 16
    }

    /// How many CPUs the program needs. With fewer it fails at once and
    /// says so; with more, the extra CPUs stay powered off (`smp-timer`
    /// and `ipi-stress` use every CPU the GIC reports).
    pub const fn min_cpus(self) -> usize {
        match self {
            Program::IpiStress | Program::SgiSources | Program::SpiRoute | Program::SpiOneOfN => 2,
            Program::SgiSmp => 3,
            _ => 1,
        }
    }

    /// The program numbered `n`; 0 means the default, [`Program::Timer`].
    pub const fn from_number(n: u64) -> Option<Self> {
        if n == 0 {
            return Some(Program::Timer);
        }
        let mut i = 0;
        while i < TABLE.len() {
            if TABLE[i].0 as u64 == n {
                return Some(TABLE[i].0);
            }
            i += 1;
        }
        None
    }

    /// The number the VMM puts in `x0`.
    pub const fn number(self) -> u64 {
        self as u64
    }

    const fn entry(self) -> (Program, &'static str, &'static str) {
        let mut i = 0;
        while i < TABLE.len() {
            if TABLE[i].0 as u64 == self as u64 {
                return TABLE[i];
            }
            i += 1;
        }
        // Every variant is in TABLE; a unit test checks it.
        (self, "?", "?")
    }

    /// The name used on the VMM's command line.
    pub const fn name(self) -> &'static str {
        self.entry().1
    }

    /// The program called `name` on the command line.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// One line saying what the program does, for `--help` texts.
    pub const fn summary(self) -> &'static str {
        self.entry().2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        for p in Program::ALL {
            assert_eq!(Program::from_name(p.name()), Some(p));
            assert_eq!(Program::from_number(p.number()), Some(p));
        }
        assert_eq!(Program::from_number(0), Some(Program::Timer));
        assert_eq!(Program::from_number(99), None);
        assert_eq!(Program::from_name("nope"), None);
    }

    #[test]
    fn boot_block_round_trips_and_needs_its_magic() {
        let words = block::words(Program::SgiSelf.number(), [7, 9]);
        assert_eq!(words[0], (block::ADDR, BOOT_BLOCK_MAGIC));
        let values = words.map(|(_, v)| v);
        assert_eq!(block::decode(values), Some((22, 7, 9)));
        assert_eq!(block::decode([0; block::WORDS]), None);
        assert_eq!(&BOOT_BLOCK_MAGIC.to_le_bytes(), b"uirqboot");
    }

    #[test]
    fn table_is_complete_sorted_and_unique() {
        let mut last = 0;
        for p in Program::ALL {
            assert!(p.number() > last, "{p:?} out of order");
            last = p.number();
            assert_ne!(p.name(), "?");
            assert_eq!(
                Program::ALL.iter().filter(|q| q.name() == p.name()).count(),
                1
            );
        }
        assert_eq!(Program::scenarios().count(), 12);
        assert!(Program::scenarios().all(|p| p.summary().starts_with("scenario: ")));
        assert!(Program::scenarios().all(|p| p.min_cpus() == 1 && p.is_scenario()));
        assert!(Program::smp_scenarios().eq([
            Program::SgiSmp,
            Program::SgiSources,
            Program::SpiRoute,
            Program::SpiOneOfN
        ]));
        assert!(Program::smp_scenarios().all(|p| p.summary().starts_with("scenario: ")));
        assert!(Program::smp_scenarios().all(|p| p.min_cpus() >= 2 && p.is_scenario()));
    }

    #[test]
    fn smp_programs_and_cpu_needs() {
        assert_eq!(Program::from_name("smp-timer"), Some(Program::SmpTimer));
        assert_eq!(Program::SmpTimer.number(), 5);
        assert_eq!(Program::IpiStress.number(), 6);
        assert_eq!(Program::SmpTimer.min_cpus(), 1);
        assert_eq!(Program::IpiStress.min_cpus(), 2);
        assert_eq!(Program::SgiSmp.min_cpus(), 3);
        assert!(Program::ALL.iter().all(|p| p.min_cpus() <= MAX_CPUS));
        assert!(!Program::IpiStress.is_scenario());
    }

    #[test]
    fn chaos_is_a_program_and_unmapped_a_one_cpu_scenario() {
        assert_eq!(Program::from_name("chaos"), Some(Program::Chaos));
        assert_eq!(Program::Chaos.min_cpus(), 1);
        assert!(!Program::Chaos.is_scenario());
        assert_eq!(Program::from_name("unmapped"), Some(Program::Unmapped));
        assert!(Program::scenarios().any(|p| p == Program::Unmapped));
        assert_eq!(Program::Unmapped.min_cpus(), 1);
    }

    #[test]
    fn echo_is_a_one_cpu_program_named_on_the_command_line() {
        assert_eq!(Program::from_name("echo"), Some(Program::Echo));
        assert_eq!(Program::from_number(9), Some(Program::Echo));
        assert_eq!(Program::Echo.min_cpus(), 1);
        assert!(!Program::Echo.is_scenario());
        assert!(ECHO_BOOTARG.ends_with('=') && !ECHO_BOOTARG.contains(' '));
    }

    #[test]
    fn dt_info_is_a_one_cpu_program_below_the_scenarios() {
        assert_eq!(Program::from_name("dt-info"), Some(Program::DtInfo));
        assert_eq!(Program::DtInfo.number(), 7);
        assert_eq!(Program::DtInfo.min_cpus(), 1);
        assert!(!Program::DtInfo.is_scenario());
        // Every program number is below RAM, so an x0 in RAM is a device
        // tree address, never a program.
        assert!(Program::ALL
            .iter()
            .all(|p| p.number() < crate::layout::RAM_BASE));
        assert!(PROGRAM_BOOTARG.ends_with('=') && !PROGRAM_BOOTARG.contains(' '));
    }
}
