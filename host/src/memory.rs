//! Guest RAM, through the rust-vmm `vm-memory` crate.
//!
//! The VMM allocates one anonymous mapping for guest RAM at
//! [`uirq_abi::layout::RAM_BASE`], copies the payload into it
//! ([`crate::boot`]), and later hands the same mapping to KVM as a memory
//! slot. `vm-memory`
//! does the bounds checks: every access names a guest physical address and
//! fails cleanly when it falls outside RAM.

use thiserror::Error;
use vm_memory::{GuestAddress, GuestMemoryMmap};

use uirq_abi::layout::RAM_BASE;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ram_sizes_are_refused() {
        assert!(matches!(create_ram(0), Err(MemoryError::BadSize(0))));
        assert!(matches!(create_ram(0x1001), Err(MemoryError::BadSize(_))));
        assert!(matches!(
            create_ram(0xFFFF_FFFF_FFFF_F000),
            Err(MemoryError::BadSize(_))
        ));
    }
}
