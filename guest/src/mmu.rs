//! The identity map: what the MMU is told, and why the firmware turns it on.
//!
//! # Why an MMU at all
//!
//! Section names below are those of the Arm Architecture Reference Manual
//! for A-profile (DDI 0487), chapter D8 "The AArch64 Virtual Memory System
//! Architecture", unless another chapter is named.
//!
//! With `SCTLR_EL1.M` = 0 every data access is to **Device-nGnRnE** memory
//! ("The effects of disabling an address translation stage"): no caches,
//! no speculation, and, what matters once several cores share memory,
//! whether the exclusive-access instructions (`LDXR`/`STXR`, which every
//! `core::sync::atomic` read-modify-write compiles to on Armv8.0) work on
//! it is IMPLEMENTATION DEFINED (chapter B2, "Exclusive access instructions
//! and Shareable memory locations"). With
//! the MMU on and RAM mapped as Normal, Inner Shareable, Write-Back memory,
//! atomics and the memory ordering rules are architectural, and the caches
//! and the coherency protocol make them fast.
//!
//! # The map
//!
//! Virtual address = physical address (an *identity* map), so turning the
//! MMU on does not move the code that does it. The translation regime is the
//! smallest that covers the machine ("Translation process", "Selection
//! between TTBR0 and TTBR1", "Translation granule"):
//!
//! - 4 KiB granule (`TCR_EL1.TG0`), `TCR_EL1.T0SZ` = 25: a 39-bit input
//!   address space (512 GiB), for which the walk starts at **level 1**;
//! - one level-1 table of 512 entries, each covering 1 GiB with a *block*
//!   descriptor, so there is no level 2 or 3 at all:
//!
//! ```text
//!  entry  VA = PA                    memory type                contents
//!  ─────  ─────────────────────────  ─────────────────────────  ──────────────────────────
//!    0    0x0000_0000-0x3FFF_FFFF    Device-nGnRE, never exec.  GICD, GICC, PL011, marker
//!   1-4   0x4000_0000-0x1_3FFF_FFFF  Normal WB RA/WA, Inner Sh. RAM (image, stacks,
//!                                                               buffers, device tree)
//!  5-511  the rest                   invalid (translation fault)
//! ```
//!
//! RAM is mapped up to the most the VMM gives (`RAM_SIZE_MAX`, 4 GiB), not
//! only the default 64 MiB: a loader that follows the Linux boot protocol
//! puts the device tree (and an initrd) where it likes in RAM, the VMM near
//! the top, and the firmware reads it there with the MMU on.
//!
//! `TTBR1_EL1` (the upper half of the address space) is not used:
//! `TCR_EL1.EPD1` = 1 makes a walk there a translation fault.
//!
//! The table is a `static` computed at compile time, so it is in `.rodata`
//! of the image the loader wrote into RAM: nothing is written to memory
//! before the MMU is on, and so nothing the core wrote with the caches off
//! can be hidden by stale cache lines once they are on (the reason Linux
//! invalidates the page-table area it wrote with the MMU off). The
//! register values below are constants too; `boot.rs` writes them as the
//! very first thing each core does ([`MAIR`], [`TCR`], `TTBR0_EL1` =
//! [`IDENTITY_MAP`], then `SCTLR_EL1` |= [`SCTLR_SET`], &= !
//! [`SCTLR_CLEAR`]).
//!
//! All of RAM is four blocks, writable and executable at EL1 (code and data
//! share them), and mapped whole even where a smaller guest has no RAM:
//! only a stray access would touch that part, and a VMM answers it as it
//! would with the MMU off. That is a teaching simplification, not a
//! hardening recommendation.

use aarch64_cpu::registers::{MAIR_EL1, SCTLR_EL1, TCR_EL1};
use uirq_abi::{
    bench::MARKER_BASE,
    layout::{GICC_BASE, GICD_BASE, RAM_BASE, RAM_SIZE_DEFAULT, RAM_SIZE_MAX, UART_BASE},
};

