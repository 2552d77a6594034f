//! Running child processes with a deadline, and never leaving one behind.
//!
//! QEMU (nested and plain), the VMM (native), cargo, apt-get, dpkg and
//! rustup are all run through here, and every one of them is bounded:
//!
//! - **Its own process group.** Each child starts in a new process group
//!   ([`Group`]), so that it and everything it started (cargo's rustc, apt's
//!   dpkg, a shell's `sleep`) can be signalled at once. Stopping a child
//!   means stopping its group: `SIGTERM`, a short grace, then `SIGKILL`
//!   for whatever is left, so a child that ignores `SIGTERM` still ends.
//!   When the child exits by itself, what is left of its group is killed
//!   before the child is reaped (the zombie keeps the group's id from being
//!   reused meanwhile), so no grandchild lingers holding a pipe open.
//! - **A deadline.** [`run_bounded`] and its variants read the child's
//!   output line by line as it arrives and stop the group when the deadline
//!   passes, so a wedged guest fails fast instead of hanging the caller;
//!   [`run_checked`] and [`output_of`] bound the build and install steps the
//!   same way, with generous limits ([`APT_LIMIT`], [`CARGO_LIMIT`],
//!   [`TOOL_LIMIT`]).
//! - **xtask going away.** `SIGINT` (Ctrl-C), `SIGTERM` and `SIGHUP` stop
//!   every running group before xtask dies of the signal: a child in a
//!   group of its own no longer gets the terminal's Ctrl-C itself. If xtask
//!   dies without a chance to clean up (`SIGKILL`), the kernel kills each
//!   direct child (`PR_SET_PDEATHSIG`). A panic unwinds through the
//!   [`Group`] that owns the child, whose drop stops it; in a build that
//!   aborts on panic, the panic hook stops every group instead.
//!   `PR_SET_PDEATHSIG` fires when the *thread* that spawned the child
//!   ends, so children are spawned and waited for on the same thread, which
//!   every function here does.
//! - **Bounded output.** A line longer than [`MAX_LINE`] keeps its first
//!   and last halves, with a note of how much was cut between them: a
//!   guest that prints a gigabyte without a newline costs xtask 64 KiB.
//!
//! Children get no terminal input (standard input is `/dev/null` or a
//! pipe): a process group in the background that read the terminal would
//! be stopped by `SIGTTIN`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{mpsc, Once};
use std::time::{Duration, Instant};

use crate::Result;

/// Time limit of an apt-get or dpkg step (a package list update, a
/// download of about 90 MB, an install).
pub const APT_LIMIT: Duration = Duration::from_secs(15 * 60);
/// Time limit of a cargo build or clippy step.
pub const CARGO_LIMIT: Duration = Duration::from_secs(60 * 60);
/// Time limit of a `cargo test` step: the end-to-end tests boot the nested
/// environment several times, each batch bounded on its own as well.
pub const TEST_LIMIT: Duration = Duration::from_secs(3 * 60 * 60);
/// Time limit of a quick tool run (a version query, rustup, `dpkg-deb -x`).
pub const TOOL_LIMIT: Duration = Duration::from_secs(5 * 60);
/// How long a stopped group has between `SIGTERM` and `SIGKILL`.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// The longest line handed on whole; longer ones keep both ends.
pub const MAX_LINE: usize = 64 << 10;
/// How often a wait looks at the child between lines of output.
const POLL: Duration = Duration::from_millis(20);

/// Which output stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pipe {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// How a bounded run ended.
#[derive(Debug)]
pub enum Ended {
    /// The process exited by itself.
    Exited(ExitStatus),
    /// The deadline passed and the process group was stopped.
    Killed,
}

/// Text for a child's standard input.
#[derive(Clone, Copy, Debug)]
pub struct Feed<'a> {
    /// What to write, once.
    pub text: &'a [u8],
    /// Write it when the first output line containing this arrives; at once
    /// when `None`.
    pub after: Option<&'a str>,
}

/// The process groups alive now, for the signal handler (0: a free slot).
/// More children at once than slots are still stopped by their [`Group`],
/// only not by a signal to xtask.
static GROUPS: [AtomicI32; 64] = [const { AtomicI32::new(0) }; 64];
static HANDLERS: Once = Once::new();

