//! The sandbox's report, end to end in a real process: a child process
//! turns the sandbox on exactly as `uirq-vmm` does (`seccomp::enable`, the
//! same filters and `SIGSYS` handler), puts its thread under one kind's
//! filter (`seccomp::enter`), shows that a call the kind needs still goes
//! through, then makes one outside the list. The parent checks that the
//! child died by the handler: exit code 125 and the one-line report naming
//! the thread and the call.
//!
//! The child is this test binary run again with `UIRQ_SECCOMP_CHILD` set,
//! so nothing in the VMM itself can be asked to break its own filter. It
//! runs wherever seccomp does: on the x86_64 build machine (with x86_64
//! filters and numbers) as on an aarch64 host.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

use uirq_abi::exit::VMM_ERROR;
use uirq_host::seccomp::{self, ThreadKind, KVM_RUN};

const CHILD: &str = "UIRQ_SECCOMP_CHILD";

/// Runs `case` in a child process; returns its exit code and stderr.
fn child(case: &str) -> (Option<i32>, String) {
    child_with_stdin(case, Stdio::null())
}

fn child_with_stdin(case: &str, stdin: Stdio) -> (Option<i32>, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, case)
        .stdin(stdin)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn report(thread: &str, syscall: i64) -> String {
    format!(
        "uirq-vmm: seccomp: thread {thread} made system call {syscall} (not in its allowlist); stopped\n"
    )
}

/// Exit 125, the report as the last thing on stderr, after `before`.
fn assert_stopped(case: &str, thread: &str, syscall: i64, before: &str) {
    let (code, err) = child(case);
    assert_eq!(code, Some(VMM_ERROR), "{case}: {err}");
    assert!(err.ends_with(&report(thread, syscall)), "{case}: {err:?}");
    assert!(err.contains(before), "{case}: {err:?} lacks {before:?}");
    assert!(!err.contains("still running"), "{case}: {err:?}");
}

// A vCPU thread may enter KVM_RUN (on a bad descriptor here: the kernel's
// EBADF shows the filter let it through), but not execve.
#[test]
fn a_vcpu_thread_that_calls_execve_is_stopped_with_the_report() {
    assert_stopped(
        "vcpu-execve",
        "vcpu0",
        libc::SYS_execve,
        "KVM_RUN went through: Bad file descriptor",
    );
}

// The input thread's ioctls are limited by request: KVM_RUN is not one.
#[test]
fn an_ioctl_request_outside_the_list_is_stopped() {
    assert_stopped(
        "input-kvm-run",
        "console-input",
        libc::SYS_ioctl,
        "poll went through",
    );
}

// The main thread can read what it opened before, and open nothing more;
// its filter came with no_new_privs.
#[test]
fn the_main_thread_cannot_open_a_file() {
    assert_stopped(
        "main-openat",
        "main",
        libc::SYS_openat,
        "NoNewPrivs:\t1, Seccomp:\t2",
    );
}

// No thread may map executable memory.
#[test]
fn an_executable_mapping_is_stopped() {
    assert_stopped(
        "output-mmap-exec",
        "console-output",
        libc::SYS_mmap,
        "a writable mapping went through",
    );
}

/// A new pseudo-terminal: (master, slave).
fn pty() -> (OwnedFd, OwnedFd) {
    // SAFETY: plain calls on descriptors this function owns; ptsname_r
    // writes a NUL-terminated name into the buffer it is given.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0);
        let master = OwnedFd::from_raw_fd(master);
        assert_eq!(libc::grantpt(master.as_raw_fd()), 0);
        assert_eq!(libc::unlockpt(master.as_raw_fd()), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(
            libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()),
            0
        );
        let slave = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
        assert!(slave >= 0);
        (master, OwnedFd::from_raw_fd(slave))
    }
}

fn lflag(fd: &OwnedFd) -> libc::tcflag_t {
    // SAFETY: tcgetattr fills the termios it is given.
    unsafe {
        let mut t = std::mem::MaybeUninit::<libc::termios>::uninit();
        assert_eq!(libc::tcgetattr(fd.as_raw_fd(), t.as_mut_ptr()), 0);
        t.assume_init().c_lflag
    }
}

