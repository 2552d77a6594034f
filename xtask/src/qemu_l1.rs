//! QEMU inside L1: Debian's arm64 `qemu-system-aarch64`, for `@qemu` jobs.
//!
//! A `@qemu` job (`crate::jobs::QEMU_FIELD`) runs QEMU with KVM where the
//! VMM would run, so that the same firmware can be compared on QEMU's GICs
//! and on the VMM's. Nested, that QEMU is an arm64 program inside L1: the
//! binary of Debian 12's `qemu-system-arm:arm64`, which is dynamically
//! linked against some thirty libraries.
//!
//! **The payload.** Fetched once with `apt-get download` (no root, no
//! installation) and cached under `target/l1/` as a `newc` archive of its
//! own ([`ensure_payload`]):
//!
//! ```text
//! /qemu/qemu-system-aarch64
//! /qemu/lib/ld-linux-aarch64.so.1    the dynamic loader
//! /qemu/lib/<soname>                  every library it needs, transitively
//! ```
//!
//! The libraries are found by reading the ELF files themselves
//! ([`needed`]: the `DT_NEEDED` entries of the dynamic section; no host
//! tool reads arm64 ELF for us on every machine). The packages that hold
//! them are found the way a person would: starting from the binary's
//! package, download the packages it depends on, look in them, and follow
//! the dependencies of those that held a needed library until nothing is
//! missing ([`Resolution`]). Only library packages are followed (Debian
//! names them after their soname, `lib*`, with `zlib1g` the old exception),
//! so the data, firmware and tool packages QEMU also depends on are never
//! downloaded. A run with `-nodefaults` and `-kernel` needs nothing else:
//! no firmware ROM, no keymap, no module.
//!
//! **In L1** nothing is at `/lib`: the init runs the loader itself,
//! `/qemu/lib/ld-linux-aarch64.so.1 --library-path /qemu/lib
//! /qemu/qemu-system-aarch64 ...`, so the one process is QEMU (its peak
//! RSS is QEMU's). The archive is appended to the initramfs only for a
//! batch with a `@qemu` job (`crate::l1::write_initramfs`); Linux unpacks
//! concatenated archives one after the other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cpio::Archive;
use crate::{output_of, progress, run_checked, Result};

/// The Debian package holding `usr/bin/qemu-system-aarch64`.
pub const PACKAGE: &str = "qemu-system-arm";
/// The binary's path inside [`PACKAGE`].
const BINARY: &str = "usr/bin/qemu-system-aarch64";
/// The dynamic loader's soname, which is also its file name.
pub const LOADER: &str = "ld-linux-aarch64.so.1";
/// Where the payload's libraries are in L1.
pub const LIB_DIR: &str = "/qemu/lib";
/// Where QEMU is in L1.
pub const BINARY_IN_L1: &str = "/qemu/qemu-system-aarch64";
/// The directories of a package where shared libraries live on arm64
/// Debian, in the order the loader would search them.
const LIB_DIRS: [&str; 4] = [
    "lib/aarch64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
    "lib",
    "usr/lib",
];
/// The whole fetch, every download and extraction together: a stuck
/// mirror fails the run instead of holding it.
const FETCH_LIMIT: Duration = Duration::from_secs(10 * 60);
/// Rounds of "download, look, follow the dependencies": the closure of
/// QEMU 7.2 takes four; more means something is wrong.
const MAX_ROUNDS: usize = 10;

