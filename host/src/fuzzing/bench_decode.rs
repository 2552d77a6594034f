//! The benchmark's result buffer, which the guest fills and the VMM
//! decodes after the run ([`crate::bench::decode`]), as arbitrary bytes.
//!
//! The buffer is `RESULTS_SIZE` (about 1.3 MB) long, far more than a
//! fuzzer mutates well, so the input describes a buffer instead of being
//! one: a header chosen word by word (valid values, small ones, any value,
//! or boundary values) and a pattern tiled over everything after it. A
//! flag hands the input to `decode` as it is, for short and odd buffers.
//!
//! # Input format
//!
//! ```text
//! byte 0     bit 0 raw: the rest of the input is the buffer, nothing else
//!            is read; bits [2:1] the buffer's length: 0 RESULTS_SIZE,
//!            1 RESULTS_SIZE + L, 2 RESULTS_SIZE - 1 - L, 3 8 * L, with L
//!            the next byte (read only for 1 to 3)
//! 8 words    the header (magic, version, cntfrq, samples, warmup,
//!            anomalies, ipi_samples, cpus), each a tag byte t then, by
//!            t % 4: 0 the word a correct firmware writes (samples: 1 + the
//!            next byte; warmup: the next byte; ipi_samples: samples with
//!            two CPUs or more, else 0); 1 the next byte; 2 a u64 LE;
//!            3 one of BOUNDARIES, picked by the next byte
//! the rest   tiled over the buffer after the header (zeros if empty)
//! ```
//!
//! A missing byte reads as 0 (so a short input is a valid, mostly
//! canonical buffer).
//!
//! # What is checked
//!
//! - `decode` never panics, and succeeds exactly when the buffer is long
//!   enough and the header is consistent: the magic and version, a
//!   non-zero counter frequency, 1 to `MAX_SAMPLES` samples, 1 to 8 CPUs,
//!   `ipi_samples` equal to `samples` with two CPUs or more and 0 with
//!   one, at most one anomaly per recorded sample (four measurements);
//! - what it decodes is what the buffer holds: re-encoded into a fresh
//!   buffer it gives back the same header and sample bytes, and decoding
//!   that gives the same results;
//! - it allocates no more than the buffer describes: each series has
//!   exactly the header's count (never more than `MAX_SAMPLES`), with no
//!   spare capacity, and lies within the buffer;
//! - the statistics built from it (`measurements`, `stages`, the JSON
//!   `RunReport`) never panic, are finite, ordered (min <= p50 <= p90 <=
//!   p99 <= p99.9 <= max, the mean in between), count every sample once,
//!   and their histograms stay small (at most a few hundred bins); the
//!   report reads back from its JSON equal to what was written;
//! - the raw samples (`--raw-samples`) are one per recorded sample, negative
//!   exactly where the summary counts a negative one, and their chunks
//!   each fit a console line and join back into them.

use uirq_abi::bench::{
    Header, IpiSample, MmioSample, SgiSample, VtimerSample, HOST_MAGIC, IPI_OFFSET, MAGIC,
    MAX_SAMPLES, MMIO_OFFSET, RESULTS_SIZE, SGI_OFFSET, VERSION, VTIMER_OFFSET,
};

use super::Bytes;
use uirq_abi::bench_json;

use crate::bench::{self, GuestResults, IrqTimeline, ResultsError, RunContext, RunReport, Summary};

/// Values a header word can take with tag 3.
pub const BOUNDARIES: [u64; 16] = [
    0,
    1,
    2,
    7,
    8,
    9,
    MAX_SAMPLES - 1,
    MAX_SAMPLES,
    MAX_SAMPLES + 1,
    4 * MAX_SAMPLES + 1,
    u32::MAX as u64,
    1 << 63,
    u64::MAX,
    MAGIC,
    HOST_MAGIC,
    VERSION,
];

