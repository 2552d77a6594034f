//! `/init` of the L1 Linux: runs the VMM jobs it is given, then powers off.
//!
//! When the build machine is not an aarch64 KVM host, `cargo xtask` boots a
//! small aarch64 Linux under QEMU (with EL2 emulated, so that Linux has KVM)
//! from an initramfs holding this program, the VMM, the firmware image and a
//! `/jobs` file. This program is that Linux's first process. It:
//!
//! 1. makes this boot's tag, 128 random bits from the kernel (`getrandom`),
//!    and prints it first of all, before any job runs, in
//!    `@@uirq <tag> kernel <release>`;
//! 2. mounts devtmpfs on `/dev` (so `/dev/kvm` appears) and proc on `/proc`;
//! 3. runs `/uirq-vmm` once per line of `/jobs` (arguments separated by tabs),
//!    with the console as its stdout and stderr, framing each run with marker
//!    lines that xtask parses (`@@uirq <tag> job <n> start`, `... usage
//!    <kib> <ms>`, `... exit <code>`, and `@@uirq <tag> done` after the
//!    last). The usage line gives the process's peak resident set in KiB
//!    (`ru_maxrss` from `wait4`) and the milliseconds from its spawn to its
//!    exit. A job's line may start with
//!    fields, in any order, before the VMM's arguments:
//!    - `@sigint-after-ms=N`: SIGINT N ms after the VMM started, as Ctrl-C
//!      would send it ([`SIGINT_AFTER`]);
//!    - `@mark=TEXT`: the VMM's output goes through pipes and is forwarded
//!      line by line; the first line that contains TEXT is followed by
//!      `@@uirq job <n> mark <ms>`, the milliseconds since the VMM was
//!      spawned ([`MARK_FIELD`]);
//!    - `@stdin=TEXT`: the VMM's stdin is a pipe that gets TEXT and a
//!      newline once the mark was seen (at once without a mark), and stays
//!      open until the VMM exits ([`STDIN_FIELD`]). Without it the VMM's
//!      stdin is /dev/null: it must never read L1's console;
//!    - `@stdout-unread`: the VMM's stdout is a pipe this program holds
//!      open and never reads, so it fills up and stays full; stderr is
//!      still the console ([`STDOUT_UNREAD`]);
//!    - `@fetch=PATH` (any number of them): after the VMM exited, the
//!      file at PATH (one the VMM wrote, such as a `--trace`) goes back to
//!      xtask over the console, gzip-compressed and base64-encoded, in
//!      lines `@@uirq <tag> job <n> file <k> <chunk>` ended by `... job
//!      <n> file-end <k> <bytes>` (its size before compression), or by
//!      `... job <n> file-error <k> <message>`; k counts the job's
//!      `@fetch=` fields from 0 ([`FETCH_FIELD`]);
//!    - `@env=NAME=VALUE`: NAME is set to VALUE in the VMM's environment
//!      (`UIRQ_LOG`, `NO_COLOR`; [`ENV_FIELD`]);
//!    - `@timeout-s=N`: the process is killed with SIGKILL N seconds after
//!      its spawn (exit code 137; [`TIMEOUT_FIELD`]). xtask gives every
//!      `@qemu` job one, since QEMU has no bound of its own;
//!    - `@qemu`: the arguments are QEMU's: the job runs
//!      `/qemu/qemu-system-aarch64` (Debian's arm64 build, which xtask puts
//!      in the initramfs with its libraries under `/qemu/lib`) through its
//!      dynamic loader, `/qemu/lib/ld-linux-aarch64.so.1 --library-path
//!      /qemu/lib ...`, since nothing is at `/lib` here ([`QEMU_FIELD`]);
//! 4. powers the machine off, which ends QEMU (`-no-reboot`).
//!
//! **Why the tag.** The guest's output shares the console with these
//! lines, and a guest can print `@@uirq job 0 exit 0` as well as this
//! program can. It cannot print the tag, which it never sees
//! (`uirq_abi::report`): xtask learns it from the first `@@uirq` line,
//! printed before any guest ran, and from then on takes only lines that
//! carry it as the init's. The VMM gets the same tag in `UIRQ_REPORT_TAG`
//! for its own report lines (`@@bench`, `@@exits`).
//!
//! It must never return or panic without powering off: PID 1 exiting makes
//! the kernel panic instead of stopping.

use std::ffi::CString;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use uirq_abi::report::{CONTROL, TAG_ENV};

/// This boot's tag (see the module documentation), once made.
static TAG: OnceLock<String> = OnceLock::new();

