//! Makes sure the pinned toolchain has what the build needs.
//!
//! `rust-toolchain.toml` lists the targets and components, but rustup only
//! installs them by itself when auto-install is on; some machines set
//! `RUSTUP_AUTO_INSTALL=0`. So xtask checks and adds them, saying so.

use std::path::PathBuf;
use std::process::Command;

use crate::process::TOOL_LIMIT;
use crate::{output_of, progress, run_checked, Result};

/// The bare-metal target of the firmware.
pub const GUEST_TARGET: &str = "aarch64-unknown-none";
/// The static Linux target of the VMM and the L1 init.
pub const LINUX_TARGET: &str = "aarch64-unknown-linux-musl";

fn rustup() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.current_dir(crate::project::root());
    cmd
}

/// Adds the aarch64 targets and llvm-tools to the active toolchain where
/// they are missing. Without rustup, checks that the sysroot has them.
pub fn ensure() -> Result<()> {
    if output_of(Command::new("rustup").arg("--version")).is_err() {
        // No rustup: the toolchain was installed some other way; the build
        // will say what is missing.
        return Ok(());
    }
    let installed = output_of(rustup().args(["target", "list", "--installed"]))?;
    let missing: Vec<&str> = [GUEST_TARGET, LINUX_TARGET]
        .into_iter()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if !missing.is_empty() {
        progress(format!("adding rust targets {}", missing.join(" ")));
        run_checked(rustup().args(["target", "add"]).args(&missing), TOOL_LIMIT)?;
    }
    let components = output_of(rustup().args(["component", "list", "--installed"]))?;
    if !components.lines().any(|l| l.starts_with("llvm-tools")) {
        progress("adding the llvm-tools component (for rust-objcopy)");
        run_checked(
            rustup().args(["component", "add", "llvm-tools"]),
            TOOL_LIMIT,
        )?;
    }
    Ok(())
}

/// Path of `rust-objcopy` from the llvm-tools component.
pub fn objcopy() -> Result<PathBuf> {
    let sysroot = output_of(
        Command::new("rustc")
            .current_dir(crate::project::root())
            .args(["--print", "sysroot"]),
    )?;
    let host = output_of(
        Command::new("rustc")
            .current_dir(crate::project::root())
            .args(["--print", "host-tuple"]),
    )
    .or_else(|_| -> Result<String> {
        let vv = output_of(Command::new("rustc").arg("-vV"))?;
        Ok(vv
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .unwrap_or_default()
            .to_string())
    })?;
    let path = PathBuf::from(sysroot.trim())
        .join("lib/rustlib")
        .join(host.trim())
        .join("bin/rust-objcopy");
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing; install it with `rustup component add llvm-tools`",
            path.display()
        ))
    }
}
