//! The shape of the GIC: how many CPU interfaces and how many SPIs.
//!
//! Both numbers are fixed when the VM is built, as they are in silicon: the
//! distributor reports them in GICD_TYPER (IHI 0048B 4.3.2), and software
//! sizes its tables from that register.

use core::fmt;

use crate::regs::{MAX_INTID, SPI_BASE};

/// Most CPU interfaces a GICv2 supports: GICD_TYPER.CPUNumber is 3 bits and
/// ITARGETSR has one bit per CPU in a byte (IHI 0048B 4.3.2, 4.3.12).
pub const MAX_CPUS: usize = 8;

/// Most SPIs a GICv2 implements: ids 32..=1019 (IHI 0048B 2.2.1).
pub const MAX_SPIS: u32 = MAX_INTID + 1 - SPI_BASE;

/// What the VMM asks for when it creates the GIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicConfig {
    /// Number of CPU interfaces, one per vCPU: 1..=8.
    pub num_cpus: usize,
    /// Number of SPIs (ids 32 and up): a multiple of 32 up to 960, or 988
    /// (the full range 32..=1019, which GICD_TYPER reports as
    /// ITLinesNumber = 31 because ids 1020..=1023 are the special ids).
    pub num_spis: u32,
}

/// Why a [`GicConfig`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A GIC needs at least one CPU interface to deliver anything to.
    NoCpus,
    /// GICv2 addresses at most eight CPU interfaces (IHI 0048B 4.3.2).
    TooManyCpus(usize),
    /// GICD_TYPER.ITLinesNumber counts interrupt lines in blocks of 32
    /// (IHI 0048B 4.3.2), so the SPI count must fill whole blocks (or be
    /// the architectural maximum of 988).
    SpiCountNotMultipleOf32(u32),
    /// Interrupt ids stop at 1019 (IHI 0048B 2.2.1).
    TooManySpis(u32),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ConfigError::NoCpus => f.write_str("a GICv2 needs at least one CPU interface"),
            ConfigError::TooManyCpus(n) => write!(
                f,
                "a GICv2 supports at most {MAX_CPUS} CPU interfaces, not {n}"
            ),
            ConfigError::SpiCountNotMultipleOf32(n) => write!(
                f,
                "the SPI count must be a multiple of 32 (or {MAX_SPIS}), not {n}"
            ),
            ConfigError::TooManySpis(n) => {
                write!(f, "a GICv2 implements at most {MAX_SPIS} SPIs, not {n}")
            }
        }
    }
}

impl core::error::Error for ConfigError {}

impl GicConfig {
    /// Checks the configuration against the limits of the architecture.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.num_cpus == 0 {
            return Err(ConfigError::NoCpus);
        }
        if self.num_cpus > MAX_CPUS {
            return Err(ConfigError::TooManyCpus(self.num_cpus));
        }
        if self.num_spis > MAX_SPIS {
            return Err(ConfigError::TooManySpis(self.num_spis));
        }
        if self.num_spis % 32 != 0 && self.num_spis != MAX_SPIS {
            return Err(ConfigError::SpiCountNotMultipleOf32(self.num_spis));
        }
        Ok(())
    }

    /// Number of implemented interrupt ids: the 32 banked ones plus the SPIs.
    pub fn num_ids(&self) -> u32 {
        SPI_BASE + self.num_spis
    }

    /// GICD_TYPER.ITLinesNumber: `32 * (N + 1)` ids are implemented, rounded
    /// up (IHI 0048B 4.3.2).
    pub fn it_lines_number(&self) -> u32 {
        self.num_ids().div_ceil(32).saturating_sub(1)
    }

    /// A byte with one bit per implemented CPU interface, the mask ITARGETSR
    /// and SGIR target lists are cut down to (IHI 0048B 4.3.12, 4.3.15).
    pub fn cpu_mask(&self) -> u8 {
        // num_cpus is 1..=8 once validated; the shift is done in u16 so that
        // eight CPUs give 0xFF without overflow.
        ((1u16 << self.num_cpus.min(MAX_CPUS)) - 1) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(num_cpus: usize, num_spis: u32) -> GicConfig {
        GicConfig { num_cpus, num_spis }
    }

    // IHI 0048B 4.3.2: CPUNumber is 3 bits (1..=8 interfaces) and
    // ITLinesNumber counts blocks of 32 ids up to 1020.
    #[test]
    fn limits_of_the_architecture() {
        assert_eq!(cfg(0, 32).validate(), Err(ConfigError::NoCpus));
        assert_eq!(cfg(9, 32).validate(), Err(ConfigError::TooManyCpus(9)));
        assert_eq!(
            cfg(1, 33).validate(),
            Err(ConfigError::SpiCountNotMultipleOf32(33))
        );
        assert_eq!(cfg(1, 992).validate(), Err(ConfigError::TooManySpis(992)));
        assert_eq!(cfg(1, 0).validate(), Ok(()));
        assert_eq!(cfg(8, 960).validate(), Ok(()));
        assert_eq!(cfg(8, 988).validate(), Ok(()));
    }

    // IHI 0048B 4.3.2: ITLinesNumber N means 32 * (N + 1) interrupt ids.
    #[test]
    fn it_lines_number_and_cpu_mask() {
        assert_eq!(cfg(1, 0).it_lines_number(), 0);
        assert_eq!(cfg(1, 32).it_lines_number(), 1);
        assert_eq!(cfg(1, 988).it_lines_number(), 31);
        assert_eq!(cfg(1, 0).cpu_mask(), 0b1);
        assert_eq!(cfg(3, 0).cpu_mask(), 0b111);
        assert_eq!(cfg(8, 0).cpu_mask(), 0xFF);
    }
}
