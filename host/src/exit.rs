//! Serving one exit from `KVM_RUN`: a plain function of the exit and the
//! device state, with no KVM in it, so it is unit-tested on any machine.
//!
//! The vCPU loop (`kvm::vcpu`, aarch64 only) copies what it needs out of
//! the `kvm_run` page into an [`Exit`], reads the timer output levels KVM
//! left beside it, and hands both to [`serve`]. In that order of work:
//!
//! 1. **Timer levels first.** Any change of the virtual or physical timer's
//!    output goes into the GIC model as the level of PPI 27 / PPI 30
//!    *before* the exit is served: when a guest handler silences the timer
//!    and then writes GICC_EOIR, the EOIR exit carries the lowered level, and
//!    the model must see it before the EOI, or it would find the
//!    level-sensitive interrupt still asserted and make it pending again.
//! 2. **The exit.** MMIO goes to the bus (GIC frames, UART, ...). An
//!    access no device claims is answered as hardware answers it, with a
//!    synchronous external abort ([`Served::InjectAbort`], which the loop
//!    carries out with `KVM_SET_VCPU_EVENTS`), or, with
//!    [`Unmapped::ReadAsZero`], as read-as-zero / write-ignored. So is an
//!    MMIO access KVM cannot decode (KVM_EXIT_ARM_NISV). A PSCI
//!    SYSTEM_OFF, reset or crash ends the run. An EINTR return means only a
//!    level changed, or another thread kicked this one.
//! 3. **Anything else ends the run with a named error**
//!    ([`ExitError`]): a failed VM entry, an internal KVM error or an exit
//!    this VMM does not know are never resumed, since resuming them would
//!    only repeat them forever.

use thiserror::Error;
use uirq_abi::gicv2::{PTIMER, VTIMER};

use crate::bus::{Access, Bus};
use crate::irqchip::UserGic;
use crate::probe::{Probe, Timer};

/// `device_irq_level` bit of the EL1 virtual timer
/// (KVM_ARM_DEV_EL1_VTIMER, arch/arm64/include/uapi/asm/kvm.h).
pub const LEVEL_VTIMER: u64 = 1 << 0;
/// `device_irq_level` bit of the EL1 physical timer (KVM_ARM_DEV_EL1_PTIMER).
pub const LEVEL_PTIMER: u64 = 1 << 1;

/// `kvm_run.system_event.type` values (include/uapi/linux/kvm.h).
pub mod system_event {
    /// KVM_SYSTEM_EVENT_SHUTDOWN: PSCI SYSTEM_OFF.
    pub const SHUTDOWN: u32 = 1;
    /// KVM_SYSTEM_EVENT_RESET: PSCI SYSTEM_RESET.
    pub const RESET: u32 = 2;
    /// KVM_SYSTEM_EVENT_CRASH: the guest reported a crash.
    pub const CRASH: u32 = 3;
}

/// One return from `KVM_RUN`, copied out of the `kvm_run` page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A guest load from an address with no memory behind it. [`serve`]
    /// fills `data[..len]` with the value for KVM to hand the guest.
    MmioRead {
        /// Guest physical address.
        addr: u64,
        /// Access size in bytes (1, 2, 4 or 8).
        len: usize,
        /// The value read, little-endian, filled in by [`serve`].
        data: [u8; 8],
    },
    /// A guest store to an address with no memory behind it.
    MmioWrite {
        /// Guest physical address.
        addr: u64,
        /// Access size in bytes (1, 2, 4 or 8).
        len: usize,
        /// The value stored, little-endian, in `data[..len]`.
        data: [u8; 8],
    },
    /// KVM_EXIT_SYSTEM_EVENT with its type ([`system_event`]).
    SystemEvent(u32),
    /// `KVM_RUN` returned EINTR: a timer level changed (userspace irqchip),
    /// or a signal kicked the thread.
    Interrupted,
    /// KVM_EXIT_FAIL_ENTRY: the hardware refused to enter the guest.
    FailEntry {
        /// `hardware_entry_failure_reason`.
        reason: u64,
        /// The physical CPU that failed the entry.
        host_cpu: u32,
    },
    /// KVM_EXIT_INTERNAL_ERROR.
    InternalError {
        /// `internal.suberror`.
        suberror: u32,
    },
    /// KVM_EXIT_ARM_NISV: a data abort outside guest memory whose syndrome
    /// does not describe the access (ESR_EL2.ISV = 0: a load/store pair,
    /// or an instruction with writeback), so neither KVM nor the VMM knows
    /// its size, register or value. KVM reports it this way only when the
    /// VMM enabled KVM_CAP_ARM_NISV_TO_USER; otherwise `KVM_RUN` fails with
    /// ENOSYS ([`RunFailure::UndecodableMmio`]).
    UndecodableMmio {
        /// `arm_nisv.fault_ipa`: the guest physical address.
        addr: u64,
        /// `arm_nisv.esr_iss`: what KVM passes on of the syndrome (the
        /// fault status, WnR and CM bits of ESR_EL2's ISS).
        iss: u64,
    },
    /// Any other exit, by name.
    Other(String),
}

