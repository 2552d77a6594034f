//! The sandbox: once the VM is built, every thread of the VMM runs under a
//! seccomp filter that allows exactly the system calls that thread needs.
//!
//! The VMM's attack surface is the guest: every MMIO access, every timer
//! level and every PSCI call it makes is served by code in this process
//! (the GIC model, the UART, the exit handling). Should a guest ever find a
//! bug there that lets it run code in the VMM, the filters decide what that
//! code can ask of the kernel: no `openat`, no `execve`, no `socket`, no
//! `clone`, no executable mappings, and only the handful of KVM ioctls the
//! run loop issues. Four kinds of thread, four allowlists
//! ([`ThreadKind`]): the vCPUs', the console input's, the console
//! output's and the main thread's. [`enable`] turns the sandbox on for the
//! process and each thread then installs its own filter with [`enter`]
//! (filters are per thread, and a thread inherits its creator's, so the
//! main thread installs its own only after it has spawned the others).
//! `kvm::run` holds every vCPU back until each thread of the run is under
//! its filter, so the guest executes no instruction before the sandbox is
//! complete.
//!
//! # What a thread needs, and why
//!
//! The lists are [`allowlist`]; every entry carries the reason it is there.
//! They are for the static musl binary that `cargo xtask build` makes
//! (which call makes what depends on the library: Rust's `thread::sleep`
//! is `clock_nanosleep` on the monotonic clock, musl's `pthread_kill` is
//! `tkill`, its `poll` is `ppoll` on aarch64; glibc differs). They were
//! checked two ways: against every `svc` site in that binary's
//! disassembly (every call the binary can make; the ones not listed only
//! happen before the filters, like `openat`, `clone` and `prctl`), and by
//! running every firmware program, the GIC scenarios, the SMP programs,
//! the chaos guest, the benchmark and Linux boots nested with the filters
//! on. A glibc build (`cargo build` on an aarch64 host) is not the tested
//! one; `--no-seccomp` is the way out if it trips.
//!
//! Arguments are checked where that is cheap and the call is dangerous
//! with other arguments: `ioctl` only with the request numbers the thread
//! issues (`KVM_RUN`, `KVM_IRQ_LINE`, ...), `mmap` and `mprotect` never
//! with `PROT_EXEC`, `futex` only waits and wakes (not the PI and requeue
//! operations behind past kernel bugs), `tkill` only with the kick signal
//! or `SIGABRT`.
//!
//! # A call outside the list
//!
//! The filter's default action is `SECCOMP_RET_TRAP`: the kernel does not
//! run the call and sends the thread `SIGSYS`, whose handler (installed
//! by [`install_report_handler`]) writes one line naming the thread and
//! the system call's number (221 is `execve` on arm64),
//!
//! ```text
//! uirq-vmm: seccomp: thread vcpu0 made system call 221 (not in its allowlist); stopped
//! ```
//!
//! puts the terminal back if the run had made it raw, and ends the
//! process with the VMM's own error code, 125
//! (`uirq_abi::exit::VMM_ERROR`). The handler only calls `tcsetattr`,
//! `write` and `_exit`, which are async-signal-safe, and formats the line
//! on its stack. Firecracker also traps (its filters' default action is
//! `trap`) and exits with its own code (148) from a `SIGSYS` handler, which
//! logs through its logger and flushes its metrics; the logger takes locks
//! and allocates, which a signal handler may not, so this one writes a
//! fixed line with `write(2)` only. `SECCOMP_RET_KILL_PROCESS` would be the
//! simplest choice, but it ends the process with `SIGSYS` and no word of
//! which thread or which call, leaves the terminal raw, and reads as a
//! crash (exit status 159 from a shell) rather than as the VMM refusing to
//! go on. A call made by a different architecture's ABI (a 32-bit
//! compatibility call) does not match the filter's architecture check and
//! kills the process outright.
//!
//! `--no-seccomp` runs without filters, for debugging (a new system call
//! after a library update, say: the report names it).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// The kinds of thread a run has, each with its own allowlist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadKind {
    /// A vCPU's thread: `KVM_RUN`, the exits it serves, its IRQ lines.
    Vcpu,
    /// The thread that feeds standard input to the UART (`crate::console`).
    Input,
    /// The thread that writes the guest's console output to standard
    /// output (`crate::console::Output`).
    Output,
    /// The main thread once it has spawned the others: it waits for them
    /// (timeout, Ctrl-C, periodic kicks), joins them and reports.
    Main,
}

impl ThreadKind {
    /// Every kind.
    pub const ALL: [ThreadKind; 4] = [
        ThreadKind::Vcpu,
        ThreadKind::Input,
        ThreadKind::Output,
        ThreadKind::Main,
    ];