/// The longest buffer [`decode`] builds (outside raw mode, where the
/// buffer is the input): the fuzz target checks that no single allocation
/// of a run is larger than this or the input.
pub const MAX_BUFFER: usize = RESULTS_SIZE as usize + 255;

/// The longest line a `@@samples` report may be: a harness line is at most
/// 64 KiB (xtask's `process::MAX_LINE`), and the keyword and tag need room.
pub const MAX_CHUNK_LINE: usize = 60 << 10;

/// Size of the header in bytes.
const HEADER_BYTES: usize = 64;
/// Most histogram bins a summary may have: 20 a decade over the 29
/// decades a tick count can span in ns, and some.
const MAX_BINS: usize = 600;

/// A decoded input: the buffer to hand to `decode`.
pub fn decode(data: &[u8]) -> Vec<u8> {
    let mut bytes = Bytes(data);
    let head = bytes.u8().unwrap_or(0);
    if head & 1 != 0 {
        return bytes.rest().to_vec();
    }
    let size = RESULTS_SIZE as usize;
    let len = match head >> 1 & 3 {
        0 => size,
        1 => size + usize::from(bytes.u8().unwrap_or(0)),
        2 => size - 1 - usize::from(bytes.u8().unwrap_or(0)),
        _ => 8 * usize::from(bytes.u8().unwrap_or(0)),
    };
    let mut words = [0u64; 8];
    let mut canonical_ipi = false;
    for (i, w) in words.iter_mut().enumerate() {
        let tag = bytes.u8().unwrap_or(0);
        *w = match tag % 4 {
            0 => match i {
                0 => MAGIC,
                1 => VERSION,
                2 => 62_500_000,
                3 => 1 + u64::from(bytes.u8().unwrap_or(0)),
                4 => u64::from(bytes.u8().unwrap_or(0)),
                5 => 0,
                6 => {
                    canonical_ipi = true;
                    0
                }
                _ => 2,
            },
            1 => u64::from(bytes.u8().unwrap_or(0)),
            2 => bytes.u64().unwrap_or(0),
            _ => BOUNDARIES[usize::from(bytes.u8().unwrap_or(0)) % BOUNDARIES.len()],
        };
    }
    if canonical_ipi {
        words[6] = if words[7] >= 2 { words[3] } else { 0 };
    }
    let mut buf = vec![0u8; len];
    let mut header = [0u8; HEADER_BYTES];
    for (i, w) in words.iter().enumerate() {
        header[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
    }
    let n = len.min(HEADER_BYTES);
    buf[..n].copy_from_slice(&header[..n]);
    let pattern = bytes.rest();
    if !pattern.is_empty() && len > HEADER_BYTES {
        // Tiled by doubling: a few large copies, fast even unoptimised.
        let area = &mut buf[HEADER_BYTES..];
        let mut filled = pattern.len().min(area.len());
        area[..filled].copy_from_slice(&pattern[..filled]);
        while filled < area.len() {
            let n = filled.min(area.len() - filled);
            area.copy_within(..n, filled);
            filled += n;
        }
    }
    buf
}

/// Decodes `data` into a buffer, decodes that with `bench::decode` and
/// checks everything in the module documentation. Panics on a violation.
pub fn run(data: &[u8]) {
    check(&decode(data));
}

/// The header a consistent buffer has, by the firmware's contract
/// (`uirq_abi::bench`, `guest/src/programs/bench.rs`).
pub fn consistent(h: &Header) -> bool {
    h.magic == MAGIC
        && h.version == VERSION
        && h.cntfrq != 0
        && (1..=MAX_SAMPLES).contains(&h.samples)
        && (1..=8).contains(&h.cpus)
        && h.ipi_samples == if h.cpus >= 2 { h.samples } else { 0 }
        && h.anomalies <= 4 * h.samples
}

/// Runs `bench::decode` on `buf` and checks the result.
pub fn check(buf: &[u8]) {
    let result = bench::decode(buf);
    if buf.len() < RESULTS_SIZE as usize {
        assert_eq!(result, Err(ResultsError::Short(buf.len())));
        return;
    }
    let w = |i: usize| u64::from_le_bytes(buf[8 * i..8 * i + 8].try_into().unwrap());
    let header = Header {
        magic: w(0),
        version: w(1),
        cntfrq: w(2),
        samples: w(3),
        warmup: w(4),
        anomalies: w(5),
        ipi_samples: w(6),
        cpus: w(7),
    };
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            assert!(!consistent(&header), "{header:?} refused: {e}");
            return;
        }
    };
    assert!(consistent(&header), "{header:?} accepted");
    assert_eq!(r.header, header);

    // Allocation: exactly what the header counts, within the buffer.
    let n = header.samples as usize;
    let series = [
        (r.vtimer.len(), r.vtimer.capacity(), VTIMER_OFFSET, 32, n),
        (r.sgi.len(), r.sgi.capacity(), SGI_OFFSET, 16, n),
        (r.mmio.len(), r.mmio.capacity(), MMIO_OFFSET, 16, n),
        (
            r.ipi.len(),
            r.ipi.capacity(),
            IPI_OFFSET,
            16,
            header.ipi_samples as usize,
        ),
    ];
    for (len, cap, offset, size, want) in series {
        assert_eq!(len, want);
        assert!(len as u64 <= MAX_SAMPLES);
        assert_eq!(cap, len, "no spare capacity");
        assert!(offset as usize + size * len <= buf.len());
    }

    // Re-encoding gives the same bytes, and decoding them the same results.
    let again = encode(&r);
    assert_eq!(again[..HEADER_BYTES], buf[..HEADER_BYTES]);
    for (offset, len) in [
        (VTIMER_OFFSET, 32 * n),
        (SGI_OFFSET, 16 * n),
        (MMIO_OFFSET, 16 * n),
        (IPI_OFFSET, 16 * r.ipi.len()),
    ] {
        let range = offset as usize..offset as usize + len;
        assert!(again[range.clone()] == buf[range], "series at {offset:#x}");
    }
    assert_eq!(bench::decode(&again).as_ref(), Ok(&r));

    check_statistics(&r);
}