/// The shared libraries an ELF file names (`DT_NEEDED`), in order.
/// Only 64-bit little-endian files are read, which every arm64 Linux
/// library is; a file without a dynamic section needs nothing.
pub fn needed(elf: &[u8]) -> std::result::Result<Vec<String>, String> {
    let bad = |what: &str| format!("not a 64-bit little-endian ELF file ({what})");
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        return Err(bad("no ELF header"));
    }
    if elf[4] != 2 || elf[5] != 1 {
        return Err(bad("class or byte order"));
    }
    let u16_at = |at: usize| -> Option<u64> {
        Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?) as u64)
    };
    let u32_at = |at: usize| -> Option<u64> {
        Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?) as u64)
    };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?))
    };
    let truncated = || bad("truncated");
    let phoff = u64_at(32).ok_or_else(truncated)? as usize;
    let phentsize = u16_at(54).ok_or_else(truncated)? as usize;
    let phnum = u16_at(56).ok_or_else(truncated)? as usize;
    // (p_type, p_offset, p_vaddr, p_filesz) of each program header.
    let mut headers = Vec::with_capacity(phnum);
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        headers.push((
            u32_at(at).ok_or_else(truncated)?,
            u64_at(at + 8).ok_or_else(truncated)?,
            u64_at(at + 16).ok_or_else(truncated)?,
            u64_at(at + 32).ok_or_else(truncated)?,
        ));
    }
    const PT_LOAD: u64 = 1;
    const PT_DYNAMIC: u64 = 2;
    const DT_NULL: u64 = 0;
    const DT_NEEDED: u64 = 1;
    const DT_STRTAB: u64 = 5;
    let Some(&(_, dyn_off, _, dyn_size)) = headers.iter().find(|h| h.0 == PT_DYNAMIC) else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    let mut strtab = None;
    let mut at = dyn_off as usize;
    let end = dyn_off.saturating_add(dyn_size) as usize;
    while at + 16 <= end {
        let tag = u64_at(at).ok_or_else(truncated)?;
        let value = u64_at(at + 8).ok_or_else(truncated)?;
        match tag {
            DT_NULL => break,
            DT_NEEDED => names.push(value),
            DT_STRTAB => strtab = Some(value),
            _ => {}
        }
        at += 16;
    }
    if names.is_empty() {
        return Ok(Vec::new());
    }
    // DT_STRTAB is an address: the loadable segment that holds it says
    // where it is in the file.
    let strtab = strtab.ok_or_else(|| bad("DT_NEEDED without DT_STRTAB"))?;
    let file_offset = headers
        .iter()
        .filter(|h| h.0 == PT_LOAD)
        .find(|(_, _, vaddr, filesz)| strtab >= *vaddr && strtab < vaddr + filesz)
        .map(|(_, offset, vaddr, _)| strtab - vaddr + offset)
        .ok_or_else(|| bad("string table outside every segment"))?;
    names
        .into_iter()
        .map(|n| {
            let start = file_offset.checked_add(n).ok_or_else(truncated)? as usize;
            let rest = elf.get(start..).ok_or_else(truncated)?;
            let len = rest.iter().position(|&b| b == 0).ok_or_else(truncated)?;
            Ok(String::from_utf8_lossy(&rest[..len]).into_owned())
        })
        .collect()
}

/// Where the search for a program's libraries stands.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Each needed library found: soname → (the package that holds it,
    /// its path there).
    pub found: BTreeMap<String, (String, PathBuf)>,
    /// Needed libraries not in any package looked at yet.
    pub missing: BTreeSet<String>,
}

/// Follows `DT_NEEDED` from the program `root` through the libraries that
/// `lookup` finds (soname → its package and path, or `None`); `needed_of`
/// reads a file's own list. A library found once is read once.
pub fn resolve(
    root: &Path,
    lookup: impl Fn(&str) -> Option<(String, PathBuf)>,
    needed_of: impl Fn(&Path) -> Result<Vec<String>>,
) -> Result<Resolution> {
    let mut resolution = Resolution::default();
    let mut queue = needed_of(root)?;
    while let Some(name) = queue.pop() {
        if resolution.found.contains_key(&name) || resolution.missing.contains(&name) {
            continue;
        }
        match lookup(&name) {
            Some((package, path)) => {
                queue.extend(needed_of(&path)?);
                resolution.found.insert(name, (package, path));
            }
            None => {
                resolution.missing.insert(name);
            }
        }
    }
    Ok(resolution)
}

