//! `print!` and `println!` on the PL011 UART.
//!
//! Each call makes a new driver handle (it is only an address), so there is
//! no global UART object and no lock. Only the main code prints while the
//! timer runs; the IRQ handler stays off the UART so its MMIO exits are not
//! part of what it measures.

use core::fmt::{self, Write};

use crate::board;

/// Writes formatted text to the UART; used by the macros.
pub fn print(args: fmt::Arguments<'_>) {
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