/// The start of a control line: `@@uirq <tag>`, or `@@uirq` alone before
/// the tag exists (xtask accepts only an `init-error` that way, and only
/// before it has seen the tag).
fn mark() -> String {
    match TAG.get() {
        Some(tag) => format!("{CONTROL} {tag}"),
        None => CONTROL.to_string(),
    }
}

/// 128 random bits as 32 hex digits, from the kernel's generator (which
/// blocks until it is seeded, a moment at most on the kernels used here).
fn make_tag() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        let rest = &mut bytes[filled..];
        // SAFETY: getrandom writes at most `rest.len()` bytes into `rest`,
        // which is valid for writes of that many.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match n {
            n if n > 0 => filled += n as usize,
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A job field: send the VMM SIGINT this many milliseconds after it
/// started (`xtask::jobs::SIGINT_AFTER`).
const SIGINT_AFTER: &str = "@sigint-after-ms=";
/// A job field: report when the VMM first prints a line containing this
/// text (`xtask::jobs::MARK_FIELD`).
const MARK_FIELD: &str = "@mark=";
/// A job field: write this text and a newline to the VMM's stdin
/// (`xtask::jobs::STDIN_FIELD`).
const STDIN_FIELD: &str = "@stdin=";
/// A job field: the VMM's stdout is a pipe nobody reads
/// (`xtask::jobs::STDOUT_UNREAD`).
const STDOUT_UNREAD: &str = "@stdout-unread";
/// A job field: `NAME=VALUE` for the VMM's environment
/// (`xtask::jobs::ENV_FIELD`).
const ENV_FIELD: &str = "@env=";

/// A job field: kill the process this many seconds after its spawn
/// (`xtask::jobs::TIMEOUT_FIELD`).
const TIMEOUT_FIELD: &str = "@timeout-s=";
/// A job field: the arguments are QEMU's (`xtask::jobs::QEMU_FIELD`).
const QEMU_FIELD: &str = "@qemu";
/// The VMM.
const VMM: &str = "/uirq-vmm";
/// QEMU's dynamic loader, which runs it (`xtask::qemu_l1`).
const QEMU_LOADER: &str = "/qemu/lib/ld-linux-aarch64.so.1";
/// Where QEMU's libraries are.
const QEMU_LIBS: &str = "/qemu/lib";
/// QEMU itself.
const QEMU: &str = "/qemu/qemu-system-aarch64";

/// A job field: send this file back after the VMM exited
/// (`xtask::jobs::FETCH_FIELD`).
const FETCH_FIELD: &str = "@fetch=";
/// Base64 characters per `file` line: well under xtask's longest line.
const FETCH_CHUNK: usize = 3072;

/// The fields of a job, which precede its VMM arguments.
#[derive(Debug, Default, PartialEq, Eq)]
struct Fields<'a> {
    sigint_after: Option<Duration>,
    mark: Option<&'a str>,
    stdin: Option<&'a str>,
    stdout_unread: bool,
    fetch: Vec<&'a str>,
    env: Vec<(&'a str, &'a str)>,
    timeout: Option<Duration>,
    qemu: bool,
}

/// Splits the leading fields of a job off its VMM arguments.
fn split_fields<'a, 'b>(args: &'b [&'a str]) -> (Fields<'a>, &'b [&'a str]) {
    let mut fields = Fields::default();
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        if let Some(ms) = first.strip_prefix(SIGINT_AFTER) {
            fields.sigint_after = Some(Duration::from_millis(ms.parse().unwrap_or(0)));
        } else if let Some(text) = first.strip_prefix(MARK_FIELD) {
            fields.mark = Some(text);
        } else if let Some(text) = first.strip_prefix(STDIN_FIELD) {
            fields.stdin = Some(text);
        } else if *first == STDOUT_UNREAD {
            fields.stdout_unread = true;
        } else if *first == QEMU_FIELD {
            fields.qemu = true;
        } else if let Some(s) = first.strip_prefix(TIMEOUT_FIELD) {
            // xtask checked it; a bad one bounds the job at once rather
            // than never.
            fields.timeout = Some(Duration::from_secs(s.parse().unwrap_or(0)));
        } else if let Some(path) = first.strip_prefix(FETCH_FIELD) {
            fields.fetch.push(path);
        } else if let Some((name, value)) = first
            .strip_prefix(ENV_FIELD)
            .and_then(|s| s.split_once('='))
        {
            fields.env.push((name, value));
        } else {
            break;
        }
        rest = tail;
    }
    (fields, rest)
}