/// Whether a dependency is worth downloading in the search for libraries:
/// Debian names a shared-library package after the library
/// (`libglib2.0-0`), and `zlib1g` is the one old exception in QEMU's
/// closure.
fn is_library_package(name: &str) -> bool {
    name.starts_with("lib") || name.starts_with("zlib")
}

/// The `Depends:` and `PreDepends:` of each package in `apt-cache depends`
/// output (architecture qualifiers taken off; virtual packages, shown in
/// `<...>`, left out).
pub fn parse_depends(listing: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let bare = |s: &str| s.split(':').next().unwrap_or(s).trim().to_string();
    for line in listing.lines() {
        if !line.starts_with(' ') {
            let name = bare(line);
            current = (!name.is_empty()).then_some(name);
            continue;
        }
        let Some(package) = &current else { continue };
        let entry = line.trim_start().trim_start_matches('|');
        let Some(dep) = entry
            .strip_prefix("Depends:")
            .or_else(|| entry.strip_prefix("PreDepends:"))
        else {
            continue;
        };
        let dep = dep.trim();
        if dep.starts_with('<') {
            continue;
        }
        out.entry(package.clone()).or_default().push(bare(dep));
    }
    out
}

/// The cached payload archive.
fn payload_path() -> PathBuf {
    crate::project::l1_cache_dir()
        .join(format!("{PACKAGE}-arm64"))
        .join("qemu.cpio")
}

/// The payload archive (see the module documentation), fetching and
/// writing it once.
pub fn ensure_payload() -> Result<PathBuf> {
    let path = payload_path();
    if path.is_file() {
        return Ok(path);
    }
    crate::l1::ensure_arm64_lists("fetching QEMU for L1")?;
    progress(format!(
        "fetching {PACKAGE}:arm64 and its libraries for QEMU in L1 (about 20 MB, once)"
    ));
    let work = crate::project::l1_cache_dir().join(format!("qemu-download-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let deadline = Instant::now() + FETCH_LIMIT;
    let result = fetch(&work, deadline).and_then(|archive| {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // Written whole, then renamed: an interrupted run leaves no
        // partial payload in the cache.
        let partial = path.with_extension("partial");
        let mut file = std::fs::File::create(&partial)
            .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
        archive
            .finish(&mut file)
            .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
        std::fs::rename(&partial, &path)
            .map_err(|e| format!("cannot store {}: {e}", path.display()))
    });
    let _ = std::fs::remove_dir_all(&work);
    result.map(|()| path)
}

/// Time left before `deadline`, or the sentence that says it passed.
fn left(deadline: Instant) -> Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(format!(
            "fetching QEMU for L1 took longer than {} min and was stopped; try again later",
            FETCH_LIMIT.as_secs() / 60
        ));
    }
    Ok(left)
}