impl Exit {
    /// A short name for logs and traces.
    pub fn kind(&self) -> &str {
        match self {
            Exit::MmioRead { .. } => "mmio-read",
            Exit::MmioWrite { .. } => "mmio-write",
            Exit::SystemEvent(_) => "system-event",
            Exit::Interrupted => "interrupted",
            Exit::FailEntry { .. } => "fail-entry",
            Exit::InternalError { .. } => "internal-error",
            Exit::UndecodableMmio { .. } => "undecodable-mmio",
            Exit::Other(name) => name,
        }
    }

    /// A store of `value` (`len` bytes) at `addr`.
    pub fn write(addr: u64, len: usize, value: u64) -> Self {
        Exit::MmioWrite {
            addr,
            len: len.min(8),
            data: value.to_le_bytes(),
        }
    }

    /// A load of `len` bytes at `addr`.
    pub fn read(addr: u64, len: usize) -> Self {
        Exit::MmioRead {
            addr,
            len: len.min(8),
            data: [0; 8],
        }
    }
}

/// How a run ended from inside the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// PSCI SYSTEM_OFF; the caller reads the status register.
    PowerOff,
    /// PSCI SYSTEM_RESET.
    Reset,
    /// KVM reported a guest crash, or a system event this VMM does not know.
    Crash,
}

/// What the loop does after an exit was served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// Re-enter the guest.
    Resume,
    /// Make a synchronous external abort pending for the access that
    /// exited, instead of completing it, then re-enter: the guest takes a
    /// data abort at the faulting instruction (ESR_EL1.EC 0x25 from EL1,
    /// DFSC 0b010000, FAR_EL1 = the address; Arm ARM D17.2.37 "ESR_EL1",
    /// D17.2.40 "FAR_EL1"), as it would from a bus that answers an access
    /// to nothing with an error.
    InjectAbort(ExternalAbort),
    /// The guest ended the run.
    Stop(Stop),
}

/// The access a [`Served::InjectAbort`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExternalAbort {
    /// The guest physical address of the access.
    pub addr: u64,
    /// Whether it was a store: the syndrome's WnR bit (ESR_EL1 bit 6).
    pub write: bool,
}

/// How the VMM answers a guest access to an address no device claims.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unmapped {
    /// As hardware does, and QEMU's `virt`: a synchronous external abort
    /// (`--unmapped abort`, the default). Needs
    /// KVM_CAP_ARM_INJECT_EXT_DABT.
    #[default]
    Abort,
    /// Loads read as zero, stores are ignored (`--unmapped raz`).
    ReadAsZero,
}

impl Unmapped {
    /// The command-line spelling: `abort` or `raz`.
    pub const fn name(self) -> &'static str {
        match self {
            Unmapped::Abort => "abort",
            Unmapped::ReadAsZero => "raz",
        }
    }
}

/// ESR_ELx ISS bit 6, WnR: the abort was caused by a store (Arm ARM
/// D17.2.37, ISS encoding for an exception from a Data Abort). KVM copies
/// it into `arm_nisv.esr_iss`.
pub const ISS_WNR: u64 = 1 << 6;

