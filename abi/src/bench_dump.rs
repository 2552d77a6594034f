//! The benchmark's result buffer as console text, for a VMM that does not
//! read guest memory (QEMU): the firmware prints the buffer's used words,
//! and `cargo xtask bench-latency` rebuilds the buffer from them and
//! summarises it with the very code that summarises `uirq-vmm`'s runs.
//!
//! # The lines
//!
//! ```text
//! bench-dump begin 16008
//! bench-dump 0 AqgB8vQ3...
//! bench-dump 1 ...
//! bench-dump end 16008 9c1f0e2ab37d4c55
//! ```
//!
//! `begin` and `end` give the number of words; `end` also the FNV-1a
//! (64-bit) hash of their little-endian bytes, in hex, so that a line lost
//! or garbled on the way is noticed rather than summarised. Each data line
//! has its sequence number and at most [`WORDS_PER_LINE`] words.
//!
//! # The words
//!
//! In the order of [`regions`]: the header's eight words, then the used
//! part of each sample array (vtimer, sgi, mmio, ipi). Each word is sent as
//! its difference from the word before (wrapping, zigzag-mapped so that
//! small negative differences stay small), in little-endian groups of five
//! bits, one character per group from the base64 alphabet: the character's
//! index is the group plus 32 when more groups follow. Timestamps taken
//! microseconds apart then cost three or four characters instead of sixteen
//! hex digits, which matters: under QEMU every character printed is two
//! traps to the VMM.
//!
//! The firmware writes the lines with [`write()`] (no allocation: any
//! `core::fmt::Write`); decoding ([`decode_lines`], [`rebuild`]) and the
//! helpers that go with it ([`lines`], [`words_of`]) are for the host side
//! (feature `json`).

use crate::bench::{
    Header, IpiSample, MmioSample, SgiSample, VtimerSample, IPI_OFFSET, MMIO_OFFSET, SGI_OFFSET,
    VTIMER_OFFSET,
};

/// The first word of every dump line.
pub const PREFIX: &str = "bench-dump";

/// Words per data line (a line is then at most some 900 characters).
pub const WORDS_PER_LINE: usize = 64;

/// The longest encoding of one word: 64 bits in groups of five.
pub const MAX_WORD_CHARS: usize = 13;

/// The base64 alphabet (RFC 4648, section 4).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The parts of the buffer a complete run uses, as (byte offset, words),
/// in dump order, for the header `h`.
pub fn regions(h: &Header) -> [(u64, u64); 5] {
    let words = |size: usize| (size / 8) as u64;
    [
        (0, words(core::mem::size_of::<Header>())),
        (
            VTIMER_OFFSET,
            h.samples
                .saturating_mul(words(core::mem::size_of::<VtimerSample>())),
        ),
        (
            SGI_OFFSET,
            h.samples
                .saturating_mul(words(core::mem::size_of::<SgiSample>())),
        ),
        (
            MMIO_OFFSET,
            h.samples
                .saturating_mul(words(core::mem::size_of::<MmioSample>())),
        ),
        (
            IPI_OFFSET,
            h.ipi_samples
                .saturating_mul(words(core::mem::size_of::<IpiSample>())),
        ),
    ]
}

/// FNV-1a, 64-bit: offset basis and prime.
const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The running state of an encoding (or a decoding): the previous word
/// and the hash so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stream {
    previous: u64,
    hash: u64,
    words: u64,
}

impl Default for Stream {
    fn default() -> Self {
        Self::new()
    }
}

impl Stream {
    /// Before the first word.
    pub const fn new() -> Self {
        Self {
            previous: 0,
            hash: FNV_BASIS,
            words: 0,
        }
    }

