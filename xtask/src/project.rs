//! Paths of the project and of what the build produces.

use std::path::{Path, PathBuf};

/// The workspace root (the directory holding the top-level Cargo.toml).
pub fn root() -> PathBuf {
    // xtask lives in <root>/xtask.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The cargo target directory (honours CARGO_TARGET_DIR).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                root().join(dir)
            }
        }
        None => root().join("target"),
    }
}

/// Where the nested environment's downloads and generated files are cached.
pub fn l1_cache_dir() -> PathBuf {
    target_dir().join("l1")
}

/// The `cargo` that runs xtask (so the pinned toolchain is used throughout).
/// With `NO_COLOR` set and not empty it prints no colour either (cargo
/// itself reads only `CARGO_TERM_COLOR`, which wins when it is set).
pub fn cargo() -> std::process::Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(root());
    if crate::no_color_set() && std::env::var_os("CARGO_TERM_COLOR").is_none() {
        cmd.env("CARGO_TERM_COLOR", "never");
    }
    cmd
}

/// Everything a run needs, once built.
#[derive(Clone, Debug)]
pub struct Artifacts {
    /// The flat firmware image.
    pub guest_image: PathBuf,
    /// The static aarch64 VMM binary.
    pub vmm: PathBuf,
    /// The static aarch64 L1 init.
    pub l1_init: PathBuf,
    /// The static aarch64 init of the Linux guests' initramfs.
    pub linux_init: PathBuf,
}

/// True when this machine can run the VMM directly: aarch64 Linux with
/// /dev/kvm.
pub fn is_native_kvm_host() -> bool {
    cfg!(all(target_arch = "aarch64", target_os = "linux")) && Path::new("/dev/kvm").exists()
}
