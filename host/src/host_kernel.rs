//! Knowing the host kernel: what `uirq-vmm --probe` reports, and what the
//! VMM does at start-up with the one kernel bug it can work around.
//!
//! The report ([`HostReport`]) gives the kernel's release (`uname`), the
//! KVM API version, every KVM capability the VMM uses or could use
//! ([`CAPABILITIES`], each present or absent with its number and KVM's
//! answer), and the result of a live check ([`WfiCheck`]): does a vCPU
//! waiting in WFI wake for its own virtual timer while the irqchip is in
//! userspace? Linux before commit 4ce98bf0865c ("Wake-up from WFI when
//! irqchip is in userspace"; in 6.12.88 and later, and in later 6.1 stable
//! releases) does not: KVM never returns to report the timer's level, and
//! a guest that waits for its timer with WFI sleeps until something else
//! kicks the vCPU. The check itself needs KVM and lives in
//! `crate::kvm::host_probe` (aarch64 only); everything here is plain data,
//! its text and JSON, and the start-up decision, tested on any machine.
//!
//! **At start-up** ([`plan_kicks`], [`kicks_after_check`]): a run with the
//! userspace irqchip and no `--kick-every-us` first runs the check (unless
//! `--no-probe`); where the bug is present it kicks every vCPU out of
//! `KVM_RUN` every [`AUTO_KICK_US`] microseconds, the workaround, and says
//! so in one line ([`auto_kick_notice`]); so it does, to be safe, where the
//! check could not tell ([`inconclusive_notice`]). A run that names its own
//! `--kick-every-us`, and a run on KVM's in-kernel vGIC, need no check.

use serde::{Deserialize, Serialize};

/// The version of the `--probe --json` document; raised when a field
/// changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// The kick period the automatic workaround uses, in microseconds: the
/// period the README recommends for `--kick-every-us` on such kernels.
pub const AUTO_KICK_US: u64 = 1000;

/// How long `--probe`'s cross-thread `KVM_IRQ_LINE` check raises and
/// lowers a line by default, in ms (`--irq-line-check-ms`; VM creation
/// not included).
pub const IRQ_LINE_CHECK_MS: u64 = 1000;

/// The upstream commit that fixed the WFI wake-up bug.
pub const WFI_FIX_COMMIT: &str = "4ce98bf0865c";

/// The WFI check's guest, a few instructions hand-assembled: it arms the
/// EL1 virtual timer `x0` ticks ahead of its own counter, with the
/// interrupt unmasked, and waits for it in WFI, forever. The timer is armed
/// by the guest itself, right before the WFI, so that it cannot fire
/// before the vCPU waits (a VMM that set the registers with
/// `KVM_SET_ONE_REG` would race the first entry). Encodings from the Arm
/// ARM (DDI 0487), chapter C6 "A64 Base Instruction Descriptions", and the
/// Generic Timer registers' system-register encodings (op0, op1, CRn, CRm,
/// op2): CNTVCT_EL0 (3, 3, 14, 0, 2), CNTV_CVAL_EL0 (3, 3, 14, 3, 2),
/// CNTV_CTL_EL0 (3, 3, 14, 3, 1). `MRS` is `0xd5300000` and `MSR
/// (register)` `0xd5100000`, each with op0's low bit at 19, op1 at 16, CRn
/// at 12, CRm at 8, op2 at 5 and Rt at 0; the tests rebuild every word
/// from its fields.
pub const WFI_GUEST: [u32; 8] = [
    0xd53b_e041, // mrs  x1, cntvct_el0      the guest's count now
    0x8b00_0021, // add  x1, x1, x0          ADD (shifted register), 64-bit: + the delay
    0xd51b_e341, // msr  cntv_cval_el0, x1   the deadline
    0xd280_0022, // mov  x2, #1              MOVZ, 64-bit: CNTV_CTL ENABLE = 1, IMASK = 0
    0xd51b_e322, // msr  cntv_ctl_el0, x2    timer on, its interrupt not masked
    0xd503_3fdf, // isb                      the timer's settings take effect before the wait
    0xd503_207f, // wfi                      traps to KVM (HCR_EL2.TWI), which blocks the vCPU
    0x17ff_ffff, // b    .-4                 B, imm26 = -1: back to the wfi
];

/// Where the guest's PC is once KVM has handled its trapped WFI: the
/// instruction after it, as an offset from the code's start. A level
/// report with the PC anywhere else came before the vCPU waited.
pub const WFI_GUEST_AFTER_WFI: u64 = 7 * 4;

