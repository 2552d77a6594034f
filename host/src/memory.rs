//! Guest RAM, through the rust-vmm `vm-memory` crate.
//!
//! The VMM allocates one anonymous mapping for guest RAM at
//! [`uirq_abi::layout::RAM_BASE`], copies the firmware image to its start,
//! and later hands the same mapping to KVM as a memory slot. `vm-memory`
//! does the bounds checks: every access names a guest physical address and
//! fails cleanly when it falls outside RAM.

use std::path::Path;

use thiserror::Error;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use uirq_abi::layout::{IMAGE_LOAD_ADDR, RAM_BASE};

/// Guest RAM as `vm-memory` sees it.
pub type GuestRam = GuestMemoryMmap<()>;

/// Why guest RAM could not be set up or the image not loaded.
#[derive(Debug, Error)]
pub enum MemoryError {
    /// RAM size is zero, not a multiple of the 4 KiB page, or would run past
    /// the top of the address space.
    #[error(
        "guest RAM size {0:#x} is not a non-zero multiple of 4 KiB that fits above {RAM_BASE:#x}"
    )]
    BadSize(u64),
    /// The host could not allocate the mapping.
    #[error("could not allocate {size} bytes of guest RAM")]
    Allocate {
        /// Requested size in bytes.
        size: u64,
        /// What vm-memory reported.
        #[source]
        source: vm_memory::mmap::FromRangesError,
    },
    /// The image file could not be read.
    #[error("cannot read the guest image {path}")]
    ReadImage {
        /// The path given.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The image file is empty.
    #[error("the guest image {0} is empty")]
    EmptyImage(String),
    /// The image is larger than guest RAM.
    #[error("the guest image is {image} bytes but guest RAM holds only {ram} bytes")]
    ImageTooLarge {
        /// Image size in bytes.
        image: u64,
        /// RAM size in bytes.
        ram: u64,
    },
    /// Copying into guest RAM failed (an address outside RAM).
    #[error("cannot write guest memory")]
    Access(#[from] vm_memory::GuestMemoryError),
}

/// Allocates `size` bytes of guest RAM at [`RAM_BASE`].
pub fn create_ram(size: u64) -> Result<GuestRam, MemoryError> {
    if size == 0 || size % 0x1000 != 0 || RAM_BASE.checked_add(size).is_none() {
        return Err(MemoryError::BadSize(size));
    }
    let len = usize::try_from(size).map_err(|_| MemoryError::BadSize(size))?;
    GuestMemoryMmap::from_ranges(&[(GuestAddress(RAM_BASE), len)])
        .map_err(|source| MemoryError::Allocate { size, source })
}

/// Copies the flat firmware `image` to [`IMAGE_LOAD_ADDR`] and returns the
/// address to start the vCPU at.
pub fn load_image(ram: &GuestRam, ram_size: u64, image: &[u8]) -> Result<u64, MemoryError> {
    let len = image.len() as u64;
    if len > ram_size - (IMAGE_LOAD_ADDR - RAM_BASE) {
        return Err(MemoryError::ImageTooLarge {
            image: len,
            ram: ram_size,
        });
    }
    ram.write_slice(image, GuestAddress(IMAGE_LOAD_ADDR))?;
    Ok(IMAGE_LOAD_ADDR)
}

/// Reads the image file at `path`, refusing an empty one.
pub fn read_image(path: &Path) -> Result<Vec<u8>, MemoryError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| MemoryError::ReadImage {
        path: shown.clone(),
        source,
    })?;
    if bytes.is_empty() {
        return Err(MemoryError::EmptyImage(shown));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_lands_at_the_load_address() {
        let ram = create_ram(0x10000).unwrap();
        let entry = load_image(&ram, 0x10000, &[1, 2, 3, 4]).unwrap();
        assert_eq!(entry, IMAGE_LOAD_ADDR);
        let mut back = [0u8; 4];
        ram.read_slice(&mut back, GuestAddress(IMAGE_LOAD_ADDR))
            .unwrap();
        assert_eq!(back, [1, 2, 3, 4]);
    }

    #[test]
    fn an_image_as_large_as_ram_fits_and_one_byte_more_does_not() {
        let ram = create_ram(0x2000).unwrap();
        load_image(&ram, 0x2000, &[0xAA; 0x2000]).unwrap();
        let err = load_image(&ram, 0x2000, &[0xAA; 0x2001]).unwrap_err();
        assert!(matches!(
            err,
            MemoryError::ImageTooLarge {
                image: 0x2001,
                ram: 0x2000
            }
        ));
    }

    #[test]
    fn bad_ram_sizes_are_refused() {
        assert!(matches!(create_ram(0), Err(MemoryError::BadSize(0))));
        assert!(matches!(create_ram(0x1001), Err(MemoryError::BadSize(_))));
        assert!(matches!(
            create_ram(0xFFFF_FFFF_FFFF_F000),
            Err(MemoryError::BadSize(_))
        ));
    }

    #[test]
    fn missing_and_empty_images_are_reported_with_their_path() {
        let dir = std::env::temp_dir().join(format!("uirq-mem-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.bin");
        std::fs::write(&empty, b"").unwrap();
        let err = read_image(&empty).unwrap_err();
        assert!(err.to_string().contains("empty.bin"), "{err}");
        let err = read_image(&dir.join("absent.bin")).unwrap_err();
        assert!(matches!(err, MemoryError::ReadImage { .. }));
        assert!(err.to_string().contains("absent.bin"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
