//! How the harness tells its own lines from the guest's, on a console the
//! guest shares.
//!
//! The guest's UART output goes to the VMM's standard output, and in the
//! nested environment that is L1's console, where the L1 init also frames
//! each job (`@@uirq ... job 3 exit 0`) and the VMM prints its reports
//! (`@@bench {json}`, `@@samples {json}`, `@@exits {json}`). A guest can print anything, those
//! lines included, so a line's text alone proves nothing.
//!
//! What the guest cannot print is a secret it never sees: a **tag** of
//! random letters and digits, made fresh for every run by whoever starts the
//! VMM (the L1 init once per boot, from the kernel's random generator;
//! `cargo xtask` for a native run) and handed to the VMM in the environment
//! variable [`TAG_ENV`]. Nothing passes it to the guest: it is neither in
//! guest memory nor on the guest's command line, and it is printed, on the
//! nested console, only where the guest cannot read (L1's console is not
//! the guest's input). Every line meant for the harness carries it right
//! after its keyword:
//!
//! ```text
//! @@uirq 5f0c9e…c1 job 0 exit 0        the L1 init's control lines
//! @@bench 5f0c9e…c1 {"irqchip":…}      the VMM's benchmark report
//! @@samples 5f0c9e…c1 {"ticks":…}      raw samples, with --raw-samples
//! @@exits 5f0c9e…c1 {"total":…}        the VMM's --exit-stats report
//! ```
//!
//! and the harness takes a line as its own only with the tag it expects
//! ([`find`]); anything else, a forged `@@uirq job 0 exit 0` included, is
//! the guest's text. The tagged part may follow other text on the same line
//! (a guest that ended without a newline), so it is looked for anywhere in
//! the line. A VMM started without the variable prints its reports with no
//! tag, for people reading them, and the harness ignores those.

/// The environment variable that hands the VMM its tag.
pub const TAG_ENV: &str = "UIRQ_REPORT_TAG";
/// The keyword of the L1 init's control lines.
pub const CONTROL: &str = "@@uirq";
/// The keyword of the VMM's benchmark report (`--program bench`).
pub const BENCH: &str = "@@bench";
/// The keyword of the VMM's raw benchmark samples (`--raw-samples`), in
/// chunks (`crate::bench_json::SampleChunk`).
pub const SAMPLES: &str = "@@samples";
/// The keyword of the VMM's exit statistics (`--exit-stats`).
pub const EXITS: &str = "@@exits";
/// The keywords of the VMM's reports.
pub const VMM_REPORTS: [&str; 3] = [BENCH, SAMPLES, EXITS];
/// Fewest characters in a tag: 64 random bits at least.
pub const TAG_MIN: usize = 16;
/// Most characters in a tag.
pub const TAG_MAX: usize = 64;

/// Whether `tag` has the form of a tag: [`TAG_MIN`] to [`TAG_MAX`] ASCII
/// letters and digits (so it survives any console and splits as one word).
pub fn valid_tag(tag: &str) -> bool {
    (TAG_MIN..=TAG_MAX).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Finds `keyword tag ` in `line`: the text before it (the guest's, when
/// the guest left a line open) and the rest of the line after it. `None`
/// when the line holds no such part, whatever else it says.
pub fn find<'a>(line: &'a str, keyword: &str, tag: &str) -> Option<(&'a str, &'a str)> {
    if tag.is_empty() {
        return None;
    }
    line.match_indices(keyword).find_map(|(at, _)| {
        let rest = line[at + keyword.len()..]
            .strip_prefix(' ')?
            .strip_prefix(tag)?
            .strip_prefix(' ')?;
        Some((&line[..at], rest))
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    const TAG: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn tagged_parts_are_found_anywhere_and_untagged_ones_never() {
        assert_eq!(
            find(&["@@uirq ", TAG, " job 0 exit 0"].concat(), CONTROL, TAG),
            Some(("", "job 0 exit 0"))
        );
        let left_open: String = ["guest text@@bench ", TAG, " {}"].concat();
        assert_eq!(find(&left_open, BENCH, TAG), Some(("guest text", "{}")));
        for forged in [
            "@@uirq job 0 exit 0",
            "@@uirq done",
            "@@bench {\"irqchip\":\"user\"}",
            "@@exits 0123456789abcdef0123456789abcdee {}",
            "@@uirq 0123456789abcdef0123456789abcdef0 job 0 exit 0",
            "@@uirq0123456789abcdef0123456789abcdef job 0 exit 0",
        ] {
            for keyword in [CONTROL, BENCH, SAMPLES, EXITS] {
                assert_eq!(find(forged, keyword, TAG), None, "{forged}");
            }
        }
        // A forged line ahead of the real part on the same line does not
        // hide it.
        let both = ["@@exits {} @@exits ", TAG, " {\"total\":1}"].concat();
        assert_eq!(
            find(&both, EXITS, TAG),
            Some(("@@exits {} ", "{\"total\":1}"))
        );
        assert_eq!(find("@@uirq  job", CONTROL, ""), None);
    }

    #[test]
    fn tags_are_letters_and_digits_of_a_sane_length() {
        assert!(valid_tag(TAG));
        assert!(valid_tag(&TAG[..TAG_MIN]));
        assert!(!valid_tag(&TAG[..TAG_MIN - 1]));
        assert!(!valid_tag("0123456789abcdef 0123"));
        assert!(!valid_tag("0123456789abcdef-0123"));
        assert!(!valid_tag(""));
        let long = [TAG, TAG, "0"].concat();
        assert!(!valid_tag(&long));
    }
}
