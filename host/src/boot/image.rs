//! Kernel files: the arm64 `Image` header, gzip-compressed Images, raw
//! binaries.
//!
//! Linux's arm64 boot protocol (Documentation/arch/arm64/booting.rst,
//! section 4, "Call the kernel image") puts a 64-byte header at the start
//! of the decompressed kernel:
//!
//! ```text
//!   offset  size  field
//!   0x00    4     code0        executable code (a branch over the header)
//!   0x04    4     code1
//!   0x08    8     text_offset  image load offset from a 2 MiB aligned base
//!   0x10    8     image_size   effective image size, BSS included
//!   0x18    8     flags        bit 0: big-endian; bits 1-2: page size;
//!                              bit 3: may be placed anywhere in RAM
//!   0x20    24    res2-res4
//!   0x38    4     magic        "ARM\x64" (0x644d5241, little-endian)
//!   0x3c    4     res5
//! ```
//!
//! "The Image must be placed text_offset bytes from a 2MB aligned base
//! address anywhere in usable system RAM", with `image_size` bytes free
//! from there (BSS is not in the file). An `image_size` of zero marks a
//! kernel older than 3.17, which is loaded at text_offset 0x80000.
//!
//! As QEMU's `-kernel` does, a gzip-compressed Image (Debian's `vmlinuz`)
//! is decompressed first, and a file without the header is a raw binary
//! loaded at RAM base + 0x80000 and entered at its first byte.

use std::io::Read;

/// The header's magic, "ARM\x64" read as a little-endian word.
pub const IMAGE_MAGIC: u32 = 0x644d_5241;
/// Offset of the magic in the header.
const MAGIC_OFFSET: usize = 0x38;
/// Size of the header.
pub const HEADER_SIZE: usize = 64;
/// `text_offset` of kernels whose header has `image_size` 0 (booting.rst).
pub const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;
/// Where a raw binary goes, from the start of RAM (as QEMU's `-kernel`).
pub const RAW_LOAD_OFFSET: u64 = 0x8_0000;
/// flags bit 0: the kernel is big-endian.
const FLAG_BE: u64 = 1 << 0;

/// What the start of a kernel file says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An arm64 `Image` with its header.
    Image(Header),
    /// No header: a raw binary.
    Raw,
}

/// The fields of the header the loader uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Load offset from the 2 MiB aligned base (0x80000 for a legacy
    /// header whose `image_size` is 0).
    pub text_offset: u64,
    /// Bytes the kernel occupies from its load address, BSS included (the
    /// file's length for a legacy header, which does not say).
    pub image_size: u64,
    /// The raw flags word.
    pub flags: u64,
}

impl Header {
    /// True when the kernel wants to run big-endian (flags bit 0).
    pub fn big_endian(&self) -> bool {
        self.flags & FLAG_BE != 0
    }
}

/// Reads the format of the (decompressed) kernel `bytes`.
pub fn detect(bytes: &[u8]) -> Format {
    if bytes.len() < HEADER_SIZE {
        return Format::Raw;
    }
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let magic = u32::from_le_bytes(
        bytes[MAGIC_OFFSET..MAGIC_OFFSET + 4]
            .try_into()
            .expect("4 bytes"),
    );
    if magic != IMAGE_MAGIC {
        return Format::Raw;
    }
    let (text_offset, image_size) = match word(0x10) {
        0 => (LEGACY_TEXT_OFFSET, bytes.len() as u64),
        size => (word(0x08), size),
    };
    Format::Image(Header {
        text_offset,
        image_size,
        flags: word(0x18),
    })
}

/// True when `bytes` start with the gzip magic (RFC 1952, 2.3.1).
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Why a compressed kernel could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum GunzipError {
    /// The stream is damaged or not gzip after all.
    #[error("it starts like a gzip file but does not decompress ({0})")]
    Corrupt(#[source] std::io::Error),
    /// It decompresses to more than `limit` bytes.
    #[error("it decompresses to more than the {limit} bytes of guest RAM")]
    TooLarge {
        /// The most it may hold.
        limit: u64,
    },
}

/// Decompresses a gzip-compressed kernel, refusing to produce more than
/// `limit` bytes (a kernel larger than guest RAM cannot be loaded, and a
/// hostile file must not exhaust the VMM's memory).
pub fn gunzip(bytes: &[u8], limit: u64) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(GunzipError::Corrupt)?;
    if out.len() as u64 > limit {
        return Err(GunzipError::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A kernel file with an arm64 Image header and `body` bytes after it.
    pub(crate) fn image(text_offset: u64, image_size: u64, flags: u64, body: usize) -> Vec<u8> {
        let mut v = vec![0u8; HEADER_SIZE + body];
        // code0: `b #64`, a branch over the header, as Linux's head.S has.
        v[0..4].copy_from_slice(&0x1400_0010u32.to_le_bytes());
        v[0x08..0x10].copy_from_slice(&text_offset.to_le_bytes());
        v[0x10..0x18].copy_from_slice(&image_size.to_le_bytes());
        v[0x18..0x20].copy_from_slice(&flags.to_le_bytes());
        v[0x38..0x3c].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
        v
    }

    #[test]
    fn a_header_is_read_field_by_field() {
        let f = image(0x1_0000, 0x20_0000, 0b1010, 100);
        assert_eq!(
            detect(&f),
            Format::Image(Header {
                text_offset: 0x1_0000,
                image_size: 0x20_0000,
                flags: 0b1010
            })
        );
        assert!(!matches!(detect(&f), Format::Image(h) if h.big_endian()));
        let be = image(0, 0x1000, 1, 0);
        assert!(matches!(detect(&be), Format::Image(h) if h.big_endian()));
    }

    // booting.rst: "image_size is 0 ... text_offset of 0x80000" for
    // kernels before 3.17, which do not say how much BSS they need.
    #[test]
    fn a_legacy_header_loads_at_0x80000_with_the_file_as_its_size() {
        let f = image(0x1234, 0, 0, 200);
        assert_eq!(
            detect(&f),
            Format::Image(Header {
                text_offset: LEGACY_TEXT_OFFSET,
                image_size: f.len() as u64,
                flags: 0
            })
        );
    }

    #[test]
    fn anything_without_the_magic_is_raw() {
        assert_eq!(detect(&[]), Format::Raw);
        assert_eq!(detect(&[0x41; 63]), Format::Raw);
        let mut f = image(0, 0x1000, 0, 0);
        f[0x38] ^= 1;
        assert_eq!(detect(&f), Format::Raw);
    }

    #[test]
    fn gzip_kernels_unpack_within_the_limit_only() {
        use std::io::Write;
        let plain = image(0, 0x4000, 0, 0x3000);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&plain).unwrap();
        let gz = enc.finish().unwrap();
        assert!(is_gzip(&gz) && !is_gzip(&plain));
        assert_eq!(gunzip(&gz, plain.len() as u64).unwrap(), plain);
        assert!(matches!(
            gunzip(&gz, plain.len() as u64 - 1),
            Err(GunzipError::TooLarge { .. })
        ));
        let mut broken = gz.clone();
        broken.truncate(gz.len() / 2);
        assert!(matches!(
            gunzip(&broken, 1 << 20),
            Err(GunzipError::Corrupt(_))
        ));
    }
}
