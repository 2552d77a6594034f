//! The guest's serial console on the VMM's standard output and input.
//!
//! Three pieces, which `kvm::run` (and `main`) use together for the length
//! of a run:
//!
//! - [`Output`] carries what the guest transmits to the VMM's standard
//!   output through a bounded queue and a thread of its own, so that a
//!   reader that stops reading can never stall a vCPU (below).
//! - [`RawTerminal`] puts standard input, when it is a terminal, into a
//!   raw-ish mode so that every key reaches the guest as typed, and puts the
//!   terminal back as it was afterwards: on drop, and from a panic hook
//!   (release builds abort on panic, so nothing is dropped then).
//! - [`InputPump`] is the loop of a thread that waits for input with
//!   `poll(2)`, reads what is there and offers it to the UART
//!   ([`Pl011::receive`]). What does not fit in the receive FIFO is kept and
//!   offered again a moment later, so a guest that is slow to read loses
//!   nothing: the terminal's own buffer fills instead, as with a serial line
//!   under hardware flow control. The UART lock is only held to hand bytes
//!   over, never while waiting.
//!
//! # Output never blocks a vCPU
//!
//! The PL011 model transmits on the vCPU thread that wrote UARTDR. Writing
//! to standard output there would put the guest at the mercy of whoever
//! reads it: a full pipe blocks `write(2)`, the vCPU thread with it, and
//! with it the `--timeout` that is meant to stop a stuck run (the thread is
//! not in `KVM_RUN`, so no kick reaches it). So the UART writes into an
//! [`Output`] queue instead, which takes bytes under a lock held for a
//! memory copy only, and a writer thread moves them to standard output.
//!
//! - The queue holds at most [`OUTPUT_QUEUE_BYTES`]. What does not fit is
//!   dropped and counted, and once the writer catches up it prints a line
//!   saying how many bytes were lost there. A guest that prints faster than
//!   its output is read loses output, not time.
//! - The writer wakes at each newline (the UART flushes there), when the
//!   input pump flushes a partial line, and when a few KiB are waiting.
//! - At the end of the run, [`Output::finish`] waits for the queue to drain
//!   while the writer makes progress, and gives up once it has made none for
//!   [`OUTPUT_STALL`]: a reader that never reads delays the VMM's exit by
//!   that much, not forever. The stuck writer thread is left behind (the
//!   process exit ends it), and the caller learns that standard output is
//!   not being read, so it prints nothing more there.
//! - The writer owns a duplicate of the standard output descriptor, not
//!   `std::io::stdout()`: a writer blocked inside `Stdout` would hold its
//!   lock, and every `println!` of the process would wait for it.
//!
//! # Raw mode, and why it keeps ISIG
//!
//! Canonical mode (line editing), echo, and the input translations (CR to
//! NL, flow control with Ctrl-S/Ctrl-Q, stripping the eighth bit, break
//! handling) are turned off: the guest has a terminal driver of its own,
//! which echoes, edits lines and expects the Return key as CR. Output
//! processing (OPOST) is left alone, so the VMM's own messages and the
//! guest's lines still start at the left margin.
//!
//! ISIG stays on so that Ctrl-C still sends SIGINT to the VMM. That is how
//! a run is stopped from the keyboard: the VMM stops every vCPU, joins every
//! thread, restores the terminal and exits with 130. Turning ISIG off would
//! hand Ctrl-C to the guest and leave no way out but `kill` from another
//! terminal. The other two signal characters are disabled (set to
//! `_POSIX_VDISABLE`) instead, so Ctrl-\ and Ctrl-Z reach the guest as
//! bytes: the VMM does not handle SIGQUIT or SIGTSTP, and either would stop
//! it with the terminal still raw (SIGQUIT kills it, SIGTSTP suspends it).
//!
//! The terminal is only touched when standard input is one (`isatty`,
//! `tcgetattr` succeeding) and this process is in its foreground process
//! group; in the background, reading it or changing its settings would stop
//! the whole VMM with SIGTTIN or SIGTTOU, so a background VMM reads no
//! input at all.
//!
//! # When input ends
//!
//! End of file, a hang-up, an invalid descriptor (`POLLNVAL`, `EBADF`) or
//! standard input being `/dev/null` (whose first read is end of file) end
//! the pump quietly: no standard input, no guest input. Otherwise it runs
//! until the caller's stop condition holds, which it checks at least every
//! [`POLL_IDLE`].

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use crate::bus;
use crate::devices::pl011::Pl011;

/// The longest the pump waits for input before it looks at the stop
/// condition again.
pub const POLL_IDLE: Duration = Duration::from_millis(50);
/// Just after input was handed over, the pump wakes this often instead, so
/// that the guest's echo (a partial line, flushed by the pump) shows at
/// once.
const POLL_ECHO: Duration = Duration::from_millis(5);
/// How long after input the shorter wake-up applies.
const ECHO_WINDOW: Duration = Duration::from_millis(200);
/// How long the pump waits before offering again what did not fit; the
/// wait doubles, up to [`POLL_IDLE`], while the UART takes nothing (a guest
/// that never enables its receiver costs 20 wake-ups a second).
const RETRY: Duration = Duration::from_millis(2);
/// The most read from the input at once.
const CHUNK: usize = 256;

