//! Register types for device memory that a hypervisor can emulate.
//!
//! These are drop-in replacements for tock-registers' `ReadOnly`,
//! `ReadWrite` and `WriteOnly`, with one difference that matters under
//! virtualization: every access is a single `ldr`/`str` (or the byte and
//! halfword forms) with a plain base-register address, written in inline
//! assembly.
//!
//! Why: when the guest touches an MMIO address with no memory behind it,
//! the CPU traps to the hypervisor with a data abort whose syndrome (ESR_EL2)
//! describes the access: size, register, direction. That description is
//! only valid (ISV = 1) for single loads and stores *without* writeback (Arm
//! ARM, D17.2.40 "ESR_EL2", ISS encoding for a Data Abort: "ISV ... is 0
//! for ... load/store pair, and instructions with writeback"). KVM emulates
//! MMIO only from a valid syndrome; for anything else `KVM_RUN` fails with
//! ENOSYS. A compiler lowering `read_volatile` is free to pick a
//! post-indexed `ldr x0, [x1], #4` in a loop or an `ldp`, so a driver that
//! relies on it can work on hardware and fail as soon as it runs in a VM.
//! Linux's arm64 `__raw_readl`/`__raw_writel` use inline assembly for the
//! same reason.
//!
//! On the build machine (unit tests) the accessors fall back to volatile
//! pointer accesses on the fake register memory.

use core::cell::UnsafeCell;
use core::marker::PhantomData;

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::{RegisterLongName, UIntLike};

/// An integer width with single-instruction MMIO accessors.
pub trait MmioInt: UIntLike {
    /// Loads from `ptr` with one load instruction.
    ///
    /// # Safety
    /// `ptr` must be valid for a read of `Self` and suitably aligned.
    unsafe fn load(ptr: *const Self) -> Self;
    /// Stores `value` at `ptr` with one store instruction.
    ///
    /// # Safety
    /// `ptr` must be valid for a write of `Self` and suitably aligned.
    unsafe fn store(ptr: *mut Self, value: Self);
}

macro_rules! mmio_int {
    ($t:ty, $ld:literal, $st:literal) => {
        impl MmioInt for $t {
            #[inline(always)]
            unsafe fn load(ptr: *const Self) -> Self {
                #[cfg(target_arch = "aarch64")]
                {
                    let value: u32;
                    // SAFETY: the caller guarantees `ptr` is valid and
                    // aligned; the instruction reads exactly that location.
                    unsafe {
                        core::arch::asm!(concat!($ld, " {v:w}, [{p}]"), v = out(reg) value, p = in(reg) ptr, options(nostack, preserves_flags))
                    };
                    value as $t
                }
                #[cfg(not(target_arch = "aarch64"))]
                // SAFETY: as above.
                unsafe {
                    core::ptr::read_volatile(ptr)
                }
            }

            #[inline(always)]
            unsafe fn store(ptr: *mut Self, value: Self) {
                #[cfg(target_arch = "aarch64")]
                // SAFETY: the caller guarantees `ptr` is valid and aligned;
                // the instruction writes exactly that location.
                unsafe {
                    core::arch::asm!(concat!($st, " {v:w}, [{p}]"), v = in(reg) value as u32, p = in(reg) ptr, options(nostack, preserves_flags))
                };
                #[cfg(not(target_arch = "aarch64"))]
                // SAFETY: as above.
                unsafe {
                    core::ptr::write_volatile(ptr, value)
                };
            }
        }
    };
}

mmio_int!(u8, "ldrb", "strb");
mmio_int!(u16, "ldrh", "strh");
mmio_int!(u32, "ldr", "str");