/// A child process leading a process group of its own (see the module
/// documentation). Dropping it before it was waited for stops the group.
pub struct Group {
    child: Child,
    status: Option<ExitStatus>,
    /// The leader's peak resident set in KiB, from `wait4` when it was
    /// reaped.
    peak_rss_kib: Option<u64>,
    slot: Option<usize>,
}

impl Group {
    /// Spawns `cmd` as the leader of a new process group that dies with
    /// this thread of xtask (`PR_SET_PDEATHSIG`).
    pub fn spawn(cmd: &mut Command) -> io::Result<Self> {
        install_handlers();
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        cmd.process_group(0);
        // SAFETY: the closure runs in the child between fork and exec, and
        // only makes async-signal-safe calls (prctl, getppid); it touches
        // no memory but its captured pid.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // xtask died before the request was in place: no signal
                // will come, so do not start at all.
                if libc::getppid() != parent {
                    return Err(io::Error::other("xtask exited while starting it"));
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        let pgid = child.id() as i32;
        let slot = GROUPS.iter().position(|g| {
            g.compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        Ok(Self {
            child,
            status: None,
            peak_rss_kib: None,
            slot,
        })
    }

    /// The child, for its pipes.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    fn pgid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` to every process of the group.
    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory-safety preconditions. The group id is
        // the leader's pid, which cannot name another group while the
        // leader is unreaped (this type reaps it only in `reap`).
        unsafe { libc::kill(-self.pgid(), signal) };
    }

    /// Whether the leader has exited, without reaping it (so the group's
    /// id stays reserved).
    fn leader_exited(&self) -> bool {
        if self.status.is_some() {
            return true;
        }
        // SAFETY: siginfo_t is plain data; all-zero is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes one siginfo_t through the pointer, which is
        // valid for that write; WNOWAIT leaves the child waitable.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                self.child.id(),
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: waitid filled `info` (or left it zeroed: si_pid 0).
        rc == 0 && unsafe { info.si_pid() } != 0
    }

    /// Kills what is left of the group (the leader has exited), reaps the
    /// leader and forgets the group.
    fn reap(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        self.signal(libc::SIGKILL);
        // wait4 rather than Child::wait: it also gives the leader's peak
        // resident set (ru_maxrss, in KiB on Linux).
        let mut raw = 0;
        // SAFETY: rusage is plain data; all-zero is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: wait4 writes an int and a rusage through pointers
            // valid for those writes; the pid is our unreaped child.
            let rc = unsafe { libc::wait4(self.child.id() as i32, &mut raw, 0, &mut usage) };
            if rc >= 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let status = std::os::unix::process::ExitStatusExt::from_raw(raw);
        self.peak_rss_kib = u64::try_from(usage.ru_maxrss).ok();
        self.status = Some(status);
        if let Some(slot) = self.slot.take() {
            GROUPS[slot].store(0, Ordering::SeqCst);
        }
        Ok(status)
    }

    /// Waits for the leader to exit until `deadline`; `None` if it is still
    /// running then. Once it has exited, the rest of its group is killed.
    pub fn wait_until(&mut self, deadline: Instant) -> io::Result<Option<ExitStatus>> {
        loop {
            if self.leader_exited() {
                return self.reap().map(Some);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(POLL.min(deadline - now));
        }
    }

    /// Stops the group: `SIGTERM` to every process in it, up to
    /// [`KILL_GRACE`] for the leader to exit, then `SIGKILL` for whatever
    /// is left; reaps the leader.
    pub fn stop(&mut self) -> io::Result<ExitStatus> {
        if self.status.is_none() {
            self.signal(libc::SIGTERM);
            let _ = self.wait_until(Instant::now() + KILL_GRACE)?;
        }
        self.reap()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.reap();
        }
    }
}

/// Stops every registered group; safe to call from a signal handler
/// (kill and nanosleep only).
fn stop_all_groups() {
    let each = |signal| {
        for g in &GROUPS {
            let pgid = g.load(Ordering::SeqCst);
            if pgid > 0 {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(-pgid, signal) };
            }
        }
    };
    each(libc::SIGTERM);
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    for _ in 0..(KILL_GRACE.as_millis() / 100) {
        let alive = GROUPS.iter().any(|g| {
            let pgid = g.load(Ordering::SeqCst);
            // SAFETY: kill with signal 0 only checks that the group exists.
            pgid > 0 && unsafe { libc::kill(-pgid, 0) } == 0
        });
        if !alive {
            break;
        }
        // SAFETY: nanosleep reads the timespec, valid for the call.
        unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
    }
    each(libc::SIGKILL);
}

extern "C" fn on_stop_signal(signal: libc::c_int) {
    stop_all_groups();
    // SAFETY: signal and raise are async-signal-safe; with the default
    // action back, xtask ends as the signal says (130 for Ctrl-C in a
    // shell), and the kernel's PR_SET_PDEATHSIG covers any child started
    // meanwhile.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Installs, once, the handlers that stop every group when xtask is
/// interrupted or terminated, and (in a build that aborts on panic) when it
/// panics.
fn install_handlers() {
    HANDLERS.call_once(|| {
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: `on_stop_signal` is an extern "C" fn(c_int) that only
            // makes async-signal-safe calls.
            let previous = unsafe {
                libc::signal(
                    signal,
                    on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
                )
            };
            if previous == libc::SIG_IGN {
                // Started with it ignored (`nohup`, a background job of a
                // shell without job control): leave it so.
                // SAFETY: puts back the disposition xtask was started with.
                unsafe { libc::signal(signal, libc::SIG_IGN) };
            }
        }
        if cfg!(panic = "abort") {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                stop_all_groups();
                previous(info);
            }));
        }
    });
}