/// The most bytes of guest output waiting for the writer; beyond it, output
/// is dropped and counted. Seconds of a guest printing flat out on a slow
/// console, and far more than the project's programs print in a run.
pub const OUTPUT_QUEUE_BYTES: usize = 1 << 20;
/// How much waiting output wakes the writer even without a newline.
const OUTPUT_WAKE_BYTES: usize = 4096;
/// [`Output::finish`] gives up on a writer that has written nothing for
/// this long.
pub const OUTPUT_STALL: Duration = Duration::from_secs(3);

/// What the writer thread and the queue's users share.
struct OutputShared {
    state: Mutex<OutputState>,
    /// The writer waits here for work.
    work: Condvar,
    /// [`Output::finish`] waits here for progress.
    progress: Condvar,
}

struct OutputState {
    queue: Vec<u8>,
    /// The most `queue` may hold.
    capacity: usize,
    /// Bytes dropped since the writer last reported a loss.
    dropped: u64,
    /// Bytes dropped in the whole run.
    dropped_total: u64,
    /// A flush was asked for (a newline, or a partial line to show).
    flush: bool,
    /// No more output will come; the writer ends once the queue is empty.
    closing: bool,
    /// The writer has ended.
    done: bool,
    /// Passes the writer has made (its progress).
    written: u64,
    /// What the writer wrote last did not end a line.
    mid_line: bool,
}

