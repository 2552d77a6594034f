//! The benchmark's buffer dump (`uirq_abi::bench_dump`), which the
//! firmware prints where no VMM reads its result buffer (QEMU) and `cargo
//! xtask bench-latency` reads back, as arbitrary console text.
//!
//! # Input format
//!
//! The bytes are the console (invalid UTF-8 replaced, as a console reader
//! would), split at line feeds.
//!
//! # What is checked
//!
//! - decoding never panics, and never gives more words than allowed (a
//!   result buffer's worth, however large a count the text claims);
//! - decoded words re-encode, line by line as the firmware prints them,
//!   (`bench_dump::lines`, the firmware's writer) into text that decodes
//!   to the same words (the hash and count checks agree with the
//!   encoder);
//! - the words rebuild into a buffer of exactly `RESULTS_SIZE` bytes or
//!   are refused, and a rebuilt buffer holds each region's words at its
//!   offset;
//! - whatever such a buffer decodes to ([`crate::bench::decode`])
//!   summarises into a report without panicking, whose counts are the
//!   header's (what xtask does with a QEMU run).

use uirq_abi::bench::RESULTS_SIZE;
use uirq_abi::bench_dump;

use crate::bench;

/// At most this many words are accepted: a whole result buffer's.
pub const MAX_WORDS: u64 = RESULTS_SIZE / 8;

/// Runs one input through every check; panics on the first broken one.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(words) = bench_dump::decode_lines(text.lines(), MAX_WORDS) else {
        return;
    };
    assert!(words.len() as u64 <= MAX_WORDS, "{} words", words.len());
    let again = bench_dump::decode_lines(
        bench_dump::lines(&words).iter().map(String::as_str),
        MAX_WORDS,
    )
    .expect("re-encoded words decode");
    assert_eq!(again, words, "the round trip changed the words");
    let Some(buffer) = bench_dump::rebuild(&words, RESULTS_SIZE as usize) else {
        return;
    };
    assert_eq!(buffer.len(), RESULTS_SIZE as usize);
    let word = |offset: usize| u64::from_le_bytes(buffer[offset..offset + 8].try_into().unwrap());
    for (i, &w) in words.iter().take(8).enumerate() {
        assert_eq!(word(8 * i), w, "header word {i}");
    }
    let Ok(results) = bench::decode(&buffer) else {
        return;
    };
    let report = bench::run_report(
        &results,
        bench::RunContext {
            tool: "xtask",
            vmm: "qemu",
            irqchip: "user",
            vcpus: results.header.cpus,
            ..bench::RunContext::default()
        },
    );
    for m in &report.results {
        assert_eq!(
            m.summary.count + m.summary.negative,
            results.header.samples,
            "{}",
            m.measurement
        );
        assert!(m.exits_per_sample.is_none());
    }
}
