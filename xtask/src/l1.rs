//! The nested environment: an aarch64 Linux with KVM ("L1") under QEMU.
//!
//! On a machine that is not an aarch64 KVM host, the VMM still runs for
//! real: QEMU emulates an aarch64 machine with EL2 (`virtualization=on`), a
//! Debian arm64 kernel boots on it with KVM built in, and the VMM runs under
//! that kernel from an initramfs this module generates:
//!
//! ```text
//! build machine ─ qemu-system-aarch64 (TCG, EL2) ─ L1 Linux + KVM ─ uirq-vmm ─ firmware
//! ```
//!
//! Everything is cached under `target/l1/`: the kernel is downloaded once
//! with apt; QEMU is installed with apt when missing (as root on Debian or
//! Ubuntu; elsewhere the exact command is printed).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use uirq_abi::report;

use crate::bounded::BoundedText;
use crate::cpio::Archive;
use crate::jobs::{JobConsole, Report, FETCH_FIELD, OUTPUT_OPTIONS};
use crate::process::{run_bounded, Ended, Pipe, APT_LIMIT};
use crate::project::{self, Artifacts};
use crate::{output_of, progress, run_checked, Result};

/// The Debian package the L1 kernel comes from. 6.12.117 carries the fix
/// that wakes a vCPU blocked in WFI when its timer fires with a userspace
/// irqchip (Linux 4ce98bf0865c); older kernels hang a guest that waits with
/// WFI. Override with `UIRQ_L1_KERNEL_PACKAGE`, or point `UIRQ_L1_KERNEL` at
/// a kernel image to skip the download.
pub const KERNEL_PACKAGE: &str = "linux-image-6.12.117+deb12-arm64-unsigned";

/// The Debian package that provides `qemu-system-aarch64`.
const QEMU_PACKAGE: &str = "qemu-system-arm";
/// The emulator, for the nested environment and for plain runs.
pub const QEMU: &str = "qemu-system-aarch64";

/// Prefix of the marker lines the L1 init prints (see `uirq-l1-init`),
/// followed by the boot's tag (`uirq_abi::report`).
pub const MARK: &str = report::CONTROL;

/// What the nested environment is made of, for reports.
#[derive(Clone, Debug, Default)]
pub struct Versions {
    /// `qemu-system-aarch64 --version`, first line.
    pub qemu: String,
    /// The L1 kernel's release as it reported it.
    pub kernel: String,
}

fn is_root() -> bool {
    output_of(Command::new("id").arg("-u")).is_ok_and(|s| s.trim() == "0")
}

fn is_debian_like() -> bool {
    Path::new("/etc/debian_version").exists()
}

fn have(program: &str) -> bool {
    output_of(Command::new(program).arg("--version")).is_ok()
}

/// True when `qemu-system-aarch64` is installed.
pub fn qemu_installed() -> bool {
    have(QEMU)
}

pub(crate) fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

/// Makes sure `qemu-system-aarch64` is installed, installing it with apt as
/// root on Debian/Ubuntu. Returns its version line.
pub fn ensure_qemu() -> Result<String> {
    if !qemu_installed() {
        if !(is_root() && is_debian_like()) {
            return Err(format!(
                "{QEMU} is not installed; install it (on Debian or Ubuntu: `sudo apt-get install {QEMU_PACKAGE}`) and run again"
            ));
        }
        progress(format!("installing {QEMU_PACKAGE} with apt-get (once)"));
        run_checked(apt_get().args(["update", "-qq"]), APT_LIMIT)?;
        run_checked(
            apt_get().args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                QEMU_PACKAGE,
            ]),
            APT_LIMIT,
        )?;
    }
    let version = output_of(Command::new(QEMU).arg("--version"))?;
    Ok(version.lines().next().unwrap_or_default().to_string())
}

/// Returns the path of the L1 kernel, downloading it once if needed.
pub fn ensure_kernel() -> Result<PathBuf> {
    let package = crate::env_text("UIRQ_L1_KERNEL_PACKAGE")?;
    if let Some(name) = &package {
        check_package_name(name).map_err(|why| format!("UIRQ_L1_KERNEL_PACKAGE={name:?} {why}"))?;
    }
    ensure_kernel_package(package.as_deref())
}

/// Whether `name` can be a Debian binary package's name (Debian Policy
/// 5.6.1: lower-case letters, digits, `+`, `-` and `.`, at least two
/// characters, starting with a letter or digit); the reason if not.
fn check_package_name(name: &str) -> std::result::Result<(), &'static str> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.len() < 2 || !first_ok {
        return Err("is not a Debian package name (at least two characters, the first a lower-case letter or a digit)");
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c)) {
        return Err(
            "is not a Debian package name (lower-case letters, digits, `+`, `-` and `.` only)",
        );
    }
    Ok(())
}

/// Returns the path of the kernel from Debian package `package` (the pinned
/// one, or a fallback, when `None`), downloading it once if needed.
/// `UIRQ_L1_KERNEL` still takes precedence over the default.
///
/// A `package` with a `/` in it is a path to a kernel image of your own
/// (Debian package names never hold one): it is used as it is.
pub fn ensure_kernel_package(package: Option<&str>) -> Result<PathBuf> {
    if let Some(own) = package.filter(|p| p.contains('/')) {
        let path = PathBuf::from(own);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{own} does not name a kernel image file"))
        };
    }
    if let (None, Some(path)) = (package, std::env::var_os("UIRQ_L1_KERNEL")) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "UIRQ_L1_KERNEL={:?} does not name a file",
                path.display().to_string()
            ))
        };
    }
    let chosen = package.map(str::to_string);
    let package = chosen.clone().unwrap_or_else(|| KERNEL_PACKAGE.to_string());
    let cached = |package: &str| {
        let kernel = project::l1_cache_dir().join(package).join("vmlinuz");
        kernel.is_file().then_some(kernel)
    };
    if let Some(kernel) = cached(&package) {
        return Ok(kernel);
    }
    if chosen.is_none() {
        // A fallback fetched by an earlier run (see below) serves as well.
        if let Some(kernel) = cached_fallback() {
            return Ok(kernel);
        }
    }
    if !is_debian_like() {
        return Err(format!(
            "the L1 kernel is fetched with apt from Debian's {package}:arm64; on this system, extract its boot/vmlinuz-* yourself and set UIRQ_L1_KERNEL to its path"
        ));
    }
    ensure_arm64_lists("fetching the L1 kernel")?;

    match fetch_kernel(&package) {
        Ok(kernel) => Ok(kernel),
        // The archive drops old kernel packages in time. Without an explicit
        // choice, take the newest Debian 12 kernel that has the fix.
        Err(first) if chosen.is_none() => {
            let Some(fallback) = fallback_packages().into_iter().next() else {
                return Err(first);
            };
            progress(format!(
                "{package} is not available ({first}); using {fallback} instead"
            ));
            fetch_kernel(&fallback)
        }
        Err(e) => Err(e),
    }
}