impl OutputShared {
    fn state(&self) -> MutexGuard<'_, OutputState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The guest's console output on its way to standard output (see the
/// module documentation): a bounded queue and the thread that empties it.
pub struct Output {
    shared: Arc<OutputShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How [`Output::finish`] left things.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Everything queued reached the sink; false when the writer stalled
    /// (nobody reads standard output) and was left behind.
    pub drained: bool,
    /// What reached the sink last did not end a line (the guest's output
    /// ended in the middle of one): whoever prints next starts a new line.
    pub mid_line: bool,
    /// Bytes of guest output dropped because the queue was full.
    pub dropped: u64,
}

/// The UART's end of an [`Output`]: a `Write` that never waits for I/O
/// and never fails (output that does not fit is dropped and counted).
#[derive(Clone)]
pub struct OutputWriter {
    shared: Arc<OutputShared>,
}

impl Output {
    /// Starts the writer thread for the VMM's standard output (a duplicate
    /// of its descriptor, so `println!` elsewhere never waits for it).
    pub fn stdout() -> io::Result<Self> {
        use std::os::fd::AsFd;
        let fd = io::stdout().as_fd().try_clone_to_owned()?;
        Self::start(std::fs::File::from(fd), OUTPUT_QUEUE_BYTES)
    }

    /// Starts a writer thread that moves queued output to `sink`, with at
    /// most `capacity` bytes waiting.
    pub fn start(sink: impl io::Write + Send + 'static, capacity: usize) -> io::Result<Self> {
        let shared = Arc::new(OutputShared {
            state: Mutex::new(OutputState {
                queue: Vec::new(),
                capacity,
                dropped: 0,
                dropped_total: 0,
                flush: false,
                closing: false,
                done: false,
                written: 0,
                mid_line: false,
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
        });
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("console-output".to_string())
            .spawn(move || write_out(&theirs, sink))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// A handle for the UART (any number may exist).
    pub fn writer(&self) -> OutputWriter {
        OutputWriter {
            shared: self.shared.clone(),
        }
    }

    /// No more output: waits for the writer to pass everything queued to
    /// the sink, for as long as it keeps making progress, and at most
    /// [`OUTPUT_STALL`] without any.
    pub fn finish(mut self) -> Finished {
        self.finish_within(OUTPUT_STALL)
    }

    fn finish_within(&mut self, stall: Duration) -> Finished {
        let mut state = self.shared.state();
        state.closing = true;
        self.shared.work.notify_all();
        let (mut seen, mut since) = (state.written, Instant::now());
        while !state.done {
            if state.written != seen {
                (seen, since) = (state.written, Instant::now());
            }
            let left = stall.saturating_sub(since.elapsed());
            if left.is_zero() {
                break;
            }
            state = self
                .shared
                .progress
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let finished = Finished {
            drained: state.done,
            mid_line: state.mid_line,
            dropped: state.dropped_total,
        };
        drop(state);
        match self.thread.take() {
            Some(thread) if finished.drained => {
                let _ = thread.join();
            }
            // Left behind, blocked in write(2): the process exit ends it.
            _ => {}
        }
        finished
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.finish_within(OUTPUT_STALL);
        }
    }
}

impl io::Write for OutputWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.state();
        if state.closing {
            return Ok(buf.len());
        }
        let room = state.capacity.saturating_sub(state.queue.len());
        let (taken, lost) = buf.split_at(buf.len().min(room));
        state.queue.extend_from_slice(taken);
        let lost = lost.len() as u64;
        state.dropped = state.dropped.saturating_add(lost);
        state.dropped_total = state.dropped_total.saturating_add(lost);
        if state.queue.len() >= OUTPUT_WAKE_BYTES || lost > 0 {
            self.shared.work.notify_one();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut state = self.shared.state();
        if !state.flush {
            state.flush = true;
            self.shared.work.notify_one();
        }
        Ok(())
    }
}

/// The writer thread: takes what is queued (the lock held for a swap of
/// buffers only), writes it to `sink`, and after a loss says how much was
/// lost there.
fn write_out(shared: &OutputShared, mut sink: impl io::Write) {
    // Under its own seccomp filter from its first instruction, if the
    // sandbox is on (`crate::seccomp`); a thread that cannot be confined
    // ends the VMM rather than run unconfined.
    let output = crate::seccomp::ThreadKind::Output;
    if let Err(e) = crate::seccomp::enter(output, output.name()) {
        eprintln!("uirq-vmm: {e}");
        std::process::exit(uirq_abi::exit::VMM_ERROR);
    }
    let mut chunk = Vec::new();
    // The sink failed (standard output closed): keep emptying the queue,
    // so the guest never notices, but write nothing more.
    let mut broken = false;
    let mut at_line_start = true;
    loop {
        let (dropped, closing) = {
            let mut state = shared.state();
            loop {
                let ready = state.flush
                    || state.queue.len() >= OUTPUT_WAKE_BYTES
                    || state.dropped > 0
                    || state.closing;
                if ready {
                    break;
                }
                state = shared
                    .work
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.flush = false;
            std::mem::swap(&mut chunk, &mut state.queue);
            (std::mem::take(&mut state.dropped), state.closing)
        };
        if !broken && !chunk.is_empty() {
            broken = sink.write_all(&chunk).is_err();
            at_line_start = chunk.last() == Some(&b'\n');
        }
        if !broken && dropped > 0 {
            let note = format!(
                "{}uirq-vmm: {dropped} bytes of the guest's console output were dropped here: standard output was not read fast enough\n",
                if at_line_start { "" } else { "\n" }
            );
            broken = sink.write_all(note.as_bytes()).is_err();
            at_line_start = true;
        }
        if !broken {
            broken = sink.flush().is_err();
        }
        chunk.clear();
        let mut state = shared.state();
        state.written = state.written.wrapping_add(1);
        state.mid_line = !at_line_start;
        if closing && state.queue.is_empty() && state.dropped == 0 {
            state.done = true;
            shared.progress.notify_all();
            return;
        }
        shared.progress.notify_all();
    }
}

/// The terminal settings to put back.
struct Saved {
    fd: RawFd,
    termios: libc::termios,
}

/// What [`RawTerminal`] changed, for its drop and for the panic hook.
static SAVED: Mutex<Option<Saved>> = Mutex::new(None);
/// A copy of it that a signal handler may read without a lock
/// ([`restore_from_signal_handler`]); null while the terminal is not raw.
/// Each copy is leaked on purpose (one per `RawTerminal`, a few dozen
/// bytes): a handler on another thread may be reading it when it is
/// withdrawn.
static FOR_SIGNALS: AtomicPtr<Saved> = AtomicPtr::new(std::ptr::null_mut());
/// The panic hook is installed once per process.
static PANIC_HOOK: Once = Once::new();

fn saved() -> MutexGuard<'static, Option<Saved>> {
    SAVED.lock().unwrap_or_else(PoisonError::into_inner)
}

fn put_back(saved: Saved) {
    // SAFETY: `termios` is the structure tcgetattr filled for this
    // descriptor; tcsetattr only reads it.
    if unsafe { libc::tcsetattr(saved.fd, libc::TCSANOW, &saved.termios) } != 0 {
        tracing::warn!(
            "cannot restore the terminal settings: {}",
            io::Error::last_os_error()
        );
    }
}

/// Standard input in raw mode (see the module documentation) for as long
/// as this lives.
#[must_use = "the terminal is restored when this is dropped"]
#[derive(Debug)]
pub struct RawTerminal {
    _restore_on_drop: (),
}

impl RawTerminal {
    /// Switches standard input to raw mode if it is a terminal and this
    /// process is in its foreground; `None` (and nothing changed) otherwise,
    /// or while another `RawTerminal` is active.
    pub fn enable() -> Option<Self> {
        Self::enable_on(libc::STDIN_FILENO)
    }

    /// [`RawTerminal::enable`] for the terminal open on `fd`.
    fn enable_on(fd: RawFd) -> Option<Self> {
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(fd) } != 1 {
            return None;
        }
        if in_background(fd) {
            tracing::debug!("the terminal belongs to another process group: left alone");
            return None;
        }
        let mut termios = MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr writes one termios through the pointer, which is
        // valid for that write.
        if unsafe { libc::tcgetattr(fd, termios.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: tcgetattr succeeded, so it filled the structure.
        let termios = unsafe { termios.assume_init() };
        {
            let mut slot = saved();
            if slot.is_some() {
                return None;
            }
            *slot = Some(Saved { fd, termios });
        }
        install_panic_hook();
        let raw = raw_mode(termios);
        // SAFETY: `raw` is a complete termios; tcsetattr only reads it.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            tracing::debug!(
                "cannot put the terminal in raw mode: {}",
                io::Error::last_os_error()
            );
            saved().take();
            return None;
        }
        let copy = Box::into_raw(Box::new(Saved { fd, termios }));
        FOR_SIGNALS.store(copy, Ordering::Release);
        Some(Self {
            _restore_on_drop: (),
        })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        FOR_SIGNALS.store(std::ptr::null_mut(), Ordering::Release);
        if let Some(s) = saved().take() {
            put_back(s);
        }
    }
}

/// Puts the terminal back as [`RawTerminal`] found it, from a signal
/// handler that is about to end the process (the seccomp report,
/// `crate::seccomp`): no lock, no allocation, only `tcsetattr`, which is
/// async-signal-safe. Does nothing when the terminal is not raw.
pub fn restore_from_signal_handler() {
    let saved = FOR_SIGNALS.load(Ordering::Acquire);
    if !saved.is_null() {
        // SAFETY: a non-null pointer is a leaked, never freed `Saved`
        // written before it was published; tcsetattr only reads it.
        unsafe { libc::tcsetattr((*saved).fd, libc::TCSANOW, &(*saved).termios) };
    }
}

/// Restores the terminal before the previous hook runs (and, in release
/// builds, before the process aborts).
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Never block here: the panicking thread might hold the lock.
            let s = match SAVED.try_lock() {
                Ok(mut slot) => slot.take(),
                Err(TryLockError::Poisoned(p)) => p.into_inner().take(),
                Err(TryLockError::WouldBlock) => None,
            };
            if let Some(s) = s {
                put_back(s);
            }
            previous(info);
        }));
    });
}

