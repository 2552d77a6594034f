//! Reading the flattened device tree that the Linux boot protocol passes in
//! `x0`: what the machine says about itself, as opposed to the addresses
//! compiled into the firmware (`uirq_abi::layout`).
//!
//! The blob's format is the Devicetree Specification's (v0.4, chapter 5,
//! "Flattened Devicetree (DTB) Format"); the `fdt` crate walks its nodes
//! and properties. What the firmware needs on top of that is here, free of
//! any hardware so the unit tests can run it on the build machine:
//!
//! - finding a device by `compatible` (spec 2.3.1) and keeping the path to
//!   it, because the meaning of its properties depends on its ancestors;
//! - decoding `reg` (2.3.6) with the parent's `#address-cells` and
//!   `#size-cells` (2.3.5), and refusing an address behind a bus that
//!   translates it (`ranges`, 2.3.8);
//! - decoding `interrupts` (2.4.1.1) with the interrupt parent's
//!   `#interrupt-cells` (2.4.2.1), and a GIC's three cells (Linux's binding,
//!   Documentation/devicetree/bindings/interrupt-controller/arm,gic.yaml);
//! - counting `/cpus/cpu@N` (3.7, 3.8), finding `/memory` (3.4) and
//!   `/chosen/bootargs` (3.6), and the memory the loader reserved (5.3,
//!   and the `/reserved-memory` node, 3.5);
//! - picking the program out of the kernel command line
//!   ([`uirq_abi::boot::PROGRAM_BOOTARG`]);
//! - comparing the GIC, the UART and the CPUs with the compiled-in map.
//!
//! Nodes are reached only through the `fdt` crate's `children()`, never its
//! path lookup (`find_node`), which gives up at an `FDT_NOP` token between
//! two sibling nodes. libfdt leaves such tokens where it deletes a node, as
//! QEMU does at the root of a tree it is given with `-dtb`; the spec says
//! they are to be ignored (5.4.1). A NOP *inside* a node the crate skips
//! over (between its properties, or between its children) still makes
//! version 0.1 panic ("bad node"), which ends the run with
//! `Status::Panic`; the trees of the VMM and of QEMU 7.2's `virt` have none.

use core::fmt;

use fdt::node::FdtNode;
pub use fdt::Fdt;
use uirq_abi::{
    boot::{Program, ECHO_BOOTARG, PROGRAM_BOOTARG},
    layout::{GICC_BASE, GICC_SIZE, GICD_BASE, GICD_SIZE, UART_BASE, UART_SIZE, UART_SPI},
};

/// The blob's first word, big-endian (spec 5.2, `magic`).
pub const MAGIC: u32 = 0xd00d_feed;
/// The header of a version 17 blob: ten 32-bit big-endian fields (5.2).
pub const HEADER_SIZE: usize = 40;
/// The most a blob may be: "The device tree blob (dtb) must be placed on an
/// 8-byte boundary and must not exceed 2 megabytes in size" (booting.rst,
/// section 2, "Setup the device tree").
pub const MAX_SIZE: usize = 2 << 20;
/// The alignment booting.rst asks of the blob's address.
pub const ALIGN: u64 = 8;

/// `compatible` values of a GICv2 (arm,gic.yaml): the one QEMU's `virt`
/// and the VMM write, and the GIC-400 of many boards.
pub const GIC_COMPATIBLE: [&str; 2] = ["arm,cortex-a15-gic", "arm,gic-400"];
/// `compatible` value of a PL011 UART (Linux's bindings/serial/pl011.yaml).
pub const UART_COMPATIBLE: [&str; 1] = ["arm,pl011"];

/// How deep the search descends; real trees are a handful of levels.
const MAX_DEPTH: usize = 16;