    /// Takes `word` into the hash and count, and returns the zigzag delta
    /// to encode.
    fn take(&mut self, word: u64) -> u64 {
        let delta = word.wrapping_sub(self.previous) as i64;
        self.previous = word;
        self.words += 1;
        for b in word.to_le_bytes() {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        ((delta << 1) ^ (delta >> 63)) as u64
    }

    /// Encodes `word` into `out` and returns how many characters it took
    /// (at most [`MAX_WORD_CHARS`]).
    pub fn encode(&mut self, word: u64, out: &mut [u8; MAX_WORD_CHARS]) -> usize {
        let mut z = self.take(word);
        let mut n = 0;
        loop {
            let group = (z & 0x1f) as usize;
            z >>= 5;
            let more = if z != 0 { 32 } else { 0 };
            out[n] = ALPHABET[group | more];
            n += 1;
            if z == 0 {
                return n;
            }
        }
    }

    /// Words taken so far.
    pub fn words(&self) -> u64 {
        self.words
    }

    /// The FNV-1a hash of the words taken so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }
}

/// Writes `count` words, `words`, as dump lines (the `begin` line, the
/// data lines, the `end` line, each ending in a line feed) to `out`. The
/// one writer of the format: the firmware's console and the host's
/// strings alike.
pub fn write(
    count: u64,
    words: impl IntoIterator<Item = u64>,
    out: &mut impl core::fmt::Write,
) -> core::fmt::Result {
    writeln!(out, "{PREFIX} begin {count}")?;
    let mut stream = Stream::new();
    for (i, word) in words.into_iter().enumerate() {
        if i % WORDS_PER_LINE == 0 {
            if i != 0 {
                out.write_char('\n')?;
            }
            write!(out, "{PREFIX} {} ", i / WORDS_PER_LINE)?;
        }
        let mut chars = [0u8; MAX_WORD_CHARS];
        let n = stream.encode(word, &mut chars);
        // The alphabet is ASCII.
        out.write_str(core::str::from_utf8(&chars[..n]).map_err(|_| core::fmt::Error)?)?;
    }
    if stream.words() != 0 {
        out.write_char('\n')?;
    }
    writeln!(
        out,
        "{PREFIX} end {} {:016x}",
        stream.words(),
        stream.hash()
    )
}

/// `words` as the dump lines [`write()`] makes, without their line feeds.
#[cfg(feature = "json")]
pub fn lines(words: &[u64]) -> alloc::vec::Vec<alloc::string::String> {
    let mut text = alloc::string::String::new();
    // Writing to a String cannot fail.
    let _ = write(words.len() as u64, words.iter().copied(), &mut text);
    text.lines().map(alloc::string::String::from).collect()
}

/// The used words of a result `buffer` in dump order ([`regions`] of its
/// own header): what the firmware dumps, and what [`rebuild`] puts back.
/// `None` when the buffer is shorter than its header says.
#[cfg(feature = "json")]
pub fn words_of(buffer: &[u8]) -> Option<alloc::vec::Vec<u64>> {
    let word = |at: u64| -> Option<u64> {
        let at = usize::try_from(at).ok()?;
        let bytes = buffer.get(at..at.checked_add(8)?)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    };
    let h: alloc::vec::Vec<u64> = (0..8).map(|i| word(8 * i)).collect::<Option<_>>()?;
    let header = Header {
        magic: h[0],
        version: h[1],
        cntfrq: h[2],
        samples: h[3],
        warmup: h[4],
        anomalies: h[5],
        ipi_samples: h[6],
        cpus: h[7],
    };
    let mut words = alloc::vec::Vec::new();
    for (offset, count) in regions(&header) {
        for i in 0..count {
            words.push(word(offset.checked_add(i.checked_mul(8)?)?)?);
        }
    }
    Some(words)
}

#[cfg(feature = "json")]
/// Why dump lines could not be turned back into words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DumpError {
    /// No `begin` line.
    NoBegin,
    /// No `end` line after the data.
    NoEnd,
    /// A line that starts with [`PREFIX`] but does not parse.
    Malformed(alloc::string::String),
    /// Data line `got` came where `expected` was due.
    Sequence { got: u64, expected: u64 },
    /// A character outside the alphabet, or a word longer than 64 bits.
    BadWord,
    /// The count or the hash at the end does not match the words.
    Mismatch,
    /// More words than a buffer holds.
    TooLong,
}