/// The cross-thread check's guest: it reads `ISR_EL1` and writes it to an
/// address outside its RAM (`x1`), an MMIO exit that hands the value to
/// the VMM, forever. `ISR_EL1.I` (bit 7) is 1 while a virtual IRQ is
/// pending, which with the irqchip in userspace is `HCR_EL2.VI`, the bit
/// `KVM_IRQ_LINE` sets and clears (Arm ARM D19.2 "ISR_EL1"; with
/// `HCR_EL2.IMO` set, as KVM sets it for every guest, the virtual IRQ is
/// what EL1 sees). The guest starts with PSTATE.I set (KVM's reset state),
/// so it never takes the interrupt and needs no vectors. Encodings: MRS
/// as in [`WFI_GUEST`], ISR_EL1 is (3, 0, 12, 1, 0); `STR (immediate)`,
/// unsigned offset, 64-bit, is `0xf9000000` with Rn at 5 and Rt at 0, a
/// single store KVM decodes (no writeback).
pub const ISR_GUEST: [u32; 3] = [
    0xd538_c100, // mrs  x0, isr_el1   I (bit 7): HCR_EL2.VI as the guest sees it
    0xf900_0020, // str  x0, [x1]      MMIO exit with the value
    0x17ff_fffe, // b    .-8           B, imm26 = -2: again
];

/// `ISR_EL1.I`: a virtual IRQ is pending.
pub const ISR_EL1_I: u64 = 1 << 7;

/// A KVM capability the report lists: its name and number in Linux's
/// `include/uapi/linux/kvm.h`, and what this VMM does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapabilityInfo {
    /// `KVM_CAP_...`.
    pub name: &'static str,
    /// The number `KVM_CHECK_EXTENSION` takes.
    pub number: u32,
    /// What this VMM uses it for, in a few words.
    pub used_for: &'static str,
}

/// Every capability the report lists, in the order it prints them. The
/// numbers are checked against `kvm-bindings` at compile time on aarch64
/// (`crate::kvm::host_probe`).
pub const CAPABILITIES: [CapabilityInfo; 10] = [
    CapabilityInfo {
        name: "KVM_CAP_ARM_USER_IRQ",
        number: 144,
        used_for: "timer levels reported to userspace: required for the userspace GIC",
    },
    CapabilityInfo {
        name: "KVM_CAP_COUNTER_OFFSET",
        number: 227,
        used_for: "guest counter on the VMM's timebase (else measured)",
    },
    CapabilityInfo {
        name: "KVM_CAP_ARM_INJECT_EXT_DABT",
        number: 178,
        used_for: "external abort for unmapped accesses (--unmapped abort)",
    },
    CapabilityInfo {
        name: "KVM_CAP_ARM_NISV_TO_USER",
        number: 177,
        used_for: "MMIO KVM cannot decode reported, not fatal",
    },
    CapabilityInfo {
        name: "KVM_CAP_MAX_VCPUS",
        number: 66,
        used_for: "vCPUs per VM (the value; --cpus is at most 8)",
    },
    CapabilityInfo {
        name: "KVM_CAP_NR_VCPUS",
        number: 9,
        used_for: "recommended vCPUs per VM (the value)",
    },
    CapabilityInfo {
        name: "KVM_CAP_ARM_PSCI_0_2",
        number: 102,
        used_for: "PSCI 0.2: CPU_ON and SYSTEM_OFF in KVM",
    },
    CapabilityInfo {
        name: "KVM_CAP_IMMEDIATE_EXIT",
        number: 136,
        used_for: "kvm_run.immediate_exit: race-free kicks",
    },
    CapabilityInfo {
        name: "KVM_CAP_ONE_REG",
        number: 70,
        used_for: "KVM_{GET,SET}_ONE_REG: boot and timer registers",
    },
    CapabilityInfo {
        name: "KVM_CAP_DEVICE_CTRL",
        number: 89,
        used_for: "KVM_CREATE_DEVICE: the in-kernel vGICv2 (--irqchip kernel)",
    },
];

/// The host kernel as `uname(2)` names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uname {
    /// `sysname` (`Linux`).
    pub sysname: String,
    /// `release` (`6.1.0-47-arm64`).
    pub release: String,
    /// `version` (the build: `#1 SMP Debian 6.1.170-1 ...`).
    pub version: String,
    /// `machine` (`aarch64`).
    pub machine: String,
}

impl Uname {
    /// This machine's, from `uname(2)`; empty fields if the call fails.
    pub fn current() -> Self {
        // SAFETY: utsname is plain bytes; all-zero is a valid value.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: `u` is a valid, writable utsname for the duration of the
        // call.
        if unsafe { libc::uname(&mut u) } != 0 {
            return Self::default();
        }
        let field = |f: &[libc::c_char]| {
            let bytes: Vec<u8> = f
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c.to_ne_bytes()[0])
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Self {
            sysname: field(&u.sysname),
            release: field(&u.release),
            version: field(&u.version),
            machine: field(&u.machine),
        }
    }
}

