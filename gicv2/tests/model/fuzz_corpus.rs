//! The fuzz corpus as a unit test: every input the fuzzer kept
//! (`fuzz/corpus/gicv2_mmio/`, including any that once crashed the model)
//! is replayed through the same decoder and checks as the fuzz target, so
//! plain `cargo test` guards against regressions.

use std::path::PathBuf;

use uirq_gicv2::regs::{gicc, gicd};

use uirq_gicv2::fuzzing::{self, Op, Scenario};
use uirq_gicv2::GicConfig;

/// The project's fuzzing project, next to this crate in its repository.
fn fuzz_project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

// Every committed input passes every invariant of `fuzzing` (IHI 0048B 3.2,
// 4.1.4, 4.4.4, 4.4.7; see that module).
#[test]
fn replay_committed_corpus() {
    if !fuzz_project().join("Cargo.toml").is_file() {
        // The crate as published carries no corpus; in the repository the
        // fuzz project is there and its corpus must be too.
        eprintln!(
            "no fuzz project at {}: the corpus is not replayed",
            fuzz_project().display()
        );
        return;
    }
    let dir = fuzz_project().join("corpus/gicv2_mmio");
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
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let result = std::panic::catch_unwind(|| fuzzing::run(&data));
        if let Err(e) = result {
            eprintln!(
                "{} failed; decoded: {:#?}",
                file.display(),
                fuzzing::decode(&data)
            );
            std::panic::resume_unwind(e);
        }
    }
}

// The input format the corpus files are written in.
#[test]
fn decoder_reads_the_documented_format() {
    assert_eq!(
        fuzzing::decode(&[]),
        Scenario {
            config: GicConfig {
                num_cpus: 1,
                num_spis: 0
            },
            primed: false,
            ops: vec![],
        }
    );
    // Two CPUs, SPI choice 1 (32 SPIs), primed; then an SPI raised, an
    // acknowledge on CPU 1, its EOI, a GICD word write, a GICC byte read
    // from an absent CPU, and an op cut short.
    let data = [
        0b0100_1001,
        5,
        0x08,
        0x80, // SPI 40 high
        6,
        1,
        0, // ack on CPU 1
        7,
        1,
        0,
        0xFF,
        0x03, // EOI on CPU 1, fallback 0x3FF
        1,
        0,
        0,
        0x40,
        0x00, // GICD word at 0x40 * 4 = ISENABLER
        0xFF,
        0xFF,
        0xFF,
        0xFF,
        2,
        0xF5,
        1,
        0x0C,
        0x80, // GICC byte at 0xC, CPU 5
        4,
        0, // PPI op, operand missing
    ];
    let s = fuzzing::decode(&data);
    assert_eq!(
        s.config,
        GicConfig {
            num_cpus: 2,
            num_spis: 32
        }
    );
    assert!(s.primed);
    assert_eq!(
        s.ops,
        vec![
            Op::Spi {
                id: 40,
                level: true
            },
            Op::Ack {
                cpu: 1,
                alias: false
            },
            Op::Eoi {
                cpu: 1,
                alias: false,
                fallback: 0x3FF
            },
            Op::DistWrite {
                cpu: 0,
                offset: gicd::ISENABLER,
                size: 4,
                value: u32::MAX
            },
            Op::CpuRead {
                cpu: 5,
                offset: gicc::IAR,
                size: 1
            },
        ]
    );
    fuzzing::run(&data);
}

// IHI 0048B 4.3.2: in raw-config mode the run checks that the model refuses
// exactly the shapes the architecture does not allow, and stops there.
#[test]
fn raw_configs_are_checked() {
    for (cpus, spis) in [(0u8, 0u16), (9, 32), (1, 33), (1, 992), (8, 988), (3, 64)] {
        let [lo, hi] = spis.to_le_bytes();
        fuzzing::run(&[0x80, cpus, lo, hi, 5, 0x08, 0x80, 6, 0, 0]);
    }
}