fn main() {
    std::panic::set_hook(Box::new(|info| {
        println!("{} init-error {info}", mark());
        power_off();
    }));

    match make_tag() {
        Ok(tag) => {
            let _ = TAG.set(tag);
        }
        Err(e) => {
            println!("{} init-error cannot make this boot's tag: {e}", mark());
            power_off();
        }
    }
    // First of all, before any guest runs: xtask learns the tag here.
    println!("{} kernel {}", mark(), kernel_release());
    let _ = std::io::stdout().flush();

    for (fstype, dir) in [("devtmpfs", "/dev"), ("proc", "/proc")] {
        if let Err(e) = mount(fstype, dir) {
            println!("{} init-error cannot mount {fstype} on {dir}: {e}", mark());
            power_off();
        }
    }

    let jobs = std::fs::read_to_string("/jobs").unwrap_or_default();
    for (index, line) in jobs.lines().enumerate() {
        let words: Vec<&str> = line.split('\t').filter(|a| !a.is_empty()).collect();
        let (fields, args) = split_fields(&words);
        println!("{} job {index} start", mark());
        let _ = std::io::stdout().flush();
        let code = match run_job(index, args, &fields) {
            Ok(ended) => {
                println!(
                    "{} job {index} usage {} {:.3}",
                    mark(),
                    ended.peak_rss_kib,
                    ended.wall.as_secs_f64() * 1e3
                );
                let status = ended.status;
                status.code().unwrap_or_else(|| {
                    128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
                })
            }
            Err(e) => {
                let program = if fields.qemu { QEMU } else { VMM };
                println!("{} init-error cannot start {program}: {e}", mark());
                127
            }
        };
        for (k, path) in fields.fetch.iter().enumerate() {
            send_file(index, k, path);
        }
        println!("{} job {index} exit {code}", mark());
    }
    println!("{} done", mark());
    power_off();
}

/// Prints the file at `path` for xtask (see the module documentation):
/// gzip, then base64 in lines of [`FETCH_CHUNK`] characters.
fn send_file(index: usize, k: usize, path: &str) {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            println!(
                "{} job {index} file-error {k} cannot read {path}: {e}",
                mark()
            );
            return;
        }
    };
    let packed = match pack(&bytes) {
        Ok(packed) => packed,
        Err(e) => {
            println!(
                "{} job {index} file-error {k} cannot compress {path}: {e}",
                mark()
            );
            return;
        }
    };
    let mut out = std::io::stdout().lock();
    for chunk in packed.as_bytes().chunks(FETCH_CHUNK) {
        // Base64 is ASCII: every chunk is a whole string.
        let chunk = std::str::from_utf8(chunk).unwrap_or_default();
        let _ = writeln!(out, "{} job {index} file {k} {chunk}", mark());
    }
    let _ = writeln!(out, "{} job {index} file-end {k} {}", mark(), bytes.len());
    let _ = out.flush();
}

/// `bytes` gzip-compressed and base64-encoded (standard alphabet, padded).
fn pack(bytes: &[u8]) -> std::io::Result<String> {
    use base64::Engine;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(gz.finish()?))
}

/// How a job's process ended, and what it cost.
struct JobEnd {
    status: ExitStatus,
    /// `ru_maxrss` from `wait4`.
    peak_rss_kib: u64,
    /// Spawn to exit.
    wall: Duration,
}

