//! The generated tree against golden files, node by node, and the `--dtb`
//! checker against damaged blobs.
//!
//! A golden file is the tree read back with the `fdt` crate and written one
//! node per paragraph, by full path, properties in order:
//!
//! ```text
//! /pl011@9000000 {
//!     compatible = "arm,pl011", "arm,primecell";
//!     reg = <0x0 0x9000000 0x0 0x1000>;
//! }
//! ```
//!
//! After an intended change to the tree, regenerate them with
//! `UIRQ_BLESS=1 cargo test -p uirq-host golden` and review the diff.

use std::path::PathBuf;

use proptest::prelude::*;

use super::*;

/// One node of a rendered tree: its path and its property lines.
type Node = (String, Vec<String>);

/// Reads `blob` back with an independent reader and renders every node.
fn render(blob: &[u8]) -> Vec<Node> {
    let tree = fdt::Fdt::new(blob).expect("the generated tree parses");
    let mut nodes = Vec::new();
    walk(tree.find_node("/").expect("a root node"), "", &mut nodes);
    nodes
}

fn walk(node: fdt::node::FdtNode<'_, '_>, parent: &str, out: &mut Vec<Node>) {
    let path = match (parent, node.name) {
        ("", "/") | ("", "") => "/".to_string(),
        ("/", name) => format!("/{name}"),
        (p, name) => format!("{p}/{name}"),
    };
    let props = node
        .properties()
        .map(|p| format!("{} = {};", p.name, value(p.value)))
        .collect();
    out.push((path.clone(), props));
    for child in node.children() {
        walk(child, &path, out);
    }
}

/// A property value as dtc would write it: strings when it is a list of
/// printable NUL-terminated strings, else 32-bit cells, else bytes.
fn value(v: &[u8]) -> String {
    if v.is_empty() {
        return "<>".into();
    }
    let printable = v.last() == Some(&0)
        && v[..v.len() - 1]
            .split(|&b| b == 0)
            .all(|s| !s.is_empty() && s.iter().all(|&b| (0x20..0x7f).contains(&b)));
    if printable {
        return v[..v.len() - 1]
            .split(|&b| b == 0)
            .map(|s| format!("\"{}\"", String::from_utf8_lossy(s)))
            .collect::<Vec<_>>()
            .join(", ");
    }
    if v.len() % 4 == 0 {
        let cells: Vec<String> = v
            .chunks(4)
            .map(|c| format!("{:#x}", u32::from_be_bytes(c.try_into().unwrap())))
            .collect();
        return format!("<{}>", cells.join(" "));
    }
    let bytes: Vec<String> = v.iter().map(|b| format!("{b:02x}")).collect();
    format!("[{}]", bytes.join(" "))
}

fn to_text(nodes: &[Node]) -> String {
    let mut s = String::new();
    for (path, props) in nodes {
        s.push_str(&format!("{path} {{\n"));
        for p in props {
            s.push_str(&format!("    {p}\n"));
        }
        s.push_str("}\n\n");
    }
    s
}

fn from_text(text: &str) -> Vec<Node> {
    text.split("\n\n")
        .filter(|para| !para.trim().is_empty())
        .map(|para| {
            let mut lines = para.lines();
            let path = lines
                .next()
                .and_then(|l| l.strip_suffix(" {"))
                .expect("a node header line")
                .to_string();
            let props = lines
                .filter(|l| *l != "}")
                .map(|l| l.trim().to_string())
                .collect();
            (path, props)
        })
        .collect()
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/boot/fdt/golden")
        .join(name)
}

/// Compares the tree for `machine` with golden file `name`, node by node.
fn check_golden(name: &str, machine: &Machine) {
    let nodes = render(&generate(machine).unwrap());
    let path = golden_path(name);
    if std::env::var_os("UIRQ_BLESS").is_some() {
        std::fs::write(&path, to_text(&nodes)).unwrap();
        return;
    }
    let golden = from_text(
        &std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UIRQ_BLESS=1 writes it)", path.display())),
    );
    let paths = |n: &[Node]| n.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(paths(&nodes), paths(&golden), "{name}: the nodes differ");
    for ((path, got), (_, want)) in nodes.iter().zip(&golden) {
        assert_eq!(got, want, "{name}: node {path} differs");
    }
}