    /// A short name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            ThreadKind::Vcpu => "vcpu",
            ThreadKind::Input => "console-input",
            ThreadKind::Output => "console-output",
            ThreadKind::Main => "main",
        }
    }
}

/// Why a filter could not be built or installed.
#[derive(Debug)]
pub enum SeccompError {
    /// seccompiler rejected the rules (a bug in the lists).
    Build(seccompiler::BackendError),
    /// `prctl(PR_SET_NO_NEW_PRIVS)` or `seccomp(2)` failed.
    Apply(seccompiler::Error),
    /// The `SIGSYS` handler could not be installed.
    Handler(std::io::Error),
}

impl fmt::Display for SeccompError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeccompError::Build(e) => write!(f, "cannot build a seccomp filter: {e}"),
            SeccompError::Apply(e) => write!(
                f,
                "cannot install a seccomp filter ({e}); --no-seccomp runs without"
            ),
            SeccompError::Handler(e) => write!(f, "cannot install the SIGSYS handler: {e}"),
        }
    }
}

impl std::error::Error for SeccompError {}

/// One allowed system call: under which conditions, and why.
#[derive(Clone, Debug)]
pub struct Allowed {
    /// The call's name (as in `libc::SYS_<name>`).
    pub name: &'static str,
    /// Its number on this architecture.
    pub number: i64,
    /// Alternatives, any of which allows the call (each one a conjunction
    /// of argument conditions); empty: any arguments.
    pub rules: Vec<SeccompRule>,
    /// Why the thread makes it.
    pub why: &'static str,
}

/// The size of one thread kind's filter, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Distinct system calls allowed.
    pub syscalls: usize,
    /// Argument-checked alternatives among them (a call allowed with any
    /// arguments counts none).
    pub rules: usize,
    /// BPF instructions of the compiled program.
    pub instructions: usize,
}

// KVM's ioctl request numbers (include/uapi/linux/kvm.h), with the generic
// _IO/_IOW encoding that arm64 and x86_64 share; the structure sizes are
// checked against kvm-bindings on aarch64 below.
const KVMIO: u64 = 0xAE;
const fn io(nr: u64) -> u64 {
    (KVMIO << 8) | nr
}
const fn iow(nr: u64, size: u64) -> u64 {
    (1 << 30) | (size << 16) | (KVMIO << 8) | nr
}
/// `KVM_RUN`: _IO(KVMIO, 0x80).
pub const KVM_RUN: u64 = io(0x80);
/// `KVM_IRQ_LINE`: _IOW(KVMIO, 0x61, struct kvm_irq_level).
pub const KVM_IRQ_LINE: u64 = iow(0x61, 8);
/// `KVM_GET_ONE_REG`: _IOW(KVMIO, 0xab, struct kvm_one_reg).
pub const KVM_GET_ONE_REG: u64 = iow(0xab, 16);
/// `KVM_SET_ONE_REG`: _IOW(KVMIO, 0xac, struct kvm_one_reg).
pub const KVM_SET_ONE_REG: u64 = iow(0xac, 16);
/// `KVM_SET_VCPU_EVENTS`: _IOW(KVMIO, 0xa0, struct kvm_vcpu_events).
pub const KVM_SET_VCPU_EVENTS: u64 = iow(0xa0, 64);

/// `TCSETS`: tcsetattr(TCSANOW), putting the terminal back. (The libc
/// crate types terminal requests as musl's int or glibc's unsigned long.)
#[allow(clippy::unnecessary_cast)]
pub const TCSETS: u64 = libc::TCSETS as u64;
/// The requests that put the terminal back (tcsetattr): `TCSETS`, and
/// with glibc also `TCGETS`, which its tcsetattr makes first (musl's makes
/// `TCSETS` alone).
fn terminal_requests() -> Vec<u64> {
    if cfg!(target_env = "gnu") {
        #[allow(clippy::unnecessary_cast)]
        let tcgets = libc::TCGETS as u64;
        vec![TCSETS, tcgets]
    } else {
        vec![TCSETS]
    }
}

/// `TIOCGPGRP`: tcgetpgrp, the terminal's foreground process group.
#[allow(clippy::unnecessary_cast)]
pub const TIOCGPGRP: u64 = libc::TIOCGPGRP as u64;

#[cfg(target_arch = "aarch64")]
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<kvm_bindings::kvm_irq_level>() == 8);
    assert!(size_of::<kvm_bindings::kvm_one_reg>() == 16);
    assert!(size_of::<kvm_bindings::kvm_vcpu_events>() == 64);
};

/// The filter's architecture: the one this binary runs on.
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;
#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;

/// `arg == value`, comparing the low 32 bits (ints, and ioctl requests,
/// which musl passes as a sign-extended int).
fn arg_is(arg: u8, value: u64) -> SeccompCondition {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
        .expect("argument index below 6")
}