/// Makes sure apt has Debian's arm64 package lists, adding the
/// architecture as root; `what` says what needs them, for the message when
/// that is not possible.
pub(crate) fn ensure_arm64_lists(what: &str) -> Result<()> {
    if !is_debian_like() {
        return Err(format!(
            "{what} needs apt and Debian's arm64 packages, and this system is not Debian or Ubuntu"
        ));
    }
    let foreign = output_of(Command::new("dpkg").arg("--print-foreign-architectures"))?;
    let needs_arch = !foreign.lines().any(|l| l.trim() == "arm64");
    if needs_arch && !is_root() {
        return Err(format!("{what} needs Debian's arm64 package lists; run `sudo dpkg --add-architecture arm64 && sudo apt-get update`, then run again"));
    }
    if needs_arch {
        progress("enabling arm64 package lists for apt (dpkg --add-architecture arm64)");
        run_checked(
            Command::new("dpkg").args(["--add-architecture", "arm64"]),
            APT_LIMIT,
        )?;
        run_checked(apt_get().args(["update", "-qq"]), APT_LIMIT)?;
    }
    Ok(())
}

/// Downloads `package`'s kernel into the cache; returns its path.
fn fetch_kernel(package: &str) -> Result<PathBuf> {
    let dir = project::l1_cache_dir().join(package);
    let kernel = dir.join("vmlinuz");
    progress(format!(
        "downloading the L1 kernel ({package}:arm64, about 90 MB, once)"
    ));
    let work = project::l1_cache_dir().join(format!("download-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let result = download_kernel(package, &work, &dir, &kernel);
    let _ = std::fs::remove_dir_all(&work);
    result.map(|()| kernel)
}

/// The first 6.12 release with Linux commit 4ce98bf0865c (WFI wake-up with a
/// userspace irqchip).
const FIRST_FIXED_6_12: u32 = 88;

/// The 6.12 minor version of a Debian 12 kernel package name such as
/// `linux-image-6.12.117+deb12-arm64-unsigned`.
fn minor_of(package: &str) -> Option<u32> {
    package
        .strip_prefix("linux-image-6.12.")?
        .strip_suffix("+deb12-arm64-unsigned")?
        .parse()
        .ok()
}

/// Debian 12 arm64 kernels with the WFI fix that apt knows, newest first.
fn fallback_packages() -> Vec<String> {
    let listing = output_of(Command::new("apt-cache").args([
        "search",
        "--names-only",
        r"^linux-image-6\.12\.[0-9]+\+deb12-arm64-unsigned$",
    ]))
    .unwrap_or_default();
    newest_fixed(listing.lines().filter_map(|l| l.split_whitespace().next()))
}

/// Of `packages`, those with the fix, newest first.
fn newest_fixed<'a>(packages: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut found: Vec<(u32, String)> = packages
        .filter_map(|p| minor_of(p).map(|m| (m, p.to_string())))
        .filter(|(m, _)| *m >= FIRST_FIXED_6_12)
        .collect();
    found.sort_by_key(|(minor, _)| std::cmp::Reverse(*minor));
    found.into_iter().map(|(_, p)| p).collect()
}

/// A fallback kernel an earlier run already fetched, if any.
fn cached_fallback() -> Option<PathBuf> {
    let entries = std::fs::read_dir(project::l1_cache_dir()).ok()?;
    let names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    newest_fixed(names.iter().map(String::as_str))
        .into_iter()
        .map(|p| project::l1_cache_dir().join(p).join("vmlinuz"))
        .find(|k| k.is_file())
}

fn download_kernel(package: &str, work: &Path, dir: &Path, kernel: &Path) -> Result<()> {
    let spec = format!("{package}:arm64");
    let download = |quiet: bool| {
        let mut cmd = apt_get();
        cmd.current_dir(work).args(["download", "-qq", &spec]);
        if quiet {
            cmd.stderr(Stdio::null());
        }
        run_checked(&mut cmd, APT_LIMIT).is_ok()
    };
    let size = package_size(&spec);
    let download = |quiet: bool| with_download_progress(work, size, || download(quiet));
    if !download(true) {
        // The package lists may be stale or absent on a fresh machine.
        if !is_root() {
            return Err(format!(
                "`apt-get download {spec}` failed; run `sudo apt-get update` and try again"
            ));
        }
        run_checked(apt_get().args(["update", "-qq"]), APT_LIMIT)?;
        if !download(false) {
            return Err(format!(
                "`apt-get download {spec}` failed; see apt's message above"
            ));
        }
    }
    let deb = std::fs::read_dir(work)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download {spec} produced no .deb"))?;
    let tree = work.join("tree");
    run_checked(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree),
        APT_LIMIT,
    )?;
    let vmlinuz = std::fs::read_dir(tree.join("boot"))
        .map_err(|e| format!("{} has no boot/ directory: {e}", deb.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or_else(|| format!("{} holds no boot/vmlinuz-*", deb.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Copy then rename, so an interrupted download never leaves a partial
    // kernel in the cache.
    let partial = dir.join("vmlinuz.partial");
    std::fs::copy(&vmlinuz, &partial).map_err(|e| format!("cannot copy the kernel: {e}"))?;
    std::fs::rename(&partial, kernel).map_err(|e| format!("cannot store the kernel: {e}"))?;
    Ok(())
}

/// The size in bytes of `spec`'s package file as apt knows it, if it does.
fn package_size(spec: &str) -> Option<u64> {
    let info =
        output_of(Command::new("apt-cache").args(["show", "--no-all-versions", spec])).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Size:"))
        .and_then(|n| n.trim().parse().ok())
}

/// The bytes in the files of `dir` and of its subdirectories one level
/// down (apt keeps a download in progress in `partial/`).
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some(if meta.is_dir() {
                std::fs::read_dir(e.path())
                    .ok()?
                    .filter_map(|f| f.ok()?.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            } else {
                meta.len()
            })
        })
        .sum()
}

/// How a download is going, for a progress line: `41.2 of 92.5 MB (44%)`,
/// or `41.2 MB so far` when the size is not known.
pub fn download_progress(done: u64, total: Option<u64>) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    match total {
        Some(t) if t > 0 => format!(
            "{:.1} of {:.1} MB ({}%)",
            mb(done),
            mb(t),
            (done.min(t) * 100 / t)
        ),
        _ => format!("{:.1} MB so far", mb(done)),
    }
}

/// When a download's progress is worth a line: each time it passes another
/// tenth of the total, and otherwise every [`ProgressPace::EVERY`].
#[derive(Debug)]
pub struct ProgressPace {
    tenths: u64,
    last: Duration,
}

impl ProgressPace {
    /// The longest time without a progress line.
    pub const EVERY: Duration = Duration::from_secs(5);

    /// A pace for a download that has just started.
    pub fn new() -> Self {
        Self {
            tenths: 0,
            last: Duration::ZERO,
        }
    }

    /// True when `done` bytes of `total`, `elapsed` after the start, is to
    /// be reported.
    pub fn due(&mut self, done: u64, total: Option<u64>, elapsed: Duration) -> bool {
        let tenths = match total {
            Some(t) if t > 0 => done.min(t) * 10 / t,
            _ => 0,
        };
        if tenths > self.tenths || elapsed >= self.last + Self::EVERY {
            self.tenths = self.tenths.max(tenths);
            self.last = elapsed;
            return done > 0;
        }
        false
    }
}

impl Default for ProgressPace {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `download`, which fills `dir`, printing how far it got on stderr
/// as [`ProgressPace`] says.
fn with_download_progress<T>(dir: &Path, total: Option<u64>, download: impl FnOnce() -> T) -> T {
    let finished = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let started = std::time::Instant::now();
            let mut pace = ProgressPace::new();
            while !finished.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                let done = bytes_under(dir);
                if pace.due(done, total, started.elapsed()) {
                    progress(format!(
                        "L1 kernel download: {}",
                        download_progress(done, total)
                    ));
                }
            }
        });
        let result = download();
        finished.store(true, std::sync::atomic::Ordering::Relaxed);
        result
    })
}