/// An exit that ends the run: the guest cannot usefully be resumed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ExitError {
    /// KVM_EXIT_FAIL_ENTRY.
    #[error("KVM could not enter the guest on vCPU {cpu} (KVM_EXIT_FAIL_ENTRY, hardware reason {reason:#x}, host CPU {host_cpu})")]
    FailEntry {
        /// The vCPU.
        cpu: usize,
        /// `hardware_entry_failure_reason`.
        reason: u64,
        /// The physical CPU.
        host_cpu: u32,
    },
    /// KVM_EXIT_INTERNAL_ERROR.
    #[error("KVM hit an internal error running vCPU {cpu} (KVM_EXIT_INTERNAL_ERROR, suberror {suberror})")]
    InternalError {
        /// The vCPU.
        cpu: usize,
        /// `internal.suberror`.
        suberror: u32,
    },
    /// An exit reason this VMM does not handle.
    #[error("vCPU {cpu} exited to the VMM for a reason it does not handle ({kind})")]
    Unexpected {
        /// The vCPU.
        cpu: usize,
        /// The exit, by name.
        kind: String,
    },
    /// `KVM_RUN` failed with ENOSYS after a data abort KVM could not
    /// decode.
    #[error("the guest on vCPU {cpu} made an MMIO access at PC {pc:#x} that KVM cannot emulate (KVM_RUN failed with ENOSYS): the instruction has no valid syndrome, as a load/store with writeback or a load/store pair has not; device registers must be accessed with single LDR/STR instructions")]
    UndecodableMmio {
        /// The vCPU.
        cpu: usize,
        /// The guest's program counter, or 0 if it could not be read.
        pc: u64,
    },
}

/// How to read a `KVM_RUN` failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunFailure {
    /// EINTR or EAGAIN: a level report or a kick; resume.
    Interrupted,
    /// ENOSYS: MMIO KVM could not decode ([`ExitError::UndecodableMmio`]).
    UndecodableMmio,
    /// Anything else: a failed ioctl.
    Other,
}

/// Classifies the errno of a failed `KVM_RUN` (Documentation/virt/kvm/api.rst,
/// KVM_RUN; arch/arm64/kvm/mmio.c returns -ENOSYS for an abort without a
/// valid instruction syndrome when the VMM has not asked for
/// KVM_CAP_ARM_NISV_TO_USER).
pub fn classify_run_failure(errno: i32) -> RunFailure {
    const EINTR: i32 = 4;
    const EAGAIN: i32 = 11;
    const ENOSYS: i32 = 38;
    match errno {
        EINTR | EAGAIN => RunFailure::Interrupted,
        ENOSYS => RunFailure::UndecodableMmio,
        _ => RunFailure::Other,
    }
}

/// What happened on one vCPU so far.
///
/// The guest drives these counts (every exit it causes adds to them), so
/// they **saturate** at `u64::MAX` instead of overflowing: a debug build
/// would panic on an overflow, a release build would wrap to a small number
/// and lie. At one exit a nanosecond they would take 584 years to get
/// there, so a saturated count means a bug, not a long run; counting goes
/// through [`count`] and [`Stats::add`], and readers subtract with
/// `saturating_sub`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Returns from `KVM_RUN` of any kind.
    pub exits: u64,
    /// MMIO loads served.
    pub mmio_reads: u64,
    /// MMIO stores served.
    pub mmio_writes: u64,
    /// MMIO accesses no device claimed.
    pub mmio_unclaimed: u64,
    /// EINTR returns (a timer level report or a kick).
    pub interrupted: u64,
    /// EINTR returns that carried a timer level change.
    pub level_reports: u64,
    /// Timer level changes forwarded to the GIC model.
    pub level_changes: u64,
    /// `KVM_IRQ_LINE` calls made by this vCPU's thread (for any vCPU).
    pub irq_line_calls: u64,
    /// Kicks this thread sent to other vCPU threads to apply their lines.
    pub kicks_sent: u64,
    /// MMIO exits per bus device (the name it was inserted with).
    pub mmio_by_device: DeviceCounts,
}

/// Counts per bus device name, in a fixed table (the bus has a handful of
/// devices; a name beyond the table's size is counted under the last
/// slot's name "other"). Counts saturate, as [`Stats`]' do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceCounts([(&'static str, u64); DeviceCounts::SLOTS]);

impl DeviceCounts {
    const SLOTS: usize = 8;