macro_rules! register_type {
    ($(#[$doc:meta])* $name:ident, read: $r:tt, write: $w:tt) => {
        $(#[$doc])*
        #[repr(transparent)]
        pub struct $name<T: MmioInt, R: RegisterLongName = ()> {
            value: UnsafeCell<T>,
            associated_register: PhantomData<R>,
        }
        register_type!(@read $r $name);
        register_type!(@write $w $name);
    };
    (@read yes $name:ident) => {
        impl<T: MmioInt, R: RegisterLongName> Readable for $name<T, R> {
            type T = T;
            type R = R;
            #[inline]
            fn get(&self) -> T {
                // SAFETY: a register struct is only ever created over the
                // device's MMIO frame (see each driver's `unsafe fn new`), so
                // the address is valid and naturally aligned.
                unsafe { T::load(self.value.get()) }
            }
        }
    };
    (@read no $name:ident) => {};
    (@write yes $name:ident) => {
        impl<T: MmioInt, R: RegisterLongName> Writeable for $name<T, R> {
            type T = T;
            type R = R;
            #[inline]
            fn set(&self, value: T) {
                // SAFETY: as for reads, the address is the register's own.
                unsafe { T::store(self.value.get(), value) }
            }
        }
    };
    (@write no $name:ident) => {};
}

register_type!(
    /// A register the driver reads and writes.
    ReadWrite, read: yes, write: yes
);
register_type!(
    /// A register the driver only reads.
    ReadOnly, read: yes, write: no
);
register_type!(
    /// A register the driver only writes.
    WriteOnly, read: no, write: yes
);

/// A register frame reached by offset, for the few accesses a typed
/// register map is right to forbid: writing a register the map declares
/// read-only, or touching an offset it leaves reserved. Programs that check
/// a GIC's read-only and RAZ/WI rules need exactly that; drivers never do.
///
/// Every access is still one `ldr`/`str` (or `ldrb`/`strb`) of the natural
/// size, through [`MmioInt`]. An offset outside the frame, or misaligned
/// for the access size, is refused with `None` / `false` and never reaches
/// the bus.
#[derive(Clone, Copy, Debug)]
pub struct RawFrame {
    base: usize,
    size: usize,
}

impl RawFrame {
    /// The `size`-byte frame at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be the address of a device register frame of at least
    /// `size` bytes (or memory standing in for one), 4-byte aligned and
    /// present for the rest of the program, which no Rust reference treats
    /// as ordinary memory.
    pub const unsafe fn new(base: usize, size: usize) -> Self {
        Self { base, size }
    }

    fn address<T>(&self, offset: usize) -> Option<usize> {
        let width = core::mem::size_of::<T>();
        (offset % width == 0 && offset.checked_add(width)? <= self.size).then(|| self.base + offset)
    }

    /// The 32-bit word at `offset`.
    pub fn read32(&self, offset: usize) -> Option<u32> {
        let address = self.address::<u32>(offset)?;
        // SAFETY: inside the frame `new`'s caller vouched for, and aligned.
        Some(unsafe { u32::load(address as *const u32) })
    }

    /// Writes the 32-bit word at `offset`; false if refused.
    pub fn write32(&self, offset: usize, value: u32) -> bool {
        let Some(address) = self.address::<u32>(offset) else {
            return false;
        };
        // SAFETY: inside the frame `new`'s caller vouched for, and aligned.
        unsafe { u32::store(address as *mut u32, value) };
        true
    }

    /// The byte at `offset`.
    pub fn read8(&self, offset: usize) -> Option<u8> {
        let address = self.address::<u8>(offset)?;
        // SAFETY: inside the frame `new`'s caller vouched for.
        Some(unsafe { u8::load(address as *const u8) })
    }

    /// Writes the byte at `offset`; false if refused.
    pub fn write8(&self, offset: usize, value: u8) -> bool {
        let Some(address) = self.address::<u8>(offset) else {
            return false;
        };
        // SAFETY: inside the frame `new`'s caller vouched for.
        unsafe { u8::store(address as *mut u8, value) };
        true
    }
}

/// One load of `size` bytes (1, 2, 4 or 8; anything else is taken as 4)
/// from `addr`, made by a single `LDRB`/`LDRH`/`LDR` with a plain base
/// register, zero-extended into a destination register that holds
/// `before` until the load writes it. Also returns the address of that
/// load instruction: where an abort on it is reported (`ELR_EL1`), so a
/// caller that expects one can check it is this access's. A load that
/// aborted returns `before` unchanged, as the architecture leaves the
/// destination of an instruction that did not complete.
///
/// For programs that touch addresses on purpose where there may be
/// nothing (the `unmapped` scenario, `chaos`), with an abort handler
/// ready; drivers use the register types above.
///
/// # Safety
///
/// `addr` must be aligned to `size` and mapped as Device memory (an
/// unaligned Device access is an alignment fault, Arm ARM B2.5.2), and
/// reading it must not break anything Rust relies on: it must not be
/// memory a Rust object lives in that another part of the program writes.
/// If the load aborts, the caller must have arranged for the exception to
/// be handled and execution to resume after the instruction; the value
/// returned is then meaningless.
#[inline(always)]
pub unsafe fn probe_load(addr: usize, size: usize, before: u64) -> (u64, usize) {
    #[cfg(target_arch = "aarch64")]
    {
        let mut value = before;
        let insn: usize;
        macro_rules! load {
            ($op:literal) => {
                // SAFETY: the caller vouches for the address (see above);
                // `adr` only computes the next instruction's address.
                unsafe {
                    core::arch::asm!("adr {i}, 2f", concat!("2: ", $op), i = out(reg) insn, v = inout(reg) value, p = in(reg) addr, options(nostack, preserves_flags))
                }
            };
        }
        match size {
            1 => load!("ldrb {v:w}, [{p}]"),
            2 => load!("ldrh {v:w}, [{p}]"),
            8 => load!("ldr {v}, [{p}]"),
            _ => load!("ldr {v:w}, [{p}]"),
        }
        (value, insn)
    }
    #[cfg(not(target_arch = "aarch64"))]
    // SAFETY: as above.
    unsafe {
        let _ = before;
        let value = match size {
            1 => u64::from(core::ptr::read_volatile(addr as *const u8)),
            2 => u64::from(core::ptr::read_volatile(addr as *const u16)),
            8 => core::ptr::read_volatile(addr as *const u64),
            _ => u64::from(core::ptr::read_volatile(addr as *const u32)),
        };
        (value, 0)
    }
}

/// One store of the low `size` bytes (1, 2, 4 or 8; anything else is taken
/// as 4) of `value` at `addr` with a single `STRB`/`STRH`/`STR`; returns
/// the address of that store instruction, as [`probe_load`] does.
///
/// # Safety
///
/// As for [`probe_load`], and writing there must not change memory any
/// Rust object lives in.
#[inline(always)]
pub unsafe fn probe_store(addr: usize, size: usize, value: u64) -> usize {
    #[cfg(target_arch = "aarch64")]
    {
        let insn: usize;
        macro_rules! store {
            ($op:literal) => {
                // SAFETY: the caller vouches for the address (see above);
                // `adr` only computes the next instruction's address.
                unsafe {
                    core::arch::asm!("adr {i}, 2f", concat!("2: ", $op), i = out(reg) insn, v = in(reg) value, p = in(reg) addr, options(nostack, preserves_flags))
                }
            };
        }
        match size {
            1 => store!("strb {v:w}, [{p}]"),
            2 => store!("strh {v:w}, [{p}]"),
            8 => store!("str {v}, [{p}]"),
            _ => store!("str {v:w}, [{p}]"),
        }
        insn
    }
    #[cfg(not(target_arch = "aarch64"))]
    // SAFETY: as above.
    unsafe {
        match size {
            1 => core::ptr::write_volatile(addr as *mut u8, value as u8),
            2 => core::ptr::write_volatile(addr as *mut u16, value as u16),
            8 => core::ptr::write_volatile(addr as *mut u64, value),
            _ => core::ptr::write_volatile(addr as *mut u32, value as u32),
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_mmio::FakeMmio;

    #[test]
    fn probes_load_and_store_each_size_little_endian() {
        #[repr(C, align(8))]
        struct Memory([u8; 16]);
        let memory = Box::leak(Box::new(Memory([0; 16])));
        let base = memory.0.as_mut_ptr() as usize;
        // SAFETY: 16 bytes of leaked host memory, 8-byte aligned; every
        // access below is inside it and aligned to its size.
        unsafe {
            probe_store(base, 8, 0x1122_3344_5566_7788);
            assert_eq!(probe_load(base, 8, 0).0, 0x1122_3344_5566_7788);
            assert_eq!(probe_load(base + 4, 4, 0).0, 0x1122_3344);
            assert_eq!(probe_load(base + 2, 2, 0).0, 0x5566);
            assert_eq!(probe_load(base + 1, 1, !0).0, 0x77);
            probe_store(base + 8, 1, 0xAB);
            probe_store(base + 10, 2, 0xCDEF);
            assert_eq!(probe_load(base + 8, 4, 0).0, 0xCDEF_00AB);
            probe_store(base + 12, 4, 0xFFFF_FFFF_0102_0304);
            assert_eq!(probe_load(base + 12, 4, 0).0, 0x0102_0304);
            assert_eq!(probe_load(base + 8, 8, 0).0, 0x0102_0304_CDEF_00AB);
        }
    }

    #[test]
    fn raw_frame_accesses_inside_and_refuses_outside() {
        let fake = FakeMmio::<4>::new();
        // SAFETY: 16 bytes of leaked, aligned host memory.
        let frame = unsafe { RawFrame::new(fake.base(), 16) };
        assert!(frame.write32(4, 0x1122_3344));
        assert_eq!(fake.word(4), 0x1122_3344);
        assert!(frame.write8(5, 0xAB));
        assert_eq!(fake.word(4), 0x1122_AB44, "one byte, little-endian");
        assert_eq!(frame.read8(7), Some(0x11));
        assert_eq!(frame.read32(4), Some(0x1122_AB44));
        assert_eq!(frame.read32(2), None, "misaligned");
        assert_eq!(frame.read32(16), None, "past the end");
        assert_eq!(frame.read8(16), None);
        assert!(!frame.write32(14, 0));
        assert!(!frame.write8(usize::MAX, 0));
    }
}
