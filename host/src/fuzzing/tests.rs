//! The fuzz corpora as unit tests: every input the fuzzers kept
//! (`fuzz/corpus/vm_mmio/`, `fuzz/corpus/bench_decode/` and
//! `fuzz/corpus/bench_dump/`, including any
//! that once crashed) is replayed through the same decoders and checks as
//! the fuzz targets, so plain `cargo test` guards against regressions.

use std::path::PathBuf;

use uirq_abi::bench::{MAGIC, RESULTS_SIZE, VERSION};
use uirq_abi::gicv2::gicc;
use uirq_abi::layout::{GICC_BASE, GICD_BASE, UART_BASE};

use super::{bench_decode, bench_dump, vm_mmio};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "the corpus in {} has only {} files",
        dir.display(),
        files.len()
    );
    files
        .into_iter()
        .map(|f| {
            let data = std::fs::read(&f).unwrap();
            (f, data)
        })
        .collect()
}

// Every committed vm_mmio input passes every invariant of `vm_mmio`.
#[test]
fn replay_vm_mmio_corpus() {
    for (file, data) in corpus("vm_mmio") {
        if let Err(e) = std::panic::catch_unwind(|| vm_mmio::run(&data)) {
            eprintln!(
                "{} failed; decoded: {:#?}",
                file.display(),
                vm_mmio::decode(&data)
            );
            std::panic::resume_unwind(e);
        }
    }
}

// Every committed bench_decode input passes every check of `bench_decode`.
#[test]
fn replay_bench_decode_corpus() {
    for (file, data) in corpus("bench_decode") {
        if let Err(e) = std::panic::catch_unwind(|| bench_decode::run(&data)) {
            eprintln!("{} failed", file.display());
            std::panic::resume_unwind(e);
        }
    }
}

// Every committed bench_dump input passes every check of `bench_dump`.
#[test]
fn replay_bench_dump_corpus() {
    let mut decoded = 0;
    for (file, data) in corpus("bench_dump") {
        if let Err(e) = std::panic::catch_unwind(|| bench_dump::run(&data)) {
            eprintln!("{} failed", file.display());
            std::panic::resume_unwind(e);
        }
        let text = String::from_utf8_lossy(&data);
        decoded += usize::from(
            uirq_abi::bench_dump::decode_lines(text.lines(), bench_dump::MAX_WORDS).is_ok(),
        );
    }
    // The seeds include whole dumps, not only broken ones.
    assert!(decoded >= 4, "{decoded} inputs decode");
}

// The vm_mmio input format, op by op.
#[test]
fn vm_mmio_decoder_reads_the_documented_format() {
    use vm_mmio::Op;
    let data = [
        0b1001, // 2 CPUs, primed
        0, 1, 0, 2, 3, 0, // read, cpu 1, size 4, GICC word 3 (IAR)
        1, 0xFF, 2, 6, 0x78, 0x56, 0x34, 0x12, 0xAA, 0, 0, 0, // write, absent cpu, 1 byte
        2, 3, 0xC1, // timer, cpu 1, vtimer + bit 63, report now
        3, 0x45, // SPI 34 + 5 low
        4, 0x82, b'h', b'i', // receive "hi" four times, paced
        5, 0xFF, // every kicked thread
        1, 0, 3, 5, 0x0D, 0x00, // write, cpu 0, 2 bytes, edge: GICC end - 7; cut short
    ];
    let s = vm_mmio::decode(&data);
    assert_eq!(s.num_cpus, 2);
    assert!(s.primed);
    assert_eq!(
        s.ops,
        vec![
            Op::Read {
                cpu: 1,
                addr: GICC_BASE + gicc::IAR,
                size: 4
            },
            Op::Write {
                cpu: 2,
                addr: 0x1234_5678,
                size: 1,
                value: 0xAA | 0xAA_0000 << 32
            },
            Op::Timer {
                cpu: 1,
                levels: 1 | 1 << 63,
                report: true
            },
            Op::Spi {
                id: 39,
                level: true
            },
            Op::Receive {
                bytes: b"hihihihi".to_vec(),
                unpaced: false
            },
            Op::Run { cpu: None },
        ]
    );
    vm_mmio::run(&data);
}

// The routing the checks expect: whole accesses inside a frame, nothing
// that straddles an edge or sits in a hole.
#[test]
fn vm_mmio_routes_by_frame() {
    assert_eq!(vm_mmio::route(GICD_BASE, 4), Some(("gicd", 0)));
    assert_eq!(vm_mmio::route(GICD_BASE + 0xFFC, 4), Some(("gicd", 0xFFC)));
    assert_eq!(vm_mmio::route(GICD_BASE + 0xFFC, 8), None);
    assert_eq!(vm_mmio::route(GICD_BASE - 1, 1), None);
    assert_eq!(vm_mmio::route(UART_BASE + 0xFFF, 0), Some(("uart", 0xFFF)));
    assert_eq!(vm_mmio::route(u64::MAX, 8), None);
}

// A short scenario of each kind passes: the timer through an EINTR exit
// and acknowledged, an SGI to another CPU, UART input raising SPI 33.
#[test]
fn vm_mmio_scenarios_pass() {
    use vm_mmio::{Op, Scenario};
    let w = |cpu, addr, value: u64| Op::Write {
        cpu,
        addr,
        size: 4,
        value,
    };
    let r = |cpu, addr| Op::Read { cpu, addr, size: 4 };
    Scenario {
        num_cpus: 3,
        primed: true,
        unmapped: crate::exit::Unmapped::Abort,
        ops: vec![
            Op::Timer {
                cpu: 1,
                levels: 1,
                report: true,
            },
            r(1, GICC_BASE + gicc::IAR),
            Op::Timer {
                cpu: 1,
                levels: 0,
                report: false,
            },
            w(1, GICC_BASE + gicc::EOIR, 27),
            w(0, GICD_BASE + 0xF00, 0x4_0001), // SGI 1 to CPU 2
            Op::Receive {
                bytes: b"abc".to_vec(),
                unpaced: true,
            },
            Op::Run { cpu: Some(2) },
            r(2, UART_BASE),
            w(2, UART_BASE, u64::from(b'x')),
            r(0, 0x0A00_0000),
        ],
    }
    .run();
}

// The bench_decode input format: a canonical header is accepted, and the
// length flags make short and long buffers.
#[test]
fn bench_decode_builds_the_documented_buffers() {
    let b = bench_decode::decode(&[0, 0, 0, 0, 0, 4, 0, 7, 0, 0, 0, 0xAB]);
    assert_eq!(b.len(), RESULTS_SIZE as usize);
    let w = |i: usize| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap());
    assert_eq!(
        [w(0), w(1), w(2), w(3), w(4), w(5), w(6), w(7)],
        [MAGIC, VERSION, 62_500_000, 5, 7, 0, 5, 2]
    );
    assert!(b[64..].iter().all(|&x| x == 0xAB));
    assert!(crate::bench::decode(&b).is_ok());
    assert_eq!(
        bench_decode::decode(&[2, 3]).len(),
        RESULTS_SIZE as usize + 3
    );
    assert_eq!(
        bench_decode::decode(&[4, 3]).len(),
        RESULTS_SIZE as usize - 4
    );
    assert_eq!(bench_decode::decode(&[6, 3]).len(), 24);
    assert_eq!(bench_decode::decode(&[1, 9, 8]), [9, 8]);
    for data in [&[][..], &[0], &[2, 0xFF, 3, 3, 3, 3, 3, 12], &[4, 0], &[1]] {
        bench_decode::run(data);
    }
}