/// Why the device tree could not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtError {
    /// The first word is not [`MAGIC`].
    BadMagic(u32),
    /// `totalsize` is smaller than a header or larger than [`MAX_SIZE`].
    BadSize(usize),
    /// The `fdt` crate refused the blob.
    Unreadable,
    /// No node of the kind named.
    NoNode(&'static str),
    /// The node named has no such `reg` entry (or a short one).
    NoReg(&'static str),
    /// The addresses or sizes of the node named take more than two cells
    /// (64 bits).
    TooManyCells(&'static str),
    /// The node named sits behind a bus whose `ranges` is not empty, so its
    /// `reg` is not a CPU physical address without a translation this code
    /// does not do.
    Translated(&'static str),
    /// The node named has no `interrupts`, or no interrupt parent with
    /// `#interrupt-cells`.
    NoInterrupt(&'static str),
    /// The interrupt parent of the node named is not a GIC with three
    /// interrupt cells.
    NotGicInterrupt(&'static str),
    /// The tree is deeper than this code searches.
    TooDeep,
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DtError::BadMagic(m) => write!(f, "no device tree magic ({m:#x}, not {MAGIC:#x})"),
            DtError::BadSize(s) => write!(
                f,
                "totalsize {s:#x} is not between a header ({HEADER_SIZE} bytes) and 2 MiB"
            ),
            DtError::Unreadable => write!(f, "the blob's header is damaged"),
            DtError::NoNode(what) => write!(f, "no {what} node"),
            DtError::NoReg(what) => write!(f, "the {what} node has no such reg entry"),
            DtError::TooManyCells(what) => {
                write!(f, "the {what} node's addresses or sizes exceed 64 bits")
            }
            DtError::Translated(what) => write!(
                f,
                "the {what} node is behind a bus that translates addresses (non-empty ranges)"
            ),
            DtError::NoInterrupt(what) => write!(
                f,
                "the {what} node has no interrupts, or no interrupt parent with #interrupt-cells"
            ),
            DtError::NotGicInterrupt(what) => write!(
                f,
                "the {what} node's interrupt parent is not a GIC with 3 interrupt cells"
            ),
            DtError::TooDeep => write!(f, "the tree is more than {MAX_DEPTH} levels deep"),
        }
    }
}

/// `totalsize` from the first 8 bytes of a blob (5.2: `magic`, then
/// `totalsize`, both big-endian), checked against the boot protocol's
/// limit.
pub fn blob_size(first: [u8; 8]) -> Result<usize, DtError> {
    let magic = u32::from_be_bytes([first[0], first[1], first[2], first[3]]);
    let size = u32::from_be_bytes([first[4], first[5], first[6], first[7]]) as usize;
    if magic != MAGIC {
        Err(DtError::BadMagic(magic))
    } else if !(HEADER_SIZE..=MAX_SIZE).contains(&size) {
        Err(DtError::BadSize(size))
    } else {
        Ok(size)
    }
}

/// The blob `bytes` (exactly its `totalsize` bytes, or more), ready to be
/// read.
pub fn open(bytes: &[u8]) -> Result<Fdt<'_>, DtError> {
    let first = bytes.get(..8).ok_or(DtError::Unreadable)?;
    blob_size([0, 1, 2, 3, 4, 5, 6, 7].map(|i| first[i]))?;
    Fdt::new(bytes).map_err(|_| DtError::Unreadable)
}

/// A `reg` entry: a range of CPU physical addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First address.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Region {
    /// The first address after the range (saturating: a tree may say
    /// anything).
    pub const fn end(self) -> u64 {
        self.base.saturating_add(self.size)
    }

    /// True when the two ranges share an address.
    pub const fn overlaps(self, other: Region) -> bool {
        self.base < other.end() && other.base < self.end()
    }
}

/// The first cell of a GIC interrupt specifier (arm,gic.yaml).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicInterruptKind {
    /// 0: a shared peripheral interrupt, interrupt id 32 + number.
    Spi,
    /// 1: a private peripheral interrupt, interrupt id 16 + number.
    Ppi,
    /// Anything else (the binding defines no other value for a GICv2).
    Other(u32),
}

/// One GIC interrupt specifier: `<kind number flags>` (arm,gic.yaml).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicInterrupt {
    /// Cell 1: SPI or PPI.
    pub kind: GicInterruptKind,
    /// Cell 2: the SPI or PPI number (not the interrupt id).
    pub number: u32,
    /// Cell 3: bits \[3:0\] the trigger type, bits \[15:8\] a PPI's CPU mask.
    pub flags: u32,
}

impl GicInterrupt {
    /// The GIC's interrupt id (`GICC_IAR`), if the kind is known.
    pub const fn id(self) -> Option<u32> {
        match self.kind {
            GicInterruptKind::Spi => Some(32 + self.number),
            GicInterruptKind::Ppi => Some(16 + self.number),
            GicInterruptKind::Other(_) => None,
        }
    }

    /// The trigger type of the flags cell, bits \[3:0\], as the binding names
    /// them (1 edge rising, 2 edge falling, 4 level high, 8 level low).
    pub const fn trigger(self) -> &'static str {
        match self.flags & 0xf {
            1 => "edge-rising",
            2 => "edge-falling",
            4 => "level-high",
            8 => "level-low",
            _ => "trigger unspecified",
        }
    }
}

impl fmt::Display for GicInterrupt {
    /// `spi 1 (id 33, level-high)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.id()) {
            (GicInterruptKind::Spi, Some(id)) => {
                write!(f, "spi {} (id {id}, {})", self.number, self.trigger())
            }
            (GicInterruptKind::Ppi, Some(id)) => {
                write!(f, "ppi {} (id {id}, {})", self.number, self.trigger())
            }
            (kind, _) => write!(f, "{kind:?} {} flags {:#x}", self.number, self.flags),
        }
    }
}

/// A node and the path of nodes from the root down to it.
#[derive(Clone, Copy)]
struct Located<'b, 'a> {
    /// `path[0]` is the root, `path[len - 1]` the node.
    path: [Option<FdtNode<'b, 'a>>; MAX_DEPTH],
    len: usize,
    /// What the node is, for error messages.
    what: &'static str,
}

impl<'b, 'a> Located<'b, 'a> {
    fn at(&self, i: usize) -> FdtNode<'b, 'a> {
        self.path[i].expect("every entry below len is set")
    }

    fn node(&self) -> FdtNode<'b, 'a> {
        self.at(self.len - 1)
    }

    /// Entry `index` of the node's `reg`, as a CPU physical address range.
    fn reg(&self, index: usize) -> Result<Region, DtError> {
        if self.len < 2 {
            return Err(DtError::NoReg(self.what));
        }
        // Between the root and the node, every bus must map its children's
        // addresses to its own one to one: an empty `ranges` (2.3.8). A bus
        // without `ranges` does not map them at all.
        for i in 1..self.len - 1 {
            match self.at(i).property("ranges") {
                Some(ranges) if ranges.value.is_empty() => {}
                _ => return Err(DtError::Translated(self.what)),
            }
        }
        reg(self.at(self.len - 2), self.node(), index, self.what)
    }