/// Runs job `index`: the VMM (or QEMU) with `args`, as its `fields` ask.
fn run_job(index: usize, args: &[&str], fields: &Fields<'_>) -> std::io::Result<JobEnd> {
    let mut cmd = if fields.qemu {
        let mut c = Command::new(QEMU_LOADER);
        c.args(["--library-path", QEMU_LIBS, QEMU]);
        c
    } else {
        Command::new(VMM)
    };
    if let Some(tag) = TAG.get() {
        cmd.env(TAG_ENV, tag);
    }
    cmd.envs(fields.env.iter().copied());
    cmd.args(args).stdin(match fields.stdin {
        Some(_) => Stdio::piped(),
        None => Stdio::null(),
    });
    if fields.mark.is_some() {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    // The read end stays here, unread, until the VMM has exited.
    let _unread = if fields.stdout_unread {
        let (read, write) = unread_pipe()?;
        cmd.stdout(write);
        Some(read)
    } else {
        None
    };
    let spawned = Instant::now();
    let mut child = cmd.spawn()?;

    // Each output pipe has a thread forwarding it; the first to see the
    // mark reports it and tells the stdin writer (`seen`). The writer knows
    // the VMM's output has ended (so it has exited) when every sender is
    // gone.
    let (seen_tx, seen_rx) = mpsc::channel::<()>();
    let mut threads = Vec::new();
    if let Some(mark) = fields.mark {
        let marked = Arc::new(AtomicBool::new(false));
        let pipes: [(Option<Box<dyn Read + Send>>, bool); 2] = [
            (child.stdout.take().map(|p| Box::new(p) as _), false),
            (child.stderr.take().map(|p| Box::new(p) as _), true),
        ];
        for (pipe, is_stderr) in pipes {
            let Some(pipe) = pipe else { continue };
            let watch = Watch {
                index,
                mark: mark.to_string(),
                marked: Arc::clone(&marked),
                spawned,
                seen: seen_tx.clone(),
            };
            threads.push(std::thread::spawn(move || forward(pipe, is_stderr, watch)));
        }
    }
    drop(seen_tx);

    // Held until the VMM has exited, so it never sees its stdin end early.
    let mut held_stdin = None;
    if let (Some(text), Some(mut stdin)) = (fields.stdin, child.stdin.take()) {
        let line = format!("{text}\n");
        if fields.mark.is_some() {
            threads.push(std::thread::spawn(move || {
                if seen_rx.recv().is_ok() {
                    let _ = stdin.write_all(line.as_bytes());
                    let _ = stdin.flush();
                }
                while seen_rx.recv().is_ok() {}
                drop(stdin);
            }));
        } else {
            let _ = stdin.write_all(line.as_bytes());
            let _ = stdin.flush();
            held_stdin = Some(stdin);
        }
    }

    let ended = wait_bounded(&child, fields.sigint_after, fields.timeout);
    let wall = spawned.elapsed();
    drop(held_stdin);
    for t in threads {
        let _ = t.join();
    }
    let (status, peak_rss_kib) = ended?;
    Ok(JobEnd {
        status,
        peak_rss_kib,
        wall,
    })
}

/// A pipe, both ends closed on exec, as small as the kernel allows (one
/// page), so that a few KiB of output fill it: (read end, write end).
fn unread_pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array, which has room
    // for them.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both are open descriptors owned by nothing
    // else.
    let (read, write) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    // SAFETY: F_SETPIPE_SZ takes an int and touches no memory; a failure
    // leaves the default size, which only takes more output to fill.
    unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    Ok((read, write))
}

/// What a forwarding thread looks for and whom it tells.
struct Watch {
    index: usize,
    mark: String,
    /// Set by the first thread to see the mark, so it is reported once.
    marked: Arc<AtomicBool>,
    spawned: Instant,
    seen: mpsc::Sender<()>,
}

/// Copies `pipe` line by line to this process's stdout or stderr, as each
/// line arrives and unchanged, reporting the mark after the line holding it.
fn forward(pipe: Box<dyn Read + Send>, is_stderr: bool, watch: Watch) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // One write per line, so lines from the two pipes never interleave
        // within a line.
        if is_stderr {
            let _ = std::io::stderr().lock().write_all(&buf);
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&buf);
            let _ = out.flush();
        }
        if String::from_utf8_lossy(&buf).contains(watch.mark.as_str())
            && !watch.marked.swap(true, Ordering::SeqCst)
        {
            let ms = watch.spawned.elapsed().as_secs_f64() * 1e3;
            let newline = if buf.ends_with(b"\n") { "" } else { "\n" };
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(
                format!("{newline}{} job {} mark {ms:.3}\n", mark(), watch.index).as_bytes(),
            );
            let _ = out.flush();
            let _ = watch.seen.send(());
        }
    }
}