/// One capability as KVM answered `KVM_CHECK_EXTENSION` for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capability {
    /// `KVM_CAP_...`.
    pub name: String,
    /// Its number.
    pub number: u32,
    /// Whether KVM offers it (answered more than 0).
    pub present: bool,
    /// KVM's answer: 0 for absent, 1 for most present capabilities, a
    /// count for `KVM_CAP_MAX_VCPUS` and `KVM_CAP_NR_VCPUS`.
    pub value: i32,
    /// What this VMM uses it for.
    pub used_for: String,
}

impl Capability {
    /// `info` with KVM's `answer`.
    pub fn answered(info: &CapabilityInfo, answer: i32) -> Self {
        Self {
            name: info.name.to_string(),
            number: info.number,
            present: answer > 0,
            value: answer.max(0),
            used_for: info.used_for.to_string(),
        }
    }
}

/// The outcome of the WFI wake-up check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WfiVerdict {
    /// KVM returned with the timer's level by itself: the kernel has the
    /// fix.
    Wakes,
    /// The level report only came with a kick, long after the timer
    /// fired, twice: the kernel lacks the fix.
    BugPresent,
    /// The check could not tell (see [`WfiCheck::detail`]).
    Inconclusive,
    /// The check did not run (no userspace irqchip to check).
    NotRun,
}

impl WfiVerdict {
    /// The verdict as the JSON document spells it.
    pub fn name(self) -> &'static str {
        match self {
            WfiVerdict::Wakes => "wakes",
            WfiVerdict::BugPresent => "bug_present",
            WfiVerdict::Inconclusive => "inconclusive",
            WfiVerdict::NotRun => "not_run",
        }
    }
}

/// What the live WFI check found, and what it cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WfiCheck {
    /// The outcome.
    pub verdict: WfiVerdict,
    /// One sentence on how the verdict was reached.
    pub detail: String,
    /// How far ahead of its own counter the guest armed its virtual
    /// timer, in µs (the last attempt's).
    pub timer_delay_us: u64,
    /// How long the VMM waited for KVM to return by itself before it
    /// kicked the vCPU, in ms (the last attempt's).
    pub wait_ms: u64,
    /// From entering `KVM_RUN` to the return that reported the timer's
    /// level, in µs (the last attempt's; none when none came).
    pub report_after_us: Option<u64>,
    /// Whether that report only came with a kick (the last attempt's).
    pub kicked: bool,
    /// Throwaway VMs run (a timer that fired before the vCPU reached WFI
    /// proves nothing and is tried again; a kicked report is confirmed
    /// with a longer wait).
    pub attempts: u32,
    /// The whole check, VM creation included, in µs.
    pub cost_us: u64,
}

impl WfiCheck {
    /// A check that did not run, saying why.
    pub fn not_run(why: &str) -> Self {
        Self {
            verdict: WfiVerdict::NotRun,
            detail: why.to_string(),
            timer_delay_us: 0,
            wait_ms: 0,
            report_after_us: None,
            kicked: false,
            attempts: 0,
            cost_us: 0,
        }
    }
}

/// The outcome of the cross-thread `KVM_IRQ_LINE` check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IrqLineVerdict {
    /// At least one line change made from another thread was undone by
    /// the vCPU's own thread entering `KVM_RUN`: the kernel has the race
    /// (docs/smp.md, section 3).
    Loses,
    /// Every line change held. The race is a matter of timing: this says
    /// it did not show in this many tries, not that it cannot happen.
    NoneLost,
    /// The check could not tell (see [`IrqLineCheck::detail`]).
    Inconclusive,
    /// The check did not run.
    NotRun,
}

impl IrqLineVerdict {
    /// The verdict as the JSON document spells it.
    pub fn name(self) -> &'static str {
        match self {
            IrqLineVerdict::Loses => "loses",
            IrqLineVerdict::NoneLost => "none_lost",
            IrqLineVerdict::Inconclusive => "inconclusive",
            IrqLineVerdict::NotRun => "not_run",
        }
    }

    /// The verdict from what the check counted.
    pub fn from_counts(changes: u32, raises_lost: u32, lowers_lost: u32) -> Self {
        match (changes, raises_lost + lowers_lost) {
            (0, _) => IrqLineVerdict::Inconclusive,
            (_, 0) => IrqLineVerdict::NoneLost,
            _ => IrqLineVerdict::Loses,
        }
    }
}

