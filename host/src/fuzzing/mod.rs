//! Fuzzing support beyond the GIC model: arbitrary bytes in, a checked run
//! of the whole MMIO bus ([`vm_mmio`]), of the benchmark's result-buffer
//! decoder ([`bench_decode`]) or of the reader of its console dump
//! ([`bench_dump`]) out.
//!
//! Organised as the GIC model's own fuzzing module (`uirq_gicv2::fuzzing`)
//! is: each module decodes the
//! fuzzer's bytes into a scenario, runs it and panics on the first broken
//! invariant. Two callers share that code: the cargo-fuzz targets of the
//! same names (`fuzz/fuzz_targets/`), and the unit tests in `tests.rs`,
//! which replay every committed corpus file (`fuzz/corpus/<target>/`) under
//! plain `cargo test`.

pub mod bench_decode;
pub mod bench_dump;
pub mod vm_mmio;

#[cfg(test)]
mod tests;

/// Reads the input front to back; every read fails once it runs out.
pub(crate) struct Bytes<'a>(pub(crate) &'a [u8]);

impl<'a> Bytes<'a> {
    pub(crate) fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from(self.u32()?) | u64::from(self.u32()?) << 32)
    }

    /// The next `n` bytes, or `None` (nothing consumed) if fewer are left.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// Whatever is left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}