    /// The node's interrupt parent, found the way Linux's
    /// `of_irq_find_parent()` does: follow `interrupt-parent` (2.4.1.2)
    /// where a node has one, go up to the tree parent where it does not,
    /// until a node has `#interrupt-cells` (2.4.2.1). So a device without
    /// `interrupt-parent` under a root that names the GIC (as QEMU's
    /// `virt` and the VMM write it) is the GIC's.
    fn interrupt_parent(&self, fdt: &'b Fdt<'a>) -> Result<FdtNode<'b, 'a>, DtError> {
        let none = DtError::NoInterrupt(self.what);
        let mut current = *self;
        for _ in 0..2 * MAX_DEPTH {
            current = match current.node().property("interrupt-parent") {
                Some(p) => {
                    let target = be_u32(p.value).ok_or(none)?;
                    find(fdt, self.what, &|n| phandle(n) == Some(target)).map_err(|_| none)?
                }
                None if current.len > 1 => Located {
                    len: current.len - 1,
                    ..current
                },
                None => return Err(none),
            };
            if current.node().property("#interrupt-cells").is_some() {
                return Ok(current.node());
            }
        }
        Err(none)
    }

    /// Entry `index` of the node's `interrupts`, decoded as a GIC's.
    fn gic_interrupt(&self, fdt: &'b Fdt<'a>, index: usize) -> Result<GicInterrupt, DtError> {
        let parent = self.interrupt_parent(fdt)?;
        let cells = parent
            .property("#interrupt-cells")
            .and_then(|p| be_u32(p.value))
            .ok_or(DtError::NoInterrupt(self.what))?;
        if cells != 3 || !is_compatible(parent, &GIC_COMPATIBLE) {
            return Err(DtError::NotGicInterrupt(self.what));
        }
        let spec = self
            .node()
            .property("interrupts")
            .and_then(|p| p.value.chunks_exact(12).nth(index))
            .ok_or(DtError::NoInterrupt(self.what))?;
        let cell = |i: usize| be_u32(&spec[4 * i..4 * i + 4]).unwrap_or(0);
        Ok(GicInterrupt {
            kind: match cell(0) {
                0 => GicInterruptKind::Spi,
                1 => GicInterruptKind::Ppi,
                other => GicInterruptKind::Other(other),
            },
            number: cell(1),
            flags: cell(2),
        })
    }
}

/// A big-endian 32-bit cell, if `bytes` is exactly one.
fn be_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

/// A number of up to two big-endian cells (0 cells: 0).
fn be_cells(bytes: &[u8]) -> u64 {
    bytes
        .chunks_exact(4)
        .fold(0, |acc, c| (acc << 32) | u64::from(be_u32(c).unwrap_or(0)))
}

/// `#address-cells` or `#size-cells` of `node`, or the spec's default when
/// it has none (2.3.5: "a default value of 2 for #address-cells, and a
/// value of 1 for #size-cells").
fn cells(node: FdtNode<'_, '_>, name: &str, default: u32) -> Option<u32> {
    match node.property(name) {
        Some(p) => be_u32(p.value),
        None => Some(default),
    }
}

/// Entry `index` of `node`'s `reg`, whose layout `parent` gives (2.3.6).
fn reg(
    parent: FdtNode<'_, '_>,
    node: FdtNode<'_, '_>,
    index: usize,
    what: &'static str,
) -> Result<Region, DtError> {
    let too_many = DtError::TooManyCells(what);
    let address_cells = cells(parent, "#address-cells", 2).ok_or(too_many)? as usize;
    let size_cells = cells(parent, "#size-cells", 1).ok_or(too_many)? as usize;
    if address_cells > 2 || size_cells > 2 {
        return Err(too_many);
    }
    let entry = 4 * (address_cells + size_cells);
    if entry == 0 {
        return Err(DtError::NoReg(what));
    }
    let bytes = node
        .property("reg")
        .and_then(|p| p.value.chunks_exact(entry).nth(index))
        .ok_or(DtError::NoReg(what))?;
    let (base, size) = bytes.split_at(4 * address_cells);
    Ok(Region {
        base: be_cells(base),
        size: be_cells(size),
    })
}

/// True when one of `node`'s `compatible` strings is in `with`.
fn is_compatible(node: FdtNode<'_, '_>, with: &[&str]) -> bool {
    node.compatible()
        .is_some_and(|c| c.all().any(|s| with.contains(&s)))
}

/// The node name without its unit address (2.2.1: `name@unit-address`).
fn base_name<'a>(node: FdtNode<'_, 'a>) -> &'a str {
    node.name.split('@').next().unwrap_or(node.name)
}

/// The root node, as a path of one.
fn root<'b, 'a>(fdt: &'b Fdt<'a>, what: &'static str) -> Result<Located<'b, 'a>, DtError> {
    let mut path = [None; MAX_DEPTH];
    path[0] = Some(fdt.find_node("/").ok_or(DtError::NoNode("root"))?);
    Ok(Located { path, len: 1, what })
}

