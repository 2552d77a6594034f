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
//! A firmware started some other way (all registers zero, as under QEMU's
//! `-kernel` with a raw image) runs [`Program::Timer`] with its defaults, so
//! zero is never a program of its own.

/// A program the firmware can run, chosen by the VMM with `x0`.
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
    /// Takes an unexpected synchronous exception (a misaligned load, which
    /// faults because the MMU is off and all memory is Device memory), which
    /// the firmware must report and end with
    /// [`crate::exit::Status::Exception`].
    Fault = 3,
}

/// Ticks the timer program takes when `x1` is zero.
pub const DEFAULT_TICKS: u64 = 10;
/// Timer period in microseconds when `x2` is zero.
pub const DEFAULT_PERIOD_US: u64 = 10_000;

impl Program {
    /// Every program, in number order.
    pub const ALL: [Program; 3] = [Program::Timer, Program::Spin, Program::Fault];

    /// The program numbered `n`; 0 means the default, [`Program::Timer`].
    pub const fn from_number(n: u64) -> Option<Self> {
        match n {
            0 | 1 => Some(Program::Timer),
            2 => Some(Program::Spin),
            3 => Some(Program::Fault),
            _ => None,
        }
    }

    /// The number the VMM puts in `x0`.
    pub const fn number(self) -> u64 {
        self as u64
    }

    /// The name used on the VMM's command line.
    pub const fn name(self) -> &'static str {
        match self {
            Program::Timer => "timer",
            Program::Spin => "spin",
            Program::Fault => "fault",
        }
    }

    /// The program called `name` on the command line.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// One line saying what the program does, for `--help` texts.
    pub const fn summary(self) -> &'static str {
        match self {
            Program::Timer => "periodic virtual-timer interrupts through the GIC, with latencies",
            Program::Spin => "spins forever with interrupts masked (tests the VMM timeout)",
            Program::Fault => "takes an unexpected exception, which must be reported",
        }
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
}
