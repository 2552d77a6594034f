//! `/init` of the Linux guests that `cargo xtask` boots on the VMM.
//!
//! `cargo xtask run --linux`, `cargo xtask bench-boot` and the end-to-end
//! tests boot an arm64 Linux as the VMM's guest with a generated initramfs
//! whose first process is this program. It shows that the kernel got to
//! userspace on the userspace GIC and what the interrupts did on the way:
//!
//! 1. mounts proc on `/proc`, devtmpfs on `/dev` and sysfs on `/sys`;
//! 2. prints `uirq-linux-init: started, kernel uptime <secs> s`, the line the
//!    harness times (VMM start to this line), then the kernel release, the
//!    CPUs online and the counter frequency;
//! 3. with `uirq.read-line=SECS` on the kernel command line, prints
//!    `uirq-linux-init: ready for a line` and waits up to SECS seconds for
//!    one line on its console (the PL011, fed from the VMM's stdin), then
//!    prints `uirq-linux-init: read line: <line>` or that none came;
//! 4. prints `/proc/interrupts` verbatim between two marker lines;
//! 5. syncs and powers off (PSCI SYSTEM_OFF: the VMM exits with 0).
//!
//! PID 1 must never exit: the kernel would panic. On any error it prints
//! `uirq-linux-init: error: ...` and reboots instead (PSCI SYSTEM_RESET),
//! which the VMM reports with a non-zero exit code.

use std::ffi::CString;
use std::io::Write;
use std::time::{Duration, Instant};

/// What every line this program prints starts with.
const PREFIX: &str = "uirq-linux-init:";

/// The kernel command-line parameter that asks for a line on the console.
/// Its dot makes the kernel treat it as a (unknown) module parameter: it
/// stays in `/proc/cmdline` and is not passed to init as an argument or
/// environment variable.
const READ_LINE_PARAM: &str = "uirq.read-line=";

fn main() {
    std::panic::set_hook(Box::new(|info| fail(&format!("panic: {info}"))));
    match run() {
        Ok(()) => power_off(),
        Err(e) => fail(&e),
    }
}

fn run() -> Result<(), String> {
    mount("proc", "/proc")?;
    // /dev/console is in the archive, so the console works without
    // devtmpfs and sysfs; they are conveniences, and their absence is only
    // worth a note.
    for (fstype, dir) in [("devtmpfs", "/dev"), ("sysfs", "/sys")] {
        if let Err(e) = mount(fstype, dir) {
            say(&format!("{PREFIX} note: {e}"));
        }
    }

    let uptime = read("/proc/uptime")?;
    let uptime = first_field_seconds(&uptime)
        .ok_or_else(|| format!("/proc/uptime does not start with seconds: {uptime:?}"))?;
    say(&format!("{PREFIX} started, kernel uptime {uptime} s"));
    let cpus = cpus_online();
    say(&format!(
        "{PREFIX} kernel {}, {cpus} CPU{} online, counter frequency {}",
        kernel_release(),
        if cpus == 1 { "" } else { "s" },
        counter_frequency().map_or("unknown".to_string(), |hz| format!("{hz} Hz")),
    ));

    let cmdline = read("/proc/cmdline")?;
    if let Some(secs) = read_line_seconds(&cmdline)? {
        say(&format!("{PREFIX} ready for a line"));
        match read_console_line(Duration::from_secs(secs))? {
            Input::Line(line) => say(&format!("{PREFIX} read line: {line}")),
            Input::TimedOut => say(&format!("{PREFIX} no line within {secs} s")),
            Input::Closed => say(&format!("{PREFIX} the console closed before a line came")),
        }
    }

    let interrupts = read("/proc/interrupts")?;
    say(&format!("{PREFIX} /proc/interrupts"));
    say(interrupts.strip_suffix('\n').unwrap_or(&interrupts));
    say(&format!("{PREFIX} end of /proc/interrupts"));
    Ok(())
}

/// Prints one line on the console. Errors are ignored: there is nowhere
/// else to report them, and a panic here would only end in a reboot.
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{text}\n").as_bytes());
    let _ = out.flush();
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// The first field of `/proc/uptime` ("12.34 5.67"), as the kernel wrote
/// it, if it is a number of seconds.
fn first_field_seconds(text: &str) -> Option<&str> {
    let field = text.split_whitespace().next()?;
    field
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|_| field)
}

/// The seconds of `uirq.read-line=SECS` in the kernel command line, if it is
/// there (the last one wins, as with the kernel's own parameters).
fn read_line_seconds(cmdline: &str) -> Result<Option<u64>, String> {
    match cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix(READ_LINE_PARAM))
        .next_back()
    {
        None => Ok(None),
        Some(value) => value
            .parse()
            .map(Some)
            .map_err(|_| format!("{READ_LINE_PARAM}{value}: expected a whole number of seconds")),
    }
}

/// What came on the console.
#[derive(Debug, PartialEq, Eq)]
enum Input {
    /// A line, without its line ending.
    Line(String),
    /// Nothing, or no line end, before the deadline.
    TimedOut,
    /// End of input (the tty's EOF character) before a line end.
    Closed,
}