/// The first node, depth first, for which `wanted` is true, with its path.
///
/// The walk goes through `children()` only: the `fdt` crate's path lookup
/// (`find_node`) stops at an `FDT_NOP` token between two sibling nodes
/// (which libfdt leaves where it deleted a node, as QEMU does to a `-dtb`
/// it is given), while `children()` skips them (spec 5.4.1: "ignored by
/// any program parsing the device tree").
fn find<'b, 'a>(
    fdt: &'b Fdt<'a>,
    what: &'static str,
    wanted: &dyn Fn(FdtNode<'b, 'a>) -> bool,
) -> Result<Located<'b, 'a>, DtError> {
    fn search<'b, 'a>(
        at: &mut Located<'b, 'a>,
        wanted: &dyn Fn(FdtNode<'b, 'a>) -> bool,
    ) -> Result<bool, DtError> {
        let node = at.node();
        if wanted(node) {
            return Ok(true);
        }
        for child in node.children() {
            if at.len == MAX_DEPTH {
                return Err(DtError::TooDeep);
            }
            at.path[at.len] = Some(child);
            at.len += 1;
            if search(at, wanted)? {
                return Ok(true);
            }
            at.len -= 1;
        }
        Ok(false)
    }
    let mut at = root(fdt, what)?;
    if search(&mut at, wanted)? {
        Ok(at)
    } else {
        Err(DtError::NoNode(what))
    }
}

/// The node's `phandle` (2.3.3), or the `linux,phandle` of older trees.
fn phandle(node: FdtNode<'_, '_>) -> Option<u32> {
    node.property("phandle")
        .or_else(|| node.property("linux,phandle"))
        .and_then(|p| be_u32(p.value))
}

/// The first node whose `compatible` includes one of `with`.
fn find_compatible<'b, 'a>(
    fdt: &'b Fdt<'a>,
    with: &[&str],
    what: &'static str,
) -> Result<Located<'b, 'a>, DtError> {
    find(fdt, what, &|n| is_compatible(n, with))
}

/// The first child of the root whose name (without unit address) is
/// `name`.
fn root_child<'b, 'a>(fdt: &'b Fdt<'a>, name: &'static str) -> Result<Located<'b, 'a>, DtError> {
    let mut at = root(fdt, name)?;
    let child = at
        .node()
        .children()
        .find(|c| base_name(*c) == name)
        .ok_or(DtError::NoNode(name))?;
    at.path[1] = Some(child);
    at.len = 2;
    Ok(at)
}

/// The GICv2's register frames, from its `reg` (arm,gic.yaml: the
/// distributor, then the CPU interface; a GIC with virtualization
/// extensions lists two more, which the firmware does not use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gic {
    /// `GICD`.
    pub distributor: Region,
    /// `GICC`.
    pub cpu_interface: Region,
}

/// The GIC: the first node compatible with [`GIC_COMPATIBLE`].
pub fn gic(fdt: &Fdt<'_>) -> Result<Gic, DtError> {
    let at = find_compatible(
        fdt,
        &GIC_COMPATIBLE,
        "GICv2 (arm,cortex-a15-gic or arm,gic-400)",
    )?;
    Ok(Gic {
        distributor: at.reg(0)?,
        cpu_interface: at.reg(1)?,
    })
}

/// The PL011: its registers and its interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    /// The register frame, `reg` entry 0.
    pub registers: Region,
    /// `interrupts` entry 0, a GIC interrupt.
    pub interrupt: GicInterrupt,
}

/// The UART: the first node compatible with [`UART_COMPATIBLE`].
pub fn uart(fdt: &Fdt<'_>) -> Result<Uart, DtError> {
    let at = find_compatible(fdt, &UART_COMPATIBLE, "PL011 (arm,pl011)")?;
    Ok(Uart {
        registers: at.reg(0)?,
        interrupt: at.gic_interrupt(fdt, 0)?,
    })
}

/// How many CPUs `/cpus` lists: its children named `cpu` or `cpu@N`
/// (3.8; other children, such as `cpu-map`, are not CPUs).
pub fn cpu_count(fdt: &Fdt<'_>) -> Result<usize, DtError> {
    let cpus = root_child(fdt, "cpus")?.node();
    Ok(cpus.children().filter(|c| base_name(*c) == "cpu").count())
}

/// The first range of RAM in the first `/memory` node (3.4).
pub fn memory(fdt: &Fdt<'_>) -> Result<Region, DtError> {
    root_child(fdt, "memory")?.reg(0)
}

/// The root's `model` (3.2), if it has one.
pub fn model<'a>(fdt: &Fdt<'a>) -> Option<&'a str> {
    fdt.find_node("/")?.property("model")?.as_str()
}

/// The root's `compatible` strings (3.2), none if it has none.
pub fn compatible<'a>(fdt: &Fdt<'a>) -> impl Iterator<Item = &'a str> {
    fdt.find_node("/")
        .and_then(|root| root.property("compatible"))
        .map(|p| p.value)
        .unwrap_or(&[])
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| core::str::from_utf8(s).ok())
}

/// `/chosen/bootargs`, the kernel command line (3.6), if there is one.
pub fn bootargs<'a>(fdt: &Fdt<'a>) -> Option<&'a str> {
    root_child(fdt, "chosen")
        .ok()?
        .node()
        .property("bootargs")?
        .as_str()
}

/// A memory range the loader reserved that overlaps `region`, if there is
/// one: a `/memreserve/` entry (5.3) or a `reg` of a `/reserved-memory`
/// child (3.5).
pub fn reserved_overlap(fdt: &Fdt<'_>, region: Region) -> Option<Region> {
    let mut memreserve = fdt.memory_reservations().map(|r| Region {
        base: r.address() as u64,
        size: r.size() as u64,
    });
    if let Some(r) = memreserve.find(|r| r.overlaps(region)) {
        return Some(r);
    }
    let reserved = root_child(fdt, "reserved-memory").ok()?.node();
    reserved.children().find_map(|child| {
        (0..)
            .map_while(|i| reg(reserved, child, i, "reserved-memory").ok())
            .find(|r| r.overlaps(region))
    })
}