/// Files of this machine that jobs name, copied into the L1 initramfs under
/// `/files`, each once however many jobs name it.
#[derive(Debug, Default)]
struct Staged {
    /// (path inside L1, path here), in the order they were first named.
    files: Vec<(String, PathBuf)>,
}

impl Staged {
    /// The L1 path for `host`, staging it on first sight; `None` (the
    /// argument stays as it is) when it is not a file here, so the VMM
    /// reports a missing file in its own words.
    fn place(&mut self, host: &str, is_file: impl Fn(&Path) -> bool) -> Option<String> {
        let path = PathBuf::from(host);
        if let Some((inside, _)) = self.files.iter().find(|(_, p)| *p == path) {
            return Some(inside.clone());
        }
        if !is_file(&path) {
            return None;
        }
        let base = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        let inside = format!("/files/{}-{base}", self.files.len());
        self.files.push((inside.clone(), path));
        Some(inside)
    }
}

/// The `/jobs` file for L1's init (one job per line, fields then VMM
/// arguments, tab-separated) and the files of this machine it names, to be
/// copied into L1 at the paths the lines use.
fn job_list(
    jobs: &[Vec<String>],
    is_file: impl Fn(&Path) -> bool,
) -> Result<(String, Vec<(String, PathBuf)>)> {
    let mut staged = Staged::default();
    let mut list = String::new();
    for job in jobs {
        if let Some(bad) = job
            .iter()
            .find(|a| a.contains(['\t', '\n']) || a.is_empty())
        {
            return Err(format!(
                "VMM argument {bad:?} cannot be passed into L1 (empty, or holds a tab or newline)"
            ));
        }
        let (fields, args) = crate::jobs::split_fields(job)?;
        // The init bounds a job only when told: QEMU's default bound is
        // sent as a field.
        let bounded = crate::jobs::JobFields {
            timeout: fields.bound(),
            ..fields.clone()
        };
        let mut words = bounded.to_args();
        // What the VMM writes goes to /out in L1, and the init sends it
        // back (`@fetch=`). QEMU writes nothing that comes back.
        let index = list.lines().count();
        let mut outputs = Vec::new();
        let output_options: &[&str] = if fields.qemu { &[] } else { &OUTPUT_OPTIONS };
        let args = crate::jobs::rewrite_option_values(args, output_options, |p| {
            let base = Path::new(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "file".into());
            let inside = format!("/out/{index}-{}-{base}", outputs.len());
            outputs.push(inside.clone());
            Some(inside)
        });
        words.extend(outputs.iter().map(|o| format!("{FETCH_FIELD}{o}")));
        if !fields.qemu && crate::jobs::needs_default_image(&args) {
            words.extend(["--image".to_string(), "/guest.bin".to_string()]);
        }
        words.extend(crate::jobs::rewrite_job_files(&fields, &args, |p| {
            staged.place(p, &is_file)
        }));
        list.push_str(&words.join("\t"));
        list.push('\n');
    }
    Ok((list, staged.files))
}