    /// Counts one access to `name`.
    pub fn add(&mut self, name: &'static str, n: u64) {
        let slot = self
            .0
            .iter()
            .position(|(k, _)| *k == name || k.is_empty())
            .unwrap_or(Self::SLOTS - 1);
        if self.0[slot].0.is_empty() {
            self.0[slot].0 = if slot == Self::SLOTS - 1 {
                "other"
            } else {
                name
            };
        }
        self.0[slot].1 = self.0[slot].1.saturating_add(n);
    }

    /// (name, count) for every device counted, in first-seen order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.0.iter().copied().filter(|(k, _)| !k.is_empty())
    }
}

impl Stats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Stats) {
        for (mine, theirs) in [
            (&mut self.exits, other.exits),
            (&mut self.mmio_reads, other.mmio_reads),
            (&mut self.mmio_writes, other.mmio_writes),
            (&mut self.mmio_unclaimed, other.mmio_unclaimed),
            (&mut self.interrupted, other.interrupted),
            (&mut self.level_reports, other.level_reports),
            (&mut self.level_changes, other.level_changes),
            (&mut self.irq_line_calls, other.irq_line_calls),
            (&mut self.kicks_sent, other.kicks_sent),
        ] {
            *mine = mine.saturating_add(theirs);
        }
        for (name, n) in other.mmio_by_device.iter() {
            self.mmio_by_device.add(name, n);
        }
    }
}

/// Adds one to a guest-driven counter, saturating (see [`Stats`]).
#[inline(always)]
pub fn count(counter: &mut u64) {
    *counter = counter.saturating_add(1);
}

/// What the exit handling keeps for one vCPU between exits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuState {
    /// The timer output levels last forwarded (`device_irq_level` bits).
    pub timer_levels: u64,
    /// Counters.
    pub stats: Stats,
}

/// The devices an exit can reach.
#[derive(Clone, Copy)]
pub struct Machine<'a> {
    /// The MMIO bus.
    pub bus: &'a Bus,
    /// The userspace GIC, or `None` with KVM's in-kernel vGIC (which takes
    /// the timer levels itself).
    pub gic: Option<&'a UserGic>,
    /// How an access no device claims is answered.
    pub unmapped: Unmapped,
}

/// Serves `exit` on vCPU `cpu`, given the timer output levels KVM reported
/// with it (`kvm_run.s.regs.device_irq_level`): levels first, then the exit.
pub fn serve<P: Probe>(
    cpu: usize,
    exit: &mut Exit,
    levels: u64,
    state: &mut VcpuState,
    machine: Machine<'_>,
    probe: &mut P,
) -> Result<Served, ExitError> {
    count(&mut state.stats.exits);
    let level_changed = match machine.gic {
        Some(gic) => forward_timer_levels(cpu, levels, state, gic, probe),
        None => false,
    };
    match exit {
        Exit::MmioRead { addr, len, data } => {
            count(&mut state.stats.mmio_reads);
            *data = [0; 8];
            let len = (*len).min(8);
            if let Some(abort) = abort_unclaimed(cpu, *addr, len, false, state, machine) {
                return Ok(abort);
            }
            match machine.bus.read(cpu, *addr, &mut data[..len]) {
                Access::Claimed(name) => state.stats.mmio_by_device.add(name, 1),
                Access::Unclaimed => count(&mut state.stats.mmio_unclaimed),
            }
            Ok(Served::Resume)
        }
        Exit::MmioWrite { addr, len, data } => {
            count(&mut state.stats.mmio_writes);
            let len = (*len).min(8);
            if let Some(abort) = abort_unclaimed(cpu, *addr, len, true, state, machine) {
                return Ok(abort);
            }
            match machine.bus.write(cpu, *addr, &data[..len]) {
                Access::Claimed(name) => state.stats.mmio_by_device.add(name, 1),
                Access::Unclaimed => count(&mut state.stats.mmio_unclaimed),
            }
            Ok(Served::Resume)
        }
        Exit::Interrupted => {
            count(&mut state.stats.interrupted);
            if level_changed {
                count(&mut state.stats.level_reports);
            }
            Ok(Served::Resume)
        }
        Exit::SystemEvent(kind) => Ok(Served::Stop(match *kind {
            system_event::SHUTDOWN => Stop::PowerOff,
            system_event::RESET => Stop::Reset,
            system_event::CRASH => Stop::Crash,
            other => {
                crate::limited!(
                    warn,
                    cpu,
                    kind = other,
                    "unknown system event, treating it as a crash"
                );
                Stop::Crash
            }
        })),
        Exit::FailEntry { reason, host_cpu } => Err(ExitError::FailEntry {
            cpu,
            reason: *reason,
            host_cpu: *host_cpu,
        }),
        Exit::InternalError { suberror } => Err(ExitError::InternalError {
            cpu,
            suberror: *suberror,
        }),
        Exit::UndecodableMmio { addr, iss } => {
            // Nothing can complete an access nobody can decode: the guest
            // gets the abort it would get from a bus that refused it. The
            // VMM enables these exits only where it can inject that abort
            // (`kvm::vm`), whatever `machine.unmapped` says.
            let write = *iss & ISS_WNR != 0;
            crate::limited!(
                warn,
                cpu,
                addr = format_args!("{addr:#x}"),
                iss = format_args!("{iss:#x}"),
                write,
                "guest MMIO access KVM cannot decode (no valid syndrome: a load/store pair or writeback); answered with an external abort"
            );
            Ok(Served::InjectAbort(ExternalAbort { addr: *addr, write }))
        }
        Exit::Other(kind) => Err(ExitError::Unexpected {
            cpu,
            kind: kind.clone(),
        }),
    }
}