/// `arg & mask == value` on the low 32 bits.
fn arg_masked(arg: u8, mask: u64, value: u64) -> SeccompCondition {
    SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(mask),
        value,
    )
    .expect("argument index below 6")
}

fn rule(conditions: Vec<SeccompCondition>) -> SeccompRule {
    SeccompRule::new(conditions).expect("at least one condition")
}

/// `ioctl` with one of `requests` (argument 1).
fn ioctl_requests(requests: &[u64]) -> Vec<SeccompRule> {
    requests.iter().map(|&r| rule(vec![arg_is(1, r)])).collect()
}

/// A signal-sending call whose signal is argument `arg`: only the kick
/// signal and `SIGABRT`.
fn signals(arg: u8, kick_signal: i32) -> Vec<SeccompRule> {
    [kick_signal, libc::SIGABRT]
        .iter()
        .map(|&s| rule(vec![arg_is(arg, s as u64)]))
        .collect()
}

/// `mmap`/`mprotect` without `PROT_EXEC` (argument 2).
fn not_executable() -> Vec<SeccompRule> {
    vec![rule(vec![arg_masked(2, libc::PROT_EXEC as u64, 0)])]
}

/// `futex` waits and wakes (argument 1, the operation, with the private
/// and clock flags masked off): what Rust's locks, channels, parking and
/// musl's thread join use. Not the PI, requeue or wake-op operations.
fn futex_wait_wake() -> Vec<SeccompRule> {
    let flags = (libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME) as u64;
    let cmd_mask = !flags & 0xFFFF_FFFF;
    [
        libc::FUTEX_WAIT,
        libc::FUTEX_WAKE,
        libc::FUTEX_WAIT_BITSET,
        libc::FUTEX_WAKE_BITSET,
    ]
    .iter()
    .map(|&op| rule(vec![arg_masked(1, cmd_mask, op as u64)]))
    .collect()
}

/// `clock_nanosleep` on `CLOCK_MONOTONIC` (argument 0): what Rust's
/// `thread::sleep` makes.
fn monotonic_sleep() -> Vec<SeccompRule> {
    vec![rule(vec![arg_is(0, libc::CLOCK_MONOTONIC as u64)])]
}

macro_rules! allow {
    ($name:ident, $why:expr) => {
        Allowed {
            name: stringify!($name),
            number: paste_sys!($name),
            rules: Vec::new(),
            why: $why,
        }
    };
    ($name:ident if $rules:expr, $why:expr) => {
        Allowed {
            name: stringify!($name),
            number: paste_sys!($name),
            rules: $rules,
            why: $why,
        }
    };
}

/// `libc::SYS_<name>`.
macro_rules! paste_sys {
    (read) => {
        libc::SYS_read
    };
    (write) => {
        libc::SYS_write
    };
    (close) => {
        libc::SYS_close
    };
    (ioctl) => {
        libc::SYS_ioctl
    };
    (futex) => {
        libc::SYS_futex
    };
    (ppoll) => {
        libc::SYS_ppoll
    };
    (poll) => {
        libc::SYS_poll
    };
    (clock_nanosleep) => {
        libc::SYS_clock_nanosleep
    };
    (clock_gettime) => {
        libc::SYS_clock_gettime
    };
    (tkill) => {
        libc::SYS_tkill
    };
    (gettid) => {
        libc::SYS_gettid
    };
    (getpgid) => {
        libc::SYS_getpgid
    };
    (rt_sigreturn) => {
        libc::SYS_rt_sigreturn
    };
    (rt_sigprocmask) => {
        libc::SYS_rt_sigprocmask
    };
    (rt_sigaction) => {
        libc::SYS_rt_sigaction
    };
    (sigaltstack) => {
        libc::SYS_sigaltstack
    };
    (mmap) => {
        libc::SYS_mmap
    };
    (munmap) => {
        libc::SYS_munmap
    };
    (mremap) => {
        libc::SYS_mremap
    };
    (mprotect) => {
        libc::SYS_mprotect
    };
    (brk) => {
        libc::SYS_brk
    };
    (sched_yield) => {
        libc::SYS_sched_yield
    };
    (restart_syscall) => {
        libc::SYS_restart_syscall
    };
    (exit) => {
        libc::SYS_exit
    };
    (exit_group) => {
        libc::SYS_exit_group
    };
}

