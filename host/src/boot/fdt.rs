//! The device tree that describes the machine this VMM builds.
//!
//! A kernel that follows the arm64 boot protocol learns the machine only
//! from the flattened device tree whose address arrives in `x0`. This one
//! is generated for each run with the rust-vmm `vm-fdt` crate and says
//! exactly what the VMM provides, one function per node:
//!
//! ```text
//! / (linux,dummy-virt; interrupt-parent = the GIC)
//! ├─ memory@40000000   guest RAM
//! ├─ cpus              one cpu@N per vCPU, started with PSCI
//! ├─ psci              PSCI 0.2 through HVC (KVM implements it)
//! ├─ intc@8000000      the GICv2: distributor and CPU interface frames
//! ├─ timer             the generic timer's four PPIs
//! ├─ apb-pclk          the 24 MHz clock the PL011 names
//! ├─ pl011@9000000     the UART and its SPI
//! └─ chosen            command line, console, initrd
//! ```
//!
//! Names and values follow the Devicetree Specification v0.4 and the Linux
//! bindings (Documentation/devicetree/bindings/...), and the addresses the
//! same layout as QEMU's `virt` (`uirq_abi::layout`).

use vm_fdt::{FdtWriter, FdtWriterResult};

use uirq_abi::layout::{
    GICC_BASE, GICC_SIZE, GICD_BASE, GICD_SIZE, RAM_BASE, UART_BASE, UART_SIZE, UART_SPI,
};

/// Phandle of the GIC node, the interrupt parent of every device.
const GIC_PHANDLE: u32 = 1;
/// Phandle of the PL011's clock.
const CLOCK_PHANDLE: u32 = 2;

/// Interrupt specifier, first cell (bindings/interrupt-controller/arm,gic.yaml):
/// 0 for an SPI, 1 for a PPI.
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
/// Third cell, bits [3:0]: 4 = level-sensitive, active high.
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;

/// The generic timer's PPIs, as PPI numbers (interrupt id - 16) in the
/// order the `arm,armv8-timer` binding lists them: secure physical (id 29),
/// non-secure physical (30), virtual (27), hypervisor (26).
const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];

/// Linux's arm64 COMMAND_LINE_SIZE: the kernel copies at most this many
/// bytes of /chosen/bootargs, terminating NUL included.
pub const MAX_BOOTARGS: usize = 2048;

/// The most a device tree may be: booting.rst, "must not exceed 2
/// megabytes in size".
pub const MAX_SIZE: usize = 2 << 20;

/// What the tree describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// Number of vCPUs (1 to 8).
    pub cpus: usize,
    /// Guest RAM in bytes, from [`RAM_BASE`].
    pub ram_size: u64,
    /// `/chosen/bootargs`.
    pub bootargs: String,
    /// The initrd's first byte and the byte after its last, if there is one.
    pub initrd: Option<(u64, u64)>,
}

/// The tree as a flattened device tree blob.
pub fn generate(machine: &Machine) -> FdtWriterResult<Vec<u8>> {
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string("compatible", "linux,dummy-virt")?;
    fdt.property_string("model", "uirq-vmm (userspace GICv2)")?;
    // Every address and size below is two cells (64 bits).
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("interrupt-parent", GIC_PHANDLE)?;
    memory(&mut fdt, machine)?;
    cpus(&mut fdt, machine)?;
    psci(&mut fdt)?;
    gic(&mut fdt)?;
    timer(&mut fdt, machine)?;
    uart_clock(&mut fdt)?;
    uart(&mut fdt)?;
    chosen(&mut fdt, machine)?;
    fdt.end_node(root)?;
    fdt.finish()
}

/// `/memory@...`: guest RAM (DT spec 3.4).
fn memory(fdt: &mut FdtWriter, m: &Machine) -> FdtWriterResult<()> {
    let node = fdt.begin_node(&format!("memory@{RAM_BASE:x}"))?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u64("reg", &[RAM_BASE, m.ram_size])?;
    fdt.end_node(node)
}