/// Downloads and extracts packages in `work` until QEMU's libraries are
/// all there; returns the payload archive.
fn fetch(work: &Path, deadline: Instant) -> Result<Archive> {
    let debs = work.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| format!("cannot create {}: {e}", debs.display()))?;
    // Package → the directory it was extracted into.
    let mut trees: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut wanted = vec![PACKAGE.to_string()];
    for _ in 0..MAX_ROUNDS {
        download(&wanted, &debs, work, &mut trees, deadline)?;
        let root = trees[PACKAGE].join(BINARY);
        let resolution = resolve(
            &root,
            |name| {
                trees.iter().find_map(|(package, tree)| {
                    LIB_DIRS
                        .iter()
                        .map(|d| tree.join(d).join(name))
                        .find(|p| in_tree(tree, p).is_some())
                        .map(|p| (package.clone(), p))
                })
            },
            |path| {
                let tree = trees
                    .values()
                    .find(|t| path.starts_with(t))
                    .ok_or_else(|| format!("{} is in no package", path.display()))?;
                let bytes = read_in_tree(tree, path)?;
                needed(&bytes).map_err(|e| format!("{}: {e}", path.display()))
            },
        )?;
        if resolution.missing.is_empty() {
            let archive = payload(&root, &resolution, &trees)?;
            let downloaded: u64 = deb_files(&debs)?
                .iter()
                .filter_map(|d| std::fs::metadata(d).ok())
                .map(|m| m.len())
                .sum();
            progress(format!(
                "QEMU for L1: {} libraries from {} packages ({:.1} MB downloaded), {:.1} MB in the initramfs",
                resolution.found.len(),
                trees.len(),
                downloaded as f64 / 1e6,
                archive.len() as f64 / 1e6
            ));
            return Ok(archive);
        }
        // The dependencies of the packages that held what is needed are
        // where the rest is.
        let holders: BTreeSet<&str> = std::iter::once(PACKAGE)
            .chain(resolution.found.values().map(|(p, _)| p.as_str()))
            .collect();
        let listing = output_of(
            Command::new("apt-cache")
                .args([
                    "depends",
                    "--no-recommends",
                    "--no-suggests",
                    "--no-conflicts",
                    "--no-breaks",
                    "--no-replaces",
                    "--no-enhances",
                ])
                .args(holders.iter().map(|p| format!("{p}:arm64"))),
        )?;
        wanted = parse_depends(&listing)
            .into_values()
            .flatten()
            .filter(|d| is_library_package(d) && !trees.contains_key(d))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if wanted.is_empty() {
            return Err(format!(
                "{PACKAGE}:arm64 needs {} and no arm64 package it depends on holds {}",
                resolution
                    .missing
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                if resolution.missing.len() == 1 {
                    "it"
                } else {
                    "them"
                }
            ));
        }
    }
    Err(format!(
        "the libraries of {PACKAGE}:arm64 were still incomplete after {MAX_ROUNDS} rounds of dependencies"
    ))
}

/// Downloads `packages` (arm64) into `debs` and extracts each into a
/// directory of its own under `work`, recorded in `trees`.
fn download(
    packages: &[String],
    debs: &Path,
    work: &Path,
    trees: &mut BTreeMap<String, PathBuf>,
    deadline: Instant,
) -> Result<()> {
    let before: BTreeSet<PathBuf> = deb_files(debs)?;
    let mut cmd = crate::l1::apt_get();
    cmd.current_dir(debs)
        .args(["download", "-qq"])
        .args(packages.iter().map(|p| format!("{p}:arm64")))
        // apt warns that it downloads unsandboxed as root: not news.
        .stderr(Stdio::null());
    run_checked(&mut cmd, left(deadline)?).map_err(|_| {
        format!(
            "`apt-get download` of {} (arm64) failed; run `sudo apt-get update` and try again",
            packages.join(" ")
        )
    })?;
    for deb in deb_files(debs)?.difference(&before) {
        // `name_version_arch.deb`: the name is all before the first `_`.
        let file = deb.file_name().unwrap_or_default().to_string_lossy();
        let package = file.split('_').next().unwrap_or_default().to_string();
        let tree = work.join("tree").join(&package);
        std::fs::create_dir_all(&tree)
            .map_err(|e| format!("cannot create {}: {e}", tree.display()))?;
        run_checked(
            Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tree),
            left(deadline)?,
        )?;
        trees.insert(package, tree);
    }
    for p in packages {
        if !trees.contains_key(p) {
            return Err(format!("`apt-get download {p}:arm64` produced no .deb"));
        }
    }
    Ok(())
}

fn deb_files(dir: &Path) -> Result<BTreeSet<PathBuf>> {
    Ok(std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect())
}

