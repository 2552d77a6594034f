//! How the firmware reports its outcome, and the VMM's own exit codes.
//!
//! The firmware ends every run with PSCI SYSTEM_OFF, placing a [`Status`] in
//! [`STATUS_REGISTER`] (`x4`). When KVM reports the shutdown the VMM reads
//! that register back and exits with its number, so the guest's verdict
//! becomes the VMM's exit code, and in turn `cargo xtask run`'s.
//!
//! Why `x4`: before it reports SYSTEM_OFF, KVM writes the PSCI return value
//! into `x0`-`x3` (in case the VMM resumes the vCPU, it should see
//! INTERNAL_FAILURE), so an argument in `x1` is gone by the time the VMM
//! looks. The SMC Calling Convention (DEN 0028, v1.1 and later) has the
//! callee preserve `x4`-`x17`, so `x4` arrives intact.

/// The firmware's verdict, passed in [`STATUS_REGISTER`] with PSCI SYSTEM_OFF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Status {
    /// The program ran and every check passed.
    Success = 0,
    /// The program ran and a check failed (the console says which).
    Failure = 1,
    /// An unexpected exception was taken; ESR/ELR/FAR were printed.
    Exception = 2,
    /// The firmware panicked; the message was printed.
    Panic = 3,
    /// The boot registers named no known program.
    BadBootArgs = 4,
}

impl Status {
    /// The status numbered `n`, if it is one.
    pub const fn from_number(n: u64) -> Option<Self> {
        match n {
            0 => Some(Status::Success),
            1 => Some(Status::Failure),
            2 => Some(Status::Exception),
            3 => Some(Status::Panic),
            4 => Some(Status::BadBootArgs),
            _ => None,
        }
    }

    /// A few words for the VMM's closing message.
    pub const fn describe(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Failure => "a check failed",
            Status::Exception => "unexpected exception",
            Status::Panic => "firmware panic",
            Status::BadBootArgs => "unknown program requested",
        }
    }
}

/// The general-purpose register (`x4`) that carries the [`Status`] at
/// SYSTEM_OFF.
pub const STATUS_REGISTER: u8 = 4;

/// VMM exit code when `--timeout` expired before the guest powered off
/// (the same number coreutils' `timeout` uses).
pub const VMM_TIMEOUT: i32 = 124;
/// VMM exit code for its own failures: bad command line, no /dev/kvm, a
/// missing capability, an unreadable or oversized image, a KVM error.
pub const VMM_ERROR: i32 = 125;
/// VMM exit code when the guest stopped in a way that carries no status
/// (a reset request, a crash report from KVM).
pub const VMM_GUEST_ABNORMAL: i32 = 126;
/// VMM exit code when SIGINT (Ctrl-C) or SIGTERM stopped the run: 128 +
/// SIGINT, as shells report a process Ctrl-C ended.
pub const VMM_INTERRUPTED: i32 = 130;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_stay_clear_of_vmm_codes() {
        for n in 0..=4 {
            let s = Status::from_number(n).unwrap();
            assert_eq!(s as u64, n);
            assert!((s as i32) < VMM_TIMEOUT);
        }
        assert_eq!(Status::from_number(5), None);
    }
}
