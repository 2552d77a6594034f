//! Building the pieces: firmware image, VMM, L1 init, Linux guest init.

use std::path::PathBuf;

use crate::process::{CARGO_LIMIT, TOOL_LIMIT};
use crate::project::{self, Artifacts};
use crate::toolchain::{self, GUEST_TARGET, LINUX_TARGET};
use crate::{progress, run_checked, Result};

/// What must be ready before the VMM can run, in the order it is made
/// ready: what can fail in seconds (QEMU missing and not installable, the
/// L1 kernel not downloadable) before the build, which takes minutes the
/// first time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// `qemu-system-aarch64`, installed with apt if missing.
    Qemu,
    /// The L1 kernel, downloaded once into `target/l1/`.
    L1Kernel,
    /// The firmware, the VMM and the inits.
    Build,
}

/// The needs of a run, in order: a nested run (`native` false) needs QEMU
/// and the L1 kernel first; a native one needs the kernel only when it
/// boots Linux as its guest (`linux_guest`: the same cached kernel).
pub fn needs(native: bool, linux_guest: bool) -> Vec<Need> {
    let mut needs = Vec::new();
    if !native {
        needs.push(Need::Qemu);
    }
    if !native || linux_guest {
        needs.push(Need::L1Kernel);
    }
    needs.push(Need::Build);
    needs
}

/// Makes ready everything a run of the VMM needs on this machine, in the
/// order of [`needs`], and returns the built artifacts.
pub fn for_running(linux_guest: bool) -> Result<Artifacts> {
    let mut built = None;
    for need in needs(project::is_native_kvm_host(), linux_guest) {
        match need {
            Need::Qemu => {
                crate::l1::ensure_qemu()?;
            }
            Need::L1Kernel => {
                crate::l1::ensure_kernel()?;
            }
            Need::Build => built = Some(all()?),
        }
    }
    built.ok_or_else(|| "internal error: the run's needs include no build".to_string())
}

/// `--quiet` for cargo unless standard error is a terminal, where cargo's
/// own progress bar shows how far a long build is.
fn quiet() -> Option<&'static str> {
    use std::io::IsTerminal;
    (!std::io::stderr().is_terminal()).then_some("--quiet")
}

/// Builds everything a run needs (release profile) and returns the paths.
pub fn all() -> Result<Artifacts> {
    toolchain::ensure()?;
    let guest_image = guest()?;
    progress(format!(
        "building the VMM and the inits (L1, Linux guest) for {LINUX_TARGET}"
    ));
    run_checked(
        project::cargo().args(quiet()).args([
            "build",
            "--release",
            "--target",
            LINUX_TARGET,
            "--package",
            "uirq-host",
            "--package",
            "uirq-l1-init",
            "--package",
            "uirq-linux-init",
            // Name every binary: a `--bin` filter applies to every package.
            "--bin",
            "uirq-vmm",
            "--bin",
            "uirq-l1-init",
            "--bin",
            "uirq-linux-init",
        ]),
        CARGO_LIMIT,
    )?;
    let bin_dir = project::target_dir().join(LINUX_TARGET).join("release");
    Ok(Artifacts {
        guest_image,
        vmm: bin_dir.join("uirq-vmm"),
        l1_init: bin_dir.join("uirq-l1-init"),
        linux_init: bin_dir.join("uirq-linux-init"),
    })
}

/// The firmware's manifest (it is not a workspace member).
pub fn guest_manifest() -> PathBuf {
    project::root().join("guest/Cargo.toml")
}

/// Builds the firmware ELF and turns it into the flat image the VMM loads.
pub fn guest() -> Result<PathBuf> {
    progress(format!("building the guest firmware for {GUEST_TARGET}"));
    let target_dir = project::target_dir();
    run_checked(
        project::cargo()
            .args(quiet())
            .args(["build", "--release", "--target", GUEST_TARGET])
            .arg("--manifest-path")
            .arg(guest_manifest())
            .arg("--target-dir")
            .arg(&target_dir),
        CARGO_LIMIT,
    )?;
    let elf = target_dir.join(GUEST_TARGET).join("release/uirq-guest");
    let image = target_dir.join(GUEST_TARGET).join("release/uirq-guest.bin");
    // The VMM loads a flat image at the start of RAM and jumps to its first
    // byte; the linker script puts the entry point there.
    run_checked(
        std::process::Command::new(toolchain::objcopy()?)
            .args(["-O", "binary"])
            .arg(&elf)
            .arg(&image),
        TOOL_LIMIT,
    )?;
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_and_the_kernel_are_made_ready_before_the_long_build() {
        for linux in [false, true] {
            assert_eq!(
                needs(false, linux),
                [Need::Qemu, Need::L1Kernel, Need::Build]
            );
        }
        assert_eq!(needs(true, false), [Need::Build]);
        assert_eq!(needs(true, true), [Need::L1Kernel, Need::Build]);
    }
}
