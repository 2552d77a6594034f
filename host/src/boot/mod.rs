//! What vCPU 0 starts, and where it lies in guest RAM.
//!
//! Two kinds of payload boot:
//!
//! - **The project's firmware** (`--image`): a flat image copied to the
//!   start of RAM and entered at its first byte, with the program to run in
//!   `x0`-`x2` (`uirq_abi::boot`).
//! - **Anything that follows Linux's arm64 boot protocol** (`--kernel`,
//!   Documentation/arch/arm64/booting.rst), as QEMU's `-kernel` starts it: an
//!   arm64 `Image` (gzip-compressed or not) or a raw binary, an optional
//!   initrd, and a device tree ([`fdt`]) whose address is in `x0`.
//!
//! For the second, guest RAM is laid out like this (`ram-mib` 256):
//!
//! ```text
//!   0x4000_0000 ┌──────────────────────┐ 2 MiB aligned base
//!               │ (text_offset)        │
//!               │ kernel Image         │ image_size bytes, BSS included
//!               ├──────────────────────┤
//!               │ free                 │
//!               ├──────────────────────┤ page aligned
//!               │ initrd               │
//!   0x4fe0_0000 ├──────────────────────┤ 2 MiB aligned, last 2 MiB of RAM
//!               │ device tree          │ at most 2 MiB (booting.rst)
//!   0x5000_0000 └──────────────────────┘
//! ```
//!
//! The device tree goes in a 2 MiB block of its own because "the dtb will be
//! mapped cacheable using blocks of up to 2 megabytes in size"; the initrd
//! sits right below it, as far from the kernel as possible, since the kernel
//! uses the RAM after its image first. Everything here is checked on any
//! machine before KVM is opened: a file that does not fit is one sentence,
//! not a half-built VM.

pub mod fdt;
pub mod image;

use std::path::Path;

use thiserror::Error;
use vm_memory::{Bytes, GuestAddress};

use uirq_abi::layout::{IMAGE_LOAD_ADDR, RAM_BASE};

use crate::memory::GuestRam;

/// A 2 MiB block: the kernel's base alignment and the device tree's slot.
const SZ_2M: u64 = 2 << 20;
/// The initrd's alignment (a page; booting.rst asks for none).
const PAGE: u64 = 4096;

/// A piece of the payload to put in guest RAM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Load {
    /// Bytes copied to `addr` as they are.
    Bytes {
        /// Guest physical address of the first byte.
        addr: u64,
        /// What to copy.
        bytes: Vec<u8>,
    },
    /// An arm64 `Image`, which linux-loader places `text_offset` bytes above
    /// the 2 MiB aligned `base`, at `addr`.
    ArmImage {
        /// The 2 MiB aligned base.
        base: u64,
        /// Where the header says it lands.
        addr: u64,
        /// The (decompressed) Image.
        bytes: Vec<u8>,
    },
}

/// Everything vCPU 0 needs: what to load, where to start, with which
/// registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boot {
    /// What goes into guest RAM, in order.
    pub loads: Vec<Load>,
    /// The first instruction's address.
    pub entry: u64,
    /// `x0`-`x3` at entry.
    pub regs: [u64; 4],
    /// One line for the log: what boots and where everything went.
    pub summary: String,
}