/// Runs `cmd` with standard input closed, handing every line it prints to
/// `on_line` (without its line ending and any `\r`; invalid UTF-8 is
/// replaced, never a reason to stop reading). Stops its process group once
/// `timeout` has passed.
pub fn run_bounded(
    cmd: &mut Command,
    timeout: Duration,
    on_line: impl FnMut(Pipe, String),
) -> Result<Ended> {
    run_core(cmd, timeout, None, Capture::Both, on_line).map(|(e, _)| e)
}

/// Which of a child's output streams [`run_core`] reads; the others stay
/// as the caller set them on the command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Capture {
    Both,
    Stdout,
    Stderr,
}

/// [`run_bounded`], with `feed` written to the child's standard input when
/// given (a pipe then, which stays open until the child's output ends, so
/// the child never sees its input end early), reading standard error only
/// with `stderr_only` (standard output is then whatever the caller set on
/// `cmd`: a pipe nobody reads, in the test of a stalled reader); also gives
/// the child's peak resident set in KiB (`ru_maxrss`), when it exited by
/// itself.
pub fn run_bounded_measured(
    cmd: &mut Command,
    timeout: Duration,
    feed: Option<Feed<'_>>,
    stderr_only: bool,
    on_line: impl FnMut(Pipe, String),
) -> Result<(Ended, Option<u64>)> {
    let capture = if stderr_only {
        Capture::Stderr
    } else {
        Capture::Both
    };
    run_core(cmd, timeout, feed, capture, on_line)
}

/// [`run_bounded`] for standard output only: standard error stays the
/// caller's (cargo's progress and messages reach the terminal as they are).
pub fn run_bounded_stdout(
    cmd: &mut Command,
    timeout: Duration,
    mut on_line: impl FnMut(String),
) -> Result<Ended> {
    run_core(cmd, timeout, None, Capture::Stdout, |_, line| on_line(line)).map(|(e, _)| e)
}

