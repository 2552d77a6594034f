//! The guest physical memory map.
//!
//! It follows QEMU's `virt` machine, so the same firmware image also boots on
//! `qemu-system-aarch64 -M virt,gic-version=2` under plain emulation, where
//! QEMU's own GICv2 serves as an independent check of the guest's driver.
//!
//! ```text
//!   0x0000_0000 ┌──────────────────────┐
//!               │ (unmapped)           │
//!   0x0800_0000 ├──────────────────────┤ GICD  GICv2 distributor, 4 KiB
//!   0x0801_0000 ├──────────────────────┤ GICC  GICv2 CPU interface, 8 KiB
//!               │ (unmapped)           │
//!   0x0810_0000 │ HOLE: unmapped here  │ and on QEMU virt with a GICv2
//!               │ (unmapped)           │
//!   0x0900_0000 ├──────────────────────┤ UART  PL011, 4 KiB
//!               │ (unmapped)           │
//!   0x4000_0000 ├──────────────────────┤ RAM   firmware image loads here
//!               │ guest RAM            │
//!               └──────────────────────┘
//! ```
//!
//! Every region except RAM is MMIO: the VMM registers no memory there, so each
//! access exits to userspace (KVM_EXIT_MMIO) and reaches the VMM's models.

/// Base of the GICv2 distributor (GICD).
pub const GICD_BASE: u64 = 0x0800_0000;
/// Size of the distributor frame: one 4 KiB page (IHI 0048B, 4.1.2).
pub const GICD_SIZE: u64 = uirq_gicv2::regs::GICD_FRAME_SIZE;

/// Base of the GICv2 CPU interface (GICC).
pub const GICC_BASE: u64 = 0x0801_0000;
/// Size of the CPU interface frame: 8 KiB, so GICC_DIR at 0x1000 is inside
/// it (IHI 0048B, 4.1.3).
pub const GICC_SIZE: u64 = uirq_gicv2::regs::GICC_FRAME_SIZE;

/// Base of the PL011 UART.
pub const UART_BASE: u64 = 0x0900_0000;
/// Size of the PL011 register frame.
pub const UART_SIZE: u64 = 0x1000;
/// The PL011's interrupt: SPI 1, interrupt id 33, as on QEMU's `virt`.
pub const UART_SPI: u32 = 1;

/// Base of guest RAM. The firmware image is loaded here and entered at its
/// first byte.
pub const RAM_BASE: u64 = 0x4000_0000;
/// Guest RAM size the VMM gives by default (and the firmware's linker script
/// assumes as its upper bound).
pub const RAM_SIZE_DEFAULT: u64 = 64 << 20;
/// The most guest RAM the VMM gives (`--ram-mib 4096`). The firmware's
/// identity map covers RAM up to this size, so a device tree or initrd a
/// boot-protocol loader puts near the top of RAM is reachable.
pub const RAM_SIZE_MAX: u64 = 4 << 30;

/// Where the firmware image is loaded and entered.
pub const IMAGE_LOAD_ADDR: u64 = RAM_BASE;

/// An address in the device gigabyte where no device answers, on this
/// VMM's map *and* on QEMU's `virt` with `gic-version=2`: there the range
/// `0x080A_0000..0x0900_0000` belongs to a GICv3's redistributors, which a
/// GICv2 board leaves empty (hw/arm/virt.c, `base_memmap`; the GICv2M frame
/// is at `0x0802_0000`, the UART at `0x0900_0000`). Hardware answers an
/// access to nothing with a synchronous external abort, and so do QEMU and,
/// by default, the VMM (`--unmapped abort`); the `unmapped` scenario checks
/// it here. 64 KiB of it are guaranteed empty.
pub const HOLE: u64 = 0x0810_0000;
/// How much of the hole at [`HOLE`] is guaranteed empty.
pub const HOLE_SIZE: u64 = 0x1_0000;

/// True when `[base, base + size)` and `[other, other + other_size)` share an
/// address.
pub const fn overlaps(base: u64, size: u64, other: u64, other_size: u64) -> bool {
    base < other + other_size && other < base + size
}

// The map is checked at compile time: no two regions overlap.
const _: () = {
    assert!(!overlaps(GICD_BASE, GICD_SIZE, GICC_BASE, GICC_SIZE));
    assert!(!overlaps(GICC_BASE, GICC_SIZE, UART_BASE, UART_SIZE));
    assert!(!overlaps(UART_BASE, UART_SIZE, RAM_BASE, RAM_SIZE_DEFAULT));
    assert!(RAM_SIZE_DEFAULT <= RAM_SIZE_MAX);
    assert!(!overlaps(HOLE, HOLE_SIZE, GICD_BASE, GICD_SIZE));
    assert!(!overlaps(HOLE, HOLE_SIZE, GICC_BASE, GICC_SIZE));
    assert!(!overlaps(HOLE, HOLE_SIZE, UART_BASE, UART_SIZE));
    assert!(!overlaps(
        HOLE,
        HOLE_SIZE,
        crate::bench::MARKER_BASE,
        crate::bench::MARKER_SIZE
    ));
    // Inside QEMU virt's GICv3 redistributor range, empty with a GICv2.
    assert!(HOLE >= 0x080A_0000 && HOLE + HOLE_SIZE <= 0x0900_0000);
    assert!(GICD_BASE % 0x1000 == 0 && GICC_BASE % 0x1000 == 0 && UART_BASE % 0x1000 == 0);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_symmetric_and_exclusive_at_the_end() {
        assert!(overlaps(0x1000, 0x1000, 0x1fff, 1));
        assert!(overlaps(0x1fff, 1, 0x1000, 0x1000));
        assert!(!overlaps(0x1000, 0x1000, 0x2000, 0x1000));
        assert!(!overlaps(0x2000, 0x1000, 0x1000, 0x1000));
    }
}