/// `/cpus`: one node per vCPU (DT spec 3.7, bindings/arm/cpus.yaml). `reg`
/// is the CPU's MPIDR_EL1 affinity, which KVM gives vCPU `i` as Aff0 = `i`
/// for up to 16 vCPUs. Every CPU but the boot one waits, powered off, for
/// PSCI CPU_ON.
fn cpus(fdt: &mut FdtWriter, m: &Machine) -> FdtWriterResult<()> {
    let node = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    for cpu in 0..m.cpus as u32 {
        let c = fdt.begin_node(&format!("cpu@{cpu:x}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_string("compatible", "arm,arm-v8")?;
        fdt.property_string("enable-method", "psci")?;
        fdt.property_u32("reg", cpu)?;
        fdt.end_node(c)?;
    }
    fdt.end_node(node)
}

/// `/psci`: the VMM asks KVM for PSCI 0.2 (KVM_ARM_VCPU_PSCI_0_2), called
/// with HVC since the guest runs at EL1 under a hypervisor
/// (bindings/arm/psci.yaml). 0.2 and later have fixed function ids, so no
/// `cpu_on`-style properties are needed.
fn psci(fdt: &mut FdtWriter) -> FdtWriterResult<()> {
    let node = fdt.begin_node("psci")?;
    fdt.property_string("compatible", "arm,psci-0.2")?;
    fdt.property_string("method", "hvc")?;
    fdt.end_node(node)
}

/// `/intc@...`: the GICv2 (bindings/interrupt-controller/arm,gic.yaml).
/// `reg` is the distributor frame, then the CPU interface frame (8 KiB, so
/// GICC_DIR at 0x1000 is inside). Three interrupt cells: type (SPI/PPI),
/// number, flags.
fn gic(fdt: &mut FdtWriter) -> FdtWriterResult<()> {
    let node = fdt.begin_node(&format!("intc@{GICD_BASE:x}"))?;
    fdt.property_string("compatible", "arm,cortex-a15-gic")?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_u32("#interrupt-cells", 3)?;
    fdt.property_array_u64("reg", &[GICD_BASE, GICD_SIZE, GICC_BASE, GICC_SIZE])?;
    fdt.property_phandle(GIC_PHANDLE)?;
    fdt.end_node(node)
}

/// `/timer`: the generic timer (bindings/timer/arm,arch_timer.yaml). For a
/// PPI on a GICv2, bits [15:8] of the flags cell say which CPUs it is wired
/// to: all of them.
fn timer(fdt: &mut FdtWriter, m: &Machine) -> FdtWriterResult<()> {
    let cpu_mask = (1u32 << m.cpus) - 1;
    let flags = (cpu_mask << 8) | IRQ_TYPE_LEVEL_HIGH;
    let cells: Vec<u32> = TIMER_PPIS
        .iter()
        .flat_map(|&ppi| [GIC_PPI, ppi, flags])
        .collect();
    let node = fdt.begin_node("timer")?;
    fdt.property_string("compatible", "arm,armv8-timer")?;
    fdt.property_array_u32("interrupts", &cells)?;
    // The counter keeps counting in every CPU power state the guest can
    // reach (WFI), so no broadcast timer is needed.
    fdt.property_null("always-on")?;
    fdt.end_node(node)
}

/// `/apb-pclk`: the PrimeCell bus clock the PL011 binding requires
/// (bindings/clock/fixed-clock.yaml). The model has no baud rate, so the
/// frequency only has to be plausible; 24 MHz is what QEMU's `virt` says.
fn uart_clock(fdt: &mut FdtWriter) -> FdtWriterResult<()> {
    let node = fdt.begin_node("apb-pclk")?;
    fdt.property_string("compatible", "fixed-clock")?;
    fdt.property_u32("#clock-cells", 0)?;
    fdt.property_u32("clock-frequency", 24_000_000)?;
    fdt.property_string("clock-output-names", "clk24mhz")?;
    fdt.property_phandle(CLOCK_PHANDLE)?;
    fdt.end_node(node)
}

/// `/pl011@...`: the UART (bindings/serial/arm,pl011.yaml). Linux's AMBA bus
/// matches it by the peripheral id registers, so `arm,primecell` must be in
/// `compatible`, and it enables `apb_pclk` before reading them.
fn uart(fdt: &mut FdtWriter) -> FdtWriterResult<()> {
    let node = fdt.begin_node(&format!("pl011@{UART_BASE:x}"))?;
    fdt.property_string_list(
        "compatible",
        vec!["arm,pl011".to_string(), "arm,primecell".to_string()],
    )?;
    fdt.property_array_u64("reg", &[UART_BASE, UART_SIZE])?;
    fdt.property_array_u32("interrupts", &[GIC_SPI, UART_SPI, IRQ_TYPE_LEVEL_HIGH])?;
    fdt.property_array_u32("clocks", &[CLOCK_PHANDLE, CLOCK_PHANDLE])?;
    fdt.property_string_list(
        "clock-names",
        vec!["uartclk".to_string(), "apb_pclk".to_string()],
    )?;
    fdt.end_node(node)
}

/// `/chosen` (DT spec 3.6): the command line, the console (so `earlycon`
/// without arguments finds the UART), and the initrd (bindings in
/// Documentation/devicetree/bindings/chosen.txt: `linux,initrd-start` and
/// `linux,initrd-end`, the end exclusive).
fn chosen(fdt: &mut FdtWriter, m: &Machine) -> FdtWriterResult<()> {
    let node = fdt.begin_node("chosen")?;
    fdt.property_string("bootargs", &m.bootargs)?;
    fdt.property_string("stdout-path", &format!("/pl011@{UART_BASE:x}"))?;
    if let Some((start, end)) = m.initrd {
        fdt.property_u64("linux,initrd-start", start)?;
        fdt.property_u64("linux,initrd-end", end)?;
    }
    fdt.end_node(node)
}

/// Why a user's `--dtb` was refused.
#[derive(Debug, thiserror::Error)]
pub enum DtbError {
    /// Not a flattened device tree at all, or a damaged one.
    #[error("it is not a flattened device tree: {0}")]
    Invalid(&'static str),
    /// Larger than the boot protocol allows.
    #[error("it is {0} bytes, more than the 2 MiB the boot protocol allows")]
    TooLarge(usize),
}

/// FDT magic, header field 0 (DT spec 5.2).
const FDT_MAGIC: u32 = 0xd00d_feed;
/// Structure block tokens (DT spec 5.4.1).
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// Checks that `bytes` are a well-formed flattened device tree of at most
/// [`MAX_SIZE`] bytes: the header (DT spec 5.2), blocks inside the blob,
/// and a structure block (5.4) whose tokens, node names and property
/// lengths stay in bounds, whose nodes nest properly under one root, and
/// whose property names point into the strings block.
///
/// Written out rather than done with a device tree reader: the `fdt`
/// crate assumes a well-formed blob and panics on a damaged one, and the
/// file is the user's input.
pub fn check(bytes: &[u8]) -> Result<(), DtbError> {
    use DtbError::Invalid;
    if bytes.len() > MAX_SIZE {
        return Err(DtbError::TooLarge(bytes.len()));
    }
    let word = |at: usize| -> Option<u32> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes(b.try_into().ok()?))
    };
    if word(0) != Some(FDT_MAGIC) {
        return Err(Invalid("no FDT magic (0xd00dfeed) at its start"));
    }
    let field = |n: usize| {
        word(4 * n)
            .map(|w| w as usize)
            .ok_or(Invalid("short header"))
    };
    let (total, off_struct, off_strings, off_rsvmap) = (field(1)?, field(2)?, field(3)?, field(4)?);
    let (version, size_strings, size_struct) = (field(5)?, field(8)?, field(9)?);
    if total > bytes.len() || total < 40 {
        return Err(Invalid("its header's totalsize does not match the file"));
    }
    // Version 17 is current; 16 is the oldest Linux reads (same layout
    // apart from the struct size field, which 17 added).
    if version < 16 {
        return Err(Invalid("its version is older than 16"));
    }
    let inside = |off: usize, len: usize| off.checked_add(len).is_some_and(|end| end <= total);
    if !inside(off_struct, size_struct) || !inside(off_strings, size_strings) {
        return Err(Invalid("a block lies outside the blob"));
    }
    if off_rsvmap % 8 != 0 || !inside(off_rsvmap, 16) {
        return Err(Invalid(
            "the memory reservation block lies outside the blob",
        ));
    }
    let strings = &bytes[off_strings..off_strings + size_strings];
    let structure = &bytes[off_struct..off_struct + size_struct];
    let token = |at: usize| -> Option<u32> {
        let b = structure.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes(b.try_into().ok()?))
    };
    let align4 = |n: usize| n.checked_add(3).map(|n| n & !3);
    let (mut at, mut depth, mut roots) = (0usize, 0usize, 0usize);
    loop {
        let t = token(at).ok_or(Invalid("its structure block ends without FDT_END"))?;
        at += 4;
        match t {
            FDT_BEGIN_NODE => {
                let name_len = structure
                    .get(at..)
                    .and_then(|rest| rest.iter().position(|&b| b == 0))
                    .ok_or(Invalid("a node name is not terminated"))?;
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
                at = align4(at + name_len + 1).ok_or(Invalid("a node name overflows"))?;
            }
            FDT_END_NODE => {
                depth = depth
                    .checked_sub(1)
                    .ok_or(Invalid("a node ends that never began"))?;
            }
            FDT_PROP => {
                let len = token(at).ok_or(Invalid("a property is cut short"))? as usize;
                let name = token(at + 4).ok_or(Invalid("a property is cut short"))? as usize;
                if depth == 0 {
                    return Err(Invalid("a property lies outside every node"));
                }
                if !strings.get(name..).is_some_and(|s| s.contains(&0)) {
                    return Err(Invalid("a property name points outside the strings block"));
                }
                at = (at + 8)
                    .checked_add(len)
                    .and_then(align4)
                    .filter(|&end| end <= structure.len())
                    .ok_or(Invalid("a property's value runs past the structure block"))?;
            }
            FDT_NOP => {}
            FDT_END if depth == 0 && roots == 1 => return Ok(()),
            FDT_END => return Err(Invalid("its nodes do not nest under one root")),
            _ => return Err(Invalid("its structure block holds an unknown token")),
        }
    }
}

#[cfg(test)]
mod tests;