fn run_core(
    cmd: &mut Command,
    timeout: Duration,
    feed: Option<Feed<'_>>,
    capture: Capture,
    mut on_line: impl FnMut(Pipe, String),
) -> Result<(Ended, Option<u64>)> {
    let shown = format!("`{}`", cmd.get_program().to_string_lossy());
    cmd.stdin(if feed.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    if capture != Capture::Stderr {
        cmd.stdout(Stdio::piped());
    }
    if capture != Capture::Stdout {
        cmd.stderr(Stdio::piped());
    }
    let deadline = Instant::now() + timeout;
    let mut group = Group::spawn(cmd).map_err(|e| format!("cannot start {shown}: {e}"))?;
    let (tx, rx) = mpsc::channel::<(Pipe, String)>();
    let child = group.child();
    let pipes: [(Pipe, Option<Box<dyn Read + Send>>); 2] = [
        (Pipe::Stdout, child.stdout.take().map(|p| Box::new(p) as _)),
        (Pipe::Stderr, child.stderr.take().map(|p| Box::new(p) as _)),
    ];
    let readers: Vec<_> = pipes
        .into_iter()
        .filter_map(|(pipe, stream)| Some((pipe, stream?)))
        .map(|(pipe, stream)| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                read_lines(stream, MAX_LINE, |line| tx.send((pipe, line)).is_ok())
            })
        })
        .collect();
    drop(tx);

    let mut stdin = group.child().stdin.take();
    let mut pending = feed;
    if let Some(Feed { text, after: None }) = pending {
        write_input(&mut stdin, text);
        pending = None;
    }

    let mut stragglers_killed = false;
    let killed = loop {
        let now = Instant::now();
        if now >= deadline {
            break true;
        }
        match rx.recv_timeout(POLL.min(deadline - now)) {
            Ok((pipe, line)) => {
                if let Some(Feed {
                    text,
                    after: Some(after),
                }) = pending
                {
                    if line.contains(after) {
                        write_input(&mut stdin, text);
                        pending = None;
                    }
                }
                on_line(pipe, line)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // The child is gone but its output is still open: something
                // it started holds the pipes. Its group goes with it; what
                // is in the pipes is still read.
                if !stragglers_killed && group.leader_exited() {
                    group.signal(libc::SIGKILL);
                    stragglers_killed = true;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break false,
        }
    };
    // The output has ended (or the time is up): the input can close.
    drop(stdin);
    let waited = |e: io::Error| format!("waiting for {shown}: {e}");
    let ended = if killed {
        group.stop().map_err(waited)?;
        Ended::Killed
    } else {
        // The output closed; the child may still be running without it.
        match group.wait_until(deadline).map_err(waited)? {
            Some(status) => Ended::Exited(status),
            None => {
                group.stop().map_err(waited)?;
                Ended::Killed
            }
        }
    };
    // After a stop, what was still in the pipes is part of the story. The
    // group is dead, so the pipes end at once, unless something that left
    // the group holds them: it gets a moment, and its readers are left
    // behind (they end when it closes them).
    let until = Instant::now() + Duration::from_secs(1);
    loop {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok((pipe, line)) => on_line(pipe, line),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                for r in readers {
                    let _ = r.join();
                }
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break,
        }
    }
    let peak_rss_kib = match ended {
        Ended::Exited(_) => group.peak_rss_kib,
        Ended::Killed => None,
    };
    Ok((ended, peak_rss_kib))
}

