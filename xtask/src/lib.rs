//! The project's automation, as a library so the end-to-end tests in
//! `tests/` use the same code as `cargo xtask run`.
//!
//! - [`project`]: where things are (root, target directory, artifacts).
//! - [`toolchain`]: makes sure the rustup targets and llvm-tools are there.
//! - [`bench`](mod@bench): `bench-latency`: runs, tables, JSON and the SVG plot.
//! - [`boot_bench`]: `bench-boot`: Linux boot time and exits, userspace GIC
//!   against the in-kernel vGIC.
//! - [`build`]: builds the firmware image, the VMM and the two inits.
//! - [`cli`]: the command line of every verb.
//! - [`l1`]: the nested environment for machines that are not aarch64 KVM
//!   hosts: QEMU, the cached Debian arm64 kernel, the generated initramfs.
//! - [`bounded`]: console text kept to its first and last few hundred KiB.
//! - [`cpio`]: the `newc` archive writer the initramfs is made with.
//! - [`process`]: runs a child in a process group of its own with a
//!   deadline, reading its output, and stops the group when xtask is
//!   interrupted.
//! - [`kernels`]: the conformance suite on several kernels, as a matrix.
//! - [`jobs`]: runs VMM invocations, natively or inside L1, and collects
//!   their console output and exit codes.
//! - [`linux`]: Linux as the VMM's guest: its initramfs, the job that boots
//!   it, and reading back what its init printed.
//! - [`qemu_l1`]: Debian's arm64 QEMU and its libraries, for `@qemu` jobs
//!   in L1.
//! - [`qemu_plain`]: the firmware on QEMU's own emulated GICv2 (no KVM, no
//!   VMM), the independent check of the GIC scenarios.
//! - [`trace_svg`]: part of a VMM trace (`--trace`) drawn as an SVG
//!   timeline, for the docs.

pub mod bench;
pub mod boot_bench;
pub mod bounded;
pub mod build;
pub mod cli;
pub mod cpio;
pub mod jobs;
pub mod kernels;
pub mod l1;
pub mod linux;
pub mod process;
pub mod project;
pub mod qemu_l1;
pub mod qemu_plain;
pub mod toolchain;
pub mod trace_svg;

/// The error type of the automation: one sentence for the user.
pub type Error = String;
/// Result with a user-facing message.
pub type Result<T> = std::result::Result<T, Error>;

/// The exit code of every failure of xtask itself: bad arguments, a failed
/// build, a missing tool, an internal error. 101 is also what a Rust panic
/// and a failed cargo exit with, and no guest status
/// ([`uirq_abi::exit::Status`], 0 to 4) or VMM code
/// ([`VMM_TIMEOUT`](uirq_abi::exit::VMM_TIMEOUT) and the others, 124 to 130)
/// uses it, so `cargo xtask run`'s status says whose failure it was.
pub const XTASK_ERROR: u8 = 101;

/// Whether output bound for a stream may be coloured: only when the stream
/// is a terminal, and never when `NO_COLOR` (its value given as `no_color`)
/// is set and not empty (<https://no-color.org>).
pub fn colour(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// [`colour`] for this process's standard output.
pub fn stdout_colour() -> bool {
    use std::io::IsTerminal;
    colour(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// True when `NO_COLOR` is set and not empty.
pub fn no_color_set() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Prints a progress line on stderr, prefixed so it stands apart from the
/// guest's console.
pub fn progress(msg: impl std::fmt::Display) {
    eprintln!("xtask: {msg}");
}

/// Totals of the `cargo test` runs of `cargo xtask test`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed.
    pub failed: u64,
}

impl Tally {
    /// Adds the counts of a libtest `test result:` line; other lines are
    /// ignored.
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match kind {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                _ => {}
            }
        }
    }
}

pub use process::{output_of, run_checked};

/// The value of the environment variable `name`, `None` when it is unset.
/// A value that is not text is an error that names the variable, never
/// taken as unset: a setting the user made must not be ignored quietly.
pub fn env_text(name: &str) -> Result<Option<String>> {
    match std::env::var(name) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(value)) => Err(format!(
            "{name}={} is not valid text",
            std::path::Path::new(&value).display()
        )),
    }
}

/// Checks, before a long run, that its result can be written to `path`
/// (given with `option`): not a directory, in a directory that exists, and
/// writable. Nothing is left behind: an existing file is opened for
/// appending and left as it was, and a new one is created and removed.
pub fn check_output_path(path: &std::path::Path, option: &str) -> Result<()> {
    let shown = path.display();
    if path.is_dir() {
        return Err(format!("{option} {shown}: is a directory, not a file"));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        return Err(format!(
            "{option} {shown}: the directory {} does not exist",
            parent.display()
        ));
    }
    let cannot = |e: std::io::Error| format!("{option} {shown}: cannot write there: {e}");
    if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(cannot)?;
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(cannot)?;
        std::fs::remove_file(path).map_err(cannot)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check_output_path, colour, Tally, XTASK_ERROR};
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color_set() {
        let matrix = [
            (true, None, true),
            (true, Some(""), true),
            (true, Some("1"), false),
            (true, Some("0"), false),
            (false, None, false),
            (false, Some(""), false),
            (false, Some("1"), false),
        ];
        for (terminal, no_color, expected) in matrix {
            assert_eq!(
                colour(terminal, no_color.map(OsStr::new)),
                expected,
                "terminal {terminal}, NO_COLOR {no_color:?}"
            );
        }
    }

    #[test]
    fn xtask_failures_exit_with_a_code_no_guest_or_vmm_status_uses() {
        use uirq_abi::exit::*;
        let code = i32::from(XTASK_ERROR);
        for n in 0..=255u64 {
            if Status::from_number(n).is_some() {
                assert_ne!(n as i32, code, "guest status {n}");
            }
        }
        for vmm in [VMM_TIMEOUT, VMM_ERROR, VMM_GUEST_ABNORMAL, VMM_INTERRUPTED] {
            assert_ne!(vmm, code);
        }
        // Nor clap's own usage-error code, nor a plain failure.
        assert!(code != 2 && code != 1 && code != 0);
    }

    #[test]
    fn output_paths_are_checked_before_a_run_and_left_as_they_were() {
        let dir = std::env::temp_dir().join(format!("xtask-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let new = dir.join("new.json");
        check_output_path(&new, "--json").unwrap();
        assert!(!new.exists(), "a probe file was left behind");
        let old = dir.join("old.json");
        std::fs::write(&old, "kept").unwrap();
        check_output_path(&old, "--json").unwrap();
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "kept");
        let err = check_output_path(&dir, "--plot").unwrap_err();
        assert!(err.ends_with("is a directory, not a file"), "{err}");
        let err = check_output_path(&dir.join("no/such/dir/out.svg"), "--plot").unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        let err = check_output_path(std::path::Path::new("/proc/out.json"), "--json").unwrap_err();
        assert!(err.contains("cannot write there"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn test_result_lines_are_totalled_and_others_ignored() {
        let mut t = Tally::default();
        t.add_line("test result: ok. 78 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 4.09s");
        t.add_line(
            "test result: FAILED. 3 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out",
        );
        t.add_line("test foo ... ok");
        t.add_line("running 3 tests");
        assert_eq!(
            t,
            Tally {
                passed: 81,
                failed: 2
            }
        );
    }
}