/// Why the payload could not be prepared.
#[derive(Debug, Error)]
pub enum BootError {
    /// A file could not be read.
    #[error("cannot read the {what} {path}")]
    Read {
        /// kernel, initrd, device tree, firmware image.
        what: &'static str,
        /// The path given.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file option names a directory, FIFO or device.
    #[error("the {what} {path} is not a regular file")]
    NotAFile {
        /// kernel, initrd, device tree, firmware image.
        what: &'static str,
        /// The path given.
        path: String,
    },
    /// A file is empty.
    #[error("the {what} {path} is empty")]
    Empty {
        /// kernel, initrd, device tree, firmware image.
        what: &'static str,
        /// The path given.
        path: String,
    },
    /// A file is larger than guest RAM, before it is even read.
    #[error("the {what} {path} is {size} bytes, more than the {ram} bytes of guest RAM; give more --ram-mib")]
    LargerThanRam {
        /// kernel, initrd, device tree, firmware image.
        what: &'static str,
        /// The path given.
        path: String,
        /// Its size.
        size: u64,
        /// Guest RAM.
        ram: u64,
    },
    /// A gzip file that does not unpack.
    #[error("the kernel {path} cannot be used: {source}")]
    Gunzip {
        /// The path given.
        path: String,
        /// What went wrong.
        #[source]
        source: image::GunzipError,
    },
    /// An Image whose header asks for big-endian.
    #[error(
        "the kernel {path} is a big-endian arm64 Image; this VMM starts little-endian guests only"
    )]
    BigEndian {
        /// The path given.
        path: String,
    },
    /// The kernel does not fit below the device tree.
    #[error("the kernel {path} is {kind} that needs {need} bytes from {addr:#x}, but only {room} bytes of guest RAM are free there below the device tree; give more --ram-mib")]
    KernelTooLarge {
        /// The path given.
        path: String,
        /// "an arm64 Image" or "not an arm64 Image (a raw binary)".
        kind: &'static str,
        /// Its load address.
        addr: u64,
        /// Bytes it needs.
        need: u64,
        /// Bytes there are.
        room: u64,
    },
    /// The initrd does not fit between the kernel and the device tree.
    #[error("the initrd {path} is {size} bytes, but only {room} bytes of guest RAM are free between the kernel and the device tree; give more --ram-mib")]
    InitrdTooLarge {
        /// The path given.
        path: String,
        /// Its size.
        size: u64,
        /// Bytes there are.
        room: u64,
    },
    /// Guest RAM cannot even hold the device tree's 2 MiB.
    #[error("{ram} bytes of guest RAM cannot hold a kernel and the device tree's 2 MiB; give more --ram-mib")]
    RamTooSmall {
        /// Guest RAM.
        ram: u64,
    },
    /// The command line is longer than Linux reads.
    #[error("the kernel command line is {len} bytes, but the device tree's bootargs hold at most {max} (Linux's COMMAND_LINE_SIZE, the NUL included)", max = fdt::MAX_BOOTARGS - 1)]
    CmdlineTooLong {
        /// Its length.
        len: usize,
    },
    /// The command line holds something other than printable ASCII.
    #[error("the kernel command line holds a character that is not printable ASCII")]
    CmdlineChars,
    /// A `--dtb` that is not a device tree.
    #[error("the device tree {path} cannot be used: {source}")]
    Dtb {
        /// The path given.
        path: String,
        /// What is wrong with it.
        #[source]
        source: fdt::DtbError,
    },
    /// vm-fdt refused the tree (a bug, not the user's input).
    #[error("cannot build the device tree: {0}")]
    Fdt(String),
    /// A load fell outside guest RAM or linux-loader refused it.
    #[error("cannot load the {what} into guest RAM: {detail}")]
    Load {
        /// What was being loaded.
        what: &'static str,
        /// What went wrong.
        detail: String,
    },
}

