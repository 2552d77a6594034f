//! The latency benchmark's contract: result buffer and phase markers.
//!
//! The firmware's `bench` program measures three things (four with two or
//! more CPUs), each `samples` times after `warmup` discarded runs, and
//! records raw counter values (CNTVCT_EL0 ticks, never converted in the
//! guest):
//!
//! - **vtimer**: the virtual timer's deadline (CNTV_CVAL) → first instruction
//!   of the IRQ vector → after the acknowledge (GICC_IAR read) → after the
//!   end of interrupt (GICC_EOIR write). One [`VtimerSample`] each.
//! - **sgi**: just before the GICD_SGIR write that sends SGI
//!   [`BENCH_SGI`] to itself → first instruction of the IRQ vector. One
//!   [`SgiSample`] each.
//! - **mmio**: one distributor register read (GICD_TYPER) between two
//!   counter reads. One [`MmioSample`] each.
//! - **ipi** (only with a second CPU): just before CPU 0's GICD_SGIR write
//!   that sends SGI [`BENCH_SGI`] to CPU 1 → first instruction of CPU 1's
//!   IRQ vector. One [`IpiSample`] each; [`Header::ipi_samples`] says how
//!   many (0 on one CPU).
//!
//! No sample is printed: they go into the buffer at [`RESULTS_ADDR`] (guest
//! RAM), laid out as below, and the VMM reads it through guest memory after
//! the firmware powers off.
//!
//! ```text
//! RESULTS_ADDR + 0                   Header
//! RESULTS_ADDR + VTIMER_OFFSET       [VtimerSample; MAX_SAMPLES]
//! RESULTS_ADDR + SGI_OFFSET          [SgiSample; MAX_SAMPLES]
//! RESULTS_ADDR + MMIO_OFFSET         [MmioSample; MAX_SAMPLES]
//! RESULTS_ADDR + IPI_OFFSET          [IpiSample; MAX_SAMPLES]
//! ```
//!
//! Around each measurement the firmware writes a [`Phase`] number to the
//! marker register at [`MARKER_BASE`]. That write is an MMIO exit outside
//! the measured window; it lets the VMM count the exits that belong to each
//! measurement exactly, and timestamp its own work per phase. Only the
//! uirq VMM has that register, so it announces it: before the first
//! instruction it writes [`HOST_MAGIC`] to the header's `magic` word, and the
//! firmware writes markers only when it finds that value there.

use crate::layout::RAM_BASE;

/// Guest physical address of the result buffer (32 MiB into RAM, far above
/// the firmware image, its BSS and its stack; the linker script asserts it).
pub const RESULTS_ADDR: u64 = RAM_BASE + 0x0200_0000;
/// Largest sample count per measurement the buffer holds.
pub const MAX_SAMPLES: u64 = 16_384;
/// Samples per measurement when the VMM passes 0.
pub const DEFAULT_SAMPLES: u64 = 10_000;
/// Discarded warm-up samples per measurement when the VMM passes 0.
pub const DEFAULT_WARMUP: u64 = 100;
/// The SGI the benchmark sends to itself.
pub const BENCH_SGI: u32 = 1;

/// "UIRQBNCH" in little-endian ASCII: the header's first word once the
/// firmware has filled the buffer.
pub const MAGIC: u64 = u64::from_le_bytes(*b"UIRQBNCH");
/// Layout version; bumped when anything below changes (2: the ipi
/// measurement).
pub const VERSION: u64 = 2;

/// The start of the result buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Header {
    /// [`MAGIC`] once the buffer is complete (written last). Before the
    /// firmware starts, [`HOST_MAGIC`] if the VMM has the marker register.
    pub magic: u64,
    /// [`VERSION`].
    pub version: u64,
    /// CNTFRQ_EL0 as the firmware read it, in Hz.
    pub cntfrq: u64,
    /// Samples recorded per measurement (after warm-up).
    pub samples: u64,
    /// Warm-up samples taken and discarded per measurement.
    pub warmup: u64,
    /// Samples the firmware found inconsistent (a timestamp earlier than the
    /// one before it) and recorded anyway; the VMM reports them.
    pub anomalies: u64,
    /// IPI samples recorded: `samples` with a second CPU, 0 without.
    pub ipi_samples: u64,
    /// CPUs the firmware found (GICD_TYPER.CPUNumber + 1).
    pub cpus: u64,
}