/// Bytes one level-1 block descriptor maps with a 4 KiB granule.
pub const BLOCK_SIZE: u64 = 1 << 30;
/// Entries in a translation table with a 4 KiB granule: 4 KiB / 8 bytes.
pub const ENTRIES: usize = 512;
/// `TCR_EL1.T0SZ`: the input address space is 2^(64 - 25) = 2^39 bytes.
pub const T0SZ: u64 = 25;

/// Index in `MAIR_EL1` of the Device-nGnRE attribute.
pub const ATTR_DEVICE: u64 = 0;
/// Index in `MAIR_EL1` of the Normal write-back attribute.
pub const ATTR_NORMAL: u64 = 1;

/// `MAIR_EL1`, the Memory Attribute Indirection Register ("Memory region
/// attributes"): eight attribute bytes that descriptors select by index.
///
/// - Attr0 = 0x04, **Device-nGnRE**: no gathering, no reordering, early
///   write acknowledgement allowed. What Linux uses for device registers
///   (`MT_DEVICE_nGnRE`); accesses happen exactly as the program makes
///   them, one by one, which a trapping VMM needs too.
/// - Attr1 = 0xFF, **Normal, Write-Back non-transient, Read- and
///   Write-Allocate**, inner and outer: ordinary cached RAM.
pub const MAIR: u64 = MAIR_EL1::Attr0_Device::nonGathering_nonReordering_EarlyWriteAck.value
    | MAIR_EL1::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc.value
    | MAIR_EL1::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc.value;

/// `TCR_EL1`, the translation control register:
///
/// - `T0SZ` = 25 with `TG0` = 4 KiB: 39-bit addresses, the walk starts at
///   level 1;
/// - `IRGN0`/`ORGN0` = Write-Back Read/Write-Allocate and `SH0` = Inner
///   Shareable: the table walker reads the table through the caches, with
///   the same attributes as the RAM it lives in;
/// - `EPD1` = 1: no walks through `TTBR1_EL1` (its `TG1` is still given a
///   valid encoding, 4 KiB, as 0b00 is reserved);
/// - `IPS` = 36 bits (64 GiB): the highest output address in the table is
///   that of the last RAM block, below `RAM_BASE + RAM_SIZE_MAX` = 5 GiB,
///   which needs 33 bits. An implementation with fewer physical address
///   bits (`ID_AA64MMFR0_EL1.PARange`; KVM gives a guest 40 by default)
///   behaves as if `IPS` named its own size (the `TCR_EL1.IPS` field
///   description), and a block above that size holds no RAM anyone
///   accesses, so no address size fault happens.
pub const TCR: u64 = TCR_EL1::T0SZ.val(T0SZ).value
    | TCR_EL1::TG0::KiB_4.value
    | TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::SH0::Inner.value
    | TCR_EL1::EPD1::DisableTTBR1Walks.value
    | TCR_EL1::TG1::KiB_4.value
    | TCR_EL1::IPS::Bits_36.value;

/// `SCTLR_EL1` bits to set: `M` (stage 1 translation on), `C` (data and
/// unified caches may hold data: Normal memory is cacheable), `I`
/// (instruction caches on).
pub const SCTLR_SET: u64 =
    SCTLR_EL1::M::Enable.value | SCTLR_EL1::C::Cacheable.value | SCTLR_EL1::I::Cacheable.value;

/// `SCTLR_EL1` bits to clear; everything else keeps its reset value:
///
/// - `A`: no alignment checking of Normal memory (the `fault` program sets
///   it itself to fault on purpose);
/// - `WXN`: with it, every writable region would be execute-never, and the
///   one RAM block is both code and data.
pub const SCTLR_CLEAR: u64 = SCTLR_EL1::A::Enable.mask() | SCTLR_EL1::WXN::Enable.mask();

