//! The EL1 virtual timer of the Arm generic timer (Arm Architecture
//! Reference Manual for A-profile, DDI 0487, chapter "The Generic Timer in
//! AArch64 state").
//!
//! # The pieces
//!
//! - `CNTFRQ_EL0`: the frequency of the system counter in Hz, written by
//!   firmware (or the hypervisor) at boot. The counter does not tell its own
//!   frequency, so this register is the only way to turn ticks into time; if
//!   it reads 0, nobody set it and no time can be measured.
//! - `CNTVCT_EL0`: the *virtual* count, the system counter minus an offset
//!   the hypervisor controls (`CNTVOFF_EL2`). It only goes up.
//! - `CNTV_CVAL_EL0`: the compare value. The timer condition is met when
//!   `CNTVCT_EL0 >= CNTV_CVAL_EL0`.
//! - `CNTV_CTL_EL0`: `ENABLE` turns the timer on, `IMASK` masks its output,
//!   `ISTATUS` (read-only) reports the condition.
//!
//! While `ENABLE` is 1, `IMASK` is 0 and the condition is met, the timer
//! holds its interrupt line *high*: it is a level-sensitive interrupt, wired
//! to PPI 27 of the GIC (`uirq_abi::gicv2::VTIMER`). The line only drops when
//! software moves `CVAL` into the future, sets `IMASK`, or clears `ENABLE` —
//! which is why an interrupt handler must do one of those before it ends the
//! interrupt at the GIC.
//!
//! A guest's virtual timer needs no VMM help to program: these are system
//! registers, and KVM lets the guest access them without trapping.

use core::num::NonZeroU64;

use aarch64_cpu::{
    asm::barrier,
    registers::{
        Readable, Writeable, CNTFRQ_EL0, CNTPCT_EL0, CNTP_CTL_EL0, CNTP_CVAL_EL0, CNTVCT_EL0,
        CNTV_CTL_EL0, CNTV_CVAL_EL0, CNTV_TVAL_EL0,
    },
};

/// Nanoseconds in a second.
const NS_PER_S: u128 = 1_000_000_000;
/// Microseconds in a second.
const US_PER_S: u128 = 1_000_000;

