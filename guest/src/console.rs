//! `print!` and `println!` on the PL011 UART, one whole line at a time.
//!
//! Each call makes a new driver handle (it is only an address), so there is
//! no global UART object. What is shared is the *right to print*: with
//! several cores printing at once, their characters would interleave on the
//! one UART, so every `print!` holds the console [`lock`] for the whole
//! formatted text, and code that prints several lines that belong together
//! takes the lock around them. A core may take the lock again while it
//! holds it (a check failing inside an IRQ handler that interrupted a
//! `println!` must still be able to say so), and waiting for it is bounded:
//! after [`LOCK_TIMEOUT_US`] a core prints anyway, since interleaved text is
//! better than a firmware that hangs because another core stopped while
//! printing.
//!
//! IRQ handlers stay off the UART (except to report a failure), so its MMIO
//! exits are not part of what they measure.

use core::{
    fmt::{self, Write},
    num::NonZeroU64,
    sync::atomic::{AtomicUsize, Ordering},
};

use uirq_guest::drivers::timer::{us_to_ticks, VirtualTimer};

use crate::{board, smp};

/// How long a core waits for the console before printing regardless.
pub const LOCK_TIMEOUT_US: u64 = 1_000_000;

/// The core holding the console, plus one; 0 when it is free.
static OWNER: AtomicUsize = AtomicUsize::new(0);

/// The console, held until dropped (if this took it: a nested or timed-out
/// `lock` leaves the owner as it was).
pub struct ConsoleGuard {
    held: bool,
}

/// Takes the console for the calling core (see the module docs).
pub fn lock() -> ConsoleGuard {
    let me = smp::core_id() + 1;
    if OWNER.load(Ordering::Relaxed) == me {
        return ConsoleGuard { held: false };
    }
    let timer = VirtualTimer;
    let freq = timer.frequency().unwrap_or(NonZeroU64::MIN);
    let deadline = timer
        .now()
        .saturating_add(us_to_ticks(LOCK_TIMEOUT_US, freq));
    loop {
        // Acquire: what the previous owner printed is done before we print.
        if OWNER
            .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return ConsoleGuard { held: true };
        }
        if timer.now() >= deadline {
            return ConsoleGuard { held: false };
        }
        core::hint::spin_loop();
    }
}

impl Drop for ConsoleGuard {
    fn drop(&mut self) {
        if self.held {
            OWNER.store(0, Ordering::Release);
        }
    }
}

/// Writes formatted text to the UART, holding the console; used by the
/// macros.
pub fn print(args: fmt::Arguments<'_>) {
    let _console = lock();
    // The PL011 driver's `write_str` cannot fail.
    let _ = board::uart().write_fmt(args);
}

/// Prints to the UART.
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

/// Prints a line to the UART (`\n` only, no `\r`).
macro_rules! println {
    () => { print!("\n") };
    ($($arg:tt)*) => { print!("{}\n", format_args!($($arg)*)) };
}