/// The statistics of a run never panic and are sane.
fn check_statistics(r: &GuestResults) {
    let f = r.header.cntfrq;
    let exits = bench::ExitsPerSample::from_counts(1, 2, 3, 4, r.header.samples);
    let results = bench::measurements(
        r,
        Some([exits.clone(), exits.clone(), exits.clone(), exits.clone()]),
    );
    assert_eq!(results.len(), if r.ipi.is_empty() { 3 } else { 4 });
    for m in &results {
        check_summary(&m.summary, r.header.samples as usize);
    }
    // A VMM timeline for the same interrupts, with warm-up entries first.
    let warm = (r.header.warmup % 3) as usize;
    let timeline: Vec<IrqTimeline> = std::iter::repeat_n(IrqTimeline::default(), warm)
        .chain(r.vtimer.iter().map(|s| IrqTimeline {
            level_seen: s.entry,
            irq_line: s.after_ack,
            iar: s.after_eoi,
            eoi: s.deadline,
            vmm_ticks: s.entry ^ s.deadline,
            irq_line_ticks: s.after_ack >> 3,
            exits: s.deadline as u32,
        }))
        .collect();
    let stages = bench::stages(&r.vtimer, &timeline, f);
    for s in &stages {
        check_summary(&s.summary, r.vtimer.len());
    }
    let report = bench::run_report(
        r,
        RunContext {
            irqchip: "user",
            vcpus: r.header.cpus,
            tool: "uirq-vmm",
            vmm: "uirq",
            exits: Some([exits.clone(), exits.clone(), exits.clone(), exits]),
            timeline,
            timebase: String::new(),
            vmm_rss_kib: None,
            unix_secs: r.header.warmup,
        },
    );
    assert_eq!(report.results, results);
    assert_eq!(report.stages, stages);
    assert_eq!(report.guest_anomalies, r.header.anomalies);
    let json = serde_json::to_string(&report).expect("a report serialises");
    // serde_json writes a non-finite float as null: only vmm_rss_kib is.
    assert_eq!(json.matches("null").count(), 1, "{json}");
    let back: RunReport = serde_json::from_str(&json).expect("a report reads back");
    assert_eq!(back, report);

    // Every sample, in chunks that each fit a console line, joins back.
    let chunks = bench::sample_chunks(r);
    assert!(chunks.len() <= bench_json::MAX_CHUNKS);
    for (m, (name, ticks)) in report.results.iter().zip(bench::sample_ticks(r)) {
        assert_eq!(m.measurement, name);
        assert_eq!(ticks.len() as u64, m.summary.count + m.summary.negative);
        let negative = ticks.iter().filter(|&&t| t < 0).count() as u64;
        assert_eq!(negative, m.summary.negative);
        let joined = bench_json::join(name, &chunks, ticks.len() as u64);
        assert_eq!(joined.as_ref(), Ok(&ticks));
    }
    for c in &chunks {
        let line = serde_json::to_string(c).expect("a chunk serialises");
        assert!(line.len() < crate::fuzzing::bench_decode::MAX_CHUNK_LINE);
    }
}