/// What every thread of the run needs: the C library's and Rust's runtime
/// underneath the VMM's own code (locks, memory, signals, thread exit, a
/// panic), the terminal's restoration, and the violation report itself.
fn common(kick_signal: i32) -> Vec<Allowed> {
    vec![
        allow!(futex if futex_wait_wake(),
            "locks, channels and thread parking (Rust's std), joining a thread (musl)"),
        allow!(
            write,
            "the guest's console output, log lines, the seccomp report itself"
        ),
        allow!(
            rt_sigreturn,
            "returning from the kick signal's handler and SIGINT/SIGTERM's (kick.rs)"
        ),
        allow!(
            rt_sigprocmask,
            "pthread_kill masks signals around tkill (musl); thread exit; abort()"
        ),
        allow!(tkill if signals(1, kick_signal),
            "pthread_kill (musl): kicking a thread out of KVM_RUN or poll; raise(SIGABRT) in abort()"),
        allow!(rt_sigaction if vec![rule(vec![arg_is(0, libc::SIGABRT as u64)])],
            "abort() resets SIGABRT to its default action (a panic, release builds abort)"),
        allow!(
            clock_gettime,
            "Instant::now (timeouts, log rate limits) when the vDSO cannot serve it"
        ),
        allow!(mmap if not_executable(), "the allocator (musl's mallocng): never executable"),
        allow!(mprotect if not_executable(),
            "the allocator's guard pages (mallocng): never executable"),
        allow!(
            munmap,
            "the allocator; a joined thread's stack; guest RAM and kvm_run at the end"
        ),
        allow!(
            mremap,
            "the allocator growing a large buffer (benchmark timeline, output)"
        ),
        allow!(brk, "the allocator's metadata (mallocng)"),
        allow!(sched_yield, "Rust's channels back off with sched_yield"),
        allow!(
            sigaltstack,
            "a Rust thread removes its signal stack when it ends (std)"
        ),
        allow!(
            gettid,
            "a panic message, and the stack-overflow handler, name the thread (Rust's std)"
        ),
        allow!(
            restart_syscall,
            "the kernel restarts a sleep or wait that SIGSTOP/SIGCONT interrupted"
        ),
        allow!(
            exit_group,
            "the end of the process: main's return, abort(), the seccomp report's _exit"
        ),
    ]
}

/// The system calls a thread of `kind` may make, with the reasons. The
/// kick signal (`kvm::kick`) is a parameter: `SIGRTMIN` is only known at
/// run time.
pub fn allowlist(kind: ThreadKind, kick_signal: i32) -> Vec<Allowed> {
    let mut list = common(kick_signal);
    // The terminal (console.rs): restored by whichever thread panics (the
    // panic hook) or traps (the seccomp report), and by main at the end:
    // every kind's ioctl allows TCSETS (and TCGETS, which glibc's
    // tcsetattr makes first: the report must never trap twice, which would
    // end the process with no word and the terminal raw).
    let terminal = terminal_requests();
    let ioctls = |own: &[u64]| ioctl_requests(&[own, &terminal[..]].concat());
    match kind {
        ThreadKind::Vcpu => list.extend([
            allow!(ioctl if ioctls(&[
                KVM_RUN,
                KVM_IRQ_LINE,
                KVM_GET_ONE_REG,
                KVM_SET_ONE_REG,
                KVM_SET_VCPU_EVENTS,
            ]),
                "KVM_RUN; KVM_IRQ_LINE on the VM (its own lines, or every vCPU's with \
                 --irq-injection cross-thread; the UART's SPI with --irqchip kernel); \
                 KVM_GET_ONE_REG (the status at SYSTEM_OFF, the PC of an undecodable \
                 access, the timer at a stop; ESR_EL1 of an injected abort); \
                 KVM_SET_VCPU_EVENTS (an external abort for an access nothing claims) and \
                 KVM_SET_ONE_REG (its ESR_EL1.WnR for a store); TCSETS (the terminal, \
                 from a panic or the seccomp report)"),
            allow!(
                close,
                "the vCPU's file descriptor, dropped when its thread ends"
            ),
            allow!(exit, "the thread's end"),
        ]),
        ThreadKind::Input => {
            list.extend([
                allow!(read, "standard input"),
                allow!(
                    ppoll,
                    "waiting for standard input: poll(2) is ppoll on aarch64"
                ),
                allow!(ioctl if ioctls(&[TIOCGPGRP, KVM_IRQ_LINE]),
                    "TIOCGPGRP (is this process in the terminal's foreground?); \
                     KVM_IRQ_LINE (the UART's SPI with --irqchip kernel); TCSETS (the \
                     terminal, from a panic)"),
                allow!(getpgid if vec![rule(vec![arg_is(0, 0)])],
                    "getpgrp(), which is getpgid(0), for the foreground check"),
                allow!(clock_nanosleep if monotonic_sleep(),
                    "thread::sleep: waiting for the guest to read its receive FIFO"),
                allow!(exit, "the thread's end"),
            ]);
            #[cfg(target_arch = "x86_64")]
            list.push(allow!(poll, "waiting for standard input (glibc on x86_64)"));
        }
        ThreadKind::Output => list.extend([
            allow!(ioctl if ioctls(&[]),
                "TCSETS: the terminal, from a panic or the seccomp report"),
            allow!(
                close,
                "its duplicate of standard output, dropped when the thread ends"
            ),
            allow!(exit, "the thread's end"),
        ]),
        ThreadKind::Main => list.extend([
            allow!(
                read,
                "/proc/self/status and smaps for the memory report, opened before the filter"
            ),
            allow!(
                close,
                "the VM's, the vCPUs' leftovers' and /dev/kvm's descriptors at the end"
            ),
            allow!(ioctl if ioctls(&[]),
                "TCSETS: putting the terminal back at the end of the run"),
            allow!(clock_nanosleep if monotonic_sleep(),
                "thread::sleep: pausing while the input thread stops"),
        ]),
    }
    list
}

