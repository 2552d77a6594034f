//! Building the pieces: firmware image, VMM, L1 init, Linux guest init.

use std::path::PathBuf;

use crate::process::{CARGO_LIMIT, TOOL_LIMIT};
use crate::project::{self, Artifacts};
use crate::toolchain::{self, GUEST_TARGET, LINUX_TARGET};
use crate::{progress, run_checked, Result};

/// Builds everything a run needs (release profile) and returns the paths.
pub fn all() -> Result<Artifacts> {
    toolchain::ensure()?;
    let guest_image = guest()?;
    progress(format!(
        "building the VMM and the inits (L1, Linux guest) for {LINUX_TARGET}"
    ));
    run_checked(
        project::cargo().args([
            "build",
            "--quiet",
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
            .args(["build", "--quiet", "--release", "--target", GUEST_TARGET])
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