/// `s` without a closing double quote, if `quoted`.
fn unquote_end(s: &str, quoted: bool) -> &str {
    if quoted {
        s.strip_suffix('"').unwrap_or(s)
    } else {
        s
    }
}

/// Splits a kernel command line into words the way Linux does
/// (`next_arg()` in lib/cmdline.c): whitespace separates words, except
/// inside double quotes.
pub fn words(cmdline: &str) -> impl Iterator<Item = &str> {
    let bytes = cmdline.as_bytes();
    let mut i = 0;
    core::iter::from_fn(move || {
        while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        if i == bytes.len() {
            return None;
        }
        let start = i;
        let mut quoted = false;
        while let Some(&b) = bytes.get(i) {
            if b.is_ascii_whitespace() && !quoted {
                break;
            }
            if b == b'"' {
                quoted = !quoted;
            }
            i += 1;
        }
        // Both ends are at ASCII bytes (or the end), so on char boundaries.
        Some(&cmdline[start..i])
    })
}

/// A word split into `param` and `value` as Linux's `next_arg()` does: at
/// the first `=`, without the quotes around the whole word or around the
/// value.
pub fn param_value(word: &str) -> (&str, Option<&str>) {
    let (word, quoted) = match word.strip_prefix('"') {
        Some(rest) => (rest, true),
        None => (word, false),
    };
    match word.split_once('=') {
        None => (unquote_end(word, quoted), None),
        Some((param, value)) => {
            let value = match value.strip_prefix('"') {
                Some(v) => unquote_end(v, true),
                None => unquote_end(value, quoted),
            };
            (param, Some(value))
        }
    }
}

/// The `NAME` of the program a command line asks for with
/// `uirq.program=NAME`. As with Linux's own parameters, the last one
/// counts, and nothing after a `--` word (which Linux hands to init) is
/// looked at, nor the `echo` program's text ([`echo_text`]).
pub fn program_name(cmdline: &str) -> Option<&str> {
    let key = PROGRAM_BOOTARG.strip_suffix('=').unwrap_or(PROGRAM_BOOTARG);
    words(cmdline)
        .take_while(|&w| w != "--" && !w.starts_with(ECHO_BOOTARG))
        .filter_map(|w| match param_value(w) {
            (param, Some(value)) if param == key => Some(value),
            _ => None,
        })
        .last()
}

/// The `echo` program's text: everything after the first word that starts
/// with `uirq.echo=`, to the end of the command line, as it stands (spaces,
/// quotes and all). `None` without such a word.
pub fn echo_text(cmdline: &str) -> Option<&str> {
    let word = words(cmdline)
        .take_while(|&w| w != "--")
        .find(|w| w.starts_with(ECHO_BOOTARG))?;
    // `word` is a slice of `cmdline`: its offset in it.
    let at = word.as_ptr() as usize - cmdline.as_ptr() as usize;
    cmdline.get(at + ECHO_BOOTARG.len()..)
}

/// The lines of an `echo` text: split at each `\n` (a backslash and an
/// `n`, which a command line can hold where a line break cannot).
pub fn echo_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split("\\n")
}

/// The program a command line asks for: `None` when it names none, the
/// unknown name when it names one the firmware does not have.
pub fn program(cmdline: &str) -> Option<Result<Program, &str>> {
    program_name(cmdline).map(|name| Program::from_name(name).ok_or(name))
}

/// What the device tree says, as far as the firmware checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// The GIC.
    pub gic: Gic,
    /// The UART.
    pub uart: Uart,
    /// Number of CPUs.
    pub cpus: usize,
}

/// How a device tree value must relate to the compiled-in one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The same value (an address, an interrupt).
    Equal,
    /// At least the value (a frame the driver uses this much of; a count).
    AtLeast,
}

/// One way the device tree disagrees with the compiled-in memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// What was compared, as the `dt-info` lines name it.
    pub what: &'static str,
    /// The device tree's value.
    pub found: u64,
    /// The compiled-in value.
    pub expected: u64,
    /// How they must relate.
    pub expect: Expect,
    /// Whether the values are addresses and sizes (printed in hex) or
    /// numbers (decimal).
    pub hex: bool,
}

impl fmt::Display for Mismatch {
    /// `gic distributor 0x2c001000 in the device tree, 0x8000000 compiled
    /// in`, or `gic cpu interface size 0x1000 in the device tree, at least
    /// 0x2000 needed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Mismatch {
            what,
            found,
            expected,
            expect,
            hex,
        } = *self;
        write!(f, "{what} ")?;
        if hex {
            write!(f, "{found:#x}")?;
        } else {
            write!(f, "{found}")?;
        }
        f.write_str(match expect {
            Expect::Equal => " in the device tree, ",
            Expect::AtLeast => " in the device tree, at least ",
        })?;
        if hex {
            write!(f, "{expected:#x}")?;
        } else {
            write!(f, "{expected}")?;
        }
        f.write_str(match expect {
            Expect::Equal => " compiled in",
            Expect::AtLeast => " needed",
        })
    }
}