/// The rules of `list` by system call number, as seccompiler takes them.
fn rules_by_number(list: &[Allowed]) -> BTreeMap<i64, Vec<SeccompRule>> {
    let mut map = BTreeMap::new();
    for a in list {
        let previous = map.insert(a.number, a.rules.clone());
        debug_assert!(previous.is_none(), "{} listed twice", a.name);
    }
    map
}

/// The BPF program for a thread of `kind`: the calls in [`allowlist`]
/// allowed, any other one trapped (reported by the `SIGSYS` handler), a
/// call of another architecture's ABI killing the process.
pub fn program(kind: ThreadKind, kick_signal: i32) -> Result<BpfProgram, SeccompError> {
    let filter = SeccompFilter::new(
        rules_by_number(&allowlist(kind, kick_signal)),
        SeccompAction::Trap,
        SeccompAction::Allow,
        ARCH,
    )
    .map_err(SeccompError::Build)?;
    filter.try_into().map_err(SeccompError::Build)
}

/// The size of `kind`'s filter.
pub fn size(kind: ThreadKind, kick_signal: i32) -> Result<Size, SeccompError> {
    let list = allowlist(kind, kick_signal);
    Ok(Size {
        syscalls: list.len(),
        rules: list.iter().map(|a| a.rules.len()).sum(),
        instructions: program(kind, kick_signal)?.len(),
    })
}

/// The programs of every kind, built once by [`enable`].
struct Filters {
    programs: Vec<(ThreadKind, BpfProgram)>,
    /// Each kind's size, for the log.
    summary: String,
}

/// Set by [`enable`]: the sandbox is on for this process.
static FILTERS: OnceLock<Filters> = OnceLock::new();

/// Turns the sandbox on for this process: builds every kind's program and
/// installs the `SIGSYS` report handler. Call it once, before the threads
/// that [`enter`] theirs are spawned; without it [`enter`] does nothing
/// (`--no-seccomp`, and unit tests).
pub fn enable(kick_signal: i32) -> Result<(), SeccompError> {
    let mut programs = Vec::with_capacity(ThreadKind::ALL.len());
    let mut sizes = Vec::with_capacity(ThreadKind::ALL.len());
    for kind in ThreadKind::ALL {
        programs.push((kind, program(kind, kick_signal)?));
        let s = size(kind, kick_signal)?;
        sizes.push(format!(
            "{} {} calls, {} argument rules",
            kind.name(),
            s.syscalls,
            s.rules
        ));
    }
    install_report_handler()?;
    let _ = FILTERS.set(Filters {
        programs,
        summary: sizes.join("; "),
    });
    Ok(())
}

/// Whether [`enable`] turned the sandbox on.
pub fn enabled() -> bool {
    FILTERS.get().is_some()
}

/// Each kind's allowlist size, once [`enable`] has run.
pub fn summary() -> Option<&'static str> {
    FILTERS.get().map(|f| f.summary.as_str())
}

/// Puts the calling thread under `kind`'s filter, reported as `name`, if
/// the sandbox is on; returns whether it did. A thread calls this itself,
/// once its setup is done (a filter cannot be put on another thread).
pub fn enter(kind: ThreadKind, name: &str) -> Result<bool, SeccompError> {
    let Some(filters) = FILTERS.get() else {
        return Ok(false);
    };
    let program = filters
        .programs
        .iter()
        .find_map(|(k, p)| (*k == kind).then_some(p))
        .expect("enable built every kind");
    apply(program, name)?;
    Ok(true)
}

/// The longest thread name the report carries.
const NAME_MAX: usize = 24;

thread_local! {
    /// This thread's name for the report, set by [`apply`]. Constant
    /// initialisation and no destructor: a plain thread-local the signal
    /// handler may read.
    static THREAD_NAME: Cell<([u8; NAME_MAX], u8)> = const { Cell::new(([0; NAME_MAX], 0)) };
}