/// What the live cross-thread `KVM_IRQ_LINE` check found, and what it
/// cost. One vCPU's thread enters `KVM_RUN` over and over (with
/// `immediate_exit`, so each entry is the kernel's vCPU load and nothing
/// else) while another thread raises or lowers that vCPU's IRQ line; the
/// guest then reads `ISR_EL1` ([`ISR_GUEST`]) to show whether the change
/// held.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IrqLineCheck {
    /// The outcome.
    pub verdict: IrqLineVerdict,
    /// One sentence on how the verdict was reached.
    pub detail: String,
    /// Raises made from the other thread (as many lowers follow them).
    pub raises: u32,
    /// Raises the guest did not see: `ISR_EL1.I` = 0 after `KVM_IRQ_LINE`
    /// (level 1) had returned.
    pub raises_lost: u32,
    /// Lowers the guest did not see: `ISR_EL1.I` = 1 after `KVM_IRQ_LINE`
    /// (level 0) had returned.
    pub lowers_lost: u32,
    /// `KVM_RUN` entries the vCPU's thread made while the lines changed.
    pub entries: u64,
    /// The whole check, VM creation included, in µs.
    pub cost_us: u64,
}

impl IrqLineCheck {
    /// A check that did not run, or could not, saying why.
    pub fn without_result(verdict: IrqLineVerdict, why: &str) -> Self {
        Self {
            verdict,
            detail: why.to_string(),
            raises: 0,
            raises_lost: 0,
            lowers_lost: 0,
            entries: 0,
            cost_us: 0,
        }
    }
}

/// The KVM device and its API version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvmInfo {
    /// The device opened (`--kvm-device`).
    pub device: String,
    /// `KVM_GET_API_VERSION`'s answer (12).
    pub api_version: i32,
}

/// Everything `uirq-vmm --probe` reports; `--json` prints it as it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `uirq-vmm`.
    pub tool: String,
    /// The VMM's version.
    pub tool_version: String,
    /// The host kernel.
    pub kernel: Uname,
    /// The KVM device.
    pub kvm: KvmInfo,
    /// Every capability of [`CAPABILITIES`], in that order.
    pub capabilities: Vec<Capability>,
    /// The live WFI wake-up check.
    pub wfi_wakeup: WfiCheck,
    /// The live cross-thread `KVM_IRQ_LINE` check.
    pub cross_thread_irq_line: IrqLineCheck,
}

impl HostReport {
    /// The capability called `name`, if the report lists it.
    pub fn capability(&self, name: &str) -> Option<&Capability> {
        self.capabilities.iter().find(|c| c.name == name)
    }

    /// The report for people, one fact a line.
    pub fn text(&self) -> String {
        let k = &self.kernel;
        let mut out = format!(
            "host kernel: {} {} ({}) {}\n",
            k.sysname, k.release, k.version, k.machine
        );
        out.push_str(&format!(
            "KVM: {}, API version {}\n",
            self.kvm.device, self.kvm.api_version
        ));
        out.push_str("capabilities:\n");
        let width = CAPABILITIES.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.capabilities {
            let answer = match (c.present, c.value) {
                (false, _) => "absent".to_string(),
                (true, 1) => "present".to_string(),
                (true, n) => format!("present ({n})"),
            };
            out.push_str(&format!(
                "  {:<width$} {:>4}  {:<14} {}\n",
                c.name, c.number, answer, c.used_for
            ));
        }
        out.push_str(&format!("WFI wake-up: {}\n", wfi_line(&self.wfi_wakeup)));
        out.push_str(&format!(
            "cross-thread KVM_IRQ_LINE: {}\n",
            irq_line_line(&self.cross_thread_irq_line)
        ));
        out
    }
}

/// The report's cross-thread `KVM_IRQ_LINE` line.
fn irq_line_line(c: &IrqLineCheck) -> String {
    let cost = format!("check took {:.1} ms", c.cost_us as f64 / 1000.0);
    match c.verdict {
        IrqLineVerdict::Loses => format!(
            "lost: {}; {cost}; this VMM calls KVM_IRQ_LINE only from the vCPU's own thread, where nothing is lost (docs/smp.md, section 3)",
            c.detail
        ),
        IrqLineVerdict::NoneLost => format!(
            "none lost: {}; the race is rare and timing-bound, so this is no proof; {cost}",
            c.detail
        ),
        IrqLineVerdict::Inconclusive => format!("could not tell: {}; {cost}", c.detail),
        IrqLineVerdict::NotRun => format!("not checked: {}", c.detail),
    }
}

