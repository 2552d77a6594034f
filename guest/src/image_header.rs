//! The arm64 `Image` header at the start of the firmware image.
//!
//! Linux's arm64 boot protocol (Documentation/arch/arm64/booting.rst,
//! section 4, "Call the kernel image") says what a loader does with a file
//! that begins with this 64-byte header: it places the file `text_offset`
//! bytes above a 2 MiB aligned base in RAM, keeps `image_size` bytes from
//! there free, and enters the first byte at EL1 (or EL2) with the MMU off
//! and the physical address of a device tree in `x0`. The VMM's `--kernel`
//! and QEMU's `-kernel` are such loaders; the header is what makes them
//! treat the firmware as a kernel, not as a raw binary.
//!
//! ```text
//!   offset  size  field        the firmware's value
//!   0x00    4     code0        `b` over the header to the boot code
//!   0x04    4     code1        0
//!   0x08    8     text_offset  TEXT_OFFSET (0)
//!   0x10    8     image_size   __image_end - __image_start (linker script)
//!   0x18    8     flags        FLAGS
//!   0x20    24    res2-res4    0
//!   0x38    4     magic        MAGIC, "ARM\x64"
//!   0x3c    4     res5         0 (no PE/COFF header: not an EFI application)
//! ```
//!
//! Every field is little-endian. `boot.rs` emits the header with these
//! constants; the linker script checks its size and where the magic lies.
//! The firmware keeps working for a loader that ignores the header (the
//! VMM's `--image`, which enters the first byte with a program number in
//! `x0`): `code0` is an ordinary branch.

/// Size of the header: the boot code starts right after it.
pub const SIZE: usize = 64;

/// Offset of `text_offset`.
pub const TEXT_OFFSET_OFFSET: usize = 0x08;
/// Offset of `image_size`.
pub const IMAGE_SIZE_OFFSET: usize = 0x10;
/// Offset of `flags`.
pub const FLAGS_OFFSET: usize = 0x18;
/// Offset of `magic`.
pub const MAGIC_OFFSET: usize = 0x38;

/// `magic`: "ARM\x64" read as a little-endian 32-bit word.
pub const MAGIC: u32 = 0x644d_5241;

/// `text_offset`: the firmware wants to start right at a 2 MiB aligned
/// base, the one at the start of RAM (`RAM_BASE`, where it is linked).
pub const TEXT_OFFSET: u64 = 0;

/// `flags` bit 0: 1 if the kernel is big-endian, 0 if little-endian.
pub const FLAG_BIG_ENDIAN: u64 = 1 << 0;
/// `flags` bits 1-2: the kernel's page size; 0 unspecified, 1 4K, 2 16K,
/// 3 64K.
pub const FLAG_PAGE_SIZE_SHIFT: u32 = 1;
/// The page size code for 4 KiB.
pub const PAGE_SIZE_4K: u64 = 1;
/// `flags` bit 3, physical placement: 0, the 2 MiB aligned base "should be
/// as close as possible to the base of DRAM"; 1, anywhere such that the
/// image lies within the 48-bit physical address range.
pub const FLAG_PLACE_ANYWHERE: u64 = 1 << 3;

/// `flags`, 0b0010, as booting.rst defines its bits:
///
/// - bit 0 = 0: little-endian (`aarch64-unknown-none` is);
/// - bits 1-2 = 1: 4 KiB pages, the granule of the identity map
///   (`TCR_EL1.TG0`, `crate::mmu`);
/// - bit 3 = 0: placed as close as possible to the base of DRAM. The
///   firmware's code and data only work at the address they were linked
///   for, `RAM_BASE`, the base of DRAM; a loader that puts the image
///   higher (QEMU, whose boot stub is at the start of RAM, puts it 2 MiB
///   up) makes the firmware move itself down first (`boot.rs`), which only
///   makes sense
///   when it was placed close to where it belongs, not anywhere in a 48-bit
///   address space.
pub const FLAGS: u64 = PAGE_SIZE_4K << FLAG_PAGE_SIZE_SHIFT;

/// What a loader reads from a header, for the checks below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `text_offset`.
    pub text_offset: u64,
    /// `image_size`.
    pub image_size: u64,
    /// `flags`.
    pub flags: u64,
}

/// The header fields of `bytes`, if they start with an arm64 `Image`
/// header (the magic at [`MAGIC_OFFSET`], as loaders check it).
pub fn decode(bytes: &[u8]) -> Option<Header> {
    let header = bytes.get(..SIZE)?;
    let u32_at = |at: usize| u32::from_le_bytes([0, 1, 2, 3].map(|i| header[at + i]));
    let u64_at = |at: usize| u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7].map(|i| header[at + i]));
    (u32_at(MAGIC_OFFSET) == MAGIC).then(|| Header {
        text_offset: u64_at(TEXT_OFFSET_OFFSET),
        image_size: u64_at(IMAGE_SIZE_OFFSET),
        flags: u64_at(FLAGS_OFFSET),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_is_arm_x64() {
        assert_eq!(&MAGIC.to_le_bytes(), b"ARM\x64");
    }

    #[test]
    fn flags_say_little_endian_4k_near_the_base_of_dram() {
        assert_eq!(FLAGS, 0b0010);
        assert_eq!(FLAGS & FLAG_BIG_ENDIAN, 0);
        assert_eq!((FLAGS >> FLAG_PAGE_SIZE_SHIFT) & 0b11, PAGE_SIZE_4K);
        assert_eq!(FLAGS & FLAG_PLACE_ANYWHERE, 0);
        // Bits 4-63 are reserved.
        assert_eq!(FLAGS >> 4, 0);
        // The page size matches the identity map's granule.
        assert_eq!(
            crate::mmu::TCR & (0b11 << 14),
            0,
            "TCR_EL1.TG0 = 0b00 is 4 KiB"
        );
    }

    #[test]
    fn fields_sit_where_booting_rst_puts_them() {
        let mut header = [0u8; SIZE];
        header[0..4].copy_from_slice(&0x1400_0010u32.to_le_bytes()); // b +0x40
        header[TEXT_OFFSET_OFFSET..][..8].copy_from_slice(&TEXT_OFFSET.to_le_bytes());
        header[IMAGE_SIZE_OFFSET..][..8].copy_from_slice(&0x25_0000u64.to_le_bytes());
        header[FLAGS_OFFSET..][..8].copy_from_slice(&FLAGS.to_le_bytes());
        header[MAGIC_OFFSET..][..4].copy_from_slice(b"ARM\x64");
        assert_eq!(
            decode(&header),
            Some(Header {
                text_offset: 0,
                image_size: 0x25_0000,
                flags: 2
            })
        );
        assert_eq!(MAGIC_OFFSET + 8, SIZE, "magic and res5 end the header");
        header[MAGIC_OFFSET] = b'X';
        assert_eq!(decode(&header), None);
        assert_eq!(decode(&header[..SIZE - 1]), None);
    }
}
