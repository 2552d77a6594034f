//! The project's automation, as a library so the end-to-end tests in
//! `tests/` use the same code as `cargo xtask run`.
//!
//! - [`project`]: where things are (root, target directory, artifacts).
//! - [`toolchain`]: makes sure the rustup targets and llvm-tools are there.
//! - [`bench`]: `bench-latency`: runs, tables, JSON and the SVG plot.
//! - [`boot_bench`]: `bench-boot`: Linux boot time and exits, userspace GIC
//!   against the in-kernel vGIC.
//! - [`build`]: builds the firmware image, the VMM and the two inits.
//! - [`l1`]: the nested environment for machines that are not aarch64 KVM
//!   hosts: QEMU, the cached Debian arm64 kernel, the generated initramfs.
//! - [`cpio`]: the `newc` archive writer the initramfs is made with.
//! - [`process`]: runs a child with a deadline, reading its output.
//! - [`jobs`]: runs VMM invocations, natively or inside L1, and collects
//!   their console output and exit codes.
//! - [`linux`]: Linux as the VMM's guest: its initramfs, the job that boots
//!   it, and reading back what its init printed.
//! - [`qemu_plain`]: the firmware on QEMU's own emulated GICv2 (no KVM, no
//!   VMM), the independent check of the GIC scenarios.

pub mod bench;
pub mod boot_bench;
pub mod build;
pub mod cpio;
pub mod jobs;
pub mod l1;
pub mod linux;
pub mod process;
pub mod project;
pub mod qemu_plain;
pub mod toolchain;

/// The error type of the automation: one sentence for the user.
pub type Error = String;
/// Result with a user-facing message.
pub type Result<T> = std::result::Result<T, Error>;

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

/// Runs `cmd`, failing with a message that names it when it cannot start or
/// exits non-zero.
pub fn run_checked(cmd: &mut std::process::Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

/// Runs `cmd` and returns its standard output as text.
pub fn output_of(cmd: &mut std::process::Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::Tally;

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
