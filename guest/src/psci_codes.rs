//! PSCI, the Power State Coordination Interface (Arm DEN 0022): the
//! function ids this firmware calls beyond `uirq_abi::psci`, and what the
//! return codes mean. (The calls themselves are in the firmware's
//! `psci.rs`.)
//!
//! The firmware calls PSCI with `HVC #0` (SMC Calling Convention, DEN 0028):
//! function id in `x0`, arguments in `x1`-`x3`, result in `x0`. KVM
//! implements PSCI itself, and so does QEMU's `virt` board without EL2.

use core::fmt;

/// `CPU_ON`, SMC64 calling convention (DEN 0022, 5.1.4 "CPU_ON"): power up
/// the core whose `MPIDR_EL1` affinity fields are in `x1`, entering at the
/// physical address in `x2` at the caller's exception level with the MMU
/// and caches off, with the context id from `x3` in `x0`.
pub const CPU_ON: u32 = 0xC400_0003;

/// What PSCI answered instead of SUCCESS (DEN 0022, 5.2.2 "Return error
/// codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciError {
    /// -1: the function is not implemented.
    NotSupported,
    /// -2: an argument is invalid (for CPU_ON: no core has that MPIDR).
    InvalidParameters,
    /// -3: the call is not allowed.
    Denied,
    /// -4: CPU_ON for a core that is already on.
    AlreadyOn,
    /// -5: CPU_ON for a core whose power-up is already under way.
    OnPending,
    /// -6: the implementation failed.
    InternalFailure,
    /// -7: the core is not present.
    NotPresent,
    /// -8: the core is disabled.
    Disabled,
    /// -9: the entry address is invalid.
    InvalidAddress,
    /// Any other non-zero value.
    Other(i64),
}

/// `Ok` for SUCCESS (0), the decoded error for anything else. `x0` is the
/// register after the call, a signed number (SMC64 functions return 64
/// bits; the error codes are small negative numbers either way).
pub fn result(x0: u64) -> Result<(), PsciError> {
    // The return value is a signed integer in x0.
    let code = x0 as i64;
    Err(match code {
        0 => return Ok(()),
        -1 => PsciError::NotSupported,
        -2 => PsciError::InvalidParameters,
        -3 => PsciError::Denied,
        -4 => PsciError::AlreadyOn,
        -5 => PsciError::OnPending,
        -6 => PsciError::InternalFailure,
        -7 => PsciError::NotPresent,
        -8 => PsciError::Disabled,
        -9 => PsciError::InvalidAddress,
        other => PsciError::Other(other),
    })
}

impl fmt::Display for PsciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (code, name) = match *self {
            PsciError::NotSupported => (-1, "NOT_SUPPORTED"),
            PsciError::InvalidParameters => (-2, "INVALID_PARAMETERS"),
            PsciError::Denied => (-3, "DENIED"),
            PsciError::AlreadyOn => (-4, "ALREADY_ON"),
            PsciError::OnPending => (-5, "ON_PENDING"),
            PsciError::InternalFailure => (-6, "INTERNAL_FAILURE"),
            PsciError::NotPresent => (-7, "NOT_PRESENT"),
            PsciError::Disabled => (-8, "DISABLED"),
            PsciError::InvalidAddress => (-9, "INVALID_ADDRESS"),
            PsciError::Other(code) => return write!(f, "unknown PSCI return code {code}"),
        };
        write!(f, "{name} ({code})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_codes() {
        assert_eq!(result(0), Ok(()));
        assert_eq!(result(-4i64 as u64), Err(PsciError::AlreadyOn));
        assert_eq!(result(-9i64 as u64), Err(PsciError::InvalidAddress));
        assert_eq!(result(-42i64 as u64), Err(PsciError::Other(-42)));
        assert_eq!(
            std::format!("{}", PsciError::InvalidParameters),
            "INVALID_PARAMETERS (-2)"
        );
        assert_eq!(
            std::format!("{}", PsciError::Other(-42)),
            "unknown PSCI return code -42"
        );
    }
}
