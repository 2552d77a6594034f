//! The project's automation, as a library so the end-to-end tests in
//! `tests/` use the same code as `cargo xtask run`.
//!
//! - [`project`]: where things are (root, target directory, artifacts).
//! - [`toolchain`]: makes sure the rustup targets and llvm-tools are there.
//! - [`bench`]: `bench-latency`: runs, tables, JSON and the SVG plot.
//! - [`build`]: builds the firmware image, the VMM and the L1 init.
//! - [`l1`]: the nested environment for machines that are not aarch64 KVM
//!   hosts: QEMU, the cached Debian arm64 kernel, the generated initramfs.
//! - [`cpio`]: the `newc` archive writer the initramfs is made with.
//! - [`jobs`]: runs VMM invocations, natively or inside L1, and collects
//!   their console output and exit codes.
//! - [`qemu_plain`]: the firmware on QEMU's own emulated GICv2 (no KVM, no
//!   VMM), the independent check of the GIC scenarios.

pub mod bench;
pub mod build;
pub mod cpio;
pub mod jobs;
pub mod l1;
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
