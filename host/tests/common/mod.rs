//! What the VMM binary's integration tests share.

/// An arm64 Image header (booting.rst 4) with `image_size` and `body` bytes
/// after it: a kernel the VMM accepts without booting it.
pub fn image(image_size: u64, body: usize) -> Vec<u8> {
    let mut v = vec![0u8; 64 + body];
    v[0x10..0x18].copy_from_slice(&image_size.to_le_bytes());
    v[0x38..0x3c].copy_from_slice(&0x644d_5241u32.to_le_bytes());
    v
}