fn machine(cpus: usize, initrd: Option<(u64, u64)>) -> Machine {
    Machine {
        cpus,
        ram_size: 256 << 20,
        bootargs: "console=ttyAMA0 panic=-1".into(),
        initrd,
    }
}

#[test]
fn golden_one_cpu_no_initrd() {
    check_golden("one-cpu.dts", &machine(1, None));
}

#[test]
fn golden_two_cpus_with_initrd() {
    check_golden(
        "two-cpus-initrd.dts",
        &machine(2, Some((0x4f00_0000, 0x4f12_3456))),
    );
}

#[test]
fn golden_eight_cpus() {
    check_golden("eight-cpus.dts", &machine(8, None));
}

// The parts a kernel cannot boot without, checked by meaning rather than
// text: the GIC is the interrupt parent, the timer's PPIs name every CPU.
#[test]
fn the_tree_wires_devices_to_the_gic_and_the_timer_to_every_cpu() {
    let blob = generate(&machine(3, None)).unwrap();
    let tree = fdt::Fdt::new(&blob).unwrap();
    let gic = tree.find_compatible(&["arm,cortex-a15-gic"]).unwrap();
    let regs: Vec<_> = gic
        .reg()
        .unwrap()
        .map(|r| r.starting_address as u64)
        .collect();
    assert_eq!(regs, [GICD_BASE, GICC_BASE]);
    // Every device inherits the root's interrupt-parent: the GIC's phandle.
    let root = tree.find_node("/").unwrap();
    let parent = root.property("interrupt-parent").unwrap().as_usize();
    let phandle = gic.property("phandle").unwrap().as_usize();
    assert_eq!(parent, phandle);
    assert!(tree.find_compatible(&["arm,pl011"]).is_some());
    let timer = tree.find_node("/timer").unwrap();
    let cells: Vec<u32> = timer
        .property("interrupts")
        .unwrap()
        .value
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(cells.len(), 12);
    for spec in cells.chunks(3) {
        assert_eq!(spec[0], 1, "a PPI");
        assert_eq!(spec[2] >> 8, 0b111, "wired to all three CPUs");
    }
    assert_eq!(tree.cpus().count(), 3);
    check(&blob).expect("the checker accepts the generated tree");
}

#[test]
fn the_checker_refuses_damaged_and_foreign_blobs() {
    let good = generate(&machine(2, Some((0x4000_0000, 0x4000_1000)))).unwrap();
    check(&good).unwrap();
    for (what, bad) in [
        ("empty", Vec::new()),
        (
            "text",
            b"this is not a device tree at all, just some text".to_vec(),
        ),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("header only", good[..40].to_vec()),
    ] {
        assert!(check(&bad).is_err(), "{what} was accepted");
    }
    let mut unbalanced = good.clone();
    // Turn the structure block's final FDT_END_NODE (just before FDT_END)
    // into a NOP: the root never ends.
    let off_struct = u32::from_be_bytes(good[8..12].try_into().unwrap()) as usize;
    let size_struct = u32::from_be_bytes(good[36..40].try_into().unwrap()) as usize;
    let last_end = off_struct + size_struct - 8;
    assert_eq!(&good[last_end..last_end + 4], &2u32.to_be_bytes());
    unbalanced[last_end..last_end + 4].copy_from_slice(&4u32.to_be_bytes());
    assert!(check(&unbalanced).is_err());
    let mut huge = good.clone();
    huge.resize(MAX_SIZE + 1, 0);
    assert!(matches!(check(&huge), Err(DtbError::TooLarge(_))));
}

proptest! {
    // A user's file is arbitrary bytes: the checker answers, never panics.
    #[test]
    fn the_checker_never_panics_on_a_damaged_tree(
        flips in proptest::collection::vec((0usize..2048, any::<u8>()), 1..8),
        cut in 0usize..2048,
    ) {
        let mut blob = generate(&machine(2, None)).unwrap();
        for (at, byte) in flips {
            let n = blob.len();
            blob[at % n] = byte;
        }
        blob.truncate(cut.max(1).min(blob.len()));
        let _ = check(&blob);
    }
}