#[cfg(feature = "json")]
impl core::fmt::Display for DumpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoBegin => write!(f, "no `{PREFIX} begin` line"),
            Self::NoEnd => write!(f, "no `{PREFIX} end` line: the dump was cut short"),
            Self::Malformed(line) => write!(f, "a malformed dump line: {line:?}"),
            Self::Sequence { got, expected } => {
                write!(f, "dump line {got} came where line {expected} was due")
            }
            Self::BadWord => write!(f, "a dump line holds a character or word that cannot be"),
            Self::Mismatch => write!(
                f,
                "the words do not match the count and hash of the `end` line"
            ),
            Self::TooLong => write!(f, "more words than the result buffer holds"),
        }
    }
}

#[cfg(feature = "json")]
/// The words of the dump among `console`'s lines (other lines are
/// ignored), checked against the `end` line's count and hash. At most
/// `max_words` are accepted: the text is the guest's, and untrusted.
pub fn decode_lines<'a>(
    console: impl IntoIterator<Item = &'a str>,
    max_words: u64,
) -> Result<alloc::vec::Vec<u64>, DumpError> {
    let mut words = alloc::vec::Vec::new();
    let mut stream = Stream::new();
    let mut begun = None;
    let mut next_line = 0u64;
    for line in console {
        let Some(rest) = line.trim_end().strip_prefix(PREFIX) else {
            continue;
        };
        let malformed = || DumpError::Malformed(line.into());
        let mut fields = rest.split(' ').filter(|f| !f.is_empty());
        let first = fields.next().ok_or_else(malformed)?;
        match first {
            "begin" => {
                let n: u64 = fields
                    .next()
                    .and_then(|f| f.parse().ok())
                    .ok_or_else(malformed)?;
                if n > max_words {
                    return Err(DumpError::TooLong);
                }
                begun = Some(n);
            }
            "end" => {
                begun.ok_or(DumpError::NoBegin)?;
                let n: u64 = fields
                    .next()
                    .and_then(|f| f.parse().ok())
                    .ok_or_else(malformed)?;
                let hash = fields
                    .next()
                    .and_then(|f| u64::from_str_radix(f, 16).ok())
                    .ok_or_else(malformed)?;
                if n != stream.words() || Some(n) != begun || hash != stream.hash() {
                    return Err(DumpError::Mismatch);
                }
                return Ok(words);
            }
            seq => {
                let expected = begun.ok_or(DumpError::NoBegin)?;
                let seq: u64 = seq.parse().map_err(|_| malformed())?;
                if seq != next_line {
                    return Err(DumpError::Sequence {
                        got: seq,
                        expected: next_line,
                    });
                }
                next_line += 1;
                let data = fields.next().unwrap_or("");
                if fields.next().is_some() {
                    return Err(malformed());
                }
                decode_data(data, &mut stream, &mut words)?;
                if words.len() as u64 > expected {
                    return Err(DumpError::TooLong);
                }
            }
        }
    }
    Err(if begun.is_some() {
        DumpError::NoEnd
    } else {
        DumpError::NoBegin
    })
}

#[cfg(feature = "json")]
/// Appends the words of one data line's characters to `words`.
fn decode_data(
    data: &str,
    stream: &mut Stream,
    words: &mut alloc::vec::Vec<u64>,
) -> Result<(), DumpError> {
    let mut z: u64 = 0;
    let mut shift = 0u32;
    for c in data.bytes() {
        let index = ALPHABET
            .iter()
            .position(|&a| a == c)
            .ok_or(DumpError::BadWord)? as u64;
        let group = index & 0x1f;
        // Thirteen groups carry 64 bits; the last of them only four.
        if shift > 60 || (shift == 60 && group > 0xf) {
            return Err(DumpError::BadWord);
        }
        z |= group << shift;
        shift += 5;
        if index & 32 == 0 {
            let delta = ((z >> 1) as i64) ^ -((z & 1) as i64);
            let word = stream.previous.wrapping_add(delta as u64);
            stream.take(word);
            words.push(word);
            z = 0;
            shift = 0;
        }
    }
    if shift != 0 {
        // A word's last group is on the same line as its first.
        return Err(DumpError::BadWord);
    }
    Ok(())
}

