//! Access sizes: which loads and stores the GIC register map accepts.
//!
//! IHI 0048B 4.1.4: every GIC register supports aligned 32-bit accesses;
//! the byte-organised distributor registers (GICD_IPRIORITYR,
//! GICD_ITARGETSR, GICD_CPENDSGIR, GICD_SPENDSGIR) also support byte
//! accesses. Halfword, doubleword and unaligned accesses are not supported;
//! the model answers them read-as-zero / write-ignored and reports them to
//! the observer ([`Event::Ignored`](crate::Event::Ignored)).

/// How an access that the model will serve is sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Width {
    /// An aligned 32-bit access.
    Word,
    /// A single byte.
    Byte,
}

/// Sizes an access, or `None` if no register accepts it at all.
pub(crate) fn width(offset: u64, len: usize) -> Option<Width> {
    match len {
        4 if offset % 4 == 0 => Some(Width::Word),
        1 => Some(Width::Byte),
        _ => None,
    }
}

/// The little-endian value a write carries (up to 4 bytes are used).
pub(crate) fn value(data: &[u8]) -> u32 {
    data.iter()
        .take(4)
        .enumerate()
        .fold(0, |v, (i, &b)| v | u32::from(b) << (8 * i))
}

/// Fills a read buffer with `value`, little-endian, zero beyond 4 bytes.
pub(crate) fn fill(data: &mut [u8], value: u32) {
    let bytes = value.to_le_bytes();
    for (i, d) in data.iter_mut().enumerate() {
        *d = bytes.get(i).copied().unwrap_or(0);
    }
}

/// Why an access with a size or alignment the register map refuses is
/// ignored.
pub(crate) const BAD_SIZE: &str = "unsupported access size or alignment (RAZ/WI)";

/// Why an access to an offset with no register behind it is ignored.
pub(crate) const UNMAPPED: &str = "access to reserved or unimplemented register (RAZ/WI)";

#[cfg(test)]
mod tests {
    use super::*;

    // IHI 0048B 4.1.4: word accesses must be aligned; bytes are allowed
    // only for some registers (the decoder checks which).
    #[test]
    fn sizes() {
        assert_eq!(width(0x10, 4), Some(Width::Word));
        assert_eq!(width(0x12, 4), None);
        assert_eq!(width(0x13, 1), Some(Width::Byte));
        assert_eq!(width(0x10, 2), None);
        assert_eq!(width(0x10, 8), None);
        assert_eq!(width(0x10, 0), None);
    }

    #[test]
    fn little_endian() {
        assert_eq!(value(&[0x78, 0x56, 0x34, 0x12]), 0x1234_5678);
        assert_eq!(value(&[0xAB]), 0xAB);
        let mut buf = [0xEEu8; 8];
        fill(&mut buf, 0x1234_5678);
        assert_eq!(buf, [0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0]);
    }
}
