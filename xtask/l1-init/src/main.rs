//! `/init` of the L1 Linux: runs the VMM jobs it is given, then powers off.
//!
//! When the build machine is not an aarch64 KVM host, `cargo xtask` boots a
//! small aarch64 Linux under QEMU (with EL2 emulated, so that Linux has KVM)
//! from an initramfs holding this program, the VMM, the firmware image and a
//! `/jobs` file. This program is that Linux's first process. It:
//!
//! 1. mounts devtmpfs on `/dev` (so `/dev/kvm` appears) and proc on `/proc`;
//! 2. runs `/uirq-vmm` once per line of `/jobs` (arguments separated by tabs),
//!    with the console as its stdout and stderr, framing each run with marker
//!    lines that xtask parses ([`MARK`]); a job whose first field is
//!    `@sigint-after-ms=N` gets SIGINT N ms after it started, as Ctrl-C
//!    would send it ([`SIGINT_AFTER`]);
//! 3. powers the machine off, which ends QEMU (`-no-reboot`).
//!
//! It must never return or panic without powering off: PID 1 exiting makes
//! the kernel panic instead of stopping.

use std::ffi::CString;
use std::io::Write;
use std::process::Command;

/// Prefix of the lines xtask parses; nothing else prints it.
const MARK: &str = "@@uirq";

/// A job's optional first field: send the VMM SIGINT this many
/// milliseconds after it started (`xtask::jobs::SIGINT_AFTER`).
const SIGINT_AFTER: &str = "@sigint-after-ms=";

fn main() {
    std::panic::set_hook(Box::new(|info| {
        println!("{MARK} init-error {info}");
        power_off();
    }));

    for (fstype, dir) in [("devtmpfs", "/dev"), ("proc", "/proc")] {
        if let Err(e) = mount(fstype, dir) {
            println!("{MARK} init-error cannot mount {fstype} on {dir}: {e}");
            power_off();
        }
    }
    println!("{MARK} kernel {}", kernel_release());

    let jobs = std::fs::read_to_string("/jobs").unwrap_or_default();
    for (index, line) in jobs.lines().enumerate() {
        let mut args: Vec<&str> = line.split('\t').filter(|a| !a.is_empty()).collect();
        let sigint_after = match args.first().and_then(|a| a.strip_prefix(SIGINT_AFTER)) {
            Some(ms) => {
                let ms = ms.parse().unwrap_or(0);
                args.remove(0);
                Some(std::time::Duration::from_millis(ms))
            }
            None => None,
        };
        println!("{MARK} job {index} start");
        let _ = std::io::stdout().flush();
        let code = match run_vmm(&args, sigint_after) {
            Ok(status) => status.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
            }),
            Err(e) => {
                println!("{MARK} init-error cannot start /uirq-vmm: {e}");
                127
            }
        };
        println!("{MARK} job {index} exit {code}");
    }
    println!("{MARK} done");
    power_off();
}

/// Runs the VMM with `args`; with `sigint_after`, interrupts it as Ctrl-C
/// would once that much time has passed.
fn run_vmm(
    args: &[&str],
    sigint_after: Option<std::time::Duration>,
) -> std::io::Result<std::process::ExitStatus> {
    let mut child = Command::new("/uirq-vmm").args(args).spawn()?;
    if let Some(after) = sigint_after {
        let start = std::time::Instant::now();
        while start.elapsed() < after {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions; `pid` is our
        // own child, not yet reaped, so it cannot name another process.
        unsafe { libc::kill(pid, libc::SIGINT) };
    }
    child.wait()
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