/// The raw-ish settings derived from `t` (module documentation): no
/// canonical mode, no echo, no input translation or flow control; ISIG and
/// output processing kept; Ctrl-\ and Ctrl-Z passed through as bytes; reads
/// return as soon as one byte is there.
pub fn raw_mode(mut t: libc::termios) -> libc::termios {
    t.c_iflag &= !(libc::IGNBRK
        | libc::BRKINT
        | libc::PARMRK
        | libc::ISTRIP
        | libc::INLCR
        | libc::IGNCR
        | libc::ICRNL
        | libc::IXON);
    t.c_lflag &=
        !(libc::ICANON | libc::ECHO | libc::ECHOE | libc::ECHOK | libc::ECHONL | libc::IEXTEN);
    t.c_cc[libc::VQUIT] = libc::_POSIX_VDISABLE;
    t.c_cc[libc::VSUSP] = libc::_POSIX_VDISABLE;
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    t
}

/// `fd` is this process's controlling terminal and another process group
/// is in its foreground.
fn in_background(fd: RawFd) -> bool {
    // SAFETY: tcgetpgrp and getpgrp only query; tcgetpgrp fails (ENOTTY)
    // for a terminal that is not this process's controlling terminal.
    let (foreground, own) = unsafe { (libc::tcgetpgrp(fd), libc::getpgrp()) };
    foreground > 0 && foreground != own
}

/// Why [`InputPump::run`] returned.
#[derive(Debug)]
pub enum InputEnd {
    /// The caller's stop condition held.
    Stopped,
    /// The input ended: end of file (`/dev/null` included), hang-up, or a
    /// descriptor that is not open.
    Closed,
    /// The input is a terminal in whose foreground this process is not.
    Background,
    /// Waiting for or reading the input failed otherwise.
    Failed(io::Error),
}

/// A POSIX thread id, for `pthread_kill`.
#[derive(Clone, Copy)]
struct ThreadId(libc::pthread_t);

// SAFETY: a pthread_t is an opaque handle (a pointer on musl) that is never
// dereferenced here, only passed to pthread_kill, which any thread may call.
unsafe impl Send for ThreadId {}

/// Standard input (or any readable descriptor) fed into the UART; see the
/// module documentation. One thread runs [`InputPump::run`]; another may
/// cut its wait short with [`InputPump::interrupt`].
#[derive(Default)]
pub struct InputPump {
    /// The thread inside `run`, while it is there.
    thread: Mutex<Option<ThreadId>>,
}

/// Withdraws the running thread's id when `run` returns.
struct Registered<'a>(&'a InputPump);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.slot().take();
    }
}

