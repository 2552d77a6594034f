//! Console text kept within a bound.
//!
//! A guest decides how much it prints, and a job's console is kept in
//! memory until the batch ends (for the tests to read, for an error
//! message). [`BoundedText`] keeps the first [`HEAD_BYTES`] and the last
//! [`TAIL_BYTES`] of it, whole lines only, and in between one line saying
//! how much was dropped there. What the harness reads from a console is at
//! its start (the firmware's report lines, the Linux init's first lines) or
//! at its end (the summary and verdict lines, `/proc/interrupts` just
//! before the power-off), and the project's programs print far less than
//! the bound anyway: the limit only bites on a guest that floods its
//! console, and the benchmark's dump under QEMU, which the head holds.
//! (Lines themselves are bounded on the way in: `process::MAX_LINE`.)

use std::collections::VecDeque;

/// Bytes kept from the start of a job's console: enough for the `bench`
/// firmware's dump of a full result buffer under QEMU
/// (`uirq_abi::bench_dump`: some 700 KiB for 16384 samples on two vCPUs),
/// which is read whole.
pub const HEAD_BYTES: usize = 1 << 20;
/// Bytes kept from the end of a job's console.
pub const TAIL_BYTES: usize = 256 << 10;

/// Lines of text, the first and last few hundred KiB of them.
#[derive(Clone, Debug)]
pub struct BoundedText {
    head: String,
    head_limit: usize,
    tail: VecDeque<String>,
    tail_bytes: usize,
    tail_limit: usize,
    /// Lines (and their bytes) dropped between head and tail.
    dropped_lines: u64,
    dropped_bytes: u64,
}

impl Default for BoundedText {
    fn default() -> Self {
        Self::new(HEAD_BYTES, TAIL_BYTES)
    }
}

impl BoundedText {
    /// Text that keeps its first `head` and last `tail` bytes (in whole
    /// lines; a line that does not fit in the head goes to the tail).
    pub fn new(head: usize, tail: usize) -> Self {
        Self {
            head: String::new(),
            head_limit: head,
            tail: VecDeque::new(),
            tail_bytes: 0,
            tail_limit: tail,
            dropped_lines: 0,
            dropped_bytes: 0,
        }
    }

    /// Appends one line (without its line ending).
    pub fn push_line(&mut self, line: &str) {
        let size = line.len() + 1;
        if self.tail.is_empty() && self.head.len() + size <= self.head_limit {
            self.head.push_str(line);
            self.head.push('\n');
            return;
        }
        self.tail.push_back(line.to_string());
        self.tail_bytes += size;
        while self.tail_bytes > self.tail_limit {
            let Some(old) = self.tail.pop_front() else {
                break;
            };
            self.tail_bytes -= old.len() + 1;
            self.dropped_lines += 1;
            self.dropped_bytes += old.len() as u64 + 1;
        }
    }

    /// Lines dropped so far.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped_lines
    }

    /// The last `n` lines kept, oldest first.
    pub fn last_lines(&self, n: usize) -> Vec<&str> {
        let mut lines: Vec<&str> = self.tail.iter().rev().take(n).map(String::as_str).collect();
        if lines.len() < n {
            let want = n - lines.len();
            let head: Vec<&str> = self.head.lines().collect();
            lines.extend(head.iter().rev().take(want).copied());
        }
        lines.reverse();
        lines
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.tail.is_empty() && self.dropped_lines == 0
    }

    /// The text kept: head, a line about what was dropped (if anything
    /// was), tail; every line ends with `\n`.
    pub fn into_string(self) -> String {
        let mut out = self.head;
        if self.dropped_lines > 0 {
            out.push_str(&format!(
                "[xtask: {} lines ({} bytes) of this console dropped here, to keep its first {} KiB and last {} KiB]\n",
                self.dropped_lines,
                self.dropped_bytes,
                self.head_limit >> 10,
                self.tail_limit >> 10
            ));
        }
        for line in self.tail {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        let mut t = BoundedText::default();
        for line in ["tick 1: 5 ns", "", "scenario sgi: PASS"] {
            t.push_line(line);
        }
        assert_eq!(t.dropped_lines(), 0);
        assert_eq!(t.last_lines(2), ["", "scenario sgi: PASS"]);
        assert_eq!(t.into_string(), "tick 1: 5 ns\n\nscenario sgi: PASS\n");
    }

    // Far more than the bound: the start and the end survive, in order,
    // with one line that says how much went, and the whole stays near the
    // bound.
    #[test]
    fn a_flood_keeps_its_first_and_last_lines_and_says_what_went() {
        let mut t = BoundedText::default();
        let lines = 1_000_000;
        for i in 0..lines {
            t.push_line(&format!("line {i:07} of a guest that floods its console"));
        }
        assert_eq!(
            t.last_lines(1),
            ["line 0999999 of a guest that floods its console"]
        );
        let dropped = t.dropped_lines();
        assert!(dropped > 900_000, "{dropped}");
        let text = t.into_string();
        assert!(
            text.len() <= HEAD_BYTES + TAIL_BYTES + 200,
            "{}",
            text.len()
        );
        let kept: Vec<&str> = text.lines().collect();
        assert_eq!(kept[0], "line 0000000 of a guest that floods its console");
        assert_eq!(
            *kept.last().unwrap(),
            "line 0999999 of a guest that floods its console"
        );
        let note = kept
            .iter()
            .position(|l| l.starts_with("[xtask: "))
            .expect("a note");
        assert!(
            kept[note].contains(&format!("{dropped} lines")),
            "{}",
            kept[note]
        );
        assert!(kept[note].contains("first 1024 KiB and last 256 KiB"));
        // Whole lines, in order, on both sides of the note.
        let number = |l: &str| l[5..12].parse::<u64>().unwrap();
        assert_eq!(number(kept[note - 1]) + 1 + dropped, number(kept[note + 1]));
        assert_eq!(kept.len() as u64 + dropped - 1, lines);
    }

    #[test]
    fn a_line_too_long_for_the_head_goes_to_the_tail() {
        let mut t = BoundedText::new(10, 100);
        t.push_line("0123456789abcdef");
        t.push_line("x");
        assert_eq!(t.into_string(), "0123456789abcdef\nx\n");
        let mut t = BoundedText::new(0, 4);
        t.push_line("a");
        t.push_line("b");
        t.push_line("c");
        assert_eq!(t.last_lines(5), ["b", "c"]);
        assert!(t
            .into_string()
            .ends_with("dropped here, to keep its first 0 KiB and last 0 KiB]\nb\nc\n"));
    }
}