/// Installs `program` on the calling thread, after `PR_SET_NO_NEW_PRIVS`
/// (which `seccompiler::apply_filter` sets first: an unprivileged process
/// may only install a filter with it, and it keeps an `execve` from ever
/// gaining privileges). `name` is the thread's name in the report.
pub fn apply(program: &BpfProgram, name: &str) -> Result<(), SeccompError> {
    let mut bytes = [0u8; NAME_MAX];
    let n = name.len().min(NAME_MAX);
    bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
    THREAD_NAME.with(|c| c.set((bytes, n as u8)));
    seccompiler::apply_filter(program).map_err(SeccompError::Apply)
}

/// `siginfo_t` as the kernel fills it for `SIGSYS` on a 64-bit
/// architecture (`_sigsys` in include/uapi/asm-generic/siginfo.h): the
/// union starts at byte 16. The libc crate has no accessor for these
/// fields.
#[repr(C)]
struct SigsysInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    _pad: libc::c_int,
    call_addr: *mut libc::c_void,
    syscall: libc::c_int,
    arch: libc::c_uint,
}

/// `si_code` of a `SIGSYS` that a seccomp filter raised.
const SYS_SECCOMP: libc::c_int = 1;

/// The report for a trapped call, formatted into `buf` without
/// allocating; returns its length. `syscall` is `None` for a `SIGSYS` that
/// did not come from the filter (`kill -SYS`).
fn report(buf: &mut [u8; 160], thread: &[u8], syscall: Option<i32>) -> usize {
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(buf.len() - len);
        buf[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    put(b"uirq-vmm: seccomp: thread ");
    put(if thread.is_empty() { b"?" } else { thread });
    match syscall {
        Some(nr) => {
            put(b" made system call ");
            let mut digits = [0u8; 12];
            let mut i = digits.len();
            let negative = nr < 0;
            let mut v = nr.unsigned_abs();
            loop {
                i -= 1;
                digits[i] = b'0' + (v % 10) as u8;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            if negative {
                i -= 1;
                digits[i] = b'-';
            }
            put(&digits[i..]);
            put(b" (not in its allowlist); stopped\n");
        }
        None => put(b" received SIGSYS, not from the filter; stopped\n"),
    }
    len
}

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for a SA_SIGINFO
    // handler; for SIGSYS on a 64-bit architecture its layout is
    // SigsysInfo's, which is no larger than siginfo_t.
    let info = unsafe { &*info.cast::<SigsysInfo>() };
    let syscall = (info.code == SYS_SECCOMP).then_some(info.syscall);
    let (name, n) = THREAD_NAME.with(Cell::get);
    let mut buf = [0u8; 160];
    let len = report(&mut buf, &name[..usize::from(n)], syscall);
    // SAFETY: write(2) is async-signal-safe; the buffer is valid for `len`
    // bytes. The line goes out first, whatever happens after.
    unsafe { libc::write(libc::STDERR_FILENO, buf.as_ptr().cast(), len) };
    crate::console::restore_from_signal_handler();
    // SAFETY: _exit(2) is async-signal-safe.
    unsafe { libc::_exit(uirq_abi::exit::VMM_ERROR) }
}

/// Installs the `SIGSYS` handler that reports a trapped call and ends the
/// process (module documentation), for the whole process, before any
/// filter is installed.
pub fn install_report_handler() -> Result<(), SeccompError> {
    // SAFETY: a zeroed sigaction is a valid starting point; the handler is
    // async-signal-safe (on_sigsys); sigfillset only writes the mask.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_sigsys
            as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
            as libc::sighandler_t;
        act.sa_flags = libc::SA_SIGINFO;
        // Nothing else runs on this thread while it reports.
        libc::sigfillset(&mut act.sa_mask);
        if libc::sigaction(libc::SIGSYS, &act, std::ptr::null_mut()) != 0 {
            return Err(SeccompError::Handler(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use seccompiler::sock_filter;

    const KICK: i32 = 35;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_TRAP: u32 = 0x0003_0000;
    const RET_KILL_PROCESS: u32 = 0x8000_0000;

    /// Runs a classic-BPF seccomp program on one call, as the kernel would
    /// (the instructions seccompiler emits: loads of `seccomp_data` words,
    /// AND, jumps, returns).
    fn run(prog: &[sock_filter], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&(nr as i32).to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let mut acc: u32 = 0;
        let mut pc = 0usize;
        loop {
            let ins = &prog[pc];
            pc += 1;
            let k = ins.k;
            match ins.code {
                0x20 => {
                    let o = k as usize;
                    acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
                }
                0x54 => acc &= k,
                0x05 => pc += k as usize,
                0x15 | 0x25 | 0x35 => {
                    let taken = match ins.code {
                        0x15 => acc == k,
                        0x25 => acc > k,
                        _ => acc >= k,
                    };
                    pc += usize::from(if taken { ins.jt } else { ins.jf });
                }
                0x06 => return k,
                other => panic!("unexpected BPF instruction {other:#x}"),
            }
        }
    }

    fn audit_arch() -> u32 {
        let machine = if cfg!(target_arch = "aarch64") {
            183
        } else {
            62
        };
        machine | 0x8000_0000 | 0x4000_0000
    }

    fn verdict(kind: ThreadKind, nr: i64, args: [u64; 6]) -> u32 {
        run(&program(kind, KICK).unwrap(), audit_arch(), nr, args)
    }

    fn allowed(kind: ThreadKind, nr: i64, args: [u64; 6]) -> bool {
        match verdict(kind, nr, args) {
            RET_ALLOW => true,
            RET_TRAP => false,
            other => panic!("unexpected action {other:#x}"),
        }
    }

    fn numbers(kind: ThreadKind) -> Vec<i64> {
        allowlist(kind, KICK).iter().map(|a| a.number).collect()
    }

    #[test]
    fn every_list_builds_into_a_bpf_program_with_a_reason_per_call() {
        for kind in ThreadKind::ALL {
            let list = allowlist(kind, KICK);
            let prog = program(kind, KICK).unwrap();
            assert!(!prog.is_empty() && prog.len() < 4096, "{kind:?}");
            let mut seen = std::collections::BTreeSet::new();
            for a in &list {
                assert!(seen.insert(a.number), "{kind:?}: {} twice", a.name);
                assert!(!a.why.is_empty(), "{kind:?}: {} has no reason", a.name);
            }
            let s = size(kind, KICK).unwrap();
            assert_eq!(s.syscalls, list.len());
            assert_eq!(s.instructions, prog.len());
        }
    }

    #[test]
    fn the_vcpu_list_has_kvm_run_and_nothing_that_escapes() {
        let v = ThreadKind::Vcpu;
        for request in [KVM_RUN, KVM_IRQ_LINE, KVM_GET_ONE_REG, KVM_SET_ONE_REG] {
            assert!(allowed(v, libc::SYS_ioctl, [5, request, 0, 0, 0, 0]));
        }
        // musl passes the request as a sign-extended int: the upper half
        // is not compared.
        assert!(allowed(
            v,
            libc::SYS_ioctl,
            [5, KVM_RUN | 0xFFFF_FFFF_0000_0000, 0, 0, 0, 0]
        ));
        // Other KVM ioctls: creating VMs, vCPUs, memory slots.
        for request in [0xAE01, 0xAE41, 0x4020_AE46] {
            assert!(
                !allowed(v, libc::SYS_ioctl, [5, request, 0, 0, 0, 0]),
                "{request:#x}"
            );
        }
        for nr in [
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_openat,
            libc::SYS_clone,
            libc::SYS_socket,
            libc::SYS_connect,
            libc::SYS_ptrace,
            libc::SYS_read,
            libc::SYS_ppoll,
            libc::SYS_kill,
            libc::SYS_prctl,
            libc::SYS_seccomp,
        ] {
            assert!(!allowed(v, nr, [0; 6]), "vcpu: {nr}");
        }
        assert!(numbers(v).contains(&libc::SYS_ioctl));
    }

    #[test]
    fn no_thread_may_open_execute_spawn_or_connect() {
        for kind in ThreadKind::ALL {
            for nr in [
                libc::SYS_execve,
                libc::SYS_execveat,
                libc::SYS_openat,
                libc::SYS_clone,
                libc::SYS_clone3,
                libc::SYS_socket,
                libc::SYS_connect,
                libc::SYS_ptrace,
                libc::SYS_process_vm_writev,
                libc::SYS_mount,
                libc::SYS_bpf,
                libc::SYS_kill,
                libc::SYS_prctl,
                libc::SYS_seccomp,
            ] {
                assert!(!numbers(kind).contains(&nr), "{kind:?}: {nr}");
                assert!(!allowed(kind, nr, [0; 6]), "{kind:?}: {nr}");
            }
            #[cfg(target_arch = "x86_64")]
            for nr in [libc::SYS_open, libc::SYS_fork, libc::SYS_vfork] {
                assert!(!allowed(kind, nr, [0; 6]), "{kind:?}: {nr}");
            }
        }
        // KVM_RUN is the vCPU threads' alone.
        for kind in [ThreadKind::Input, ThreadKind::Main] {
            assert!(
                !allowed(kind, libc::SYS_ioctl, [5, KVM_RUN, 0, 0, 0, 0]),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn arguments_are_checked_where_it_matters() {
        for kind in ThreadKind::ALL {
            let prot_rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
            let prot_rx = (libc::PROT_READ | libc::PROT_EXEC) as u64;
            let anon = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
            assert!(allowed(
                kind,
                libc::SYS_mmap,
                [0, 4096, prot_rw, anon, u64::MAX, 0]
            ));
            assert!(!allowed(
                kind,
                libc::SYS_mmap,
                [0, 4096, prot_rx, anon, u64::MAX, 0]
            ));
            assert!(!allowed(
                kind,
                libc::SYS_mprotect,
                [0, 4096, prot_rx, 0, 0, 0]
            ));
            let futex = |op: i32| allowed(kind, libc::SYS_futex, [0, op as u64, 0, 0, 0, 0]);
            let private = libc::FUTEX_PRIVATE_FLAG;
            assert!(futex(libc::FUTEX_WAIT_BITSET | private));
            assert!(futex(
                libc::FUTEX_WAIT_BITSET | private | libc::FUTEX_CLOCK_REALTIME
            ));
            assert!(futex(libc::FUTEX_WAKE | private));
            assert!(futex(libc::FUTEX_WAIT));
            assert!(!futex(libc::FUTEX_LOCK_PI | private));
            assert!(!futex(libc::FUTEX_CMP_REQUEUE_PI));
            assert!(!futex(libc::FUTEX_WAKE_OP | private));
            assert!(allowed(kind, libc::SYS_tkill, [7, KICK as u64, 0, 0, 0, 0]));
            assert!(allowed(
                kind,
                libc::SYS_tkill,
                [7, libc::SIGABRT as u64, 0, 0, 0, 0]
            ));
            assert!(!allowed(
                kind,
                libc::SYS_tkill,
                [7, libc::SIGKILL as u64, 0, 0, 0, 0]
            ));
            assert!(!allowed(
                kind,
                libc::SYS_tgkill,
                [1, 7, libc::SIGSTOP as u64, 0, 0, 0]
            ));
            assert!(!allowed(
                kind,
                libc::SYS_rt_sigaction,
                [libc::SIGSYS as u64, 0, 0, 0, 0, 0]
            ));
            // What the report itself needs.
            assert!(allowed(kind, libc::SYS_write, [2, 0, 10, 0, 0, 0]));
            assert!(allowed(kind, libc::SYS_exit_group, [125, 0, 0, 0, 0, 0]));
            assert!(allowed(kind, libc::SYS_ioctl, [0, TCSETS, 0, 0, 0, 0]));
        }
    }

    #[test]
    fn the_threads_that_sleep_may_sleep_and_only_on_the_monotonic_clock() {
        let sleep = |kind, clock: libc::clockid_t| {
            allowed(
                kind,
                libc::SYS_clock_nanosleep,
                [clock as u64, 0, 0, 0, 0, 0],
            )
        };
        for kind in [ThreadKind::Input, ThreadKind::Main] {
            assert!(sleep(kind, libc::CLOCK_MONOTONIC), "{kind:?}");
            assert!(!sleep(kind, libc::CLOCK_REALTIME), "{kind:?}");
        }
        assert!(!sleep(ThreadKind::Vcpu, libc::CLOCK_MONOTONIC));
    }

    #[test]
    fn another_architectures_call_kills_the_process() {
        let other = audit_arch() ^ 1;
        let prog = program(ThreadKind::Vcpu, KICK).unwrap();
        assert_eq!(run(&prog, other, libc::SYS_write, [0; 6]), RET_KILL_PROCESS);
    }

    #[test]
    fn the_report_names_the_thread_and_the_call() {
        let mut buf = [0u8; 160];
        let n = report(&mut buf, b"vcpu0", Some(59));
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            "uirq-vmm: seccomp: thread vcpu0 made system call 59 (not in its allowlist); stopped\n"
        );
        let n = report(&mut buf, b"", Some(-1));
        assert!(std::str::from_utf8(&buf[..n])
            .unwrap()
            .contains("thread ? made system call -1 "));
        let n = report(&mut buf, b"main", None);
        assert!(std::str::from_utf8(&buf[..n])
            .unwrap()
            .contains("not from the filter"));
        let long = [b'x'; 200];
        assert_eq!(
            report(&mut buf, &long, Some(i32::MIN)),
            160,
            "truncated, no panic"
        );
    }

    /// The closing figures: run with `--nocapture` to see them.
    #[test]
    fn sizes() {
        for kind in ThreadKind::ALL {
            let s = size(kind, KICK).unwrap();
            let names: Vec<_> = allowlist(kind, KICK).iter().map(|a| a.name).collect();
            println!(
                "{:<14} {} syscalls, {} argument rules, {} BPF instructions: {}",
                kind.name(),
                s.syscalls,
                s.rules,
                s.instructions,
                names.join(" ")
            );
        }
    }
}