impl InputPump {
    /// A pump no thread runs yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(&self) -> MutexGuard<'_, Option<ThreadId>> {
        self.thread.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Feeds what `input` delivers into `uart` until `stopping()` holds or
    /// the input ends (see [`InputEnd`]). After every hand-over that the
    /// UART took bytes from, calls `delivered()` with no lock held: the
    /// caller makes the guest notice the UART's interrupt line. Also
    /// flushes the UART's partial output lines while it waits, so prompts
    /// and echoes show.
    pub fn run(
        &self,
        input: BorrowedFd<'_>,
        uart: &Mutex<Pl011>,
        stopping: impl Fn() -> bool,
        mut delivered: impl FnMut(),
    ) -> InputEnd {
        let fd = input.as_raw_fd();
        if in_background(fd) {
            return InputEnd::Background;
        }
        // SAFETY: pthread_self has no preconditions.
        *self.slot() = Some(ThreadId(unsafe { libc::pthread_self() }));
        let _registered = Registered(self);

        let mut buf = [0u8; CHUNK];
        // buf[start..end] was read and not yet taken by the UART.
        let (mut start, mut end) = (0, 0);
        let mut last_input: Option<Instant> = None;
        let mut retry = RETRY;
        loop {
            if stopping() {
                return InputEnd::Stopped;
            }
            bus::lock(uart).flush_output();
            if start == end {
                let timeout = match last_input {
                    Some(t) if t.elapsed() < ECHO_WINDOW => POLL_ECHO,
                    _ => POLL_IDLE,
                };
                match wait_readable(fd, timeout) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => return e,
                }
                match read_some(fd, &mut buf) {
                    Ok(0) => return InputEnd::Closed,
                    Ok(n) => (start, end) = (0, n),
                    Err(e) => match e.kind() {
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock => continue,
                        // EIO: a terminal that hung up, or a read from an
                        // orphaned background process group.
                        _ if matches!(e.raw_os_error(), Some(libc::EBADF | libc::EIO)) => {
                            return InputEnd::Closed
                        }
                        _ => return InputEnd::Failed(e),
                    },
                }
                last_input = Some(Instant::now());
            }
            let taken = bus::lock(uart).receive(&buf[start..end]);
            if taken > 0 {
                start += taken;
                retry = RETRY;
                delivered();
            }
            if start < end {
                // The FIFO is full (or the receiver is off): the guest has
                // not read yet. Keep the rest and try again shortly.
                std::thread::sleep(retry);
                if taken == 0 {
                    retry = (retry * 2).min(POLL_IDLE);
                }
            }
        }
    }

    /// Sends `signal` to the thread inside [`InputPump::run`], if one is,
    /// to cut short a `poll` or `read` it is blocked in (which then fails
    /// with EINTR and the loop looks at its stop condition). `signal` must
    /// have a handler installed without `SA_RESTART` (the VMM's kick signal
    /// has one), or its default action applies to the whole process.
    /// Returns whether a signal was sent.
    pub fn interrupt(&self, signal: libc::c_int) -> bool {
        // The id is withdrawn under this lock before the thread leaves
        // `run`, so a thread found here has not exited.
        let slot = self.slot();
        let Some(ThreadId(thread)) = *slot else {
            return false;
        };
        // SAFETY: `thread` is alive (above) and pthread_kill only delivers a
        // signal to it.
        let rc = unsafe { libc::pthread_kill(thread, signal) };
        rc == 0
    }
}

/// Waits up to `timeout` for `fd` to be readable. `Ok(false)`: not yet (or
/// a signal came); `Err`: the input is over.
fn wait_readable(fd: RawFd, timeout: Duration) -> Result<bool, InputEnd> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, for the duration of the call.
    let rc = unsafe { libc::poll(&mut p, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::Interrupted => Ok(false),
            _ => Err(InputEnd::Failed(e)),
        };
    }
    if rc == 0 {
        return Ok(false);
    }
    if p.revents & libc::POLLNVAL != 0 {
        return Err(InputEnd::Closed);
    }
    // Data still buffered before a hang-up is read first; the read that
    // follows the last of it returns end of file.
    if p.revents & libc::POLLIN != 0 {
        return Ok(true);
    }
    if p.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
        return Err(InputEnd::Closed);
    }
    Ok(false)
}

