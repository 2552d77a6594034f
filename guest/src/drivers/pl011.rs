//! PL011 UART, transmit side only (Arm PrimeCell UART (PL011) Technical
//! Reference Manual, DDI 0183, chapter 3 "Programmers Model").
//!
//! Sending a byte is: wait while the transmit FIFO is full (`UARTFR.TXFF`),
//! then write the byte to the data register (`UARTDR`). Under a VMM every
//! access is an MMIO exit, and the model's FIFO is never full, so the wait
//! costs one read per byte.

use core::fmt;

use crate::drivers::mmio::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{
    interfaces::{Readable, Writeable},
    register_bitfields, register_structs,
};

register_bitfields! {
    u32,

    /// Data Register (3.3.1).
    pub DR [
        /// The byte to send (write) or the byte received (read).
        DATA OFFSET(0) NUMBITS(8) []
    ],

    /// Flag Register, read-only (3.3.3).
    pub FR [
        /// Transmit FIFO empty.
        TXFE OFFSET(7) NUMBITS(1) [],
        /// Transmit FIFO full: do not write `DR` now.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// The UART is sending data.
        BUSY OFFSET(3) NUMBITS(1) []
    ],

    /// Line Control Register (3.3.7).
    pub LCR_H [
        /// Word length: 0b11 is 8 bits.
        WLEN OFFSET(5) NUMBITS(2) [
            EightBit = 0b11
        ],
        /// Enable the FIFOs.
        FEN OFFSET(4) NUMBITS(1) []
    ],

    /// Control Register (3.3.8).
    pub CR [
        /// Receive enable.
        RXE OFFSET(9) NUMBITS(1) [],
        /// Transmit enable.
        TXE OFFSET(8) NUMBITS(1) [],
        /// UART enable.
        UARTEN OFFSET(0) NUMBITS(1) []
    ],

    /// Interrupt Clear Register, write-only (3.3.13).
    pub ICR [
        /// Write 1s to clear every interrupt.
        ALL OFFSET(0) NUMBITS(11) []
    ]
}

register_structs! {
    /// The PL011 register frame (DDI 0183, Table 3-1), up to the DMA control
    /// register.
    #[allow(non_snake_case)]
    pub RegisterBlock {
        (0x00 => DR: ReadWrite<u32, DR::Register>),
        (0x04 => RSR_ECR: ReadWrite<u32>),
        (0x08 => _reserved0),
        (0x18 => FR: ReadOnly<u32, FR::Register>),
        (0x1C => _reserved1),
        (0x20 => ILPR: ReadWrite<u32>),
        (0x24 => IBRD: ReadWrite<u32>),
        (0x28 => FBRD: ReadWrite<u32>),
        (0x2C => LCR_H: ReadWrite<u32, LCR_H::Register>),
        (0x30 => CR: ReadWrite<u32, CR::Register>),
        (0x34 => IFLS: ReadWrite<u32>),
        (0x38 => IMSC: ReadWrite<u32>),
        (0x3C => RIS: ReadOnly<u32>),
        (0x40 => MIS: ReadOnly<u32>),
        (0x44 => ICR: WriteOnly<u32, ICR::Register>),
        (0x48 => DMACR: ReadWrite<u32>),
        (0x4C => @END),
    }
}

/// A PL011 UART used for output.
pub struct Pl011 {
    regs: &'static RegisterBlock,
}

impl Pl011 {
    /// A driver for the PL011 whose registers start at `base`.
    ///
    /// # Safety
    ///
    /// - `base` must be the address of a PL011 register frame (or of memory
    ///   standing in for one), 4-byte aligned, present for the rest of the
    ///   program.
    /// - Nothing else may hold a Rust reference to that memory that assumes
    ///   it does not change; several `Pl011`s for the same frame are fine, as
    ///   every access is a single volatile load or store.
    pub unsafe fn new(base: usize) -> Self {
        // SAFETY: the caller promises a live, aligned register frame, and
        // every field of `RegisterBlock` is accessed with volatile operations.
        let regs = unsafe { &*(base as *const RegisterBlock) };
        Self { regs }
    }

    /// Turns the UART on for 8-bit transmission with the FIFOs enabled.
    ///
    /// The TRM's sequence is: disable, reprogram, enable (3.3.8). A real UART
    /// would also need its baud-rate divisors (`IBRD`/`FBRD`) and a wait for
    /// `BUSY` to clear so no character in flight is cut; an emulated one
    /// ignores the baud rate, and nothing has been sent yet.
    pub fn init(&self) {
        self.regs.CR.set(0);
        self.regs.ICR.write(ICR::ALL::SET);
        self.regs
            .LCR_H
            .write(LCR_H::WLEN::EightBit + LCR_H::FEN::SET);
        self.regs.CR.write(CR::UARTEN::SET + CR::TXE::SET);
    }

    /// Sends one byte, waiting for room in the transmit FIFO.
    pub fn write_byte(&self, byte: u8) {
        while self.regs.FR.is_set(FR::TXFF) {
            core::hint::spin_loop();
        }
        self.regs.DR.write(DR::DATA.val(byte.into()));
    }
}

impl fmt::Write for Pl011 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(|byte| self.write_byte(byte));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use core::fmt::Write;

    use super::*;
    use crate::fake_mmio::FakeMmio;

    #[test]
    fn register_offsets_follow_the_trm() {
        use core::mem::offset_of;
        assert_eq!(offset_of!(RegisterBlock, DR), 0x00);
        assert_eq!(offset_of!(RegisterBlock, FR), 0x18);
        assert_eq!(offset_of!(RegisterBlock, LCR_H), 0x2C);
        assert_eq!(offset_of!(RegisterBlock, CR), 0x30);
        assert_eq!(offset_of!(RegisterBlock, ICR), 0x44);
    }

    #[test]
    fn init_enables_transmission() {
        let fake = FakeMmio::<32>::new();
        // SAFETY: 128 bytes of leaked, aligned host memory.
        let uart = unsafe { Pl011::new(fake.base()) };
        uart.init();
        assert_eq!(fake.word(0x30), (1 << 8) | 1, "CR: TXE | UARTEN");
        assert_eq!(
            fake.word(0x2C),
            (0b11 << 5) | (1 << 4),
            "LCR_H: 8 bits, FIFOs"
        );
        assert_eq!(fake.word(0x44), 0x7FF, "ICR: every interrupt cleared");
    }

    #[test]
    fn writes_go_to_the_data_register() {
        let fake = FakeMmio::<32>::new();
        // SAFETY: 128 bytes of leaked, aligned host memory; FR reads 0, so
        // the transmit FIFO is never full.
        let mut uart = unsafe { Pl011::new(fake.base()) };
        write!(uart, "ok {}", 7).unwrap();
        assert_eq!(fake.word(0x00), u32::from(b'7'), "last byte sent");
    }
}