/// Reads `stream` line by line until it ends or `send` returns false,
/// handing each line on without its `\n` and any `\r`. A line longer than
/// `max` keeps its first and last `max / 2` bytes with a note of how many
/// were cut between them.
fn read_lines(stream: impl Read, max: usize, mut send: impl FnMut(String) -> bool) {
    let mut reader = BufReader::with_capacity(16 << 10, stream);
    let mut line = LongLine::new(max);
    loop {
        let buf = match reader.fill_buf() {
            Ok([]) => break,
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        match buf.iter().position(|&b| b == b'\n') {
            Some(end) => {
                line.push(&buf[..end]);
                reader.consume(end + 1);
                if !send(line.take()) {
                    return;
                }
            }
            None => {
                let n = buf.len();
                line.push(buf);
                reader.consume(n);
            }
        }
    }
    if !line.is_empty() {
        send(line.take());
    }
}

/// One line being read, bounded (see [`read_lines`]).
struct LongLine {
    bytes: Vec<u8>,
    max: usize,
    /// Bytes cut from the middle so far.
    cut: u64,
}

impl LongLine {
    fn new(max: usize) -> Self {
        Self {
            bytes: Vec::new(),
            max: max.max(2),
            cut: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.cut == 0
    }

    fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        // Cut in batches (at one and a half times the limit), so each byte
        // is moved a bounded number of times.
        if self.bytes.len() > self.max + self.max / 2 {
            let head = self.max / 2;
            let tail = self.max - head;
            let excess = self.bytes.len() - head - tail;
            self.bytes.drain(head..head + excess);
            self.cut += excess as u64;
        }
    }

    fn take(&mut self) -> String {
        let mut bytes = std::mem::take(&mut self.bytes);
        let cut = std::mem::take(&mut self.cut);
        if bytes.len() > self.max {
            let head = self.max / 2;
            let excess = bytes.len() - self.max;
            bytes.drain(head..head + excess);
            self.cut_note(&mut bytes, head, cut + excess as u64);
        } else if cut > 0 {
            self.cut_note(&mut bytes, self.max / 2, cut);
        }
        String::from_utf8_lossy(&bytes).replace('\r', "")
    }

    fn cut_note(&self, bytes: &mut Vec<u8>, at: usize, cut: u64) {
        let at = at.min(bytes.len());
        let note = format!(" [... {cut} bytes of this line cut ...] ");
        bytes.splice(at..at, note.into_bytes());
    }
}

/// A pipe for a child's output that nobody will read, as small as the
/// kernel allows (one page), so that a few KiB fill it: (read end, write
/// end), both closed on exec. Keep the read end open for as long as the
/// child runs, or its writes fail instead of blocking.
pub fn unread_pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array, which has room
    // for them.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
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

/// Writes `text` to the child's input, if it has a pipe there.
fn write_input(stdin: &mut Option<std::process::ChildStdin>, text: &[u8]) {
    if let Some(pipe) = stdin.as_mut() {
        // A child that has gone makes this fail (EPIPE): its exit status
        // tells the story.
        let _ = pipe.write_all(text).and_then(|()| pipe.flush());
    }
}

/// A command as a person would type it, for a message: the program and its
/// arguments joined by spaces, each quoted for a POSIX shell when it holds
/// anything but letters, digits and `-_./=:,+@%`. The environment and
/// working directory are left out. Callers put it in backticks.
pub fn render(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|word| quote(&word.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One word of [`render`], in single quotes when it needs them.
fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// "90 s", "15 min", "3 h": a limit for a message.
fn human(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Runs `cmd` with the caller's standard output and error and no input,
/// failing with a message that names it when it cannot start, exits
/// non-zero, or is still running after `limit` (then its group is
/// stopped).
pub fn run_checked(cmd: &mut Command, limit: Duration) -> Result<()> {
    let shown = format!("`{}`", render(cmd));
    cmd.stdin(Stdio::null());
    let mut group = Group::spawn(cmd).map_err(|e| format!("cannot run {shown}: {e}"))?;
    match group
        .wait_until(Instant::now() + limit)
        .map_err(|e| format!("waiting for {shown}: {e}"))?
    {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("{shown} failed ({status})")),
        None => {
            let _ = group.stop();
            Err(format!(
                "{shown} did not finish within {} and was stopped",
                human(limit)
            ))
        }
    }
}

/// Runs `cmd` (for at most [`TOOL_LIMIT`]) and returns its standard output
/// as text.
pub fn output_of(cmd: &mut Command) -> Result<String> {
    let shown = format!("`{}`", render(cmd));
    let (mut out, mut err) = (String::new(), String::new());
    let ended = run_bounded(cmd, TOOL_LIMIT, |pipe, line| {
        let text = if pipe == Pipe::Stdout {
            &mut out
        } else {
            &mut err
        };
        text.push_str(&line);
        text.push('\n');
    })
    .map_err(|e| format!("cannot run {shown}: {e}"))?;
    match ended {
        Ended::Exited(status) if status.success() => Ok(out),
        Ended::Exited(status) => Err(format!("{shown} failed ({status}): {}", err.trim())),
        Ended::Killed => Err(format!(
            "{shown} did not finish within {} and was stopped",
            human(TOOL_LIMIT)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_rendered_as_typed_and_quoted_when_needed() {
        let mut cmd = Command::new("cargo");
        cmd.args([
            "build",
            "--target",
            "aarch64-unknown-none",
            "--manifest-path",
        ])
        .arg("/work/guest/Cargo.toml")
        .env("X", "1");
        assert_eq!(
            render(&cmd),
            "cargo build --target aarch64-unknown-none --manifest-path /work/guest/Cargo.toml"
        );
        let mut cmd = Command::new("qemu-system-aarch64");
        cmd.args(["-append", "console=ttyAMA0 panic=-1", "", "it's", "$HOME"]);
        assert_eq!(
            render(&cmd),
            r"qemu-system-aarch64 -append 'console=ttyAMA0 panic=-1' '' 'it'\''s' '$HOME'"
        );
    }

    #[test]
    fn failures_name_the_command_in_a_sentence_not_a_debug_dump() {
        let err = run_checked(
            Command::new("/nonexistent/tool").args(["--flag", "a b"]),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(
            err.starts_with("cannot run `/nonexistent/tool --flag 'a b'`: "),
            "{err}"
        );
        assert!(!err.contains("Command {") && !err.contains('"'), "{err}");
        let err = output_of(&mut sh("exit 4")).unwrap_err();
        assert!(err.starts_with("`sh -c 'exit 4'` failed ("), "{err}");
    }

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn lines_from_both_pipes_arrive_cleaned_and_the_status_comes_back() {
        let mut seen = Vec::new();
        let ended = run_bounded(
            &mut sh("printf 'a\\r\\nb\\n'; printf 'e\\n' >&2; printf '\\377x\\n'; exit 3"),
            Duration::from_secs(30),
            |pipe, line| seen.push((pipe, line)),
        )
        .unwrap();
        assert!(matches!(ended, Ended::Exited(s) if s.code() == Some(3)));
        let out: Vec<&str> = seen
            .iter()
            .filter(|(p, _)| *p == Pipe::Stdout)
            .map(|(_, l)| l.as_str())
            .collect();
        assert_eq!(out, ["a", "b", "\u{FFFD}x"]);
        assert!(seen.contains(&(Pipe::Stderr, "e".to_string())));
    }

    #[test]
    fn input_is_fed_once_the_awaited_line_came_and_stays_open_until_the_end() {
        let mut seen = Vec::new();
        // The text must come after "ready", and the pipe must still be
        // open afterwards: `cat` then blocks until `timeout` ends it (124),
        // where at end of input it would exit with 0.
        let script = "echo ready; read line; echo \"got $line\"; \
                      timeout 1 cat; echo \"cat $?\"";
        let (ended, _) = run_bounded_measured(
            &mut sh(script),
            Duration::from_secs(30),
            Some(Feed {
                text: b"hello there\n",
                after: Some("ready"),
            }),
            false,
            |_, line| seen.push(line),
        )
        .unwrap();
        assert!(matches!(ended, Ended::Exited(s) if s.success()));
        assert_eq!(seen, ["ready", "got hello there", "cat 124"]);

        let mut seen = Vec::new();
        run_bounded_measured(
            &mut sh("read line; echo \"got $line\""),
            Duration::from_secs(30),
            Some(Feed {
                text: b"at once\n",
                after: None,
            }),
            false,
            |_, line| seen.push(line),
        )
        .unwrap();
        assert_eq!(seen, ["got at once"]);
    }

    #[test]
    fn without_a_feed_the_input_is_empty() {
        let mut seen = Vec::new();
        run_bounded(
            &mut sh("if read line; then echo got; else echo eof; fi"),
            Duration::from_secs(30),
            |_, line| seen.push(line),
        )
        .unwrap();
        assert_eq!(seen, ["eof"]);
    }

    /// Whether process `pid` is gone (or a zombie nobody has reaped yet:
    /// dead all the same).
    fn dead(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    fn wait_dead(pid: i32) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if dead(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    // SIGTERM first, and SIGKILL after the grace for a child that ignores
    // it: the limit holds either way.
    #[test]
    fn a_child_that_ignores_sigterm_is_still_killed_at_the_limit() {
        let started = Instant::now();
        let mut seen = Vec::new();
        let ended = run_bounded(
            &mut sh("trap '' TERM; echo started; while :; do sleep 1; done"),
            Duration::from_millis(300),
            |_, line| seen.push(line),
        )
        .unwrap();
        assert!(matches!(ended, Ended::Killed));
        assert!(started.elapsed() < KILL_GRACE + Duration::from_secs(5));
        assert_eq!(seen, ["started"]);

        let started = Instant::now();
        let err = run_checked(
            &mut sh("trap '' TERM; while :; do sleep 1; done"),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(err.contains("did not finish within 0 s"), "{err}");
        assert!(started.elapsed() < KILL_GRACE + Duration::from_secs(5));
    }

    // A grandchild goes with its group: when the deadline stops the child,
    // and when the child exits by itself leaving it behind (holding the
    // output pipe, which would otherwise never end).
    #[test]
    fn a_grandchild_dies_with_the_group() {
        let mut seen = Vec::new();
        let started = Instant::now();
        let ended = run_bounded(
            &mut sh("sleep 1000 & echo $!; exec sleep 1000"),
            Duration::from_millis(300),
            |_, line| seen.push(line),
        )
        .unwrap();
        assert!(matches!(ended, Ended::Killed));
        let grandchild: i32 = seen[0].parse().unwrap();
        assert!(wait_dead(grandchild), "the grandchild outlived the stop");
        assert!(started.elapsed() < Duration::from_secs(10));

        let mut seen = Vec::new();
        let started = Instant::now();
        let ended = run_bounded(
            &mut sh("sleep 1000 & echo $!; exit 3"),
            Duration::from_secs(60),
            |_, line| seen.push(line),
        )
        .unwrap();
        assert!(matches!(ended, Ended::Exited(s) if s.code() == Some(3)));
        assert!(started.elapsed() < Duration::from_secs(10), "waited for it");
        let grandchild: i32 = seen[0].parse().unwrap();
        assert!(wait_dead(grandchild), "the grandchild outlived its parent");

        let out = output_of(&mut sh("sleep 1000 >/dev/null 2>&1 & echo $!")).unwrap();
        let grandchild: i32 = out.trim().parse().unwrap();
        assert!(wait_dead(grandchild));
    }

    // xtask's thread that started a child goes away without stopping it
    // (xtask killed, say): the kernel kills the child (PR_SET_PDEATHSIG).
    #[test]
    fn a_child_dies_with_the_thread_that_started_it() {
        let pid = std::thread::spawn(|| {
            let mut group = Group::spawn(&mut sh("exec sleep 1000")).unwrap();
            let pid = group.child().id() as i32;
            // Neither stopped nor waited for, as if xtask had died.
            std::mem::forget(group);
            pid
        })
        .join()
        .unwrap();
        assert!(wait_dead(pid), "the orphan kept running");
    }

    // A guest that prints without newlines cannot make xtask hold it all:
    // the line keeps its two ends, and says how much is missing.
    #[test]
    fn an_endless_line_keeps_both_ends() {
        let mut lines = Vec::new();
        let mut input = b"short\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 10 * MAX_LINE));
        input.extend_from_slice(b"@@the end\nnext");
        read_lines(&input[..], MAX_LINE, |l| {
            lines.push(l);
            true
        });
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "short");
        assert_eq!(lines[2], "next");
        let long = &lines[1];
        assert!(long.len() < MAX_LINE + 100, "{}", long.len());
        assert!(long.starts_with("xxxx") && long.ends_with("x@@the end"));
        let cut = 10 * MAX_LINE + "@@the end".len() - MAX_LINE;
        assert!(
            long.contains(&format!(" [... {cut} bytes of this line cut ...] ")),
            "{}",
            &long[MAX_LINE / 2 - 10..MAX_LINE / 2 + 60]
        );
        let mut lines = Vec::new();
        read_lines(&b"a\nb"[..], 4, |l| {
            lines.push(l);
            lines.is_empty()
        });
        assert_eq!(lines, ["a"], "a false from send stops the reading");
    }

    // The pipe of `@stdout-unread`: a page fits, more blocks the writer
    // until the deadline stops it; standard error is still read.
    #[test]
    fn an_unread_pipe_fills_after_a_page() {
        let (read, write) = unread_pipe().unwrap();
        let mut cmd =
            sh("printf '%01000d' 0; echo fits >&2; head -c 100000 /dev/zero; echo never >&2");
        cmd.stdout(write);
        let mut seen = Vec::new();
        let (ended, _) =
            run_bounded_measured(&mut cmd, Duration::from_millis(500), None, true, |_, l| {
                seen.push(l)
            })
            .unwrap();
        assert!(matches!(ended, Ended::Killed));
        assert_eq!(seen, ["fits"]);
        drop(read);
    }

    #[test]
    fn limits_read_as_people_say_them() {
        assert_eq!(human(APT_LIMIT), "15 min");
        assert_eq!(human(TEST_LIMIT), "3 h");
        assert_eq!(human(Duration::from_secs(90)), "90 s");
    }

    #[test]
    fn a_process_past_its_deadline_is_killed() {
        let started = Instant::now();
        let mut seen = Vec::new();
        let ended = run_bounded(
            &mut sh("echo started; exec sleep 30"),
            Duration::from_millis(300),
            |_, line| seen.push(line),
        )
        .unwrap();
        assert!(matches!(ended, Ended::Killed));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(seen, ["started"]);
    }
}