/// Every way `machine` differs from the firmware's compiled-in map
/// (`uirq_abi::layout`): the GIC frames and the UART must be where the
/// drivers reach them, their frames at least as large as the registers the
/// drivers use (QEMU's `virt` describes 64 KiB frames, the VMM the 4 and
/// 8 KiB the GICv2 defines), the UART's interrupt the SPI the map says,
/// and there must be a CPU.
pub fn mismatches(machine: &Machine) -> impl Iterator<Item = Mismatch> {
    let Machine { gic, uart, cpus } = *machine;
    let uart_id = u64::from(uart.interrupt.id().unwrap_or(u32::MAX));
    let check = |what, found, expected, expect, hex| {
        let ok = match expect {
            Expect::Equal => found == expected,
            Expect::AtLeast => found >= expected,
        };
        (!ok).then_some(Mismatch {
            what,
            found,
            expected,
            expect,
            hex,
        })
    };
    use Expect::{AtLeast, Equal};
    let d = gic.distributor;
    let c = gic.cpu_interface;
    let u = uart.registers;
    [
        check("gic distributor", d.base, GICD_BASE, Equal, true),
        check("gic distributor size", d.size, GICD_SIZE, AtLeast, true),
        check("gic cpu interface", c.base, GICC_BASE, Equal, true),
        check("gic cpu interface size", c.size, GICC_SIZE, AtLeast, true),
        check("uart", u.base, UART_BASE, Equal, true),
        check("uart size", u.size, UART_SIZE, AtLeast, true),
        check(
            "uart interrupt id",
            uart_id,
            u64::from(32 + UART_SPI),
            Equal,
            false,
        ),
        check("cpus", cpus as u64, 1, AtLeast, false),
    ]
    .into_iter()
    .flatten()
}