/// The fields of a block or table descriptor ("Translation table
/// descriptor formats", "Memory region attributes", "Access permissions"). Bits \[1:0\]: 0b01 block, 0b11 table (or page at level 3),
/// bit 0 clear: invalid.
pub mod descriptor {
    /// Bit 0: the descriptor is valid.
    pub const VALID: u64 = 1 << 0;
    /// Bits \[1:0\] = 0b01: a block descriptor (at level 1, 1 GiB).
    pub const BLOCK: u64 = VALID;
    /// Bits \[4:2\]: `AttrIndx`, which byte of `MAIR_EL1` gives the memory
    /// type.
    pub const ATTR_INDEX_SHIFT: u32 = 2;
    /// Bits \[7:6\]: `AP`; 0b00 is read/write at EL1, no access at EL0.
    pub const AP_EL1_RW: u64 = 0b00 << 6;
    /// Bits \[9:8\]: `SH` = 0b11, Inner Shareable (ignored for Device memory,
    /// which is always treated as Outer Shareable).
    pub const SH_INNER: u64 = 0b11 << 8;
    /// Bit 10: `AF`, the Access Flag. Without hardware management of it
    /// (`TCR_EL1.HA` = 0) the first access through a descriptor with AF = 0
    /// takes an Access flag fault, so every descriptor here sets it.
    pub const AF: u64 = 1 << 10;
    /// Bit 53: `PXN`, never executable at EL1.
    pub const PXN: u64 = 1 << 53;
    /// Bit 54: `UXN`, never executable at EL0.
    pub const UXN: u64 = 1 << 54;
    /// Bits \[47:30\]: the output address of a level-1 block.
    pub const BLOCK_ADDRESS_MASK: u64 = ((1 << 48) - 1) & !((1 << 30) - 1);
}

/// A level-1 block descriptor mapping the 1 GiB at `address` with memory
/// attribute `attr_index` (an index into [`MAIR`]).
///
/// Device memory is also never executable (`PXN`, `UXN`): an instruction
/// fetch from a device could read a register with side effects, and the
/// architecture allows speculative instruction fetches from any executable
/// region.
pub const fn block(address: u64, attr_index: u64) -> u64 {
    use descriptor::*;
    assert!(
        address % BLOCK_SIZE == 0,
        "a 1 GiB block must be 1 GiB aligned"
    );
    let common = BLOCK | (attr_index << ATTR_INDEX_SHIFT) | AP_EL1_RW | AF | UXN;
    let memory = if attr_index == ATTR_DEVICE {
        PXN
    } else {
        SH_INNER
    };
    (address & BLOCK_ADDRESS_MASK) | common | memory
}

/// A 4 KiB translation table: 512 descriptors, aligned to its size as
/// `TTBR0_EL1` requires (its low 12 bits are not part of the address).
#[derive(Debug)]
#[repr(C, align(4096))]
pub struct TranslationTable(pub [u64; ENTRIES]);

/// Which level-1 entry maps `address`.
pub const fn level1_index(address: u64) -> usize {
    (address / BLOCK_SIZE) as usize
}

/// The firmware's level-1 table (see the module docs), built at compile
/// time. Its symbol name is fixed so the linker script can check its
/// alignment, and `boot.rs` loads its address into `TTBR0_EL1`.
#[export_name = "__identity_map"]
pub static IDENTITY_MAP: TranslationTable = identity_map();

const MMIO_BLOCK: usize = level1_index(GICD_BASE);
/// The first RAM block.
const RAM_BLOCK: usize = level1_index(RAM_BASE);
/// The RAM blocks: enough to map the largest RAM the VMM gives.
pub const RAM_BLOCKS: usize = RAM_SIZE_MAX.div_ceil(BLOCK_SIZE) as usize;

/// The end (exclusive) of the RAM the identity map covers.
pub const RAM_MAPPED_END: u64 = RAM_BASE + RAM_BLOCKS as u64 * BLOCK_SIZE;

/// Builds the table: the MMIO gigabyte as Device, the RAM gigabytes as
/// Normal, every other entry invalid (0).
pub const fn identity_map() -> TranslationTable {
    let mut table = [0; ENTRIES];
    table[MMIO_BLOCK] = block(MMIO_BLOCK as u64 * BLOCK_SIZE, ATTR_DEVICE);
    let mut i = RAM_BLOCK;
    while i < RAM_BLOCK + RAM_BLOCKS {
        table[i] = block(i as u64 * BLOCK_SIZE, ATTR_NORMAL);
        i += 1;
    }
    TranslationTable(table)
}