/// Reads the file at `path`, which must be a regular, non-empty file of at
/// most `limit` bytes; the size is checked before anything is read.
///
/// The file is opened first and the checks made on what was opened
/// (`fstat`), so a path swapped for something else in between cannot slip
/// past them. The open does not wait: `O_NONBLOCK` makes opening a FIFO
/// with no writer return at once (to be refused as not a regular file)
/// instead of blocking until one comes, and a device such as `/dev/zero`,
/// which would read forever, is refused the same way before any read. A
/// file that grows while it is read is cut at `limit + 1` bytes and
/// refused, not read to its end.
pub fn read_file(what: &'static str, path: &Path, limit: u64) -> Result<Vec<u8>, BootError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display().to_string();
    let read_err = |source| BootError::Read {
        what,
        path: shown.clone(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(BootError::NotAFile { what, path: shown });
    }
    if meta.len() == 0 {
        return Err(BootError::Empty { what, path: shown });
    }
    let too_large = |size| BootError::LargerThanRam {
        what,
        path: shown.clone(),
        size,
        ram: limit,
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    // O_NONBLOCK means nothing to a regular file's reads.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    if bytes.is_empty() {
        return Err(BootError::Empty { what, path: shown });
    }
    Ok(bytes)
}

impl Boot {
    /// The project's firmware: `image` at the start of RAM, entered at its
    /// first byte with the program and its arguments in `x0`-`x2`.
    ///
    /// The image must fit, and so must what it occupies once running: an
    /// image with an arm64 Image header (the project's firmware has one)
    /// says so in `image_size` (code, data, BSS and every core's stack, the
    /// linker script's `__image_size`), which is checked here, before the
    /// VM exists, rather than found out as a guest that faults.
    pub fn firmware(image: Vec<u8>, args: [u64; 3], ram_size: u64) -> Result<Self, BootError> {
        let room = ram_size - (IMAGE_LOAD_ADDR - RAM_BASE);
        if image.len() as u64 > room {
            return Err(BootError::Load {
                what: "firmware image",
                detail: format!(
                    "its {} bytes do not fit in the {room} bytes of RAM from {IMAGE_LOAD_ADDR:#x}",
                    image.len()
                ),
            });
        }
        if let image::Format::Image(header) = image::detect(&image) {
            if header.image_size > room {
                return Err(BootError::Load {
                    what: "firmware image",
                    detail: format!(
                        "it occupies {} bytes once running (its Image header's image_size: code, data, BSS and stacks), more than the {room} bytes of RAM; give more --ram-mib",
                        header.image_size
                    ),
                });
            }
        }
        Ok(Self {
            summary: format!(
                "firmware image, {} bytes at {IMAGE_LOAD_ADDR:#x}, program {}",
                image.len(),
                args[0]
            ),
            loads: vec![Load::Bytes {
                addr: IMAGE_LOAD_ADDR,
                bytes: image,
            }],
            entry: IMAGE_LOAD_ADDR,
            regs: [args[0], args[1], args[2], 0],
        })
    }

    /// Copies every piece into guest RAM.
    pub fn write_to(&self, ram: &GuestRam) -> Result<(), BootError> {
        for load in &self.loads {
            match load {
                Load::Bytes { addr, bytes } => ram
                    .write_slice(bytes, GuestAddress(*addr))
                    .map_err(|e| BootError::Load {
                        what: "payload",
                        detail: e.to_string(),
                    })?,
                Load::ArmImage { base, addr, bytes } => load_arm_image(ram, *base, *addr, bytes)?,
            }
        }
        Ok(())
    }
}

/// Loads an arm64 Image with linux-loader, which reads the header again
/// and must agree on the address.
#[cfg(target_arch = "aarch64")]
fn load_arm_image(ram: &GuestRam, base: u64, addr: u64, bytes: &[u8]) -> Result<(), BootError> {
    use linux_loader::loader::{pe::PE, KernelLoader};
    let loaded = PE::load(
        ram,
        Some(GuestAddress(base)),
        &mut std::io::Cursor::new(bytes),
        None,
    )
    .map_err(|e| BootError::Load {
        what: "kernel",
        detail: e.to_string(),
    })?;
    if loaded.kernel_load.0 != addr {
        return Err(BootError::Load {
            what: "kernel",
            detail: format!(
                "linux-loader placed it at {:#x}, not {addr:#x}",
                loaded.kernel_load.0
            ),
        });
    }
    Ok(())
}

/// linux-loader's Image loader only exists for aarch64 hosts; elsewhere
/// (the build machine's tests) the same placement is a plain copy.
#[cfg(not(target_arch = "aarch64"))]
fn load_arm_image(ram: &GuestRam, _base: u64, addr: u64, bytes: &[u8]) -> Result<(), BootError> {
    ram.write_slice(bytes, GuestAddress(addr))
        .map_err(|e| BootError::Load {
            what: "kernel",
            detail: e.to_string(),
        })
}

/// The files and strings a boot-protocol payload is made of.
#[derive(Clone, Debug, Default)]
pub struct KernelFiles<'a> {
    /// The kernel (`--kernel`).
    pub kernel: Option<&'a Path>,
    /// The initrd (`--initrd`).
    pub initrd: Option<&'a Path>,
    /// The command line (`--cmdline`).
    pub cmdline: &'a str,
    /// A device tree to use instead of the generated one (`--dtb`).
    pub dtb: Option<&'a Path>,
}

/// The machine's size, as the device tree describes it.
#[derive(Clone, Copy, Debug)]
pub struct MachineSize {
    /// Guest RAM in bytes.
    pub ram_size: u64,
    /// vCPUs.
    pub cpus: usize,
}

/// Checks a command line for the device tree: printable ASCII (as
/// linux-loader's [`Cmdline`](linux_loader::cmdline::Cmdline) requires) and
/// short enough for Linux's COMMAND_LINE_SIZE, which linux-loader checks.
pub fn check_cmdline(cmdline: &str) -> Result<(), BootError> {
    if !cmdline.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(BootError::CmdlineChars);
    }
    linux_loader::cmdline::Cmdline::try_from(cmdline, fdt::MAX_BOOTARGS)
        .map(|_| ())
        .map_err(|_| BootError::CmdlineTooLong { len: cmdline.len() })
}

/// The generated device tree for `size` with the given chosen node.
pub fn device_tree(
    size: MachineSize,
    cmdline: &str,
    initrd: Option<(u64, u64)>,
) -> Result<Vec<u8>, BootError> {
    check_cmdline(cmdline)?;
    fdt::generate(&fdt::Machine {
        cpus: size.cpus,
        ram_size: size.ram_size,
        bootargs: cmdline.to_string(),
        initrd,
    })
    .map_err(|e| BootError::Fdt(e.to_string()))
}