/// `path` with its symbolic links followed inside `tree` (an absolute
/// link means the package's root, not this machine's); `None` if it leads
/// to no file there.
fn in_tree(tree: &Path, path: &Path) -> Option<PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..16 {
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.file_type().is_symlink() {
            return meta.is_file().then_some(path);
        }
        let target = std::fs::read_link(&path).ok()?;
        path = if target.is_absolute() {
            tree.join(target.strip_prefix("/").ok()?)
        } else {
            path.parent()?.join(target)
        };
    }
    None
}

fn read_in_tree(tree: &Path, path: &Path) -> Result<Vec<u8>> {
    let real = in_tree(tree, path)
        .ok_or_else(|| format!("{} leads to no file in its package", path.display()))?;
    std::fs::read(&real).map_err(|e| format!("cannot read {}: {e}", real.display()))
}

/// The archive of QEMU at `root` and every library `resolution` found.
fn payload(
    root: &Path,
    resolution: &Resolution,
    trees: &BTreeMap<String, PathBuf>,
) -> Result<Archive> {
    if !resolution.found.contains_key(LOADER) {
        return Err(format!(
            "{PACKAGE}:arm64 does not name the dynamic loader {LOADER}"
        ));
    }
    let tree_of = |path: &Path| {
        trees
            .values()
            .find(|t| path.starts_with(t))
            .cloned()
            .unwrap_or_default()
    };
    let mut archive = Archive::new();
    archive.dir("qemu").dir(LIB_DIR.trim_start_matches('/'));
    archive.file(
        BINARY_IN_L1.trim_start_matches('/'),
        0o755,
        &read_in_tree(&tree_of(root), root)?,
    );
    for (soname, (_, path)) in &resolution.found {
        let inside = format!("{}/{soname}", LIB_DIR.trim_start_matches('/'));
        archive.file(&inside, 0o755, &read_in_tree(&tree_of(path), path)?);
    }
    Ok(archive)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal 64-bit little-endian ELF: one PT_LOAD at vaddr 0x10000
    /// covering the file, one PT_DYNAMIC, a string table, and `libs` as
    /// DT_NEEDED.
    pub(super) fn elf_needing(libs: &[&str]) -> Vec<u8> {
        let mut strtab = vec![0u8];
        let mut offsets = Vec::new();
        for l in libs {
            offsets.push(strtab.len() as u64);
            strtab.extend_from_slice(l.as_bytes());
            strtab.push(0);
        }
        let phoff = 64u64;
        let strtab_off = phoff + 2 * 56;
        let dyn_off = (strtab_off + strtab.len() as u64).next_multiple_of(8);
        let mut dynamic = Vec::new();
        for o in &offsets {
            dynamic.extend_from_slice(&1u64.to_le_bytes());
            dynamic.extend_from_slice(&o.to_le_bytes());
        }
        dynamic.extend_from_slice(&5u64.to_le_bytes());
        dynamic.extend_from_slice(&(0x10000 + strtab_off).to_le_bytes());
        dynamic.extend_from_slice(&[0u8; 16]);
        let total = dyn_off + dynamic.len() as u64;
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[32..40].copy_from_slice(&phoff.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        let ph = |kind: u32, offset: u64, vaddr: u64, size: u64| {
            let mut h = vec![0u8; 56];
            h[..4].copy_from_slice(&kind.to_le_bytes());
            h[8..16].copy_from_slice(&offset.to_le_bytes());
            h[16..24].copy_from_slice(&vaddr.to_le_bytes());
            h[32..40].copy_from_slice(&size.to_le_bytes());
            h
        };
        f.extend(ph(1, 0, 0x10000, total));
        f.extend(ph(2, dyn_off, 0x10000 + dyn_off, dynamic.len() as u64));
        f.extend_from_slice(&strtab);
        f.resize(dyn_off as usize, 0);
        f.extend(dynamic);
        f
    }

    #[test]
    fn needed_libraries_are_read_from_the_dynamic_section() {
        let elf = elf_needing(&["libglib-2.0.so.0", "libc.so.6", LOADER]);
        assert_eq!(
            needed(&elf).unwrap(),
            ["libglib-2.0.so.0", "libc.so.6", LOADER]
        );
        assert_eq!(needed(&elf_needing(&[])).unwrap(), Vec::<String>::new());
        assert!(needed(b"#!/bin/sh\n").is_err());
        let mut big_endian = elf.clone();
        big_endian[5] = 2;
        assert!(needed(&big_endian).unwrap_err().contains("byte order"));
        assert!(needed(&elf[..150]).is_err(), "cut inside the tables");
    }

    // The closure on a synthetic set of packages: what each library needs
    // is followed, each once, and what no package holds is named.
    #[test]
    fn libraries_are_followed_transitively_and_the_missing_named() {
        let needs: BTreeMap<&str, Vec<&str>> = [
            ("/p/qemu", vec!["libglib.so.0", "libc.so.6"]),
            ("/p/libglib.so.0", vec!["libpcre.so.3", "libc.so.6"]),
            ("/p/libpcre.so.3", vec!["libc.so.6"]),
            ("/p/libc.so.6", vec![LOADER]),
            ("/p/ld-linux-aarch64.so.1", vec![]),
        ]
        .into_iter()
        .collect();
        let available = ["libglib.so.0", "libc.so.6", LOADER];
        let resolution = resolve(
            Path::new("/p/qemu"),
            |name| {
                available
                    .contains(&name)
                    .then(|| (format!("pkg-{name}"), PathBuf::from(format!("/p/{name}"))))
            },
            |p| {
                Ok(needs[p.to_str().unwrap()]
                    .iter()
                    .map(|s| s.to_string())
                    .collect())
            },
        )
        .unwrap();
        assert_eq!(
            resolution.found.keys().collect::<Vec<_>>(),
            [LOADER, "libc.so.6", "libglib.so.0"]
        );
        assert_eq!(
            resolution.found["libc.so.6"],
            ("pkg-libc.so.6".to_string(), PathBuf::from("/p/libc.so.6"))
        );
        assert_eq!(
            resolution.missing.into_iter().collect::<Vec<_>>(),
            ["libpcre.so.3"]
        );
    }

    #[test]
    fn depends_are_read_per_package_without_virtual_ones() {
        let listing = "\
qemu-system-arm:arm64
  Depends: libaio1:arm64
  Depends: zlib1g:arm64
  Depends: <qemu-system-data:arm64>
    qemu-system-data
  Recommends: qemu-utils:arm64
libc6:arm64
  PreDepends: libgcc-s1:arm64
 |Depends: libcrypt1:arm64
";
        let deps = parse_depends(listing);
        assert_eq!(deps["qemu-system-arm"], ["libaio1", "zlib1g"]);
        assert_eq!(deps["libc6"], ["libgcc-s1", "libcrypt1"]);
        assert!(is_library_package("libaio1") && is_library_package("zlib1g"));
        assert!(!is_library_package("qemu-system-common") && !is_library_package("adduser"));
    }

    #[test]
    fn links_are_followed_inside_the_package() {
        let tree = std::env::temp_dir().join(format!("uirq-qemu-tree-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tree);
        let lib = tree.join("lib/aarch64-linux-gnu");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("libz.so.1.2.13"), b"z").unwrap();
        std::os::unix::fs::symlink("libz.so.1.2.13", lib.join("libz.so.1")).unwrap();
        std::os::unix::fs::symlink(
            "/lib/aarch64-linux-gnu/libz.so.1",
            tree.join("lib/libz.so.1"),
        )
        .unwrap();
        assert_eq!(read_in_tree(&tree, &lib.join("libz.so.1")).unwrap(), b"z");
        assert_eq!(
            read_in_tree(&tree, &tree.join("lib/libz.so.1")).unwrap(),
            b"z"
        );
        assert!(in_tree(&tree, &lib.join("libnothing.so")).is_none());
        std::fs::remove_dir_all(&tree).unwrap();
    }
}