#[cfg(feature = "json")]
/// Puts decoded `words` (in [`regions`] order) back into a buffer of
/// `size` bytes, laid out as the firmware wrote it. `None` when the words
/// do not fill the regions their own header names, or overflow `size`.
pub fn rebuild(words: &[u64], size: usize) -> Option<alloc::vec::Vec<u8>> {
    let header_words = core::mem::size_of::<Header>() / 8;
    let h = words.get(..header_words)?;
    let header = Header {
        magic: h[0],
        version: h[1],
        cntfrq: h[2],
        samples: h[3],
        warmup: h[4],
        anomalies: h[5],
        ipi_samples: h[6],
        cpus: h[7],
    };
    let mut bytes = alloc::vec![0u8; size];
    let mut next = 0usize;
    for (offset, count) in regions(&header) {
        let count = usize::try_from(count).ok()?;
        let part = words.get(next..next.checked_add(count)?)?;
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(count.checked_mul(8)?)?;
        let target = bytes.get_mut(start..end)?;
        for (chunk, w) in target.chunks_exact_mut(8).zip(part) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        next += count;
    }
    (next == words.len()).then_some(bytes)
}

#[cfg(all(test, feature = "json"))]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    fn decode(lines: &[String]) -> Result<Vec<u64>, DumpError> {
        decode_lines(lines.iter().map(String::as_str), 1 << 20)
    }

    #[test]
    fn words_round_trip_including_the_extremes() {
        let words: Vec<u64> = [
            0,
            1,
            u64::MAX,
            0,
            1 << 63,
            (1 << 63) - 1,
            62_500_000,
            62_561_234,
            62_560_000,
        ]
        .into_iter()
        .chain((0..300).map(|i| 1_000_000 + i * 60_000 + (i % 7) * 13))
        .collect();
        let text = lines(&words);
        assert_eq!(decode(&text).unwrap(), words);
        // Five data lines of at most 64 words.
        assert_eq!(text.len(), 2 + words.len().div_ceil(WORDS_PER_LINE));
    }

    #[test]
    fn close_timestamps_cost_few_characters() {
        let mut s = Stream::new();
        let mut buf = [0u8; MAX_WORD_CHARS];
        s.encode(5_000_000_000, &mut buf);
        // 60 000 ticks later: 17 bits of zigzag, four groups.
        assert_eq!(s.encode(5_000_060_000, &mut buf), 4);
        // 900 ticks earlier: small and negative, three groups.
        assert_eq!(s.encode(5_000_059_100, &mut buf), 3);
        assert!(s.encode(u64::MAX, &mut buf) <= MAX_WORD_CHARS);
    }

    #[test]
    fn other_console_lines_are_ignored() {
        let words = [7u64, 8, 9];
        let mut text = lines(&words);
        text.insert(1, "bench: 3 x 1 samples recorded".into());
        text.insert(0, "QEMU says hello".into());
        assert_eq!(decode(&text).unwrap(), words);
    }

    #[test]
    fn a_lost_garbled_or_cut_dump_is_refused() {
        let words: Vec<u64> = (0..200).map(|i| i * 1000).collect();
        let text = lines(&words);
        let mut lost = text.clone();
        lost.remove(2);
        assert_eq!(
            decode(&lost),
            Err(DumpError::Sequence {
                got: 2,
                expected: 1
            })
        );
        let mut garbled = text.clone();
        garbled[1] = garbled[1].replacen('A', "B", 1);
        assert_eq!(decode(&garbled), Err(DumpError::Mismatch));
        let mut bad = text.clone();
        bad[1].push('!');
        assert_eq!(decode(&bad), Err(DumpError::BadWord));
        assert_eq!(decode(&text[..text.len() - 1]), Err(DumpError::NoEnd));
        assert_eq!(decode(&text[1..]), Err(DumpError::NoBegin));
        assert!(matches!(
            decode(&["bench-dump begin x".into()]),
            Err(DumpError::Malformed(_))
        ));
        // A guest that claims more than a buffer holds is stopped early.
        assert_eq!(
            decode_lines(text.iter().map(String::as_str), 10),
            Err(DumpError::TooLong)
        );
        // A word that would not fit in 64 bits: fourteen groups.
        let long = alloc::format!("{PREFIX} 0 {}A", "/".repeat(13));
        assert_eq!(
            decode(&[alloc::format!("{PREFIX} begin 1"), long]),
            Err(DumpError::BadWord)
        );
    }

    #[test]
    fn the_buffer_is_rebuilt_at_its_offsets() {
        let header = [crate::bench::MAGIC, 2, 62_500_000, 2, 1, 0, 2, 2];
        let mut words: Vec<u64> = header.to_vec();
        words.extend(100..108); // vtimer: 2 x 4
        words.extend(200..204); // sgi: 2 x 2
        words.extend(300..304); // mmio
        words.extend(400..404); // ipi
        let size = crate::bench::RESULTS_SIZE as usize;
        let bytes = rebuild(&words, size).unwrap();
        let word = |offset: u64| {
            let at = offset as usize;
            u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
        };
        assert_eq!(word(0), crate::bench::MAGIC);
        assert_eq!(word(VTIMER_OFFSET), 100);
        assert_eq!(word(VTIMER_OFFSET + 56), 107);
        assert_eq!(word(SGI_OFFSET + 8), 201);
        assert_eq!(word(MMIO_OFFSET + 24), 303);
        assert_eq!(word(IPI_OFFSET), 400);
        // Too few words for the regions the header names, or too many.
        assert_eq!(rebuild(&words[..words.len() - 1], size), None);
        let mut extra = words.clone();
        extra.push(1);
        assert_eq!(rebuild(&extra, size), None);
        // And back: the used words of the buffer, in dump order.
        assert_eq!(words_of(&bytes).unwrap(), words);
        assert_eq!(words_of(&bytes[..100]), None);
        // A header that names more samples than the buffer holds.
        let mut huge = words.clone();
        huge[3] = u64::MAX / 64;
        assert_eq!(rebuild(&huge, size), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            // Any words at all come back as they went.
            #[test]
            fn any_words_round_trip(words in proptest::collection::vec(any::<u64>(), 0..400)) {
                prop_assert_eq!(decode(&lines(&words)).unwrap(), words);
            }

            // Whatever a guest prints, decoding ends with words or an
            // error, never a panic, and never more words than allowed.
            #[test]
            fn any_text_is_decoded_or_refused(
                text in proptest::collection::vec("(bench-dump )?(begin |end )?[ -~]{0,60}", 0..12),
                max in 0u64..64,
            ) {
                if let Ok(words) = decode_lines(text.iter().map(String::as_str), max) {
                    prop_assert!(words.len() as u64 <= max);
                }
            }

            // One changed character in a data line is caught.
            #[test]
            fn a_changed_character_is_caught(
                words in proptest::collection::vec(any::<u64>(), 1..200),
                at in any::<prop::sample::Index>(),
                to in 0usize..64,
            ) {
                let mut text = lines(&words);
                let line = &mut text[1];
                let data_start = line.rfind(' ').unwrap() + 1;
                let i = data_start + at.index(line.len() - data_start);
                let new = ALPHABET[to] as char;
                prop_assume!(line.as_bytes()[i] as char != new);
                line.replace_range(i..=i, &alloc::format!("{new}"));
                prop_assert!(decode(&text).is_err());
            }

            // Any words make a buffer or nothing, never a panic.
            #[test]
            fn any_words_rebuild_or_not(words in proptest::collection::vec(any::<u64>(), 0..64)) {
                let _ = rebuild(&words, 1 << 16);
            }
        }
    }
}