/// One virtual-timer interrupt, in counter ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct VtimerSample {
    /// CNTV_CVAL: when the timer fired.
    pub deadline: u64,
    /// First instruction of the IRQ vector.
    pub entry: u64,
    /// Just after the GICC_IAR read returned.
    pub after_ack: u64,
    /// Just after the GICC_EOIR write completed.
    pub after_eoi: u64,
}

/// One SGI sent to self, in counter ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SgiSample {
    /// Just before the GICD_SGIR write.
    pub write: u64,
    /// First instruction of the IRQ vector.
    pub entry: u64,
}

/// One distributor register read, in counter ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct MmioSample {
    /// Just before the read.
    pub start: u64,
    /// Just after the read returned.
    pub end: u64,
}

/// One SGI from CPU 0 to CPU 1, in counter ticks (one counter, the
/// system's, for both CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct IpiSample {
    /// Just before CPU 0's GICD_SGIR write.
    pub write: u64,
    /// First instruction of CPU 1's IRQ vector.
    pub entry: u64,
}

/// Byte offset of the vtimer samples from [`RESULTS_ADDR`].
pub const VTIMER_OFFSET: u64 = 0x1000;
/// Byte offset of the SGI samples.
pub const SGI_OFFSET: u64 =
    VTIMER_OFFSET + MAX_SAMPLES * core::mem::size_of::<VtimerSample>() as u64;
/// Byte offset of the MMIO samples.
pub const MMIO_OFFSET: u64 = SGI_OFFSET + MAX_SAMPLES * core::mem::size_of::<SgiSample>() as u64;
/// Byte offset of the IPI samples.
pub const IPI_OFFSET: u64 = MMIO_OFFSET + MAX_SAMPLES * core::mem::size_of::<MmioSample>() as u64;
/// Total size of the result buffer.
pub const RESULTS_SIZE: u64 = IPI_OFFSET + MAX_SAMPLES * core::mem::size_of::<IpiSample>() as u64;

const _: () = {
    assert!(core::mem::size_of::<Header>() as u64 <= VTIMER_OFFSET);
    assert!(RESULTS_ADDR + RESULTS_SIZE <= RAM_BASE + crate::layout::RAM_SIZE_DEFAULT);
};

/// Base of the benchmark's phase-marker register (VMM only; 4 KiB frame,
/// one 32-bit register at offset 0, write-only).
pub const MARKER_BASE: u64 = 0x0b00_0000;
/// Size of the marker frame.
pub const MARKER_SIZE: u64 = 0x1000;

/// "UIRQHOST": what the VMM puts in the header's `magic` word before the
/// firmware starts, meaning "the marker register at [`MARKER_BASE`] exists".
/// Without it (e.g. under QEMU's `virt` board, where nothing is mapped at
/// `MARKER_BASE` and a write there is a synchronous external abort) the
/// firmware measures all the same but writes no markers. The firmware
/// clears the word before it measures.
pub const HOST_MAGIC: u64 = u64::from_le_bytes(*b"UIRQHOST");

/// What the firmware is about to do, written to the marker register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Phase {
    /// Set-up and warm-up; nothing counted.
    Idle = 0,
    /// The measured vtimer samples follow.
    Vtimer = 1,
    /// The measured SGI samples follow.
    Sgi = 2,
    /// The measured MMIO samples follow.
    Mmio = 3,
    /// The measured IPI samples follow.
    Ipi = 4,
    /// All measurements done; the buffer is complete.
    Done = 5,
}

impl Phase {
    /// The phase numbered `n`.
    pub const fn from_number(n: u32) -> Option<Self> {
        match n {
            0 => Some(Phase::Idle),
            1 => Some(Phase::Vtimer),
            2 => Some(Phase::Sgi),
            3 => Some(Phase::Mmio),
            4 => Some(Phase::Ipi),
            5 => Some(Phase::Done),
            _ => None,
        }
    }
}