/// Reads [`Machine`] from the tree.
pub fn machine(fdt: &Fdt<'_>) -> Result<Machine, DtError> {
    Ok(Machine {
        gic: gic(fdt)?,
        uart: uart(fdt)?,
        cpus: cpu_count(fdt)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::{FdtReserveEntry, FdtWriter};

    const GIC_PHANDLE: u32 = 1;

    /// The tree the VMM (and, up to sizes, QEMU's `virt`) writes: two
    /// cells of address and size at the root, the GIC named as every
    /// device's interrupt parent by the root.
    fn vmm_like(cpus: u32, bootargs: &str) -> Vec<u8> {
        let reserved = [FdtReserveEntry::new(0x4800_0000, 0x1000).unwrap()];
        let mut w = FdtWriter::new_with_mem_reserv(&reserved).unwrap();
        let root = w.begin_node("").unwrap();
        w.property_string("compatible", "linux,dummy-virt").unwrap();
        w.property_string("model", "uirq-vmm (userspace GICv2)")
            .unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_u32("interrupt-parent", GIC_PHANDLE).unwrap();

        let memory = w.begin_node("memory@40000000").unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_array_u64("reg", &[0x4000_0000, 64 << 20])
            .unwrap();
        w.end_node(memory).unwrap();

        let cpus_node = w.begin_node("cpus").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 0).unwrap();
        for cpu in 0..cpus {
            let c = w.begin_node(&format!("cpu@{cpu:x}")).unwrap();
            w.property_string("device_type", "cpu").unwrap();
            w.property_u32("reg", cpu).unwrap();
            w.end_node(c).unwrap();
        }
        let map = w.begin_node("cpu-map").unwrap();
        w.end_node(map).unwrap();
        w.end_node(cpus_node).unwrap();

        let gic = w.begin_node("intc@8000000").unwrap();
        w.property_string("compatible", "arm,cortex-a15-gic")
            .unwrap();
        w.property_null("interrupt-controller").unwrap();
        w.property_u32("#interrupt-cells", 3).unwrap();
        w.property_array_u64("reg", &[0x800_0000, 0x1000, 0x801_0000, 0x2000])
            .unwrap();
        w.property_phandle(GIC_PHANDLE).unwrap();
        w.end_node(gic).unwrap();

        let uart = w.begin_node("pl011@9000000").unwrap();
        w.property_string_list(
            "compatible",
            vec!["arm,pl011".to_string(), "arm,primecell".to_string()],
        )
        .unwrap();
        w.property_array_u64("reg", &[0x900_0000, 0x1000]).unwrap();
        w.property_array_u32("interrupts", &[0, 1, 4]).unwrap();
        w.end_node(uart).unwrap();

        let chosen = w.begin_node("chosen").unwrap();
        w.property_string("bootargs", bootargs).unwrap();
        w.end_node(chosen).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn reads_the_vmm_tree() {
        let blob = vmm_like(2, "console=ttyAMA0 uirq.program=dt-info");
        let fdt = open(&blob).unwrap();
        let m = machine(&fdt).unwrap();
        assert_eq!(
            m.gic,
            Gic {
                distributor: Region {
                    base: 0x800_0000,
                    size: 0x1000
                },
                cpu_interface: Region {
                    base: 0x801_0000,
                    size: 0x2000
                },
            }
        );
        assert_eq!(
            m.uart.registers,
            Region {
                base: 0x900_0000,
                size: 0x1000
            }
        );
        assert_eq!(
            m.uart.interrupt,
            GicInterrupt {
                kind: GicInterruptKind::Spi,
                number: 1,
                flags: 4
            }
        );
        assert_eq!(m.uart.interrupt.id(), Some(33));
        assert_eq!(m.uart.interrupt.to_string(), "spi 1 (id 33, level-high)");
        assert_eq!(m.cpus, 2, "cpu-map is not a CPU");
        assert_eq!(mismatches(&m).count(), 0);
        assert_eq!(
            memory(&fdt).unwrap(),
            Region {
                base: 0x4000_0000,
                size: 64 << 20
            }
        );
        assert_eq!(model(&fdt), Some("uirq-vmm (userspace GICv2)"));
        assert!(compatible(&fdt).eq(["linux,dummy-virt"]));
        assert_eq!(bootargs(&fdt), Some("console=ttyAMA0 uirq.program=dt-info"));
        assert_eq!(fdt.total_size(), blob.len());
    }

    /// `blob` with `n` FDT_NOP tokens inserted before the node `name`
    /// begins, and the header fixed up (the strings block follows the
    /// structure block, as vm-fdt writes them).
    fn with_nops_before(mut blob: Vec<u8>, name: &str, n: usize) -> Vec<u8> {
        let mut token = 1u32.to_be_bytes().to_vec();
        token.extend_from_slice(name.as_bytes());
        token.push(0);
        let at = blob
            .windows(token.len())
            .position(|w| w == token)
            .expect("node present");
        let nops: Vec<u8> = (0..n).flat_map(|_| 4u32.to_be_bytes()).collect();
        blob.splice(at..at, nops);
        let grow = |blob: &mut Vec<u8>, field: usize| {
            let v = u32::from_be_bytes(blob[4 * field..4 * field + 4].try_into().unwrap());
            blob[4 * field..4 * field + 4].copy_from_slice(&(v + 4 * n as u32).to_be_bytes());
        };
        grow(&mut blob, 1); // totalsize
        grow(&mut blob, 3); // off_dt_strings
        grow(&mut blob, 9); // size_dt_struct
        blob
    }

    /// What QEMU makes of a `-dtb` it is given: libfdt turns the nodes it
    /// replaces into FDT_NOP tokens between the root's children.
    #[test]
    fn nops_between_nodes_are_skipped() {
        let blob = vmm_like(2, "uirq.program=spin");
        let blob = with_nops_before(blob, "memory@40000000", 18);
        let blob = with_nops_before(blob, "chosen", 3);
        let blob = with_nops_before(blob, "pl011@9000000", 1);
        let fdt = open(&blob).unwrap();
        assert_eq!(bootargs(&fdt), Some("uirq.program=spin"));
        assert_eq!(program(bootargs(&fdt).unwrap()), Some(Ok(Program::Spin)));
        let m = machine(&fdt).unwrap();
        assert_eq!(m.cpus, 2);
        assert_eq!(m.uart.interrupt.id(), Some(33));
        assert_eq!(mismatches(&m).count(), 0);
        assert_eq!(memory(&fdt).unwrap().size, 64 << 20);
    }

    #[test]
    fn reserved_memory_overlap() {
        let blob = vmm_like(1, "");
        let fdt = open(&blob).unwrap();
        let firmware = Region {
            base: 0x4000_0000,
            size: 0x30_0000,
        };
        assert_eq!(reserved_overlap(&fdt, firmware), None);
        let over = Region {
            base: 0x47ff_f000,
            size: 0x2000,
        };
        assert_eq!(
            reserved_overlap(&fdt, over),
            Some(Region {
                base: 0x4800_0000,
                size: 0x1000
            })
        );
    }

    /// One cell of address and size, the GIC found through
    /// `interrupt-parent` on the device itself, a bus with an empty
    /// `ranges` in between, and QEMU's 64 KiB frames.
    #[test]
    fn one_cell_addresses_behind_an_identity_bus() {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        let cpus = w.begin_node("cpus").unwrap();
        let cpu = w.begin_node("cpu").unwrap();
        w.end_node(cpu).unwrap();
        w.end_node(cpus).unwrap();
        let bus = w.begin_node("soc").unwrap();
        w.property_null("ranges").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        let gic = w.begin_node("interrupt-controller@8000000").unwrap();
        w.property_string("compatible", "arm,gic-400").unwrap();
        w.property_u32("#interrupt-cells", 3).unwrap();
        w.property_array_u32("reg", &[0x800_0000, 0x1_0000, 0x801_0000, 0x1_0000])
            .unwrap();
        w.property_phandle(7).unwrap();
        w.end_node(gic).unwrap();
        let uart = w.begin_node("serial@9000000").unwrap();
        w.property_string("compatible", "arm,pl011").unwrap();
        w.property_u32("interrupt-parent", 7).unwrap();
        w.property_array_u32("reg", &[0x900_0000, 0x1000]).unwrap();
        w.property_array_u32("interrupts", &[0, 1, 4]).unwrap();
        w.end_node(uart).unwrap();
        w.end_node(bus).unwrap();
        w.end_node(root).unwrap();
        let blob = w.finish().unwrap();

        let fdt = open(&blob).unwrap();
        let m = machine(&fdt).unwrap();
        assert_eq!(m.gic.distributor.base, 0x800_0000);
        assert_eq!(m.gic.cpu_interface.size, 0x1_0000);
        assert_eq!(m.uart.registers.base, 0x900_0000);
        assert_eq!(m.uart.interrupt.id(), Some(33));
        assert_eq!(m.cpus, 1);
        assert_eq!(mismatches(&m).count(), 0, "larger frames are fine");
        assert_eq!(bootargs(&fdt), None);
        assert_eq!(model(&fdt), None);
    }

    /// A bus that translates addresses (non-empty `ranges`) is refused,
    /// and so is a device whose interrupt parent is not a GIC.
    #[test]
    fn translated_bus_and_foreign_interrupt_parent() {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        let bus = w.begin_node("bus").unwrap();
        w.property_array_u32("ranges", &[0, 0x1000_0000, 0x100_0000])
            .unwrap();
        let g = w.begin_node("gic@0").unwrap();
        w.property_string("compatible", "arm,cortex-a15-gic")
            .unwrap();
        w.property_array_u32("reg", &[0, 0x1000, 0x1_0000, 0x2000])
            .unwrap();
        w.end_node(g).unwrap();
        w.end_node(bus).unwrap();
        let intc = w.begin_node("intc").unwrap();
        w.property_u32("#interrupt-cells", 1).unwrap();
        w.property_phandle(3).unwrap();
        w.end_node(intc).unwrap();
        let u = w.begin_node("uart@9000000").unwrap();
        w.property_string("compatible", "arm,pl011").unwrap();
        w.property_u32("interrupt-parent", 3).unwrap();
        w.property_array_u32("reg", &[0x900_0000, 0x1000]).unwrap();
        w.property_array_u32("interrupts", &[5]).unwrap();
        w.end_node(u).unwrap();
        w.end_node(root).unwrap();
        let blob = w.finish().unwrap();

        let fdt = open(&blob).unwrap();
        assert!(matches!(gic(&fdt), Err(DtError::Translated(_))));
        assert!(matches!(uart(&fdt), Err(DtError::NotGicInterrupt(_))));
        assert!(matches!(cpu_count(&fdt), Err(DtError::NoNode("cpus"))));
    }

    #[test]
    fn mismatches_name_what_differs() {
        let blob = vmm_like(0, "");
        let fdt = open(&blob).unwrap();
        let mut m = machine(&fdt).unwrap();
        m.gic.distributor.base = 0x2c00_1000;
        m.gic.cpu_interface.size = 0x1000;
        m.uart.interrupt.number = 3;
        let lines: Vec<String> = mismatches(&m).map(|x| x.to_string()).collect();
        assert_eq!(
            lines,
            [
                "gic distributor 0x2c001000 in the device tree, 0x8000000 compiled in",
                "gic cpu interface size 0x1000 in the device tree, at least 0x2000 needed",
                "uart interrupt id 35 in the device tree, 33 compiled in",
                "cpus 0 in the device tree, at least 1 needed",
            ]
        );
    }

    #[test]
    fn blob_header_checks() {
        let blob = vmm_like(1, "");
        let first: [u8; 8] = blob[..8].try_into().unwrap();
        assert_eq!(blob_size(first), Ok(blob.len()));
        assert_eq!(
            blob_size(*b"\x00\x00\x00\x01\x00\x00\x10\x00"),
            Err(DtError::BadMagic(1))
        );
        assert_eq!(
            blob_size(*b"\xd0\x0d\xfe\xed\x00\x30\x00\x00"),
            Err(DtError::BadSize(0x30_0000))
        );
        assert_eq!(
            blob_size(*b"\xd0\x0d\xfe\xed\x00\x00\x00\x08"),
            Err(DtError::BadSize(8))
        );
        assert!(matches!(open(&blob[..4]), Err(DtError::Unreadable)));
        assert!(matches!(
            open(&blob[..blob.len() - 1]),
            Err(DtError::Unreadable)
        ));
    }

    #[test]
    fn words_split_like_linux() {
        assert!(words("  a b\t\"c d\"  e=\"f g\" ").eq(["a", "b", "\"c d\"", "e=\"f g\""]));
        assert_eq!(words("").count(), 0);
        assert_eq!(param_value("a=b=c"), ("a", Some("b=c")));
        assert_eq!(param_value("a=\"b c\""), ("a", Some("b c")));
        assert_eq!(param_value("\"a=b c\""), ("a", Some("b c")));
        assert_eq!(param_value("quiet"), ("quiet", None));
        assert_eq!(param_value("\"quiet\""), ("quiet", None));
    }

    #[test]
    fn program_from_the_command_line() {
        assert_eq!(
            program_name("console=ttyAMA0 uirq.program=dt-info"),
            Some("dt-info")
        );
        assert_eq!(
            program_name("uirq.program=timer uirq.program=spin"),
            Some("spin")
        );
        assert_eq!(program_name("uirq.program=\"spin\""), Some("spin"));
        assert_eq!(program_name("xuirq.program=spin uirq.programs=spin"), None);
        assert_eq!(program_name("quiet -- uirq.program=spin"), None);
        assert_eq!(program_name(""), None);
        assert_eq!(
            program("earlycon uirq.program=preempt"),
            Some(Ok(Program::Preemption))
        );
        assert_eq!(program("uirq.program=nope"), Some(Err("nope")));
        assert_eq!(program("uirq.program="), Some(Err("")));
        assert_eq!(program("root=/dev/vda"), None);
    }

    #[test]
    fn the_echo_text_is_the_rest_of_the_command_line_as_it_stands() {
        let cmdline = "console=ttyAMA0 uirq.program=echo uirq.echo=@@uirq job 0 exit 0\\n@@bench {\"irqchip\":\"user\"}\\n  uirq.program=spin";
        let text = echo_text(cmdline).unwrap();
        assert!(echo_lines(text).eq([
            "@@uirq job 0 exit 0",
            "@@bench {\"irqchip\":\"user\"}",
            "  uirq.program=spin"
        ]));
        // The text is the echo's, not a program choice.
        assert_eq!(
            program("uirq.program=echo uirq.echo=x uirq.program=spin"),
            Some(Ok(Program::Echo))
        );
        assert_eq!(echo_text("uirq.echo="), Some(""));
        assert!(echo_lines("").eq([""]));
        assert_eq!(echo_text("quiet xuirq.echo=no"), None);
        assert_eq!(echo_text("quiet -- uirq.echo=init's"), None);
    }
}