/// Converts a tick count of a counter running at `freq_hz` to nanoseconds,
/// rounding down. The product is taken in 128 bits, so it cannot overflow;
/// a result beyond `u64::MAX` ns (584 years) saturates.
pub fn ticks_to_ns(ticks: u64, freq_hz: NonZeroU64) -> u64 {
    let ns = u128::from(ticks) * NS_PER_S / u128::from(freq_hz.get());
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// [`ticks_to_ns`] for a signed difference of two counter values.
pub fn signed_ticks_to_ns(ticks: i64, freq_hz: NonZeroU64) -> i64 {
    let ns = i128::from(ticks) * NS_PER_S as i128 / i128::from(freq_hz.get());
    i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
}

/// Converts microseconds to ticks of a counter running at `freq_hz`,
/// rounding up so a period is never shorter than asked, and never below one
/// tick. Saturates at `u64::MAX`.
pub fn us_to_ticks(us: u64, freq_hz: NonZeroU64) -> u64 {
    let ticks = (u128::from(us) * u128::from(freq_hz.get())).div_ceil(US_PER_S);
    u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
}

/// The trigger bit for the generic timer's *event stream* that makes it
/// generate an event at most every `period_us` microseconds on a counter
/// running at `freq_hz`.
///
/// With `CNTKCTL_EL1.EVNTEN` = 1 the timer generates an event each time bit
/// `EVNTI` of `CNTVCT_EL0` goes from 0 to 1, that is every 2^(EVNTI + 1)
/// ticks (Arm ARM DDI 0487, chapter D12 "The Generic Timer in AArch64
/// state", "Event streams"). An event wakes a core waiting in `WFE`, so the
/// stream bounds every `WFE` wait to that period, whoever else forgets to
/// send an event. `EVNTI` is four bits: the period is 2 to 65536 ticks.
pub fn event_stream_trigger_bit(freq_hz: NonZeroU64, period_us: u64) -> u8 {
    let period = us_to_ticks(period_us, freq_hz);
    // The largest n <= 15 with 2^(n + 1) <= period (0 for tiny periods).
    let log2 = 63 - period.leading_zeros();
    log2.saturating_sub(1).min(15) as u8
}

/// The EL1 virtual timer.
///
/// A handle with no state: the registers are the state, and EL1 may access
/// them whenever it likes, so every method is safe.
#[derive(Clone, Copy, Debug, Default)]
pub struct VirtualTimer;

impl VirtualTimer {
    /// The counter frequency from `CNTFRQ_EL0`, or `None` when it reads 0:
    /// then no firmware or hypervisor set it, ticks cannot be turned into
    /// time, and any timer period would be a guess, so callers must refuse to
    /// go on.
    pub fn frequency(&self) -> Option<NonZeroU64> {
        NonZeroU64::new(CNTFRQ_EL0.get())
    }

    /// The current virtual count, `CNTVCT_EL0`.
    ///
    /// The Arm ARM allows reads of `CNTVCT_EL0` to "occur speculatively and
    /// out of order relative to other instructions": without a barrier the
    /// processor may read the counter before the code above has run. The ISB
    /// is a context synchronization event: everything before it completes
    /// first, so the value is taken *here*.
    pub fn now(&self) -> u64 {
        barrier::isb(barrier::SY);
        CNTVCT_EL0.get()
    }

    /// The deadline the timer is set to, `CNTV_CVAL_EL0`.
    pub fn deadline(&self) -> u64 {
        CNTV_CVAL_EL0.get()
    }

    /// Arms the timer to fire when the virtual count reaches `deadline`:
    /// the compare value first, then enable with the output unmasked.
    pub fn arm_at(&self, deadline: u64) {
        CNTV_CVAL_EL0.set(deadline);
        CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
        // Make the new settings take effect before whatever comes next
        // (e.g. a WFI that waits for this very timer).
        barrier::isb(barrier::SY);
    }

    /// Arms the timer `ticks` from now and returns the deadline. Measuring
    /// from *now* (not from the previous deadline) means a late interrupt
    /// cannot leave the next deadline already in the past, so a slow host
    /// cannot make the timer fire back to back.
    pub fn arm_after(&self, ticks: u64) -> u64 {
        let deadline = self.now().saturating_add(ticks);
        self.arm_at(deadline);
        deadline
    }

    /// Turns the timer off (`CNTV_CTL_EL0` = 0), which lowers its interrupt
    /// line.
    pub fn disable(&self) {
        CNTV_CTL_EL0.set(0);
        barrier::isb(barrier::SY);
    }

    /// Arms the timer through its *down-counter* view: writing
    /// `CNTV_TVAL_EL0` = `ticks` sets `CNTV_CVAL_EL0` to the current count
    /// plus `ticks` in one step (TVAL is a signed 32-bit view of
    /// `CVAL - CNTVCT`), then enables it. Returns the deadline the hardware
    /// computed.
    pub fn arm_in(&self, ticks: u32) -> u64 {
        CNTV_TVAL_EL0.set(u64::from(ticks));
        CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
        barrier::isb(barrier::SY);
        self.deadline()
    }

    /// Whether the timer is enabled and its condition is met
    /// (`ISTATUS`, which ignores `IMASK` and is UNKNOWN while disabled).
    pub fn is_firing(&self) -> bool {
        let ctl = CNTV_CTL_EL0.extract();
        ctl.is_set(CNTV_CTL_EL0::ENABLE) && ctl.is_set(CNTV_CTL_EL0::ISTATUS)
    }
}

/// The EL1 physical timer: the same comparator as [`VirtualTimer`], but
/// against the physical count `CNTPCT_EL0` (no hypervisor offset), through
/// `CNTP_CTL_EL0` and `CNTP_CVAL_EL0`, wired to PPI 14, interrupt id 30
/// (`uirq_abi::gicv2::PTIMER`).
///
/// Under KVM the guest's accesses to these registers are trapped and
/// emulated (the hardware physical timer belongs to the host), and KVM
/// reports the emulated timer's output level to a userspace irqchip next to
/// the virtual timer's.
#[derive(Clone, Copy, Debug, Default)]
pub struct PhysicalTimer;

impl PhysicalTimer {
    /// The current physical count, `CNTPCT_EL0`, after an ISB (see
    /// [`VirtualTimer::now`]).
    pub fn now(&self) -> u64 {
        barrier::isb(barrier::SY);
        CNTPCT_EL0.get()
    }

    /// The deadline the timer is set to, `CNTP_CVAL_EL0`.
    pub fn deadline(&self) -> u64 {
        CNTP_CVAL_EL0.get()
    }

    /// Arms the timer `ticks` from now; returns the deadline.
    pub fn arm_after(&self, ticks: u64) -> u64 {
        let deadline = self.now().saturating_add(ticks);
        CNTP_CVAL_EL0.set(deadline);
        CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET + CNTP_CTL_EL0::IMASK::CLEAR);
        barrier::isb(barrier::SY);
        deadline
    }

    /// Turns the timer off, which lowers its interrupt line.
    pub fn disable(&self) {
        CNTP_CTL_EL0.set(0);
        barrier::isb(barrier::SY);
    }

    /// Whether the timer is enabled and its condition is met.
    pub fn is_firing(&self) -> bool {
        let ctl = CNTP_CTL_EL0.extract();
        ctl.is_set(CNTP_CTL_EL0::ENABLE) && ctl.is_set(CNTP_CTL_EL0::ISTATUS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stream_period_is_at_most_the_one_asked_for() {
        let hz = |f: u64| NonZeroU64::new(f).unwrap();
        // 62.5 MHz: 100 us = 6250 ticks; 2^12 = 4096 ticks, bit 11.
        assert_eq!(event_stream_trigger_bit(hz(62_500_000), 100), 11);
        // 1 GHz: 100 000 ticks; capped at bit 15 (65 536 ticks).
        assert_eq!(event_stream_trigger_bit(hz(1_000_000_000), 100), 15);
        // A period of one tick or two: bit 0, an event every 2 ticks.
        assert_eq!(event_stream_trigger_bit(hz(1_000_000), 1), 0);
        assert_eq!(event_stream_trigger_bit(hz(2_000_000), 1), 0);
        assert_eq!(event_stream_trigger_bit(hz(4_000_000), 1), 1);
    }

    fn hz(n: u64) -> NonZeroU64 {
        NonZeroU64::new(n).unwrap()
    }

    #[test]
    fn ticks_to_ns_at_common_frequencies() {
        // QEMU's 62.5 MHz: 16 ns a tick.
        assert_eq!(ticks_to_ns(1, hz(62_500_000)), 16);
        // 24 MHz (many Cortex-A boards): 41.66.. ns a tick, rounded down.
        assert_eq!(ticks_to_ns(1, hz(24_000_000)), 41);
        assert_eq!(ticks_to_ns(24_000_000, hz(24_000_000)), 1_000_000_000);
        // Armv8.6 and later: 1 GHz.
        assert_eq!(ticks_to_ns(12_345, hz(1_000_000_000)), 12_345);
    }

    #[test]
    fn ticks_to_ns_does_not_overflow() {
        // u64::MAX * 1e9 overflows 64 bits, but not 128.
        assert_eq!(
            ticks_to_ns(u64::MAX, hz(1_000_000_000)),
            u64::MAX,
            "exact at 1 GHz"
        );
        assert_eq!(ticks_to_ns(u64::MAX, hz(1)), u64::MAX, "saturates");
        // 2^50 ticks * 1e9 overflows 64 bits; the result (16 ns a tick) fits.
        assert_eq!(ticks_to_ns(1 << 50, hz(62_500_000)), (1 << 50) * 16);
    }

    #[test]
    fn signed_conversion_keeps_the_sign() {
        assert_eq!(signed_ticks_to_ns(-3, hz(62_500_000)), -48);
        assert_eq!(signed_ticks_to_ns(3, hz(62_500_000)), 48);
        assert_eq!(signed_ticks_to_ns(i64::MIN, hz(1)), i64::MIN);
        assert_eq!(signed_ticks_to_ns(i64::MAX, hz(1)), i64::MAX);
    }

    #[test]
    fn us_to_ticks_rounds_up_and_never_returns_zero() {
        assert_eq!(us_to_ticks(10_000, hz(62_500_000)), 625_000);
        assert_eq!(us_to_ticks(1, hz(24_000_000)), 24);
        assert_eq!(us_to_ticks(1, hz(1_000_000_000)), 1_000);
        assert_eq!(us_to_ticks(1, hz(1_500_000)), 2, "1.5 ticks rounds up");
        assert_eq!(us_to_ticks(0, hz(62_500_000)), 1);
        assert_eq!(us_to_ticks(u64::MAX, hz(u64::MAX)), u64::MAX);
    }
}