/// Waits for the job's process and reaps it with `wait4`, for its peak
/// resident set (KiB). With `sigint_after`, interrupts it as Ctrl-C would
/// once that much time has passed; with `timeout`, kills it (SIGKILL) once
/// that much has.
fn wait_bounded(
    child: &Child,
    sigint_after: Option<Duration>,
    timeout: Option<Duration>,
) -> std::io::Result<(ExitStatus, u64)> {
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    let mut interrupted = false;
    let mut killed = false;
    loop {
        let pending = |done: bool, after: Option<Duration>| !done && after.is_some();
        let polling = pending(interrupted, sigint_after) || pending(killed, timeout);
        if let Some(ended) = reap(pid, polling)? {
            return Ok(ended);
        }
        let elapsed = start.elapsed();
        // `pid` is our own child, not yet reaped, so it names no other
        // process.
        let signal = |signal| {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, signal) };
        };
        if !interrupted && sigint_after.is_some_and(|a| elapsed >= a) {
            signal(libc::SIGINT);
            interrupted = true;
        }
        if !killed && timeout.is_some_and(|t| elapsed >= t) {
            signal(libc::SIGKILL);
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reaps `pid` with `wait4`: its status and `ru_maxrss` (KiB), or `None`
/// when `nohang` and it is still running.
fn reap(pid: libc::pid_t, nohang: bool) -> std::io::Result<Option<(ExitStatus, u64)>> {
    let mut raw = 0;
    // SAFETY: rusage is plain data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: wait4 writes an int and a rusage through pointers valid
        // for those writes.
        let rc = unsafe { libc::wait4(pid, &mut raw, flags, &mut usage) };
        match rc {
            0 => return Ok(None),
            rc if rc > 0 => {
                let status = std::os::unix::process::ExitStatusExt::from_raw(raw);
                return Ok(Some((status, u64::try_from(usage.ru_maxrss).unwrap_or(0))));
            }
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// Mounts a kernel filesystem (`devtmpfs` for /dev/kvm, `proc` for the
/// VMM's memory report) on `dir`.
fn mount(fstype: &str, dir: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let source = CString::new(fstype).unwrap_or_default();
    let target = CString::new(dir).unwrap_or_default();
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the
    // call; a null `data` is allowed for both filesystems.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            source.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn kernel_release() -> String {
    // SAFETY: utsname is plain data; uname fills it and we check the result.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return "unknown".into();
    }
    let bytes: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        // c_char is i8 on some targets and u8 on aarch64.
        .map(|&c| u8::from_ne_bytes(c.to_ne_bytes()))
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn power_off() -> ! {
    let _ = std::io::stdout().flush();
    // SAFETY: sync and reboot have no memory-safety preconditions. As PID 1
    // with CAP_SYS_BOOT, RB_POWER_OFF stops the machine and does not return.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    // Only reached if reboot failed (not PID 1): nothing else to do.
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetched_file_is_gzip_then_base64() {
        use base64::Engine;
        use std::io::Read;
        let text = b"{\"traceEvents\":[]}".repeat(100);
        let packed = pack(&text).unwrap();
        assert!(
            packed.len() < text.len() / 4,
            "compressed: {}",
            packed.len()
        );
        let gz = base64::engine::general_purpose::STANDARD
            .decode(packed)
            .unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, text);
        let (fields, rest) = split_fields(&["@fetch=/trace-0.json", "--trace", "/trace-0.json"]);
        assert_eq!(fields.fetch, ["/trace-0.json"]);
        assert_eq!(rest, ["--trace", "/trace-0.json"]);
    }

    // The bound kills, SIGINT interrupts, and either way the process is
    // reaped with its peak RSS.
    #[test]
    fn a_job_is_interrupted_or_killed_on_time_and_reaped_with_its_usage() {
        use std::os::unix::process::ExitStatusExt;
        let sleeper = || Command::new("sleep").arg("30").spawn().unwrap();
        let start = Instant::now();
        let (status, rss) =
            wait_bounded(&sleeper(), None, Some(Duration::from_millis(200))).unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(rss > 0);
        let (status, _) = wait_bounded(
            &sleeper(),
            Some(Duration::from_millis(100)),
            Some(Duration::from_secs(20)),
        )
        .unwrap();
        assert_eq!(status.signal(), Some(libc::SIGINT));
        assert!(start.elapsed() < Duration::from_secs(10));
        let (status, _) = wait_bounded(&Command::new("true").spawn().unwrap(), None, None).unwrap();
        assert!(status.success());
    }

    #[test]
    fn fields_come_first_in_any_order_and_the_rest_goes_to_the_vmm() {
        let job = [
            "@stdin=hello there",
            "@sigint-after-ms=1500",
            "@mark=uirq-linux-init: started",
            "@stdout-unread",
            "@fetch=/trace-0.json",
            "@env=UIRQ_LOG=uirq_host=debug",
            "@env=NO_COLOR=1",
            "@timeout-s=30",
            "@qemu",
            "--cpus",
            "2",
        ];
        let (fields, args) = split_fields(&job);
        assert_eq!(
            fields,
            Fields {
                sigint_after: Some(Duration::from_millis(1500)),
                mark: Some("uirq-linux-init: started"),
                stdin: Some("hello there"),
                stdout_unread: true,
                fetch: vec!["/trace-0.json"],
                env: vec![("UIRQ_LOG", "uirq_host=debug"), ("NO_COLOR", "1")],
                timeout: Some(Duration::from_secs(30)),
                qemu: true,
            }
        );
        assert_eq!(args, ["--cpus", "2"]);
        // A field after the first VMM argument is the VMM's business.
        let job = ["--cpus", "2", "@mark=x"];
        let (fields, args) = split_fields(&job);
        assert_eq!(fields, Fields::default());
        assert_eq!(args, job);
        assert_eq!(split_fields(&[]), (Fields::default(), &[][..]));
    }
}