/// Writes the initramfs for one boot: the init, the VMM, the firmware image,
/// the job list (one job per line: its fields, then its VMM arguments,
/// tab-separated) and the files the jobs name. A batch with a `@qemu` job
/// also gets QEMU (`crate::qemu_l1`), a second archive after the first,
/// fetched once; other batches stay as small as they were.
pub fn write_initramfs(artifacts: &Artifacts, jobs: &[Vec<String>], path: &Path) -> Result<()> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let (list, files) = job_list(jobs, Path::is_file)?;
    let wants_qemu = jobs
        .iter()
        .any(|j| crate::jobs::split_fields(j).is_ok_and(|(fields, _)| fields.qemu));
    let qemu = if wants_qemu {
        Some(read(&crate::qemu_l1::ensure_payload()?)?)
    } else {
        None
    };
    let mut archive = Archive::new();
    archive
        .dir("dev")
        // The kernel opens /dev/console for init's stdio before init runs,
        // so the node must be in the archive (devtmpfs comes later).
        .char_device("dev/console", 0o600, 5, 1)
        .dir("proc")
        .dir("sys")
        .dir("out")
        .file("init", 0o755, &read(&artifacts.l1_init)?)
        .file("uirq-vmm", 0o755, &read(&artifacts.vmm)?)
        .file("guest.bin", 0o644, &read(&artifacts.guest_image)?)
        .file("jobs", 0o644, list.as_bytes());
    if !files.is_empty() {
        archive.dir("files");
    }
    for (inside, host) in &files {
        archive.file(inside.trim_start_matches('/'), 0o644, &read(host)?);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let written = archive.finish(&mut file).and_then(|()| match &qemu {
        // Linux unpacks concatenated newc archives one after the other.
        Some(payload) => std::io::Write::write_all(&mut file, payload),
        None => Ok(()),
    });
    written.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// One line of L1's console, classified.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// `@@uirq <tag> kernel <release>`, the init's first line: before the
    /// tag is known, it brings it.
    Hello {
        /// The boot's tag.
        tag: &'a str,
        /// The L1 kernel's release.
        kernel: &'a str,
    },
    /// `@@uirq <tag> job <n> start`
    JobStart(usize),
    /// `@@uirq <tag> job <n> exit <code>`
    JobExit(usize, i32),
    /// `@@uirq <tag> job <n> usage <kib> <ms>`: job n's process has exited
    /// with this peak resident set (KiB, `ru_maxrss`) this many
    /// milliseconds after its spawn; the init prints it just before the
    /// exit line.
    JobUsage(usize, u64, Duration),
    /// `@@uirq <tag> job <n> mark <ms>`: job n's output first held its mark
    /// this long after the VMM was spawned.
    JobMark(usize, Duration),
    /// `@@uirq <tag> job <n> file <k> <base64>`: part of the k-th file job
    /// n's VMM wrote (the L1 init's `@fetch=`).
    JobFile(usize, usize, &'a str),
    /// `@@uirq <tag> job <n> file-end <k> <bytes>`: that file is complete;
    /// it has this many bytes.
    JobFileEnd(usize, usize, u64),
    /// `@@uirq <tag> job <n> file-error <k> <message>`: it cannot be sent.
    JobFileError(usize, usize, &'a str),
    /// `@@uirq <tag> done`
    Done,
    /// `@@uirq <tag> init-error <message>` (or `@@uirq init-error
    /// <message>` before the tag exists)
    InitError(&'a str),
    /// Anything else: the VMM's and guest's output, or kernel messages,
    /// and every control line that does not carry the boot's tag.
    Text(&'a str),
}

/// A console line: what it is, and any text ahead of the control part on
/// the same line (a guest that left its last line open).
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Text before the control part; empty for a line of its own.
    pub before: &'a str,
    /// The line, classified.
    pub line: Line<'a>,
}

/// Classifies one console line (without its line ending), given the boot's
/// tag once it is known (`uirq_abi::report`).
///
/// Before the tag is known, nothing but kernel messages has been printed,
/// and only the init's first line counts, at the start of a line:
/// `@@uirq <tag> kernel <release>` ([`Line::Hello`]), or a tagless
/// `@@uirq init-error ...` from an init that could not make a tag. From
/// then on only a part that carries the tag is a control line, wherever it
/// starts in the line; everything else is text, a guest's forged `@@uirq
/// job 0 exit 0` included.
pub fn parse_line<'a>(line: &'a str, tag: Option<&str>) -> Parsed<'a> {
    let text = Parsed {
        before: "",
        line: Line::Text(line),
    };
    let Some(tag) = tag else {
        let Some(rest) = line.strip_prefix(MARK).and_then(|r| r.strip_prefix(' ')) else {
            return text;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        return match words.as_slice() {
            [tag, "kernel", kernel] if report::valid_tag(tag) => Parsed {
                before: "",
                line: Line::Hello { tag, kernel },
            },
            ["init-error", ..] => Parsed {
                before: "",
                line: Line::InitError(rest.trim_start_matches("init-error").trim()),
            },
            _ => text,
        };
    };
    let Some((before, rest)) = report::find(line, MARK, tag) else {
        return text;
    };
    // The tag as it stands in `line` (same text as `tag`).
    let own_tag = &line[before.len() + MARK.len() + 1..][..tag.len()];
    let words: Vec<&str> = rest.split_whitespace().collect();
    let control = match words.as_slice() {
        ["kernel", kernel] => Some(Line::Hello {
            tag: own_tag,
            kernel,
        }),
        ["job", n, "start"] => n.parse().ok().map(Line::JobStart),
        ["job", n, "exit", code] => match (n.parse(), code.parse()) {
            (Ok(n), Ok(code)) => Some(Line::JobExit(n, code)),
            _ => None,
        },
        ["job", n, "usage", kib, ms] => match (n.parse(), kib.parse(), ms.parse::<f64>()) {
            (Ok(n), Ok(kib), Ok(ms)) if ms.is_finite() && ms >= 0.0 => {
                Some(Line::JobUsage(n, kib, Duration::from_secs_f64(ms / 1e3)))
            }
            _ => None,
        },
        ["job", n, "mark", ms] => match (n.parse(), ms.parse::<f64>()) {
            (Ok(n), Ok(ms)) if ms.is_finite() && ms >= 0.0 => {
                Some(Line::JobMark(n, Duration::from_secs_f64(ms / 1e3)))
            }
            _ => None,
        },
        ["job", n, "file", k, chunk] => match (n.parse(), k.parse()) {
            (Ok(n), Ok(k)) => Some(Line::JobFile(n, k, chunk)),
            _ => None,
        },
        ["job", n, "file-end", k, bytes] => match (n.parse(), k.parse(), bytes.parse()) {
            (Ok(n), Ok(k), Ok(bytes)) => Some(Line::JobFileEnd(n, k, bytes)),
            _ => None,
        },
        ["job", n, "file-error", k, ..] => match (n.parse(), k.parse()) {
            (Ok(n), Ok(k)) => {
                // The message: everything after the k.
                let message = rest.split_once(" file-error ").map_or("", |(_, m)| m);
                let message = message.trim_start().split_once(' ').map_or("", |(_, m)| m);
                Some(Line::JobFileError(n, k, message.trim()))
            }
            _ => None,
        },
        ["done"] => Some(Line::Done),
        ["init-error", ..] => Some(Line::InitError(
            rest.trim_start().trim_start_matches("init-error").trim(),
        )),
        _ => None,
    };
    match control {
        Some(line) => Parsed { before, line },
        None => text,
    }
}

/// The console output and exit code of one job run in L1.
#[derive(Clone, Debug, Default)]
pub struct JobOutput {
    /// Everything the job printed (stdout and stderr), `\r` removed,
    /// bounded (`crate::bounded`), without the VMM's tagged reports.
    pub console: String,
    /// The VMM's exit code (128 + signal if it was killed).
    pub exit_code: Option<i32>,
    /// When the job's mark came (see `jobs::MARK_FIELD`).
    pub mark: Option<Duration>,
    /// The VMM's reports that carried the boot's tag.
    pub reports: Vec<Report>,
    /// The files the init sent back (`@fetch=`), by their k, each with
    /// its bytes or why it did not come.
    pub files: Vec<std::result::Result<Vec<u8>, String>>,
    /// The process's peak resident set in KiB, as the init's `wait4` saw
    /// it ([`Line::JobUsage`]).
    pub peak_rss_kib: Option<u64>,
    /// From the process's spawn to its exit, measured in L1.
    pub wall: Option<Duration>,
}

/// Files one job may send back: its output options, each at most once
/// per option given (more is not this batch's init).
const MAX_FILES: usize = 16;

/// Base64 text one job may send back, all files together; a VMM's trace
/// is bounded far below this.
const MAX_FETCHED: usize = 256 << 20;

/// A file coming back over the console: its base64 so far.
#[derive(Clone, Debug, Default)]
struct Incoming {
    text: String,
    too_long: bool,
}

impl Incoming {
    fn push(&mut self, chunk: &str, total: &mut usize) {
        *total += chunk.len();
        if *total > MAX_FETCHED {
            self.too_long = true;
            self.text = String::new();
        } else if !self.too_long {
            self.text.push_str(chunk);
        }
    }

    /// The file, once its end line said it has `bytes` bytes.
    fn finish(self, bytes: u64) -> std::result::Result<Vec<u8>, String> {
        if self.too_long {
            return Err(format!(
                "a file the VMM wrote is larger than the {} MiB that come back from L1",
                MAX_FETCHED >> 20
            ));
        }
        unpack(&self.text, bytes)
    }
}

/// Undoes the L1 init's base64 and gzip, and checks the size.
pub fn unpack(text: &str, bytes: u64) -> std::result::Result<Vec<u8>, String> {
    use base64::Engine;
    use std::io::Read;
    let gz = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("a file from L1 arrived damaged (base64: {e})"))?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .take(bytes.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| format!("a file from L1 arrived damaged (gzip: {e})"))?;
    if out.len() as u64 != bytes {
        return Err(format!(
            "a file from L1 arrived with {} bytes instead of {bytes}",
            out.len()
        ));
    }
    Ok(out)
}

/// Boots L1 once, runs `jobs` in it and returns their outputs in order.
/// `kernel_package` picks the L1 kernel's Debian package (default: the
/// pinned one, see [`ensure_kernel`]).
///
/// `stream` is given each job's console lines as they arrive. The whole boot
/// is bounded by `wall_timeout`: QEMU is killed when it passes.
pub fn run_jobs(
    artifacts: &Artifacts,
    jobs: &[Vec<String>],
    label: &str,
    stream: Option<&dyn Fn(&str)>,
    wall_timeout: Duration,
    kernel_package: Option<&str>,
) -> Result<(Versions, Vec<JobOutput>)> {
    let qemu_version = ensure_qemu()?;
    let kernel = match kernel_package {
        Some(package) => ensure_kernel_package(Some(package))?,
        None => ensure_kernel()?,
    };
    let initramfs = project::l1_cache_dir().join(format!("initramfs-{label}.cpio"));
    write_initramfs(artifacts, jobs, &initramfs)?;

    progress(format!(
        "booting an aarch64 Linux with KVM under QEMU (nested; {} job{}, allow ~10-30 s for the boot)",
        jobs.len(),
        if jobs.len() == 1 { "" } else { "s" }
    ));
    let mut cmd = Command::new(QEMU);
    cmd.args([
        "-M",
        // virtualization=on emulates EL2, so the L1 kernel has KVM;
        // gic-version=2 lets L1's KVM offer a vGICv2 as well as the
        // userspace irqchip (with v3 it drops GICv2 emulation).
        "virt,virtualization=on,gic-version=2",
        "-cpu",
        "max",
        "-smp",
        "2",
        "-m",
        "1024",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        // No NIC: QEMU 7.2 would otherwise look for a NIC option ROM.
        "-nic",
        "none",
    ])
    .arg("-kernel")
    .arg(&kernel)
    .arg("-initrd")
    .arg(&initramfs)
    .args(["-append", "console=ttyAMA0 panic=-1 quiet rdinit=/init"]);
    let mut versions = Versions {
        qemu: qemu_version,
        kernel: String::new(),
    };
    let mut outputs: Vec<JobOutput> = vec![JobOutput::default(); jobs.len()];
    let mut consoles: Vec<JobConsole> = vec![JobConsole::default(); jobs.len()];
    // Files coming back, per job and k, and the base64 each job sent.
    let mut incoming: Vec<Vec<Incoming>> = vec![Vec::new(); jobs.len()];
    let mut fetched_text = vec![0usize; jobs.len()];
    let mut current: Option<usize> = None;
    let mut done = false;
    // The boot's tag, from the init's first line (`parse_line`).
    let mut tag: Option<String> = None;
    // L1's own lines outside any job: only the last few are ever shown.
    let mut other_lines = BoundedText::new(4 << 10, 16 << 10);
    let mut init_error: Option<String> = None;
    let mut qemu_stderr = BoundedText::new(8 << 10, 8 << 10);
    // No terminal for QEMU (run_bounded closes its stdin and reads its
    // output): it leaves the user's terminal settings alone. It runs in a
    // process group of its own, which Ctrl-C stops (`crate::process`).
    let ended = run_bounded(&mut cmd, wall_timeout, |pipe, line| {
        if pipe == Pipe::Stderr {
            qemu_stderr.push_line(&line);
            return;
        }
        let Parsed { before, line: kind } = parse_line(&line, tag.as_deref());
        let mut text = |text: &str| match (current, tag.as_deref()) {
            (Some(n), Some(tag)) => consoles[n].line(text, tag, stream),
            _ => other_lines.push_line(text),
        };
        if !before.is_empty() {
            text(before);
        }
        match kind {
            Line::Hello { tag: t, kernel } => {
                versions.kernel = kernel.to_string();
                if tag.is_none() {
                    tag = Some(t.to_string());
                }
            }
            Line::JobStart(n) if n < outputs.len() => current = Some(n),
            Line::JobExit(n, code) if n < outputs.len() => {
                outputs[n].exit_code = Some(code);
                current = None;
            }
            Line::JobMark(n, after) if n < outputs.len() => outputs[n].mark = Some(after),
            Line::JobUsage(n, kib, wall) if n < outputs.len() => {
                outputs[n].peak_rss_kib = Some(kib);
                outputs[n].wall = Some(wall);
            }
            Line::JobFile(n, k, chunk) if n < outputs.len() && k < MAX_FILES => {
                if incoming[n].len() <= k {
                    incoming[n].resize(k + 1, Incoming::default());
                }
                incoming[n][k].push(chunk, &mut fetched_text[n]);
            }
            Line::JobFileEnd(n, k, bytes) if n < outputs.len() && k < MAX_FILES => {
                let file = incoming[n]
                    .get_mut(k)
                    .map(std::mem::take)
                    .unwrap_or_default();
                let files = &mut outputs[n].files;
                if files.len() <= k {
                    files.resize(k + 1, Err("it did not come back from L1".into()));
                }
                files[k] = file.finish(bytes);
            }
            Line::JobFileError(n, k, msg) if n < outputs.len() && k < MAX_FILES => {
                let files = &mut outputs[n].files;
                if files.len() <= k {
                    files.resize(k + 1, Err("it did not come back from L1".into()));
                }
                files[k] = Err(format!("L1 could not send it back: {msg}"));
            }
            Line::Done => done = true,
            Line::InitError(msg) => init_error = Some(msg.to_string()),
            Line::Text(t) => text(t),
            // A job number out of range: not from this batch's init.
            _ => text(&line),
        }
    })?;
    for (out, console) in outputs.iter_mut().zip(consoles) {
        (out.console, out.reports) = console.finish();
    }
    let status = match ended {
        Ended::Exited(status) => status,
        Ended::Killed => {
            return Err(format!(
                "the nested run did not finish within {} s and was stopped{}",
                wall_timeout.as_secs(),
                tail(&other_lines)
            ))
        }
    };
    if let Some(msg) = init_error {
        return Err(format!("the L1 init failed: {msg}"));
    }
    if !done {
        let qemu_said = qemu_stderr.into_string();
        return Err(format!(
            "L1 stopped before running all jobs (QEMU {status}){}{}",
            tail(&other_lines),
            if qemu_said.trim().is_empty() {
                String::new()
            } else {
                format!("\nQEMU said: {}", qemu_said.trim())
            }
        ));
    }
    Ok((versions, outputs))
}

fn tail(lines: &BoundedText) -> String {
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "; L1's last console lines:\n{}",
        lines.last_lines(20).join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_progress_reads_as_bytes_of_the_total_at_each_tenth_or_every_few_seconds() {
        assert_eq!(
            download_progress(41_234_567, Some(92_500_000)),
            "41.2 of 92.5 MB (44%)"
        );
        assert_eq!(download_progress(5_000_000, None), "5.0 MB so far");
        assert_eq!(download_progress(100, Some(0)), "0.0 MB so far");
        let total = Some(1000);
        let mut pace = ProgressPace::new();
        let at = Duration::from_millis;
        assert!(!pace.due(0, total, at(250)), "nothing yet, nothing said");
        assert!(!pace.due(50, total, at(500)));
        assert!(pace.due(100, total, at(750)), "a tenth");
        assert!(!pace.due(150, total, at(1000)));
        assert!(pace.due(350, total, at(1250)), "past two tenths at once");
        assert!(!pace.due(390, total, at(6000)));
        assert!(
            pace.due(399, total, at(6250)),
            "five seconds since the last"
        );
        assert!(pace.due(1000, total, at(6500)), "the end");
        let mut unknown = ProgressPace::new();
        assert!(!unknown.due(10, None, at(4000)));
        assert!(unknown.due(20, None, at(5000)));
        assert!(!unknown.due(30, None, at(9000)));
        assert!(unknown.due(40, None, at(10_000)));
    }

    #[test]
    fn kernel_package_names_are_checked() {
        assert_eq!(check_package_name(KERNEL_PACKAGE), Ok(()));
        assert_eq!(
            check_package_name("linux-image-6.1.0-56-arm64-unsigned"),
            Ok(())
        );
        for bad in [
            "",
            "l",
            "-linux",
            "Linux-image",
            "linux image",
            "linux_image",
            "linux-image;rm",
        ] {
            assert!(check_package_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fallback_kernels_are_the_fixed_6_12_ones_newest_first() {
        let listed = [
            "linux-image-6.12.95+deb12-arm64-unsigned",
            "linux-image-6.12.117+deb12-arm64-unsigned",
            "linux-image-6.12.80+deb12-arm64-unsigned",
            "linux-image-6.12.117+deb12-cloud-arm64-unsigned",
            "linux-image-6.1.0-56-arm64-unsigned",
        ];
        assert_eq!(
            newest_fixed(listed.into_iter()),
            [
                "linux-image-6.12.117+deb12-arm64-unsigned",
                "linux-image-6.12.95+deb12-arm64-unsigned"
            ]
        );
        assert_eq!(minor_of(KERNEL_PACKAGE), Some(117));
    }

    fn owned(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn jobs_get_the_firmware_only_without_a_guest_and_their_files_are_staged_once() {
        let jobs = vec![
            owned(&["@sigint-after-ms=2500", "--cpus", "4"]),
            owned(&[
                "@stdin=hello",
                "@mark=ready",
                "--kernel",
                "/build/l1/vmlinuz",
                "--initrd=/build/linux/initramfs.cpio",
                "--cmdline",
                "console=ttyAMA0 quiet",
            ]),
            owned(&["--kernel", "/build/l1/vmlinuz", "--dtb", "/nowhere/x.dtb"]),
            owned(&["--image", "/no/such/image.bin"]),
        ];
        let (list, files) = job_list(&jobs, |p| p.starts_with("/build")).unwrap();
        let lines: Vec<Vec<&str>> = list.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(
            lines,
            [
                vec![
                    "@sigint-after-ms=2500",
                    "--image",
                    "/guest.bin",
                    "--cpus",
                    "4"
                ],
                vec![
                    "@mark=ready",
                    "@stdin=hello",
                    "--kernel",
                    "/files/0-vmlinuz",
                    "--initrd=/files/1-initramfs.cpio",
                    "--cmdline",
                    "console=ttyAMA0 quiet"
                ],
                // The same kernel is copied once; a file that is not there
                // is left for the VMM to report.
                vec!["--kernel", "/files/0-vmlinuz", "--dtb", "/nowhere/x.dtb"],
                vec!["--image", "/no/such/image.bin"],
            ]
        );
        assert_eq!(
            files,
            [
                (
                    "/files/0-vmlinuz".to_string(),
                    PathBuf::from("/build/l1/vmlinuz")
                ),
                (
                    "/files/1-initramfs.cpio".to_string(),
                    PathBuf::from("/build/linux/initramfs.cpio")
                ),
            ]
        );
        assert!(job_list(&[owned(&["--cmdline", "a\tb"])], |_| true).is_err());
        assert!(job_list(&[owned(&["@what=1"])], |_| true).is_err());
    }

    // A @qemu job gets no firmware image and no fetch; its -kernel is
    // staged (once, shared with a VMM job naming the same file) and it
    // always carries a bound for the init.
    #[test]
    fn qemu_jobs_stage_their_files_and_carry_a_bound() {
        let jobs = vec![
            owned(&[
                "@qemu",
                "-accel",
                "kvm",
                "-kernel",
                "/build/uirq-guest",
                "--trace",
                "kvm_*",
            ]),
            owned(&["@timeout-s=30", "@qemu", "-kernel=/build/uirq-guest"]),
            owned(&["--kernel", "/build/uirq-guest"]),
        ];
        let (list, files) = job_list(&jobs, |p| p.starts_with("/build")).unwrap();
        let lines: Vec<Vec<&str>> = list.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(
            lines,
            [
                vec![
                    "@timeout-s=120",
                    "@qemu",
                    "-accel",
                    "kvm",
                    "-kernel",
                    "/files/0-uirq-guest",
                    "--trace",
                    "kvm_*"
                ],
                vec!["@timeout-s=30", "@qemu", "-kernel=/files/0-uirq-guest"],
                vec!["--kernel", "/files/0-uirq-guest"],
            ]
        );
        assert_eq!(files.len(), 1);
    }

    #[test]
    fn usage_lines_carry_peak_rss_and_wall_and_nothing_else_passes() {
        let tagged = |rest: &str| format!("@@uirq {TAG} {rest}");
        assert_eq!(
            line_of(&tagged("job 1 usage 40960 1234.500")),
            Line::JobUsage(1, 40960, Duration::from_micros(1_234_500))
        );
        for text in [
            tagged("job 1 usage 40960"),
            tagged("job 1 usage -5 12.0"),
            tagged("job 1 usage 4096 -1"),
            tagged("job 1 usage 4096 NaN"),
            tagged("job 1 usage 4096 12.0 extra"),
            tagged("job x usage 4096 12.0"),
        ] {
            assert_eq!(line_of(&text), Line::Text(&text), "{text}");
        }
        let forged = "@@uirq job 0 usage 1 1";
        assert_eq!(parse_line(forged, Some(TAG)).line, Line::Text(forged));
    }

    // What the VMM writes goes to /out in L1 and is fetched back, in the
    // order of the options; the fields stay first.
    #[test]
    fn output_files_are_written_in_l1_and_fetched() {
        let jobs = vec![
            owned(&["--ticks", "3"]),
            owned(&[
                "@mark=x",
                "--trace",
                "../results/run trace.json",
                "--dump-dtb=/tmp/t.dtb",
            ]),
        ];
        let (list, _) = job_list(&jobs, |_| false).unwrap();
        let lines: Vec<Vec<&str>> = list.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(
            lines[1],
            [
                "@mark=x",
                "@fetch=/out/1-0-run trace.json",
                "@fetch=/out/1-1-t.dtb",
                "--image",
                "/guest.bin",
                "--trace",
                "/out/1-0-run trace.json",
                "--dump-dtb=/out/1-1-t.dtb",
            ]
        );
        assert_eq!(
            crate::jobs::output_paths(&jobs[1][1..]),
            ["../results/run trace.json", "/tmp/t.dtb"]
        );
    }

    #[test]
    fn file_lines_carry_job_file_and_size() {
        let tagged = |rest: &str| format!("@@uirq {TAG} {rest}");
        assert_eq!(
            line_of(&tagged("job 2 file 0 H4sIAAAA")),
            Line::JobFile(2, 0, "H4sIAAAA")
        );
        assert_eq!(
            line_of(&tagged("job 2 file-end 1 1234")),
            Line::JobFileEnd(2, 1, 1234)
        );
        assert_eq!(
            line_of(&tagged(
                "job 0 file-error 0 cannot read /out/0-0-t.json: No such file"
            )),
            Line::JobFileError(0, 0, "cannot read /out/0-0-t.json: No such file")
        );
        // A guest's forged file line has no tag: text.
        let forged = "@@uirq job 0 file 0 H4sIAAAA";
        assert_eq!(parse_line(forged, Some(TAG)).line, Line::Text(forged));
    }

    #[test]
    fn a_file_comes_back_whole_or_says_why_not() {
        use base64::Engine;
        use std::io::Write;
        let text = b"{\"traceEvents\":[]}\n".repeat(50);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        let packed = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
        // In chunks, as the init sends it.
        let mut incoming = Incoming::default();
        let mut total = 0;
        for chunk in packed.as_bytes().chunks(7) {
            incoming.push(std::str::from_utf8(chunk).unwrap(), &mut total);
        }
        assert_eq!(incoming.clone().finish(text.len() as u64).unwrap(), text);
        // A lost line, a wrong size, damage: each a sentence.
        let short = &packed[..packed.len() - 8];
        assert!(unpack(short, text.len() as u64).is_err());
        assert!(unpack(&packed, text.len() as u64 + 1)
            .unwrap_err()
            .contains("instead of"));
        assert!(unpack("not base64!", 3).unwrap_err().contains("damaged"));
        // Past the limit, nothing is kept and the reason is given.
        let mut big = Incoming::default();
        let mut total = MAX_FETCHED;
        big.push("AAAA", &mut total);
        assert!(big.finish(3).unwrap_err().contains("larger than"));
    }

    // A path (anything with a `/`) is a kernel of the user's own, used as
    // it is, never looked up as a package.
    #[test]
    fn a_kernel_given_by_path_is_used_as_it_is() {
        let path = std::env::temp_dir().join(format!("uirq-own-Image-{}", std::process::id()));
        std::fs::write(&path, b"not really a kernel").unwrap();
        let given = path.display().to_string();
        assert_eq!(ensure_kernel_package(Some(&given)), Ok(path.clone()));
        std::fs::remove_file(&path).unwrap();
        let err = ensure_kernel_package(Some(&given)).unwrap_err();
        assert!(err.contains("does not name a kernel image file"), "{err}");
    }

    const TAG: &str = "5f0c9e2a41d7b3c8e6f1a0b9c2d4e7f3";

    fn line_of(line: &str) -> Line<'_> {
        let parsed = parse_line(line, Some(TAG));
        assert_eq!(parsed.before, "", "{line}");
        parsed.line
    }

    #[test]
    fn marker_lines_with_the_tag_are_recognised_and_others_pass_through() {
        let tagged = |rest: &str| format!("@@uirq {TAG} {rest}");
        assert_eq!(
            line_of(&tagged("kernel 6.12.117+deb12-arm64")),
            Line::Hello {
                tag: TAG,
                kernel: "6.12.117+deb12-arm64"
            }
        );
        assert_eq!(line_of(&tagged("job 3 start")), Line::JobStart(3));
        assert_eq!(line_of(&tagged("job 3 exit 124")), Line::JobExit(3, 124));
        assert_eq!(
            line_of(&tagged("job 2 mark 1234.500")),
            Line::JobMark(2, Duration::from_micros(1_234_500))
        );
        assert_eq!(line_of(&tagged("done")), Line::Done);
        assert_eq!(
            line_of(&tagged("init-error no kvm")),
            Line::InitError("no kvm")
        );
        for text in [
            tagged("job 2 mark soon"),
            tagged("job 2 mark -1"),
            tagged("job x start"),
            "tick 1: 5 ns".to_string(),
            format!("@@uirqjob 1 start {TAG}"),
        ] {
            assert_eq!(line_of(&text), Line::Text(&text), "{text}");
        }
    }

    // What a guest prints cannot speak for the init: without the boot's
    // tag a control line is text, and with a wrong guess too.
    #[test]
    fn forged_control_lines_are_text() {
        for forged in [
            "@@uirq job 0 exit 0",
            "@@uirq done",
            "@@uirq job 1 start",
            "@@uirq init-error stop everything",
            "@@uirq 00000000000000000000000000000000 job 0 exit 0",
            "@@uirq 5f0c9e2a41d7b3c8e6f1a0b9c2d4e7f job 0 exit 0",
        ] {
            assert_eq!(parse_line(forged, Some(TAG)).line, Line::Text(forged));
        }
    }

    // The tag is learned from the init's first line; before it, nothing
    // else counts but an init that could not start.
    #[test]
    fn the_tag_comes_with_the_first_line() {
        let hello = format!("@@uirq {TAG} kernel 6.12.117");
        assert_eq!(
            parse_line(&hello, None).line,
            Line::Hello {
                tag: TAG,
                kernel: "6.12.117"
            }
        );
        assert_eq!(
            parse_line(
                "@@uirq init-error cannot make this boot's tag: ENOSYS",
                None
            )
            .line,
            Line::InitError("cannot make this boot's tag: ENOSYS")
        );
        for early in [
            "@@uirq job 0 exit 0",
            "@@uirq short kernel 6.1",
            "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x000f0510]",
            &format!("x @@uirq {TAG} kernel 6.12.117"),
        ] {
            assert_eq!(parse_line(early, None).line, Line::Text(early), "{early}");
        }
    }

    // A guest that ends without a newline leaves the init's line behind
    // its own text: the control part is still found, the text kept.
    #[test]
    fn a_control_part_after_guest_text_is_found() {
        let line = format!("# @@uirq job 0 exit 0 and a prompt@@uirq {TAG} job 0 exit 3");
        let parsed = parse_line(&line, Some(TAG));
        assert_eq!(parsed.line, Line::JobExit(0, 3));
        assert_eq!(parsed.before, "# @@uirq job 0 exit 0 and a prompt");
    }
}