/// How the cross-thread check's counts read, in one sentence. The check
/// ends at the first loss: `raises` counts the raises made up to it.
pub fn irq_line_detail(raises: u32, raises_lost: u32, lowers_lost: u32, entries: u64) -> String {
    let changes = format!(
        "a vCPU's IRQ line raised and lowered from another thread while the vCPU's thread entered KVM_RUN {entries} times"
    );
    match (raises_lost, lowers_lost) {
        (0, 0) => format!("{changes}: all {raises} raises and {raises} lowers held"),
        (0, _) => format!(
            "{changes}: lower {raises} was undone (the guest still saw the IRQ pending after it)"
        ),
        _ => {
            format!("{changes}: raise {raises} was undone (the guest saw no IRQ pending after it)")
        }
    }
}

/// The report's WFI line.
fn wfi_line(w: &WfiCheck) -> String {
    let cost = format!("check took {:.1} ms", w.cost_us as f64 / 1000.0);
    match w.verdict {
        WfiVerdict::Wakes => format!(
            "a vCPU in WFI wakes for its own timer with the irqchip in userspace: {}; {cost}",
            w.detail
        ),
        WfiVerdict::BugPresent => format!(
            "the bug is present (Linux commit {WFI_FIX_COMMIT} fixes it): a vCPU in WFI is not woken by its own timer with the irqchip in userspace: {}; {cost}; runs kick the vCPUs every {AUTO_KICK_US} us unless told otherwise",
            w.detail
        ),
        WfiVerdict::Inconclusive => format!("could not tell: {}; {cost}", w.detail),
        WfiVerdict::NotRun => format!("not checked: {}", w.detail),
    }
}

/// Which irqchip a run uses, as far as the start-up decision cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqchipKind {
    /// The userspace GIC model (KVM_CAP_ARM_USER_IRQ).
    User,
    /// KVM's in-kernel vGICv2: the kernel wakes its own vCPUs.
    Kernel,
}

/// What a run does about periodic kicks before it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KickPlan {
    /// The user chose a period (`--kick-every-us`): no check.
    Given(u64),
    /// Run the WFI check; kick only where the bug is present.
    Check,
    /// No kicks and no check (`--irqchip kernel`, or `--no-probe`).
    None,
}

/// The start-up decision from the command line alone.
pub fn plan_kicks(kick_every_us: Option<u64>, irqchip: IrqchipKind, no_probe: bool) -> KickPlan {
    match (kick_every_us, irqchip, no_probe) {
        (Some(us), _, _) => KickPlan::Given(us),
        (None, IrqchipKind::Kernel, _) | (None, _, true) => KickPlan::None,
        (None, IrqchipKind::User, false) => KickPlan::Check,
    }
}

/// The kick period after a [`KickPlan::Check`]: [`AUTO_KICK_US`] where the
/// bug is present, and where the check could not tell (kicks cost a few
/// exits a millisecond on a kernel that did not need them; a guest hung
/// for good costs the run), none where the kernel wakes the vCPU.
pub fn kicks_after_check(verdict: WfiVerdict) -> Option<u64> {
    matches!(verdict, WfiVerdict::BugPresent | WfiVerdict::Inconclusive).then_some(AUTO_KICK_US)
}

/// The one line a run prints when it turns the workaround on by itself.
pub fn auto_kick_notice(release: &str) -> String {
    format!(
        "uirq-vmm: kernel {release} lacks Linux commit {WFI_FIX_COMMIT} (a vCPU in WFI is not woken by its own timer with the irqchip in userspace); kicking the vCPUs every {AUTO_KICK_US} us to work around it (--kick-every-us N sets the period, --no-probe skips the check)"
    )
}