/// With [`Unmapped::Abort`], the answer to an access no device claims:
/// counted, logged (rate-limited) and turned into an external abort.
/// `None` when a device claims it, or with [`Unmapped::ReadAsZero`] (the
/// bus then reads zero or drops the store, as before).
fn abort_unclaimed(
    cpu: usize,
    addr: u64,
    len: usize,
    write: bool,
    state: &mut VcpuState,
    machine: Machine<'_>,
) -> Option<Served> {
    if machine.unmapped != Unmapped::Abort || machine.bus.claims(addr, len) {
        return None;
    }
    count(&mut state.stats.mmio_unclaimed);
    crate::limited!(
        warn,
        cpu,
        addr = format_args!("{addr:#x}"),
        size = len,
        write,
        "guest access to an unmapped MMIO address; answered with a synchronous external abort"
    );
    Some(Served::InjectAbort(ExternalAbort { addr, write }))
}

/// Forwards the timer output levels that changed to the GIC model as PPI
/// levels of `cpu`. Returns whether any changed.
fn forward_timer_levels<P: Probe>(
    cpu: usize,
    levels: u64,
    state: &mut VcpuState,
    gic: &UserGic,
    probe: &mut P,
) -> bool {
    let changed = (levels ^ state.timer_levels) & (LEVEL_VTIMER | LEVEL_PTIMER);
    if changed == 0 {
        return false;
    }
    state.timer_levels = levels;
    for (bit, ppi, timer) in [
        (LEVEL_VTIMER, VTIMER, Timer::Virtual),
        (LEVEL_PTIMER, PTIMER, Timer::Physical),
    ] {
        if changed & bit != 0 {
            let level = levels & bit != 0;
            count(&mut state.stats.level_changes);
            // The probe first: what the model does with the level (its
            // events, in a trace) follows the report.
            probe.timer_level(cpu, timer, level);
            gic.with(|g| g.set_ppi_level(cpu, ppi, level));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use uirq_abi::gicv2::{gicc, gicd};
    use uirq_abi::layout::{GICC_BASE, GICD_BASE};

    use uirq_gicv2::{GicConfig, Gicv2};

    use super::*;
    use crate::irqchip::{CpuInterfaceFrame, DistributorFrame, LineChange};
    use crate::probe::NoProbe;

    struct Rig {
        bus: Bus,
        gic: Arc<UserGic>,
        state: VcpuState,
        unmapped: Unmapped,
    }

    impl Rig {
        fn new(cpus: usize) -> Self {
            let gic = Arc::new(UserGic::new(
                Gicv2::new(GicConfig {
                    num_cpus: cpus,
                    num_spis: 32,
                })
                .unwrap(),
            ));
            let mut bus = Bus::new();
            bus.insert(
                "gicd",
                GICD_BASE,
                0x1000,
                Arc::new(Mutex::new(DistributorFrame(gic.clone()))),
            )
            .unwrap();
            bus.insert(
                "gicc",
                GICC_BASE,
                0x2000,
                Arc::new(Mutex::new(CpuInterfaceFrame(gic.clone()))),
            )
            .unwrap();
            let mut rig = Rig {
                bus,
                gic,
                state: VcpuState::default(),
                unmapped: Unmapped::default(),
            };
            // Distributor and CPU interface on, mask open, the virtual
            // timer's PPI enabled with priority 0x80.
            for exit in [
                Exit::write(GICD_BASE + gicd::CTLR, 4, 1),
                Exit::write(GICC_BASE + gicc::CTLR, 4, 1),
                Exit::write(GICC_BASE + gicc::PMR, 4, 0xF0),
                Exit::write(GICD_BASE + gicd::ISENABLER, 4, 1 << 27),
                Exit::write(GICD_BASE + gicd::IPRIORITYR + 27, 1, 0x80),
            ] {
                rig.serve(exit, 0).unwrap();
            }
            rig.state = VcpuState::default();
            rig
        }

        fn serve(&mut self, mut exit: Exit, levels: u64) -> Result<(Served, Exit), ExitError> {
            let machine = Machine {
                bus: &self.bus,
                gic: Some(&self.gic),
                unmapped: self.unmapped,
            };
            let served = serve(0, &mut exit, levels, &mut self.state, machine, &mut NoProbe)?;
            Ok((served, exit))
        }

        fn read_value(&mut self, addr: u64, levels: u64) -> u32 {
            match self.serve(Exit::read(addr, 4), levels).unwrap().1 {
                Exit::MmioRead { data, .. } => {
                    u32::from_le_bytes([data[0], data[1], data[2], data[3]])
                }
                other => panic!("{other:?}"),
            }
        }
    }

    // The EINTR that reports the timer's rising level makes PPI 27 pending
    // and raises the line; the IAR read acknowledges it and the line drops.
    #[test]
    fn a_timer_level_report_raises_the_line_and_acknowledge_drops_it() {
        let mut rig = Rig::new(1);
        assert_eq!(
            rig.serve(Exit::Interrupted, LEVEL_VTIMER).unwrap().0,
            Served::Resume
        );
        assert_eq!(rig.state.stats.level_reports, 1);
        assert_eq!(rig.gic.take_own(0).irq, Some(true));
        assert_eq!(rig.read_value(GICC_BASE + gicc::IAR, LEVEL_VTIMER), 27);
        assert_eq!(rig.gic.take_own(0).irq, Some(false));
    }

    // The EOIR write exit carries the timer's lowered level. Served levels
    // first, the EOI deactivates an interrupt whose input is low, and the
    // line stays low. Served the other way round, the still-high level
    // would make it pending again and raise the line (IHI 0048B 3.2.4).
    #[test]
    fn levels_reach_the_model_before_the_exit_is_served() {
        let mut rig = Rig::new(1);
        rig.serve(Exit::Interrupted, LEVEL_VTIMER).unwrap();
        rig.gic.take_own(0);
        assert_eq!(rig.read_value(GICC_BASE + gicc::IAR, LEVEL_VTIMER), 27);
        rig.gic.take_own(0);
        rig.serve(Exit::write(GICC_BASE + gicc::EOIR, 4, 27), 0)
            .unwrap();
        assert_eq!(rig.gic.take_own(0), LineChange::default());
        assert_eq!(rig.read_value(GICC_BASE + gicc::HPPIR, 0), 1023);
    }

    #[test]
    fn system_events_stop_the_run() {
        let mut rig = Rig::new(1);
        for (kind, stop) in [
            (system_event::SHUTDOWN, Stop::PowerOff),
            (system_event::RESET, Stop::Reset),
            (system_event::CRASH, Stop::Crash),
            (99, Stop::Crash),
        ] {
            assert_eq!(
                rig.serve(Exit::SystemEvent(kind), 0).unwrap().0,
                Served::Stop(stop)
            );
        }
    }

    // Exits that cannot be resumed end the run with a named error; today's
    // alternative, resuming, repeats them forever.
    #[test]
    fn failed_entries_internal_errors_and_unknown_exits_end_the_run() {
        let mut rig = Rig::new(1);
        let err = rig
            .serve(
                Exit::FailEntry {
                    reason: 0x10,
                    host_cpu: 1,
                },
                0,
            )
            .unwrap_err();
        assert_eq!(
            err,
            ExitError::FailEntry {
                cpu: 0,
                reason: 0x10,
                host_cpu: 1
            }
        );
        assert!(err.to_string().contains("KVM_EXIT_FAIL_ENTRY"));
        let err = rig
            .serve(Exit::InternalError { suberror: 1 }, 0)
            .unwrap_err();
        assert!(matches!(err, ExitError::InternalError { suberror: 1, .. }));
        let err = rig.serve(Exit::Other("Hlt".into()), 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "vCPU 0 exited to the VMM for a reason it does not handle (Hlt)"
        );
    }

    #[test]
    fn enosys_is_undecodable_mmio_and_eintr_resumes() {
        assert_eq!(classify_run_failure(38), RunFailure::UndecodableMmio);
        assert_eq!(classify_run_failure(4), RunFailure::Interrupted);
        assert_eq!(classify_run_failure(11), RunFailure::Interrupted);
        assert_eq!(classify_run_failure(14), RunFailure::Other);
        let e = ExitError::UndecodableMmio {
            cpu: 1,
            pc: 0x4000_1234,
        };
        assert!(e.to_string().contains("PC 0x40001234"));
        assert!(e.to_string().contains("writeback"));
    }

    #[test]
    fn unclaimed_accesses_are_counted_and_read_as_zero() {
        let mut rig = Rig::new(1);
        rig.unmapped = Unmapped::ReadAsZero;
        assert_eq!(rig.read_value(0x1234_0000, 0), 0);
        rig.serve(Exit::write(0x1234_0000, 4, 7), 0).unwrap();
        assert_eq!(rig.state.stats.mmio_unclaimed, 2);
        assert_eq!(rig.state.stats.mmio_by_device.iter().count(), 0);
        assert_eq!(rig.state.stats.mmio_reads, 1);
        assert_eq!(rig.state.stats.mmio_writes, 1);
    }

    // The guest drives the counts: near the top of u64 they stop at
    // u64::MAX instead of panicking (debug) or wrapping (release).
    #[test]
    fn counters_saturate_instead_of_overflowing() {
        let near = u64::MAX - 1;
        let mut rig = Rig::new(1);
        let mut by_device = DeviceCounts::default();
        by_device.add("uart", near);
        rig.state.stats = Stats {
            exits: near,
            mmio_reads: near,
            mmio_writes: near,
            mmio_unclaimed: near,
            interrupted: near,
            level_reports: near,
            level_changes: near,
            irq_line_calls: near,
            kicks_sent: near,
            mmio_by_device: by_device,
        };
        for _ in 0..3 {
            rig.read_value(0x1234_0000, 0);
            rig.serve(Exit::write(0x1234_0000, 4, 7), 0).unwrap();
            rig.serve(Exit::Interrupted, LEVEL_VTIMER).unwrap();
            rig.serve(Exit::Interrupted, 0).unwrap();
        }
        let s = rig.state.stats;
        for (name, n) in [
            ("exits", s.exits),
            ("mmio_reads", s.mmio_reads),
            ("mmio_writes", s.mmio_writes),
            ("mmio_unclaimed", s.mmio_unclaimed),
            ("interrupted", s.interrupted),
            ("level_reports", s.level_reports),
            ("level_changes", s.level_changes),
        ] {
            assert_eq!(n, u64::MAX, "{name}");
        }
        let mut total = s;
        total.add(&s);
        assert_eq!(total.kicks_sent, u64::MAX);
        assert_eq!(total.mmio_by_device.iter().next(), Some(("uart", u64::MAX)));
        let mut c = u64::MAX - 1;
        count(&mut c);
        count(&mut c);
        assert_eq!(c, u64::MAX);
    }

    // The default answer to an access to nothing is the hardware's: an
    // external abort for that very access (address, direction), which the
    // loop makes pending instead of completing the access; nothing reaches
    // a device, and the access is counted as unclaimed, not as a device's.
    #[test]
    fn unclaimed_accesses_are_answered_with_an_external_abort() {
        let mut rig = Rig::new(1);
        assert_eq!(rig.unmapped, Unmapped::Abort);
        let (served, exit) = rig.serve(Exit::read(0x0810_0000, 4), 0).unwrap();
        assert_eq!(
            served,
            Served::InjectAbort(ExternalAbort {
                addr: 0x0810_0000,
                write: false
            })
        );
        assert!(matches!(exit, Exit::MmioRead { data, .. } if data == [0; 8]));
        let (served, _) = rig.serve(Exit::write(0x0810_0008, 8, !0), 0).unwrap();
        assert_eq!(
            served,
            Served::InjectAbort(ExternalAbort {
                addr: 0x0810_0008,
                write: true
            })
        );
        let s = rig.state.stats;
        assert_eq!((s.mmio_reads, s.mmio_writes, s.mmio_unclaimed), (1, 1, 2));
        assert_eq!(s.mmio_by_device.iter().count(), 0);
    }

    // Only an access no device covers *whole* aborts: one inside a frame
    // is the device's, one that runs off its end belongs to nobody.
    #[test]
    fn claimed_accesses_resume_and_straddling_ones_abort() {
        let mut rig = Rig::new(1);
        assert_eq!(
            rig.serve(Exit::read(GICD_BASE + gicd::TYPER, 4), 0)
                .unwrap()
                .0,
            Served::Resume
        );
        assert_eq!(
            rig.serve(Exit::write(GICC_BASE + gicc::PMR, 4, 0xF0), 0)
                .unwrap()
                .0,
            Served::Resume
        );
        let last = GICD_BASE + 0x1000 - 4;
        assert!(matches!(
            rig.serve(Exit::read(last, 8), 0).unwrap().0,
            Served::InjectAbort(ExternalAbort { addr, write: false }) if addr == last
        ));
        assert_eq!(rig.state.stats.mmio_unclaimed, 1);
        assert_eq!(rig.state.stats.mmio_by_device.iter().count(), 2);
    }

    // Timer levels are forwarded before the decision: an access that
    // aborts still delivers the level change KVM reported beside it.
    #[test]
    fn an_aborted_access_still_forwards_the_timer_level() {
        let mut rig = Rig::new(1);
        let (served, _) = rig.serve(Exit::read(0x0810_0000, 4), LEVEL_VTIMER).unwrap();
        assert!(matches!(served, Served::InjectAbort(_)));
        assert_eq!(rig.state.stats.level_changes, 1);
        assert_eq!(rig.gic.take_own(0).irq, Some(true));
    }

    // An access KVM could not decode gets the same abort, in either mode,
    // its direction taken from the WnR bit KVM passes on.
    #[test]
    fn undecodable_mmio_is_answered_with_an_external_abort() {
        for unmapped in [Unmapped::Abort, Unmapped::ReadAsZero] {
            let mut rig = Rig::new(1);
            rig.unmapped = unmapped;
            for (iss, write) in [(0x10, false), (0x10 | ISS_WNR, true)] {
                let exit = Exit::UndecodableMmio {
                    addr: GICD_BASE + 8,
                    iss,
                };
                assert_eq!(exit.kind(), "undecodable-mmio");
                assert_eq!(
                    rig.serve(exit, 0).unwrap().0,
                    Served::InjectAbort(ExternalAbort {
                        addr: GICD_BASE + 8,
                        write
                    })
                );
            }
            assert_eq!(rig.state.stats.mmio_by_device.iter().count(), 0);
        }
    }

    #[test]
    fn unmapped_modes_are_named_as_on_the_command_line() {
        assert_eq!(Unmapped::default(), Unmapped::Abort);
        assert_eq!(Unmapped::Abort.name(), "abort");
        assert_eq!(Unmapped::ReadAsZero.name(), "raz");
    }

    // With KVM's in-kernel vGIC there is no model: levels are not
    // forwarded (KVM takes them itself).
    #[test]
    fn without_a_userspace_gic_levels_are_ignored() {
        let rig = Rig::new(1);
        let mut state = VcpuState::default();
        let machine = Machine {
            bus: &rig.bus,
            gic: None,
            unmapped: Unmapped::Abort,
        };
        serve(
            0,
            &mut Exit::Interrupted,
            LEVEL_VTIMER,
            &mut state,
            machine,
            &mut NoProbe,
        )
        .unwrap();
        assert_eq!(state.stats.level_changes, 0);
        assert_eq!(rig.gic.take_own(0), LineChange::default());
    }
}