/// Waits up to `timeout` for one line on standard input (the console).
///
/// The console is a tty in canonical mode, so the kernel hands over whole
/// lines; reading the raw descriptor after `poll` still collects pieces
/// until a `\n`, in case a line comes in several reads.
fn read_console_line(timeout: Duration) -> Result<Input, String> {
    let deadline = Instant::now() + timeout;
    let mut pending = Vec::new();
    loop {
        if let Some(end) = pending.iter().position(|&b| b == b'\n') {
            return Ok(Input::Line(line_text(&pending[..end])));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Input::TimedOut);
        }
        let mut fd = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: `fd` is one valid pollfd, and the count says one.
        let ready = unsafe { libc::poll(&mut fd, 1, ms) };
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll on the console: {e}"));
        }
        if ready == 0 {
            continue;
        }
        let mut chunk = [0u8; 512];
        // SAFETY: `chunk` is writable for its whole length.
        let n = unsafe { libc::read(libc::STDIN_FILENO, chunk.as_mut_ptr().cast(), chunk.len()) };
        match n {
            0 => return Ok(Input::Closed),
            n if n < 0 => {
                let e = std::io::Error::last_os_error();
                match e.kind() {
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock => {}
                    _ => return Err(format!("reading the console: {e}")),
                }
            }
            n => pending.extend_from_slice(&chunk[..n as usize]),
        }
    }
}

/// A line's bytes as text, without a trailing `\r` (a terminal may send
/// `\r\n`).
fn line_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.strip_suffix('\r').unwrap_or(&text).to_string()
}

/// Mounts the kernel filesystem `fstype` on `dir`. A filesystem that is
/// already there (EBUSY: the kernel may mount devtmpfs itself) is fine.
fn mount(fstype: &str, dir: &str) -> Result<(), String> {
    let err = |e: std::io::Error| format!("cannot mount {fstype} on {dir}: {e}");
    std::fs::create_dir_all(dir).map_err(err)?;
    let source = CString::new(fstype).map_err(|e| err(e.into()))?;
    let target = CString::new(dir).map_err(|e| err(e.into()))?;
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the
    // call; these filesystems take no mount data, so `data` may be null.
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
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EBUSY) {
        Ok(())
    } else {
        Err(err(e))
    }
}

fn kernel_release() -> String {
    // SAFETY: utsname is plain data; uname fills it and the result is checked.
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

fn cpus_online() -> libc::c_long {
    // SAFETY: sysconf has no memory-safety preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1)
}

/// The generic timer's frequency, `CNTFRQ_EL0`: it differs between hosts
/// (62.5 MHz under QEMU 7.2, 1 GHz under QEMU 10), so reports name it.
#[cfg(target_arch = "aarch64")]
fn counter_frequency() -> Option<u64> {
    let hz: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects. Linux gives EL0
    // access to the virtual counter (for the vDSO), which makes CNTFRQ_EL0
    // readable at EL0, and emulates the read where an erratum traps it.
    unsafe {
        std::arch::asm!("mrs {}, cntfrq_el0", out(reg) hz, options(nomem, nostack, preserves_flags))
    };
    (hz != 0).then_some(hz)
}

#[cfg(not(target_arch = "aarch64"))]
fn counter_frequency() -> Option<u64> {
    None
}

/// Reports `why` and reboots: PSCI SYSTEM_RESET, which the VMM reports with
/// a non-zero exit code, where returning from PID 1 would panic the kernel.
fn fail(why: &str) -> ! {
    say(&format!("{PREFIX} error: {why}"));
    stop(libc::RB_AUTOBOOT)
}

fn power_off() -> ! {
    stop(libc::RB_POWER_OFF)
}

fn stop(how: libc::c_int) -> ! {
    let _ = std::io::stdout().flush();
    // SAFETY: sync and reboot have no memory-safety preconditions. As PID 1
    // with CAP_SYS_BOOT, reboot stops or restarts the machine and does not
    // return.
    unsafe {
        libc::sync();
        libc::reboot(how);
    }
    // Only reached if reboot failed (not PID 1): nothing else to do.
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uptime_is_the_first_field_as_the_kernel_wrote_it() {
        assert_eq!(first_field_seconds("12.34 5.67\n"), Some("12.34"));
        assert_eq!(first_field_seconds("0.50 0.10"), Some("0.50"));
        assert_eq!(first_field_seconds(""), None);
        assert_eq!(first_field_seconds("soon 1.0"), None);
        assert_eq!(first_field_seconds("-1.0 1.0"), None);
    }

    #[test]
    fn the_read_line_parameter_is_found_and_checked() {
        let base = "console=ttyAMA0 panic=-1 quiet rdinit=/init";
        assert_eq!(read_line_seconds(base), Ok(None));
        assert_eq!(
            read_line_seconds(&format!("{base} uirq.read-line=30\n")),
            Ok(Some(30))
        );
        assert_eq!(
            read_line_seconds("uirq.read-line=5 quiet uirq.read-line=7"),
            Ok(Some(7))
        );
        assert!(read_line_seconds("uirq.read-line=soon").is_err());
        assert!(read_line_seconds("uirq.read-line=").is_err());
        // Only the exact parameter counts.
        assert_eq!(read_line_seconds("xuirq.read-line=3"), Ok(None));
    }

    #[test]
    fn a_line_loses_its_line_ending_only() {
        assert_eq!(line_text(b"hello there\r"), "hello there");
        assert_eq!(line_text(b"hello"), "hello");
        assert_eq!(line_text(b" spaced "), " spaced ");
    }
}