/// The one line a run prints when the check could not tell.
pub fn inconclusive_notice(detail: &str) -> String {
    format!(
        "uirq-vmm: could not tell whether this kernel wakes a vCPU in WFI for its timer ({detail}); kicking the vCPUs every {AUTO_KICK_US} us in case it does not (--kick-every-us N sets the period, --no-probe skips the check)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(verdict: WfiVerdict, kicked: bool) -> WfiCheck {
        WfiCheck {
            verdict,
            detail: "level report 2.1 ms after entering KVM_RUN".to_string(),
            timer_delay_us: 1000,
            wait_ms: 50,
            report_after_us: Some(2100),
            kicked,
            attempts: 1,
            cost_us: 4200,
        }
    }

    fn report(wfi: WfiCheck) -> HostReport {
        HostReport {
            schema_version: SCHEMA_VERSION,
            tool: "uirq-vmm".to_string(),
            tool_version: "0.1.0".to_string(),
            kernel: Uname {
                sysname: "Linux".into(),
                release: "6.1.0-47-arm64".into(),
                version: "#1 SMP Debian 6.1.170-1".into(),
                machine: "aarch64".into(),
            },
            kvm: KvmInfo {
                device: "/dev/kvm".into(),
                api_version: 12,
            },
            capabilities: CAPABILITIES
                .iter()
                .map(|c| {
                    let answer = match c.name {
                        "KVM_CAP_MAX_VCPUS" => 512,
                        "KVM_CAP_COUNTER_OFFSET" => 0,
                        _ => 1,
                    };
                    Capability::answered(c, answer)
                })
                .collect(),
            wfi_wakeup: wfi,
            cross_thread_irq_line: irq_line(1, 0),
        }
    }

    fn irq_line(raises_lost: u32, lowers_lost: u32) -> IrqLineCheck {
        IrqLineCheck {
            verdict: IrqLineVerdict::from_counts(1000, raises_lost, lowers_lost),
            detail: irq_line_detail(1000, raises_lost, lowers_lost, 48_000),
            raises: 1000,
            raises_lost,
            lowers_lost,
            entries: 48_000,
            cost_us: 310_000,
        }
    }

    // Every field is in the document, with the names and types a reader
    // of `--probe --json` relies on, and it reads back unchanged.
    #[test]
    fn the_json_document_has_every_field_and_reads_back() {
        let r = report(check(WfiVerdict::BugPresent, true));
        let text = serde_json::to_string(&r).unwrap();
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        // In this order in the text; every one, and no other.
        assert!(
            text.starts_with("{\"schema_version\":1,\"tool\":\"uirq-vmm\",\"tool_version\":"),
            "{text}"
        );
        let mut keys: Vec<&str> = j.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "capabilities",
                "cross_thread_irq_line",
                "kernel",
                "kvm",
                "schema_version",
                "tool",
                "tool_version",
                "wfi_wakeup"
            ]
        );
        assert_eq!(j["schema_version"], 1);
        assert_eq!(j["kernel"]["release"], "6.1.0-47-arm64");
        assert_eq!(j["kernel"]["machine"], "aarch64");
        assert_eq!(j["kvm"]["api_version"], 12);
        assert_eq!(j["kvm"]["device"], "/dev/kvm");
        let caps = j["capabilities"].as_array().unwrap();
        assert_eq!(caps.len(), CAPABILITIES.len());
        for c in caps {
            for key in ["name", "number", "present", "value", "used_for"] {
                assert!(c.get(key).is_some(), "{key} missing in {c}");
            }
        }
        assert_eq!(caps[0]["name"], "KVM_CAP_ARM_USER_IRQ");
        assert_eq!(caps[0]["number"], 144);
        assert_eq!(caps[0]["present"], true);
        let max = caps
            .iter()
            .find(|c| c["name"] == "KVM_CAP_MAX_VCPUS")
            .unwrap();
        assert_eq!(max["value"], 512);
        let offset = caps
            .iter()
            .find(|c| c["name"] == "KVM_CAP_COUNTER_OFFSET")
            .unwrap();
        assert_eq!(
            (offset["present"].clone(), offset["value"].clone()),
            (false.into(), 0.into())
        );
        let w = &j["wfi_wakeup"];
        assert_eq!(w["verdict"], "bug_present");
        for key in [
            "detail",
            "timer_delay_us",
            "wait_ms",
            "report_after_us",
            "kicked",
            "attempts",
            "cost_us",
        ] {
            assert!(w.get(key).is_some(), "{key} missing in {w}");
        }
        assert_eq!(w["kicked"], true);
        assert_eq!(w["report_after_us"], 2100);
        let x = &j["cross_thread_irq_line"];
        assert_eq!(x["verdict"], "loses");
        for (key, value) in [
            ("raises", 1000),
            ("raises_lost", 1),
            ("lowers_lost", 0),
            ("entries", 48_000),
            ("cost_us", 310_000),
        ] {
            assert_eq!(x[key], value, "{key} in {x}");
        }
        let back: HostReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        // Every verdict's spelling is its `name`.
        for v in [
            WfiVerdict::Wakes,
            WfiVerdict::BugPresent,
            WfiVerdict::Inconclusive,
            WfiVerdict::NotRun,
        ] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.name());
        }
        for v in [
            IrqLineVerdict::Loses,
            IrqLineVerdict::NoneLost,
            IrqLineVerdict::Inconclusive,
            IrqLineVerdict::NotRun,
        ] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.name());
        }
        // No report: null, not a missing field.
        let mut none = check(WfiVerdict::Inconclusive, false);
        none.report_after_us = None;
        let j = serde_json::to_value(report(none)).unwrap();
        assert!(j["wfi_wakeup"]["report_after_us"].is_null());
    }

    #[test]
    fn the_capability_table_names_each_capability_once_with_its_number() {
        let mut names: Vec<_> = CAPABILITIES.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CAPABILITIES.len());
        let mut numbers: Vec<_> = CAPABILITIES.iter().map(|c| c.number).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), CAPABILITIES.len());
        for required in [
            "KVM_CAP_ARM_USER_IRQ",
            "KVM_CAP_COUNTER_OFFSET",
            "KVM_CAP_ARM_INJECT_EXT_DABT",
            "KVM_CAP_ARM_NISV_TO_USER",
            "KVM_CAP_MAX_VCPUS",
            "KVM_CAP_ARM_PSCI_0_2",
        ] {
            assert!(names.contains(&required), "{required}");
        }
        // A negative answer (an error) reads as absent, value 0.
        let c = Capability::answered(&CAPABILITIES[0], -22);
        assert!(!c.present);
        assert_eq!(c.value, 0);
    }

    #[test]
    fn the_text_report_gives_each_fact_a_line() {
        let text = report(check(WfiVerdict::Wakes, false)).text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3 + CAPABILITIES.len() + 2, "{text}");
        assert_eq!(
            lines[0],
            "host kernel: Linux 6.1.0-47-arm64 (#1 SMP Debian 6.1.170-1) aarch64"
        );
        assert_eq!(lines[1], "KVM: /dev/kvm, API version 12");
        assert!(lines[3].contains("KVM_CAP_ARM_USER_IRQ") && lines[3].contains("  144  present "));
        let max = lines
            .iter()
            .find(|l| l.contains("KVM_CAP_MAX_VCPUS"))
            .unwrap();
        assert!(max.contains("present (512)"), "{max}");
        let offset = lines
            .iter()
            .find(|l| l.contains("KVM_CAP_COUNTER_OFFSET"))
            .unwrap();
        assert!(offset.contains(" 227  absent "), "{offset}");
        assert!(
            lines[lines.len() - 2].starts_with("WFI wake-up: a vCPU in WFI wakes"),
            "{text}"
        );
        assert_eq!(
            lines[lines.len() - 1],
            "cross-thread KVM_IRQ_LINE: lost: a vCPU's IRQ line raised and lowered from another thread while the vCPU's thread entered KVM_RUN 48000 times: raise 1000 was undone (the guest saw no IRQ pending after it); check took 310.0 ms; this VMM calls KVM_IRQ_LINE only from the vCPU's own thread, where nothing is lost (docs/smp.md, section 3)"
        );
        let mut r = report(check(WfiVerdict::BugPresent, true));
        r.cross_thread_irq_line = irq_line(0, 0);
        let text = r.text();
        let lines: Vec<&str> = text.lines().collect();
        let wfi = lines[lines.len() - 2];
        assert!(wfi.starts_with("WFI wake-up: the bug is present"), "{wfi}");
        assert!(
            wfi.contains(WFI_FIX_COMMIT) && wfi.contains("check took 4.2 ms"),
            "{wfi}"
        );
        let x = lines[lines.len() - 1];
        assert!(
            x.starts_with("cross-thread KVM_IRQ_LINE: none lost: ")
                && x.contains("all 1000 raises and 1000 lowers held")
                && x.contains("no proof"),
            "{x}"
        );
        let lower = irq_line(0, 1);
        assert_eq!(lower.verdict, IrqLineVerdict::Loses);
        assert!(
            lower.detail.ends_with(
                ": lower 1000 was undone (the guest still saw the IRQ pending after it)"
            ),
            "{}",
            lower.detail
        );
    }

    #[test]
    fn the_irq_line_verdict_follows_the_counts() {
        use IrqLineVerdict::*;
        assert_eq!(IrqLineVerdict::from_counts(0, 0, 0), Inconclusive);
        assert_eq!(IrqLineVerdict::from_counts(500, 0, 0), NoneLost);
        assert_eq!(IrqLineVerdict::from_counts(500, 1, 0), Loses);
        assert_eq!(IrqLineVerdict::from_counts(500, 0, 2), Loses);
    }

    #[test]
    fn only_a_userspace_irqchip_run_without_a_kick_period_or_no_probe_is_checked() {
        use IrqchipKind::{Kernel, User};
        assert_eq!(plan_kicks(None, User, false), KickPlan::Check);
        // The user's period wins, with or without the check asked off.
        assert_eq!(plan_kicks(Some(500), User, false), KickPlan::Given(500));
        assert_eq!(plan_kicks(Some(500), User, true), KickPlan::Given(500));
        assert_eq!(plan_kicks(Some(2000), Kernel, false), KickPlan::Given(2000));
        assert_eq!(plan_kicks(None, User, true), KickPlan::None);
        assert_eq!(plan_kicks(None, Kernel, false), KickPlan::None);
        assert_eq!(plan_kicks(None, Kernel, true), KickPlan::None);
    }

    #[test]
    fn the_bug_present_or_an_inconclusive_check_turns_on_1000_us_kicks() {
        assert_eq!(kicks_after_check(WfiVerdict::BugPresent), Some(1000));
        assert_eq!(kicks_after_check(WfiVerdict::Inconclusive), Some(1000));
        for v in [WfiVerdict::Wakes, WfiVerdict::NotRun] {
            assert_eq!(kicks_after_check(v), None, "{v:?}");
        }
        let notice = auto_kick_notice("6.1.0-47-arm64");
        assert_eq!(notice.lines().count(), 1);
        for part in [
            "6.1.0-47-arm64",
            "4ce98bf0865c",
            "every 1000 us",
            "--kick-every-us",
            "--no-probe",
        ] {
            assert!(notice.contains(part), "{part}: {notice}");
        }
        let notice = inconclusive_notice("the timer never fired");
        assert!(notice.contains("every 1000 us"), "{notice}");
        assert!(notice.contains("--no-probe"), "{notice}");
    }

    /// `MRS Xt, <reg>` (`read`) or `MSR <reg>, Xt` from the register's
    /// encoding (Arm ARM C6, "MRS" and "MSR (register)").
    fn sysreg(read: bool, (op0, op1, crn, crm, op2): (u32, u32, u32, u32, u32), rt: u32) -> u32 {
        let base = if read { 0xd530_0000 } else { 0xd510_0000 };
        base | (op0 - 2) << 19 | op1 << 16 | crn << 12 | crm << 8 | op2 << 5 | rt
    }

    #[test]
    fn the_wfi_guest_is_what_its_comments_say() {
        const CNTVCT_EL0: (u32, u32, u32, u32, u32) = (3, 3, 14, 0, 2);
        const CNTV_CVAL_EL0: (u32, u32, u32, u32, u32) = (3, 3, 14, 3, 2);
        const CNTV_CTL_EL0: (u32, u32, u32, u32, u32) = (3, 3, 14, 3, 1);
        // ADD (shifted register), sf 1: 0x8b000000 | Rm << 16 | Rn << 5 | Rd.
        let add = |rd: u32, rn: u32, rm: u32| 0x8b00_0000 | rm << 16 | rn << 5 | rd;
        // MOVZ, sf 1, hw 0: 0xd2800000 | imm16 << 5 | Rd.
        let movz = |rd: u32, imm: u32| 0xd280_0000 | imm << 5 | rd;
        // B: 0x14000000 | imm26, in words from the branch itself.
        let b = |words: i32| 0x1400_0000 | (words as u32 & 0x03ff_ffff);
        assert_eq!(
            WFI_GUEST,
            [
                sysreg(true, CNTVCT_EL0, 1),
                add(1, 1, 0),
                sysreg(false, CNTV_CVAL_EL0, 1),
                movz(2, 1),
                sysreg(false, CNTV_CTL_EL0, 2),
                0xd503_3fdf, // ISB (SY): CRm 0b1111
                0xd503_207f, // WFI: HINT #3
                b(-1),
            ]
        );
        assert_eq!(
            WFI_GUEST[(WFI_GUEST_AFTER_WFI / 4) as usize - 1],
            0xd503_207f
        );
    }

    #[test]
    fn the_isr_guest_is_what_its_comments_say() {
        const ISR_EL1: (u32, u32, u32, u32, u32) = (3, 0, 12, 1, 0);
        // STR (immediate), unsigned offset, size 64: 0xf9000000 | imm12
        // << 10 | Rn << 5 | Rt.
        let str_ = |rt: u32, rn: u32| 0xf900_0000 | rn << 5 | rt;
        let b = |words: i32| 0x1400_0000 | (words as u32 & 0x03ff_ffff);
        assert_eq!(ISR_GUEST, [sysreg(true, ISR_EL1, 0), str_(0, 1), b(-2)]);
        assert_eq!(ISR_EL1_I, 0x80);
    }

    #[test]
    fn uname_names_this_machine() {
        let u = Uname::current();
        assert_eq!(u.sysname, "Linux");
        assert!(!u.release.is_empty());
        assert_eq!(u.machine, std::env::consts::ARCH);
    }
}