/// One `read(2)` into `buf`.
fn read_some(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::MmioDevice;
    use crate::devices::irq_line::Probed;
    use std::io::Write;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    const DR: u64 = 0x000;
    const FR: u64 = 0x018;
    const RSR: u64 = 0x004;
    const FR_RXFE: u32 = 1 << 4;

    /// A UART with receiver and FIFOs enabled (as Linux leaves it) and the
    /// receive interrupts unmasked, its line probed, its output kept.
    fn uart() -> (Arc<Mutex<Pl011>>, Probed) {
        let line = Probed::default();
        let mut u = Pl011::new(Box::new(io::sink()), Box::new(line.clone()));
        u.write(0, 0x030, &0x301u32.to_le_bytes());
        u.write(0, 0x02C, &0x70u32.to_le_bytes());
        u.write(0, 0x038, &0x50u32.to_le_bytes());
        (Arc::new(Mutex::new(u)), line)
    }

    fn read32(uart: &Mutex<Pl011>, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        bus::lock(uart).read(0, offset, &mut b);
        u32::from_le_bytes(b)
    }

    /// Reads what the FIFO holds now, as the guest would.
    fn drain(uart: &Mutex<Pl011>, into: &mut Vec<u8>) {
        while read32(uart, FR) & FR_RXFE == 0 {
            into.push(read32(uart, DR) as u8);
        }
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A sink that takes nothing until the test lets it (drops the
    /// sender), then keeps what it is given.
    struct Held {
        gate: std::sync::mpsc::Receiver<()>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Held {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.gate.recv();
            self.got.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn held() -> (Held, std::sync::mpsc::Sender<()>, Arc<Mutex<Vec<u8>>>) {
        let (open, gate) = std::sync::mpsc::channel();
        let got = Arc::new(Mutex::new(Vec::new()));
        (
            Held {
                gate,
                got: got.clone(),
            },
            open,
            got,
        )
    }

    /// Transmits `text` through the UART's data register, a byte an access,
    /// as a guest does.
    fn transmit(uart: &mut Pl011, text: &[u8]) {
        for &b in text {
            uart.write(0, DR, &u32::from(b).to_le_bytes());
        }
    }

    // The reader of standard output stops reading (a full pipe): the
    // guest's writes to UARTDR still return at once, the excess is dropped
    // and counted, and the end of the run gives up on the stuck writer
    // after the stall time instead of waiting forever.
    #[test]
    fn a_stalled_reader_never_blocks_the_uart() {
        let (sink, unread) = UnixStream::pair().unwrap();
        let output = Output::start(sink, 64 << 10).unwrap();
        let mut uart = Pl011::new(
            Box::new(output.writer()),
            Box::new(crate::devices::irq_line::Unconnected),
        );
        let started = Instant::now();
        let line = [b'x'; 99];
        for _ in 0..20_000 {
            transmit(&mut uart, &line);
            transmit(&mut uart, b"\n");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "2 MB through the UART took {:?}",
            started.elapsed()
        );
        let mut output = output;
        let waited = Instant::now();
        let finished = output.finish_within(Duration::from_millis(200));
        assert!(waited.elapsed() < Duration::from_secs(5));
        assert!(!finished.drained, "nobody read the pipe");
        assert!(finished.dropped > 1_000_000, "{finished:?}");
        drop(unread);
    }

    // A writer that blocks forever inside write(2), not on a pipe: the same.
    #[test]
    fn a_writer_blocked_forever_does_not_hold_up_the_uart_or_the_end() {
        let (sink, open, _got) = held();
        let mut output = Output::start(sink, 4096).unwrap();
        let mut uart = Pl011::new(
            Box::new(output.writer()),
            Box::new(crate::devices::irq_line::Unconnected),
        );
        transmit(&mut uart, &[b'y'; 100_000]);
        transmit(&mut uart, b"\n");
        let finished = output.finish_within(Duration::from_millis(100));
        assert_eq!(
            (finished.drained, finished.dropped >= 100_000 - 2 * 4096),
            (false, true),
            "{finished:?}"
        );
        drop(open);
    }

    // A reader that falls behind and catches up: what fitted arrives in
    // order, followed by one line that says how much was lost there, then
    // what came after.
    #[test]
    fn dropped_output_is_counted_where_it_was_lost() {
        let (sink, open, got) = held();
        let output = Output::start(sink, 1000).unwrap();
        let mut w = output.writer();
        // The writer takes the first flush and blocks in the sink with it;
        // the queue then fills up.
        w.write_all(b"first\n").unwrap();
        w.flush().unwrap();
        wait_for("the writer to take the first line", || {
            output.shared.state().queue.is_empty()
        });
        w.write_all(&[b'a'; 1500]).unwrap();
        drop(open);
        wait_for("the loss to be reported", || {
            output.shared.state().dropped == 0 && output.shared.state().queue.is_empty()
        });
        w.write_all(b"after\n").unwrap();
        let finished = output.finish();
        assert_eq!(
            finished,
            Finished {
                drained: true,
                mid_line: false,
                dropped: 500
            }
        );
        let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        let expected = format!(
            "first\n{}\nuirq-vmm: 500 bytes of the guest's console output were dropped here: standard output was not read fast enough\nafter\n",
            "a".repeat(1000)
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn the_end_of_the_run_knows_whether_a_line_was_left_open() {
        for (text, mid_line) in [(&b"ok\n# "[..], true), (b"ok\n", false), (b"", false)] {
            let got = Arc::new(Mutex::new(Vec::new()));
            #[derive(Clone)]
            struct Keep(Arc<Mutex<Vec<u8>>>);
            impl Write for Keep {
                fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                    self.0.lock().unwrap().extend_from_slice(buf);
                    Ok(buf.len())
                }
                fn flush(&mut self) -> io::Result<()> {
                    Ok(())
                }
            }
            let output = Output::start(Keep(got.clone()), OUTPUT_QUEUE_BYTES).unwrap();
            output.writer().write_all(text).unwrap();
            let finished = output.finish();
            assert!(finished.drained);
            assert_eq!(finished.mid_line, mid_line, "{text:?}");
            assert_eq!(*got.lock().unwrap(), text);
        }
    }

    #[test]
    fn raw_mode_keeps_isig_and_output_processing() {
        // SAFETY: termios is plain data; all-zero is a valid value.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        t.c_iflag = libc::ICRNL | libc::IXON | libc::BRKINT | libc::IUTF8;
        t.c_oflag = libc::OPOST | libc::ONLCR;
        t.c_lflag = libc::ICANON | libc::ECHO | libc::ECHOE | libc::ISIG | libc::IEXTEN;
        t.c_cc[libc::VINTR] = 3;
        t.c_cc[libc::VQUIT] = 0x1C;
        t.c_cc[libc::VSUSP] = 0x1A;
        let r = raw_mode(t);
        assert_eq!(r.c_lflag & (libc::ICANON | libc::ECHO | libc::IEXTEN), 0);
        assert_eq!(r.c_lflag & libc::ISIG, libc::ISIG, "Ctrl-C stays SIGINT");
        assert_eq!(r.c_cc[libc::VINTR], 3);
        assert_eq!(r.c_iflag & (libc::ICRNL | libc::IXON | libc::BRKINT), 0);
        assert_eq!(r.c_iflag & libc::IUTF8, libc::IUTF8, "untouched");
        assert_eq!(r.c_oflag, t.c_oflag, "output processing untouched");
        assert_eq!(r.c_cc[libc::VQUIT], libc::_POSIX_VDISABLE);
        assert_eq!(r.c_cc[libc::VSUSP], libc::_POSIX_VDISABLE);
        assert_eq!((r.c_cc[libc::VMIN], r.c_cc[libc::VTIME]), (1, 0));
    }

    /// A new pseudo-terminal: (master, slave).
    fn pty() -> (OwnedFd, OwnedFd) {
        // SAFETY: plain calls on a descriptor this function owns; ptsname_r
        // writes a NUL-terminated name into the buffer it is given.
        unsafe {
            let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            assert!(master >= 0, "posix_openpt: {}", io::Error::last_os_error());
            let master = OwnedFd::from_raw_fd(master);
            assert_eq!(libc::grantpt(master.as_raw_fd()), 0);
            assert_eq!(libc::unlockpt(master.as_raw_fd()), 0);
            let mut name = [0 as libc::c_char; 128];
            assert_eq!(
                libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()),
                0
            );
            let slave = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
            assert!(slave >= 0, "open slave: {}", io::Error::last_os_error());
            (master, OwnedFd::from_raw_fd(slave))
        }
    }

    fn lflag(fd: &OwnedFd) -> libc::tcflag_t {
        // SAFETY: as in enable_on.
        unsafe {
            let mut t = MaybeUninit::<libc::termios>::uninit();
            assert_eq!(libc::tcgetattr(fd.as_raw_fd(), t.as_mut_ptr()), 0);
            t.assume_init().c_lflag
        }
    }

    // On a terminal: raw while the guard lives, as before once it is
    // dropped, and restored by the panic hook when a thread panics; not a
    // terminal: nothing happens. (One test, because the saved settings are
    // per process.)
    #[test]
    fn a_terminal_is_raw_while_the_guard_lives_and_restored_after() {
        let (_master, slave) = pty();
        let before = lflag(&slave);
        assert_ne!(before & libc::ICANON, 0, "a new pty is canonical");

        let guard = RawTerminal::enable_on(slave.as_raw_fd()).expect("a terminal");
        assert_eq!(lflag(&slave) & (libc::ICANON | libc::ECHO), 0);
        assert_ne!(lflag(&slave) & libc::ISIG, 0);
        assert!(
            RawTerminal::enable_on(slave.as_raw_fd()).is_none(),
            "one guard at a time"
        );
        drop(guard);
        assert_eq!(lflag(&slave), before);

        let _guard = RawTerminal::enable_on(slave.as_raw_fd()).expect("a terminal");
        assert_eq!(lflag(&slave) & libc::ICANON, 0);
        let panicked = std::thread::spawn(|| panic!("test panic: the hook restores"));
        assert!(panicked.join().is_err());
        assert_eq!(lflag(&slave), before, "restored by the panic hook");
        drop(_guard);
        assert_eq!(lflag(&slave), before);

        // The seccomp report's way, from a signal handler (no lock).
        let guard = RawTerminal::enable_on(slave.as_raw_fd()).expect("a terminal");
        assert_eq!(lflag(&slave) & libc::ICANON, 0);
        restore_from_signal_handler();
        assert_eq!(lflag(&slave), before, "restored without the lock");
        drop(guard);
        assert!(FOR_SIGNALS.load(Ordering::Acquire).is_null(), "withdrawn");
        restore_from_signal_handler();
        assert_eq!(lflag(&slave), before);

        let (a, _b) = UnixStream::pair().unwrap();
        assert!(RawTerminal::enable_on(a.as_raw_fd()).is_none(), "a socket");
    }

    // Input reaches the UART in order and raises its line; the callback
    // runs once per hand-over; end of file ends the pump.
    #[test]
    fn input_reaches_the_uart_and_end_of_file_ends_the_pump() {
        let (uart, line) = uart();
        let (mut tx, rx) = UnixStream::pair().unwrap();
        let calls = AtomicUsize::new(0);
        let pump = InputPump::new();
        std::thread::scope(|s| {
            let run = s.spawn(|| {
                pump.run(
                    rx.as_fd(),
                    &uart,
                    || false,
                    || {
                        calls.fetch_add(1, Ordering::SeqCst);
                    },
                )
            });
            tx.write_all(b"hello").unwrap();
            wait_for("the bytes", || bus::lock(&uart).rx_space() == 27);
            assert!(line.level(), "receive timeout raised, unmasked");
            assert!(calls.load(Ordering::SeqCst) >= 1);
            drop(tx);
            assert!(matches!(run.join().unwrap(), InputEnd::Closed));
        });
        let mut got = Vec::new();
        drain(&uart, &mut got);
        assert_eq!(got, b"hello");
        assert!(!line.level());
    }

    // More input than the FIFO holds, read slowly by the guest: nothing is
    // lost, nothing overruns, the order holds.
    #[test]
    fn input_the_fifo_cannot_hold_is_kept_not_lost() {
        let (uart, _) = uart();
        let (mut tx, rx) = UnixStream::pair().unwrap();
        let input: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
        let pump = InputPump::new();
        let mut got = Vec::new();
        std::thread::scope(|s| {
            let run = s.spawn(|| pump.run(rx.as_fd(), &uart, || false, || {}));
            let writer = s.spawn(|| {
                tx.write_all(&input).unwrap();
                tx
            });
            wait_for("every byte", || {
                drain(&uart, &mut got);
                std::thread::sleep(Duration::from_millis(1));
                got.len() >= input.len()
            });
            drop(writer.join().unwrap());
            assert!(matches!(run.join().unwrap(), InputEnd::Closed));
        });
        assert_eq!(got, input);
        assert_eq!(read32(&uart, RSR), 0, "no overrun");
    }

    // A receiver the guest has not enabled takes nothing; the input is held
    // until it is.
    #[test]
    fn input_waits_for_the_receiver_to_be_enabled() {
        let (uart, _) = uart();
        bus::lock(&uart).write(0, 0x030, &0x101u32.to_le_bytes()); // no RXE
        let (mut tx, rx) = UnixStream::pair().unwrap();
        let pump = InputPump::new();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let run =
                s.spawn(|| pump.run(rx.as_fd(), &uart, || stop.load(Ordering::SeqCst), || {}));
            tx.write_all(b"held").unwrap();
            std::thread::sleep(Duration::from_millis(30));
            assert_ne!(read32(&uart, FR) & FR_RXFE, 0, "nothing received yet");
            bus::lock(&uart).write(0, 0x030, &0x301u32.to_le_bytes());
            wait_for("the held bytes", || bus::lock(&uart).rx_space() == 28);
            stop.store(true, Ordering::SeqCst);
            assert!(matches!(run.join().unwrap(), InputEnd::Stopped));
        });
        let mut got = Vec::new();
        drain(&uart, &mut got);
        assert_eq!(got, b"held");
    }

    // The stop condition ends a pump whose input stays open and silent,
    // within about one poll period; interrupt() reaches it while it runs.
    #[test]
    fn the_stop_condition_ends_an_idle_pump() {
        extern "C" fn nothing(_: libc::c_int) {}
        // A handler without SA_RESTART, as the VMM's kick signal has.
        let signal = libc::SIGRTMIN() + 3;
        // SAFETY: installs a handler that does nothing.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = nothing as extern "C" fn(libc::c_int) as libc::sighandler_t;
            assert_eq!(libc::sigaction(signal, &act, std::ptr::null_mut()), 0);
        }
        let (uart, _) = uart();
        let (_tx, rx) = UnixStream::pair().unwrap();
        let pump = InputPump::new();
        assert!(!pump.interrupt(signal), "nobody to interrupt yet");
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let run =
                s.spawn(|| pump.run(rx.as_fd(), &uart, || stop.load(Ordering::SeqCst), || {}));
            wait_for("the pump to start", || pump.slot().is_some());
            assert!(pump.interrupt(signal));
            stop.store(true, Ordering::SeqCst);
            let asked = Instant::now();
            pump.interrupt(signal);
            assert!(matches!(run.join().unwrap(), InputEnd::Stopped));
            assert!(asked.elapsed() < POLL_IDLE * 10);
        });
        assert!(!pump.interrupt(signal), "withdrawn once run returned");
    }

    // /dev/null as standard input: the first read is end of file.
    #[test]
    fn dev_null_is_no_input() {
        let (uart, _) = uart();
        let null = std::fs::File::open("/dev/null").unwrap();
        let end = InputPump::new().run(null.as_fd(), &uart, || false, || {});
        assert!(matches!(end, InputEnd::Closed));
        assert_ne!(read32(&uart, FR) & FR_RXFE, 0);
    }

    // A partial line the guest printed is flushed while the pump waits.
    #[test]
    fn the_pump_flushes_partial_output_lines() {
        #[derive(Clone, Default)]
        struct Out(Arc<Mutex<(Vec<u8>, usize)>>);
        impl Write for Out {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().0.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                let mut o = self.0.lock().unwrap();
                o.1 = o.0.len();
                Ok(())
            }
        }
        let out = Out::default();
        let uart = Mutex::new(Pl011::new(
            Box::new(out.clone()),
            Box::new(crate::devices::irq_line::Unconnected),
        ));
        for &c in b"login: " {
            bus::lock(&uart).write(0, DR, &u32::from(c).to_le_bytes());
        }
        assert_eq!(out.0.lock().unwrap().1, 0);
        let (_tx, rx) = UnixStream::pair().unwrap();
        let stop = AtomicBool::new(false);
        let pump = InputPump::new();
        std::thread::scope(|s| {
            let run =
                s.spawn(|| pump.run(rx.as_fd(), &uart, || stop.load(Ordering::SeqCst), || {}));
            wait_for("the flush", || out.0.lock().unwrap().1 == 7);
            stop.store(true, Ordering::SeqCst);
            run.join().unwrap();
        });
    }
}