// The memory map must fit the blocks: every device in the Device gigabyte,
// all of the largest RAM in the Normal ones, every output address within
// the IPS size, and the table itself describing 39-bit addresses with a
// single level-1 table.
const _: () = {
    assert!(level1_index(GICD_BASE) == MMIO_BLOCK);
    assert!(level1_index(GICC_BASE + uirq_abi::layout::GICC_SIZE - 1) == MMIO_BLOCK);
    assert!(level1_index(UART_BASE) == MMIO_BLOCK);
    assert!(level1_index(MARKER_BASE) == MMIO_BLOCK);
    assert!(RAM_BLOCK > MMIO_BLOCK);
    assert!(RAM_BASE % BLOCK_SIZE == 0);
    assert!(level1_index(RAM_BASE + RAM_SIZE_DEFAULT - 1) == RAM_BLOCK);
    assert!(RAM_BASE + RAM_SIZE_MAX <= RAM_MAPPED_END);
    assert!(RAM_BLOCK + RAM_BLOCKS <= ENTRIES);
    assert!(RAM_MAPPED_END <= 1 << 36);
    // 39 address bits = 9 bits of level-1 index + 30 bits inside a block.
    assert!(64 - T0SZ == 9 + 30);
    assert!(core::mem::size_of::<TranslationTable>() == 4096);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_block_for_the_mmio_gigabyte() {
        // Valid block, AttrIndx 0, AP 00, AF, PXN, UXN; address 0.
        assert_eq!(
            IDENTITY_MAP.0[0],
            0b01 | 1 << 10 | 1 << 53 | 1 << 54,
            "{:#x}",
            IDENTITY_MAP.0[0]
        );
    }

    #[test]
    fn normal_blocks_for_ram() {
        // Valid block, AttrIndx 1, Inner Shareable, AF, UXN (EL1 may
        // execute), output addresses 0x4000_0000, 0x8000_0000,
        // 0xC000_0000, 0x1_0000_0000: 4 GiB of RAM from RAM_BASE.
        assert_eq!(RAM_BLOCKS, 4);
        for (i, address) in [0x4000_0000u64, 0x8000_0000, 0xC000_0000, 0x1_0000_0000]
            .into_iter()
            .enumerate()
        {
            let expected = address | 0b01 | 1 << 2 | 0b11 << 8 | 1 << 10 | 1 << 54;
            let d = IDENTITY_MAP.0[1 + i];
            assert_eq!(d, expected, "entry {}: {d:#x}", 1 + i);
        }
        assert_eq!(RAM_MAPPED_END, 0x1_4000_0000);
    }

    #[test]
    fn everything_else_is_invalid() {
        assert!(IDENTITY_MAP.0[5..].iter().all(|&d| d == 0));
        assert_eq!(level1_index(RAM_BASE), 1);
        assert_eq!(level1_index(0x7FFF_FFFF), 1);
        assert_eq!(level1_index(0x1_3FFF_FFFF), 4);
        assert_eq!(level1_index(0x1_4000_0000), 5);
    }

    #[test]
    fn table_is_page_aligned() {
        assert_eq!(core::ptr::addr_of!(IDENTITY_MAP) as usize % 4096, 0);
    }

    #[test]
    fn register_values() {
        // Attr0 = 0x04, Attr1 = 0xFF.
        assert_eq!(MAIR, 0xFF04);
        // T0SZ 25, IRGN0 01 (bits 9:8), ORGN0 01 (11:10), SH0 11 (13:12),
        // TG0 00, EPD1 (bit 23), TG1 10 (31:30), IPS 001 (34:32).
        assert_eq!(
            TCR,
            25 | 0b01 << 8 | 0b01 << 10 | 0b11 << 12 | 1 << 23 | 0b10 << 30 | 0b001 << 32
        );
        assert_eq!(SCTLR_SET, 1 | 1 << 2 | 1 << 12);
        assert_eq!(SCTLR_CLEAR, 1 << 1 | 1 << 19);
    }
}
