//! The VMM's standard input as the guest's serial input.
//!
//! Two pieces, which `kvm::run` uses together for the length of a run:
//!
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
use std::sync::{Mutex, MutexGuard, Once, PoisonError, TryLockError};
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

/// The terminal settings to put back.
struct Saved {
    fd: RawFd,
    termios: libc::termios,
}

/// What [`RawTerminal`] changed, for its drop and for the panic hook.
static SAVED: Mutex<Option<Saved>> = Mutex::new(None);
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
        Some(Self {
            _restore_on_drop: (),
        })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(s) = saved().take() {
            put_back(s);
        }
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
