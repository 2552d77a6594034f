//! Started by the Linux boot protocol: the device tree in `x0`.
//!
//! A loader that follows Documentation/arch/arm64/booting.rst (the VMM's
//! `--kernel`, QEMU's `-kernel` with the flat image, whose Image header
//! `boot.rs` emits) enters the firmware with the physical address of a
//! flattened device tree in `x0` and zero in `x1`-`x3`. Program numbers are
//! small and RAM starts at `RAM_BASE`, so an `x0` in RAM can only be such
//! an address ([`is_device_tree_address`]).
//!
//! [`DeviceTree::open`] checks the blob before anything reads it:
//! booting.rst's rules (8-byte aligned, at most 2 MiB), that it lies in RAM
//! the identity map covers (`uirq_guest::mmu`), that it does not overlap
//! the firmware's own memory (image, BSS, stacks, which the boot code has
//! already written), its header (`uirq_guest::devicetree`), and that none
//! of the memory it reserves is where the firmware lives. [`program`] then
//! reads the program from `/chosen/bootargs` (`uirq.program=NAME`,
//! `uirq_abi::boot::PROGRAM_BOOTARG`), or picks `dt-info`.

use uirq_abi::{
    boot::{Program, PROGRAM_BOOTARG},
    exit::Status,
    layout::RAM_BASE,
};
use uirq_guest::{
    devicetree::{self, DtError, Fdt, Region},
    mmu::RAM_MAPPED_END,
};

use crate::psci;

extern "C" {
    /// The firmware's first byte (linker script).
    static __image_start: u8;
    /// The byte after its last stack (linker script).
    static __image_end: u8;
}

/// The memory the firmware occupies: image, BSS and stacks.
pub fn footprint() -> Region {
    let start = (&raw const __image_start) as u64;
    let end = (&raw const __image_end) as u64;
    Region {
        base: start,
        size: end - start,
    }
}

/// True when `x0` is in RAM, so a device tree's address rather than a
/// program number (`uirq_abi::boot`).
pub fn is_device_tree_address(x0: u64) -> bool {
    x0 >= RAM_BASE
}

/// Why the `x0` of the boot protocol was not usable.
#[derive(Clone, Copy, Debug)]
pub enum OpenError {
    /// Below RAM.
    NotInRam,
    /// Not 8-byte aligned, as booting.rst requires.
    Misaligned,
    /// Beyond the RAM the identity map covers.
    Unmapped,
    /// Inside the firmware's own memory, which it has written already.
    InsideFirmware(Region),
    /// Not a device tree, or a damaged one.
    Blob(DtError),
    /// It reserves memory the firmware occupies.
    Reserved(Region, Region),
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            OpenError::NotInRam => write!(f, "below RAM ({RAM_BASE:#x})"),
            OpenError::Misaligned => write!(f, "not 8-byte aligned (booting.rst)"),
            OpenError::Unmapped => write!(
                f,
                "beyond {RAM_MAPPED_END:#x}, the end of the RAM the firmware maps"
            ),
            OpenError::InsideFirmware(fw) => write!(
                f,
                "inside the firmware's image, BSS and stacks ({:#x}-{:#x}), which it has overwritten",
                fw.base,
                fw.end()
            ),
            OpenError::Blob(e) => write!(f, "{e}"),
            OpenError::Reserved(r, fw) => write!(
                f,
                "it reserves {:#x}-{:#x}, where the firmware is ({:#x}-{:#x})",
                r.base,
                r.end(),
                fw.base,
                fw.end()
            ),
        }
    }
}

impl From<DtError> for OpenError {
    fn from(e: DtError) -> Self {
        OpenError::Blob(e)
    }
}

/// A device tree blob in guest RAM, checked by [`DeviceTree::open`].
#[derive(Clone, Copy, Debug)]
pub struct DeviceTree {
    /// Its physical (= virtual) address.
    pub addr: u64,
    /// Its `totalsize`.
    pub size: usize,
}

impl DeviceTree {
    /// The blob at `addr`, after the checks in the module docs.
    pub fn open(addr: u64) -> Result<Self, OpenError> {
        let firmware = footprint();
        if !is_device_tree_address(addr) {
            return Err(OpenError::NotInRam);
        }
        if addr % devicetree::ALIGN != 0 {
            return Err(OpenError::Misaligned);
        }
        if addr < firmware.end() {
            return Err(OpenError::InsideFirmware(firmware));
        }
        let header_end = addr.checked_add(8).ok_or(OpenError::Unmapped)?;
        if header_end > RAM_MAPPED_END {
            return Err(OpenError::Unmapped);
        }
        // SAFETY: `addr` is 8-byte aligned, and the 8 bytes from it are RAM
        // (at or above RAM_BASE, below the end of the identity map's Normal
        // blocks: checked above) outside every Rust object (above the
        // firmware's footprint). A plain read of bytes the loader wrote
        // before the firmware started.
        let first = unsafe { core::ptr::read(addr as *const [u8; 8]) };
        let size = devicetree::blob_size(first)?;
        if addr + size as u64 > RAM_MAPPED_END {
            return Err(OpenError::Unmapped);
        }
        let tree = DeviceTree { addr, size };
        if let Some(r) = tree.read(|fdt| devicetree::reserved_overlap(fdt, firmware))? {
            return Err(OpenError::Reserved(r, firmware));
        }
        Ok(tree)
    }

    /// Runs `f` on the parsed blob. The closure cannot keep what it reads
    /// beyond the call (`R` cannot borrow the blob), which is what makes
    /// the borrow below sound.
    pub fn read<R>(&self, f: impl FnOnce(&Fdt<'_>) -> R) -> Result<R, DtError> {
        // SAFETY: `open` checked that [addr, addr + size) is RAM the
        // identity map covers and outside the firmware's footprint, so no
        // Rust object lives there. Nothing writes it while the slice lives:
        // the firmware writes only its footprint and, in the `bench`
        // program (which never runs inside `f`), the benchmark's result
        // buffer; the other cores do not run while the boot core reads it.
        let bytes = unsafe { core::slice::from_raw_parts(self.addr as *const u8, self.size) };
        devicetree::open(bytes).map(|fdt| f(&fdt))
    }
}

/// The program the command line names (`uirq.program=NAME`), or
/// [`Program::DtInfo`] when it names none. An unknown name powers off with
/// [`Status::BadBootArgs`], as an unknown program number does.
pub fn program(tree: &DeviceTree) -> Program {
    let chosen = tree.read(|fdt| {
        let bootargs = devicetree::bootargs(fdt).unwrap_or("");
        match devicetree::program(bootargs) {
            Some(Ok(program)) => {
                println!(
                    "uirq-guest: device tree at {:#x} (Linux boot protocol): bootargs {bootargs:?}: program {}",
                    tree.addr,
                    program.name()
                );
                Some(program)
            }
            None => {
                println!(
                    "uirq-guest: device tree at {:#x} (Linux boot protocol): bootargs {bootargs:?} name no program ({PROGRAM_BOOTARG}NAME): program {}",
                    tree.addr,
                    Program::DtInfo.name()
                );
                Some(Program::DtInfo)
            }
            Some(Err(name)) => {
                println!(
                    "uirq-guest: device tree at {:#x}: bootargs {bootargs:?} name an unknown program {name:?}",
                    tree.addr
                );
                None
            }
        }
    });
    match chosen {
        Ok(Some(program)) => program,
        Ok(None) => psci::system_off(Status::BadBootArgs),
        Err(e) => {
            println!("uirq-guest: device tree at {:#x}: {e}", tree.addr);
            psci::system_off(Status::BadBootArgs)
        }
    }
}