// Standard input is a terminal the run put in raw mode: the report puts
// it back before the process ends.
#[test]
fn the_report_puts_a_raw_terminal_back() {
    let (_master, slave) = pty();
    let before = lflag(&slave);
    assert_ne!(before & libc::ICANON, 0, "a new pty is canonical");
    let stdin = Stdio::from(slave.try_clone().unwrap());
    let (code, err) = child_with_stdin("vcpu-raw-terminal", stdin);
    assert_eq!(code, Some(VMM_ERROR), "{err}");
    assert!(err.contains("the terminal is raw"), "{err:?}");
    assert!(err.ends_with(&report("vcpu1", libc::SYS_socket)), "{err:?}");
    assert_eq!(lflag(&slave), before, "the terminal was left raw");
}

/// The child's side: does nothing in a normal test run.
#[test]
fn child_process() {
    let Ok(case) = std::env::var(CHILD) else {
        return;
    };
    seccomp::enable(libc::SIGRTMIN()).unwrap();
    match case.as_str() {
        "vcpu-execve" => {
            assert!(seccomp::enter(ThreadKind::Vcpu, "vcpu0").unwrap());
            // SAFETY: an ioctl on a descriptor that is not open fails.
            let rc = unsafe { libc::ioctl(-1, KVM_RUN as _, 0) };
            assert_eq!(rc, -1);
            eprintln!("KVM_RUN went through: {}", std::io::Error::last_os_error());
            let path = c"/bin/true";
            let argv = [path.as_ptr(), std::ptr::null()];
            // SAFETY: a valid path and argument vector; the filter traps
            // the call before the kernel looks at them.
            unsafe {
                libc::syscall(
                    libc::SYS_execve,
                    path.as_ptr(),
                    argv.as_ptr(),
                    std::ptr::null::<*const libc::c_char>(),
                )
            };
        }
        "vcpu-raw-terminal" => {
            let raw = uirq_host::console::RawTerminal::enable().expect("a terminal");
            eprintln!("the terminal is raw");
            assert!(seccomp::enter(ThreadKind::Vcpu, "vcpu1").unwrap());
            // SAFETY: socket(2) with constant arguments; trapped.
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
            drop(raw);
        }
        "input-kvm-run" => {
            assert!(seccomp::enter(ThreadKind::Input, ThreadKind::Input.name()).unwrap());
            let mut none: [libc::pollfd; 0] = [];
            // SAFETY: an empty set of descriptors and no timeout.
            let rc = unsafe {
                libc::ppoll(
                    none.as_mut_ptr(),
                    0,
                    &libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    },
                    std::ptr::null(),
                )
            };
            assert_eq!(rc, 0);
            eprintln!("poll went through");
            // SAFETY: as above.
            unsafe { libc::ioctl(-1, KVM_RUN as _, 0) };
        }
        "main-openat" => {
            use std::io::Read;
            // This thread's: /proc/self/status shows the process leader's.
            let mut status = std::fs::File::open("/proc/thread-self/status").unwrap();
            assert!(seccomp::enter(ThreadKind::Main, ThreadKind::Main.name()).unwrap());
            let mut bytes = vec![0u8; 1 << 16];
            let n = status.read(&mut bytes).unwrap();
            let text = String::from_utf8_lossy(&bytes[..n]);
            let field = |name: &str| {
                text.lines()
                    .find(|l| l.starts_with(name))
                    .unwrap_or("?")
                    .to_string()
            };
            eprintln!("{}, {}", field("NoNewPrivs:"), field("Seccomp:"));
            let _ = std::fs::File::open("/etc/hostname");
        }
        "output-mmap-exec" => {
            assert!(seccomp::enter(ThreadKind::Output, ThreadKind::Output.name()).unwrap());
            let map = |prot| {
                // SAFETY: a fresh anonymous private mapping.
                unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        4096,
                        prot,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                }
            };
            assert_ne!(map(libc::PROT_READ | libc::PROT_WRITE), libc::MAP_FAILED);
            eprintln!("a writable mapping went through");
            map(libc::PROT_READ | libc::PROT_EXEC);
        }
        other => panic!("unknown case {other}"),
    }
    eprintln!("still running after a call outside the list");
}