fn check_summary(s: &Summary, samples: usize) {
    assert_eq!(s.count + s.negative, samples as u64);
    assert!(s.outliers <= s.count);
    let h = &s.histogram;
    assert_eq!(h.counts.iter().sum::<u64>(), s.count);
    if s.count == 0 {
        assert!(h.edges_ns.is_empty() && h.counts.is_empty());
        return;
    }
    assert_eq!(h.edges_ns.len(), h.counts.len() + 1);
    assert!(h.counts.len() <= MAX_BINS, "{} bins", h.counts.len());
    assert!(h.edges_ns.iter().all(|e| e.is_finite()));
    assert!(h.edges_ns.windows(2).all(|w| w[0] < w[1]));
    let ordered = [s.min_ns, s.p50_ns, s.p90_ns, s.p99_ns, s.p999_ns, s.max_ns];
    assert!(ordered.iter().all(|x| x.is_finite() && *x >= 0.0));
    assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{ordered:?}");
    let slack = s.max_ns * 1e-9;
    assert!(s.mean_ns.is_finite());
    assert!(s.mean_ns >= s.min_ns - slack && s.mean_ns <= s.max_ns + slack);
}

/// The inverse of `bench::decode`: a `RESULTS_SIZE` buffer holding `r`.
pub fn encode(r: &GuestResults) -> Vec<u8> {
    let mut b = vec![0u8; RESULTS_SIZE as usize];
    let mut put = |at: usize, words: &[u64]| {
        for (i, w) in words.iter().enumerate() {
            b[at + 8 * i..at + 8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
    };
    let h = &r.header;
    put(
        0,
        &[
            h.magic,
            h.version,
            h.cntfrq,
            h.samples,
            h.warmup,
            h.anomalies,
            h.ipi_samples,
            h.cpus,
        ],
    );
    for (i, s) in r.vtimer.iter().enumerate() {
        let VtimerSample {
            deadline,
            entry,
            after_ack,
            after_eoi,
        } = *s;
        put(
            VTIMER_OFFSET as usize + 32 * i,
            &[deadline, entry, after_ack, after_eoi],
        );
    }
    for (i, &SgiSample { write, entry }) in r.sgi.iter().enumerate() {
        put(SGI_OFFSET as usize + 16 * i, &[write, entry]);
    }
    for (i, &MmioSample { start, end }) in r.mmio.iter().enumerate() {
        put(MMIO_OFFSET as usize + 16 * i, &[start, end]);
    }
    for (i, &IpiSample { write, entry }) in r.ipi.iter().enumerate() {
        put(IPI_OFFSET as usize + 16 * i, &[write, entry]);
    }
    b
}