/// Where the device tree goes: the last 2 MiB block that starts inside
/// RAM and leaves the tree's 2 MiB inside RAM.
fn dtb_slot(ram_size: u64) -> Result<u64, BootError> {
    let end = RAM_BASE + ram_size;
    let slot = end
        .checked_sub(fdt::MAX_SIZE as u64)
        .map(|a| a & !(SZ_2M - 1))
        .filter(|&a| a > RAM_BASE)
        .ok_or(BootError::RamTooSmall { ram: ram_size })?;
    Ok(slot)
}

/// Prepares a boot-protocol payload: reads and checks every file, places
/// kernel, initrd and device tree in RAM, and sets `x0` to the tree.
pub fn kernel(files: &KernelFiles<'_>, size: MachineSize) -> Result<Boot, BootError> {
    let ram = size.ram_size;
    let path = files.kernel.expect("a kernel path");
    let shown = path.display().to_string();
    let dtb_addr = dtb_slot(ram)?;

    // The file may be gzip-compressed; it is read whole, and at most guest
    // RAM's size is ever decompressed.
    let mut bytes = read_file("kernel", path, ram)?;
    if image::is_gzip(&bytes) {
        bytes = image::gunzip(&bytes, ram).map_err(|source| BootError::Gunzip {
            path: shown.clone(),
            source,
        })?;
    }
    let (kernel_load, kind, addr, need) = match image::detect(&bytes) {
        image::Format::Image(h) => {
            if h.big_endian() {
                return Err(BootError::BigEndian { path: shown });
            }
            let addr = RAM_BASE.checked_add(h.text_offset);
            let need = h.image_size.max(bytes.len() as u64);
            let addr = addr.ok_or(BootError::KernelTooLarge {
                path: shown.clone(),
                kind: "an arm64 Image",
                addr: RAM_BASE,
                need,
                room: dtb_addr - RAM_BASE,
            })?;
            (
                Load::ArmImage {
                    base: RAM_BASE,
                    addr,
                    bytes,
                },
                "an arm64 Image",
                addr,
                need,
            )
        }
        image::Format::Raw => {
            let addr = RAM_BASE + image::RAW_LOAD_OFFSET;
            let need = bytes.len() as u64;
            (
                Load::Bytes { addr, bytes },
                "not an arm64 Image (so a raw binary)",
                addr,
                need,
            )
        }
    };
    let room = dtb_addr.saturating_sub(addr);
    if need > room {
        return Err(BootError::KernelTooLarge {
            path: shown,
            kind,
            addr,
            need,
            room,
        });
    }
    let kernel_end = addr + need;

    let mut loads = vec![kernel_load];
    let mut initrd_range = None;
    if let Some(initrd_path) = files.initrd {
        let initrd = read_file("initrd", initrd_path, ram)?;
        let len = initrd.len() as u64;
        let lowest = kernel_end.next_multiple_of(PAGE);
        let room = dtb_addr.saturating_sub(lowest);
        if len > room {
            return Err(BootError::InitrdTooLarge {
                path: initrd_path.display().to_string(),
                size: len,
                room,
            });
        }
        let start = (dtb_addr - len) & !(PAGE - 1);
        initrd_range = Some((start, start + len));
        loads.push(Load::Bytes {
            addr: start,
            bytes: initrd,
        });
    }

    let dtb = match files.dtb {
        Some(dtb_path) => {
            let blob =
                read_file("device tree", dtb_path, fdt::MAX_SIZE as u64).map_err(|e| match e {
                    BootError::LargerThanRam { path, size, .. } => BootError::Dtb {
                        path,
                        source: fdt::DtbError::TooLarge(size as usize),
                    },
                    other => other,
                })?;
            fdt::check(&blob).map_err(|source| BootError::Dtb {
                path: dtb_path.display().to_string(),
                source,
            })?;
            blob
        }
        None => device_tree(size, files.cmdline, initrd_range)?,
    };
    let summary =
        format!(
        "kernel: {kind} at {addr:#x} ({need} bytes){}, device tree at {dtb_addr:#x} ({} bytes, {})",
        initrd_range.map_or(String::new(), |(s, e)| format!(
            ", initrd at {s:#x}-{e:#x}"
        )),
        dtb.len(),
        if files.dtb.is_some() { "given" } else { "generated" }
    );
    loads.push(Load::Bytes {
        addr: dtb_addr,
        bytes: dtb,
    });
    Ok(Boot {
        loads,
        entry: addr,
        // booting.rst: x0 = physical address of the device tree blob,
        // x1 = x2 = x3 = 0 (reserved for future use).
        regs: [dtb_addr, 0, 0, 0],
        summary,
    })
}

#[cfg(test)]
mod tests;
