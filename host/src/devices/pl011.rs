//! A PL011 UART: what the guest prints reaches the VMM's standard output,
//! and what the VMM is given (its standard input, see `crate::console`)
//! reaches the guest through the receive FIFO.
//!
//! Register offsets and reset values follow the ARM PrimeCell UART (PL011)
//! Technical Reference Manual (ARM DDI 0183G), section 3.2, "Summary of
//! registers". The model never blocks the guest: the transmit FIFO is always
//! empty (UARTFR.TXFE = 1, TXFF = 0, BUSY = 0), so a driver that polls the
//! flag register before each byte needs one extra exit per byte at most.
//!
//! **Interrupt.** The UART's combined interrupt output (UARTINTR, DDI 0183G
//! 3.4 "Interrupts") drives an [`IrqLine`]; on QEMU's `virt` layout, which
//! this VMM follows, it is SPI 1 (interrupt id 33,
//! `uirq_abi::layout::UART_SPI`). The output is UARTMIS = UARTRIS AND
//! UARTIMSC, non-zero meaning high, and the line is driven only when that
//! changes. Sources modelled:
//!
//! - transmit (UARTTXINTR, RIS bit 5): each byte leaves the (instant)
//!   transmitter at once, so after every data register write TXRIS is set,
//!   as in QEMU's model; UARTICR clears it;
//! - receive (UARTRXINTR, bit 4), receive timeout (UARTRTINTR, bit 6) and
//!   overrun (part of UARTEINTR, bit 10), below.
//!
//! # The receive path
//!
//! **What Linux's driver does** (drivers/tty/serial/amba-pl011.c, without
//! DMA). At port start-up `pl011_hwinit` clears the receive and error
//! interrupts (UARTICR), `pl011_startup` sets UARTIFLS (RX and TX at 1/2)
//! and UARTCR = UARTEN | TXE | RXE, UARTLCR_H gets FEN from `set_termios`,
//! and `pl011_enable_interrupts` writes RTIS | RXIS to UARTICR, reads
//! UARTDR until UARTFR.RXFE (at most twice the FIFO size: anything that
//! arrived before the port was opened is thrown away, as on hardware) and
//! unmasks RTIM | RXIM in UARTIMSC. The handler `pl011_int` loops while
//! UARTRIS AND its mask is non-zero: it writes UARTICR for the bits it
//! handles *except* TXIS, RTIS and RXIS, and for RTIS or RXIS calls
//! `pl011_fifo_to_tty`, which reads UARTFR and UARTDR alternately until
//! RXFE (at most 256 bytes), taking the error bits (11 to 8) of each UARTDR
//! value. So Linux never clears the receive interrupts through UARTICR in
//! normal operation: it relies on them dropping as it drains the FIFO.
//! Linux takes the FIFO size from the revision in UARTPeriphID2 (r1p5 here:
//! 32 entries, as modelled). Throttling masks RXIM | RTIM and leaves the
//! data in the FIFO; unthrottling unmasks them and the pending bits bring
//! the interrupt back.
//!
//! **FIFO** (DDI 0183G 2.4.3 "UART operation", 3.3.7 UARTLCR_H.FEN). With
//! UARTLCR_H.FEN set the receive FIFO has 32 entries; with FEN clear it is
//! a 1-deep holding register. Each entry is 12 bits: the character in bits
//! 7 to 0 and its error bits FE, PE, BE, OE in bits 11 to 8 (3.3.1
//! UARTDR). The receiver only takes characters while UARTCR.UARTEN and
//! UARTCR.RXE are both set (3.3.8 UARTCR). Changing FEN empties the receive
//! FIFO, as QEMU's model does, and the receive interrupts drop with it. The frame format (word length, parity,
//! stop bits, loopback) is not applied: characters arrive as 8-bit bytes
//! and the error bits FE, PE and BE are never set.
//!
//! **Flow control and overrun.** [`Pl011::receive`] is the input side with
//! flow control, as a sender held off by a full FIFO would be: it accepts
//! what fits ([`Pl011::rx_space`]) and returns how many bytes it took; the
//! caller keeps the rest and offers it again once the guest has read, so a
//! guest that is slow to read loses nothing and no overrun is raised.
//! [`Pl011::receive_unpaced`] is a line without flow control: a character
//! that finds the FIFO full is lost and sets the overrun error (2.4.3
//! "Overrun bit"): UARTRSR.OE and UARTRIS.OEIS at once, and the state is
//! copied into bit 11 (OE) of the next character that enters the FIFO.
//! Reading UARTRSR gives OE and the FE/PE/BE bits of the character last
//! read from UARTDR (3.3.2); any write to UARTECR (the same offset) clears
//! them.
//!
//! **Receive interrupts** (3.4.2 UARTRXINTR, 3.4.4 UARTRTINTR).
//!
//! - RXRIS is set when characters arrive and leave the FIFO holding at
//!   least the trigger level UARTIFLS.RXIFLSEL (3.3.9): 1/8, 1/4, 1/2, 3/4
//!   or 7/8 of 32 (4, 8, 16, 24, 28; the reserved encodings count as 1/2)
//!   with FIFOs enabled, any character with the holding register. It is
//!   cleared when a UARTDR read leaves fewer than the trigger level, or by
//!   UARTICR. The TRM asserts it when the FIFO *reaches* the level; setting
//!   it on every arrival at or above the level is a superset that can never
//!   leave it stuck off (the case `pl011_enable_interrupts` works around).
//! - RTRIS is asserted by the hardware when the FIFO is not empty and no
//!   character arrived for 32 bit periods. This model has no bit clock and
//!   its input arrives in bursts (whatever one read of standard input
//!   returned), so the timeout is treated as immediate: RTRIS is set as
//!   soon as a burst has been put in the FIFO. That is what makes input
//!   below the trigger level visible at once, where a real UART would wait
//!   32 bit periods. It is cleared when a UARTDR read empties the FIFO, or
//!   by UARTICR.
//! - A bit cleared through UARTICR stays clear until new characters
//!   arrive, even with data still in the FIFO: on the hardware both are
//!   events (a level reached, a timeout expired), not levels re-evaluated
//!   at every access. Linux does not depend on either choice (it drains
//!   until RXFE), but this one means a driver that polls the FIFO after
//!   clearing the interrupts (Linux's `CONFIG_CONSOLE_POLL` path, for kgdb)
//!   is not interrupted again for data it already knows about. QEMU's model
//!   differs here: it raises RXRIS when the FIFO goes from empty to one
//!   character (it ignores the trigger level), drops it when the FIFO
//!   empties, and never sets RTRIS; Linux works with both.

use std::collections::VecDeque;
use std::io::Write;

use crate::bus::MmioDevice;
use crate::devices::irq_line::IrqLine;

/// Data Register: a write transmits the low byte; a read takes the oldest
/// character from the receive FIFO.
const DR: u64 = 0x000;
/// Receive Status Register (read) / Error Clear Register (write).
const RSR: u64 = 0x004;
/// Flag Register (read-only).
const FR: u64 = 0x018;
/// Integer Baud Rate Register.
const IBRD: u64 = 0x024;
/// Fractional Baud Rate Register.
const FBRD: u64 = 0x028;
/// Line Control Register.
const LCR_H: u64 = 0x02C;
/// Control Register.
const CR: u64 = 0x030;
/// Interrupt FIFO Level Select Register.
const IFLS: u64 = 0x034;
/// Interrupt Mask Set/Clear Register.
const IMSC: u64 = 0x038;
/// Raw Interrupt Status Register (read-only).
const RIS: u64 = 0x03C;
/// Masked Interrupt Status Register (read-only).
const MIS: u64 = 0x040;
/// Interrupt Clear Register (write-only).
const ICR: u64 = 0x044;
/// DMA Control Register.
const DMACR: u64 = 0x048;
/// First of the peripheral and PrimeCell identification registers.
const ID_BASE: u64 = 0xFE0;

/// The name of the register at `offset` (PL011 TRM, DDI 0183G, 3.2), for
/// traces and logs; "UART+0x..." where there is none.
pub fn register_name(offset: u64) -> String {
    let name = match offset {
        DR => "UARTDR",
        RSR => "UARTRSR",
        FR => "UARTFR",
        IBRD => "UARTIBRD",
        FBRD => "UARTFBRD",
        LCR_H => "UARTLCR_H",
        CR => "UARTCR",
        IFLS => "UARTIFLS",
        IMSC => "UARTIMSC",
        RIS => "UARTRIS",
        MIS => "UARTMIS",
        ICR => "UARTICR",
        DMACR => "UARTDMACR",
        ID_BASE..=0xFFF => "UARTPeriphID/PCellID",
        _ => return format!("UART+{offset:#x}"),
    };
    name.to_string()
}

/// UARTFR.BUSY: the transmitter is sending (never, here).
#[cfg(test)]
const FR_BUSY: u32 = 1 << 3;
/// UARTFR.RXFE: receive FIFO (or holding register) empty.
const FR_RXFE: u32 = 1 << 4;
/// UARTFR.TXFF: transmit FIFO full (never, here).
#[cfg(test)]
const FR_TXFF: u32 = 1 << 5;
/// UARTFR.RXFF: receive FIFO (or holding register) full.
const FR_RXFF: u32 = 1 << 6;
/// UARTFR.TXFE: transmit FIFO empty.
const FR_TXFE: u32 = 1 << 7;
/// UARTRIS.RXRIS (and the same bit of IMSC, MIS and ICR): receive
/// interrupt (DDI 0183G 3.3.10-3.3.13, UARTIMSC to UARTICR).
const INT_RX: u32 = 1 << 4;
/// UARTRIS.TXRIS (and the same bit of IMSC, MIS and ICR): transmit
/// interrupt.
const INT_TX: u32 = 1 << 5;
/// UARTRIS.RTRIS: receive timeout interrupt.
const INT_RT: u32 = 1 << 6;
/// UARTRIS.OERIS: overrun error interrupt.
const INT_OE: u32 = 1 << 10;
/// The interrupt bits of UARTRIS/MIS/IMSC/ICR: bits [10:0].
const INT_ALL: u32 = 0x7FF;

/// UARTLCR_H.FEN: FIFOs enabled (DDI 0183G 3.3.7).
const LCR_H_FEN: u32 = 1 << 4;
/// UARTCR.UARTEN: UART enabled (DDI 0183G 3.3.8).
const CR_UARTEN: u32 = 1 << 0;
/// UARTCR.RXE: receive section enabled.
const CR_RXE: u32 = 1 << 9;
/// UARTRSR.OE: overrun error (DDI 0183G 3.3.2); FE, PE and BE are bits
/// [2:0].
const RSR_OE: u32 = 1 << 3;
/// UARTDR.OE, bit 11 of a receive FIFO entry (DDI 0183G 3.3.1).
const DR_OE: u16 = 1 << 11;

/// Depth of the receive FIFO with FIFOs enabled (r1p5: 32 entries).
pub const RX_FIFO_DEPTH: usize = 32;

/// UARTPeriphID0-3 then UARTPCellID0-3 (DDI 0183G, 3.3.15 and 3.3.16): part
/// number 0x011, designer ARM (0x41), revision r1p5, and the PrimeCell id.
const ID_BYTES: [u8; 8] = [0x11, 0x10, 0x34, 0x00, 0x0D, 0xF0, 0x05, 0xB1];

/// The PL011 model. Transmitted bytes go to `out`, flushed at each newline
/// so console lines appear as the guest prints them (and on
/// [`Pl011::flush_output`]).
pub struct Pl011 {
    out: Box<dyn Write + Send>,
    /// Bytes were written to `out` since it was last flushed.
    unflushed: bool,
    irq: Box<dyn IrqLine>,
    /// The level `irq` was last driven to.
    irq_level: bool,
    /// UARTRIS: raw interrupt status.
    ris: u32,
    cr: u32,
    lcr_h: u32,
    ibrd: u32,
    fbrd: u32,
    ifls: u32,
    imsc: u32,
    dmacr: u32,
    /// The receive FIFO, oldest first: character in [7:0], error bits in
    /// [11:8]. Never longer than [`Pl011::rx_depth`].
    rx_fifo: VecDeque<u16>,
    /// UARTRSR: OE in bit 3, and FE, PE, BE of the character last read.
    rsr: u32,
    /// An overrun happened and has not yet been copied into a FIFO entry
    /// (DDI 0183G 2.4.3, "Overrun bit").
    overrun_pending: bool,
}

impl Pl011 {
    /// A UART in its reset state (DDI 0183G, 3.2: UARTCR resets to 0x300,
    /// UARTIFLS to 0x12, the receive FIFO is empty) that writes what the
    /// guest sends to `out` and drives `irq` with its interrupt output.
    pub fn new(out: Box<dyn Write + Send>, irq: Box<dyn IrqLine>) -> Self {
        Self {
            out,
            unflushed: false,
            irq,
            irq_level: false,
            ris: 0,
            cr: 0x300,
            lcr_h: 0,
            ibrd: 0,
            fbrd: 0,
            ifls: 0x12,
            imsc: 0,
            dmacr: 0,
            rx_fifo: VecDeque::with_capacity(RX_FIFO_DEPTH),
            rsr: 0,
            overrun_pending: false,
        }
    }

    /// Offers `bytes` to the receiver with flow control: takes as many as
    /// fit in the receive FIFO ([`Pl011::rx_space`]), in order, and returns
    /// how many it took. The caller keeps the rest and offers it again
    /// later (after the guest has read); nothing is lost and no overrun is
    /// raised. Nothing is taken while the receiver is disabled (UARTCR.UARTEN
    /// or RXE clear). Raises the receive interrupts as the module
    /// documentation says and drives the interrupt line if its level
    /// changed.
    pub fn receive(&mut self, bytes: &[u8]) -> usize {
        self.take(bytes, false)
    }

    /// Offers `bytes` as a line without flow control would: what finds the
    /// FIFO full is lost and sets the overrun error (UARTRSR.OE, UARTRIS.OEIS,
    /// and OE on the next character that enters the FIFO; DDI 0183G 2.4.3).
    /// Returns how many were taken. While the receiver is disabled nothing
    /// is received and nothing is flagged.
    pub fn receive_unpaced(&mut self, bytes: &[u8]) -> usize {
        self.take(bytes, true)
    }

    /// How many characters [`Pl011::receive`] would take now: the free
    /// entries of the receive FIFO (or holding register), or 0 while the
    /// receiver is disabled.
    pub fn rx_space(&self) -> usize {
        if self.receiving() {
            self.rx_depth() - self.rx_fifo.len()
        } else {
            0
        }
    }

    /// Flushes what the guest transmitted since the last newline, so that a
    /// partial line (a shell prompt, an echoed character) reaches the
    /// terminal. Does nothing when everything was flushed already.
    pub fn flush_output(&mut self) {
        if std::mem::take(&mut self.unflushed) {
            let _ = self.out.flush();
        }
    }

    /// The receiver takes characters (DDI 0183G 3.3.8: UARTEN and RXE).
    fn receiving(&self) -> bool {
        self.cr & (CR_UARTEN | CR_RXE) == CR_UARTEN | CR_RXE
    }

    /// FIFO depth: 32 with UARTLCR_H.FEN, else the 1-deep holding register
    /// (DDI 0183G 2.4.3, "Disabling the FIFOs").
    fn rx_depth(&self) -> usize {
        if self.lcr_h & LCR_H_FEN != 0 {
            RX_FIFO_DEPTH
        } else {
            1
        }
    }

    /// The receive interrupt's trigger level in characters (DDI 0183G
    /// 3.3.9, UARTIFLS.RXIFLSEL in bits [5:3]).
    fn rx_trigger(&self) -> usize {
        if self.lcr_h & LCR_H_FEN == 0 {
            return 1;
        }
        match (self.ifls >> 3) & 0x7 {
            0b000 => RX_FIFO_DEPTH / 8,
            0b001 => RX_FIFO_DEPTH / 4,
            0b011 => RX_FIFO_DEPTH * 3 / 4,
            0b100 => RX_FIFO_DEPTH * 7 / 8,
            // b010, and the reserved b101-b111 taken as the reset value.
            _ => RX_FIFO_DEPTH / 2,
        }
    }

    fn take(&mut self, bytes: &[u8], lossy: bool) -> usize {
        if !self.receiving() {
            return 0;
        }
        let depth = self.rx_depth();
        let mut taken = 0;
        for &byte in bytes {
            if self.rx_fifo.len() >= depth {
                if !lossy {
                    break;
                }
                // DDI 0183G 2.4.3, "Overrun bit": the character in the
                // shift register is overwritten, the FIFO keeps its
                // contents; UARTRSR.OE is set at once (3.3.2).
                self.rsr |= RSR_OE;
                self.ris |= INT_OE;
                self.overrun_pending = true;
                continue;
            }
            let mut entry = u16::from(byte);
            if std::mem::take(&mut self.overrun_pending) {
                entry |= DR_OE;
            }
            self.rx_fifo.push_back(entry);
            taken += 1;
        }
        if taken > 0 {
            // The burst is in; no bit clock, so the receive timeout is
            // immediate (module documentation).
            self.ris |= INT_RT;
            if self.rx_fifo.len() >= self.rx_trigger() {
                self.ris |= INT_RX;
            }
        }
        self.update_irq();
        taken
    }

    /// A UARTDR read: the oldest character and its error bits, or 0 when
    /// the FIFO is empty. UARTRSR's FE, PE and BE follow the character read
    /// (DDI 0183G 3.3.2); the receive interrupts drop as the FIFO drains
    /// (3.4.2, 3.4.4).
    fn pop(&mut self) -> u32 {
        let Some(entry) = self.rx_fifo.pop_front() else {
            return 0;
        };
        self.rsr = (self.rsr & RSR_OE) | (u32::from(entry >> 8) & 0x7);
        let left = self.rx_fifo.len();
        if left < self.rx_trigger() {
            self.ris &= !INT_RX;
        }
        if left == 0 {
            self.ris &= !INT_RT;
        }
        u32::from(entry)
    }

    /// UARTFR (DDI 0183G 3.3.3): TXFE always, TXFF and BUSY never (the
    /// transmitter is instant), RXFE and RXFF from the receive FIFO.
    fn flags(&self) -> u32 {
        let mut fr = FR_TXFE;
        if self.rx_fifo.is_empty() {
            fr |= FR_RXFE;
        }
        if self.rx_fifo.len() >= self.rx_depth() {
            fr |= FR_RXFF;
        }
        fr
    }

    fn transmit(&mut self, byte: u8) {
        // The console is best effort: a closed stdout must not stop the guest.
        let _ = self.out.write_all(&[byte]);
        if byte == b'\n' {
            let _ = self.out.flush();
            self.unflushed = false;
        } else {
            self.unflushed = true;
        }
        self.ris |= INT_TX;
    }

    /// Drives the interrupt output from UARTMIS, if it changed.
    fn update_irq(&mut self) {
        let level = self.ris & self.imsc != 0;
        if level != self.irq_level {
            self.irq_level = level;
            self.irq.set_level(level);
        }
    }

    fn read_reg(&mut self, offset: u64) -> u32 {
        match offset {
            DR => self.pop(),
            RSR => self.rsr,
            FR => self.flags(),
            IBRD => self.ibrd,
            FBRD => self.fbrd,
            LCR_H => self.lcr_h,
            CR => self.cr,
            IFLS => self.ifls,
            IMSC => self.imsc,
            DMACR => self.dmacr,
            RIS => self.ris,
            MIS => self.ris & self.imsc,
            o if (ID_BASE..ID_BASE + 0x20).contains(&o) && o % 4 == 0 => {
                u32::from(ID_BYTES[((o - ID_BASE) / 4) as usize])
            }
            _ => {
                crate::limited!(debug, offset, "PL011: read of unimplemented register");
                0
            }
        }
    }

    fn write_reg(&mut self, offset: u64, value: u32) {
        match offset {
            DR => self.transmit(value as u8),
            IBRD => self.ibrd = value & 0xFFFF,
            FBRD => self.fbrd = value & 0x3F,
            LCR_H => {
                let value = value & 0xFF;
                if (self.lcr_h ^ value) & LCR_H_FEN != 0 {
                    // The FIFO changes depth: start empty, as QEMU does.
                    self.rx_fifo.clear();
                    self.overrun_pending = false;
                    self.ris &= !(INT_RX | INT_RT);
                }
                self.lcr_h = value;
            }
            CR => self.cr = value & 0xFF87,
            IFLS => self.ifls = value & 0x3F,
            IMSC => self.imsc = value & 0x7FF,
            DMACR => self.dmacr = value & 0x7,
            ICR => self.ris &= !(value & INT_ALL),
            // UARTECR: any value clears the four error bits (3.3.2).
            RSR => self.rsr = 0,
            _ => crate::limited!(
                debug,
                offset,
                value,
                "PL011: write to read-only or unimplemented register"
            ),
        }
    }
}

impl MmioDevice for Pl011 {
    fn read(&mut self, _vcpu: usize, offset: u64, data: &mut [u8]) {
        // Registers are 32 bits wide; a narrower read returns the low bytes,
        // as on the real bus (a 16-bit UARTDR read still pops a character),
        // and an unaligned one reads as zero.
        let value = if offset % 4 == 0 {
            self.read_reg(offset)
        } else {
            0
        };
        let bytes = u64::from(value).to_le_bytes();
        data.copy_from_slice(&bytes[..data.len().min(8)]);
        self.update_irq();
    }

    fn write(&mut self, _vcpu: usize, offset: u64, data: &[u8]) {
        if offset % 4 != 0 || data.is_empty() {
            crate::limited!(debug, offset, "PL011: unaligned write ignored");
            return;
        }
        let mut bytes = [0u8; 8];
        let n = data.len().min(8);
        bytes[..n].copy_from_slice(&data[..n]);
        self.write_reg(offset, u64::from_le_bytes(bytes) as u32);
        self.update_irq();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::irq_line::{Probed, Unconnected};
    use std::sync::{Arc, Mutex};

    /// A `Write` whose bytes the test can read back, with how many of them
    /// had been flushed.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>, Arc<Mutex<usize>>);

    impl Sink {
        fn flushed(&self) -> usize {
            *self.1.lock().unwrap()
        }
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            *self.1.lock().unwrap() = self.0.lock().unwrap().len();
            Ok(())
        }
    }

    fn uart() -> (Pl011, Sink) {
        let sink = Sink::default();
        (
            Pl011::new(Box::new(sink.clone()), Box::new(Unconnected)),
            sink,
        )
    }

    fn write32(u: &mut Pl011, offset: u64, value: u32) {
        u.write(0, offset, &value.to_le_bytes());
    }

    /// UARTCR as Linux's `pl011_startup` leaves it: UARTEN | TXE | RXE.
    const CR_ON: u32 = CR_UARTEN | (1 << 8) | CR_RXE;

    /// A UART with its receiver enabled, FIFOs on or off, the trigger level
    /// at reset (1/2), and its line probed.
    fn receiver(fifo: bool) -> (Pl011, Probed) {
        let line = Probed::default();
        let mut u = Pl011::new(Box::new(Sink::default()), Box::new(line.clone()));
        write32(&mut u, CR, CR_ON);
        write32(&mut u, LCR_H, 0x60 | if fifo { LCR_H_FEN } else { 0 });
        (u, line)
    }

    /// Every character left in the FIFO, as a driver that reads UARTDR until
    /// UARTFR.RXFE would get them (error bits included).
    fn drain(u: &mut Pl011) -> Vec<u32> {
        let mut got = Vec::new();
        while read32(u, FR) & FR_RXFE == 0 {
            got.push(read32(u, DR));
            assert!(got.len() <= RX_FIFO_DEPTH, "the FIFO never empties");
        }
        got
    }

    // DDI 0183G 3.3.10-3.3.13 and 3.4: a transmitted byte sets TXRIS; the
    // output is RIS AND IMSC; ICR clears. The wire follows UARTMIS.
    #[test]
    fn the_transmit_interrupt_drives_the_line_through_the_mask() {
        let line = Probed::default();
        let mut u = Pl011::new(Box::new(Sink::default()), Box::new(line.clone()));
        assert_eq!(read32(&mut u, RIS), 0, "nothing raised at reset");
        write32(&mut u, DR, u32::from(b'x'));
        assert_eq!(read32(&mut u, RIS), INT_TX);
        assert_eq!(read32(&mut u, MIS), 0);
        assert!(!line.level(), "masked: the wire stays low");
        write32(&mut u, IMSC, INT_TX);
        assert_eq!(read32(&mut u, MIS), INT_TX);
        assert!(line.level(), "unmasking a raised interrupt drives the wire");
        write32(&mut u, ICR, INT_TX);
        assert_eq!(read32(&mut u, RIS), 0);
        assert!(!line.level(), "clearing it lowers the wire");
        write32(&mut u, DR, u32::from(b'y'));
        assert!(line.level());
        write32(&mut u, IMSC, 0);
        assert!(!line.level(), "masking lowers it too");
    }

    fn read32(u: &mut Pl011, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        u.read(0, offset, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn data_register_writes_reach_the_output() {
        let (mut u, sink) = uart();
        for &c in b"hi\n" {
            u.write(0, DR, &u32::from(c).to_le_bytes());
        }
        // A byte-wide store to DR transmits too (drivers often use strb).
        u.write(0, DR, b"!");
        assert_eq!(&*sink.0.lock().unwrap(), b"hi\n!");
    }

    // Output is flushed at each newline; flush_output pushes out a partial
    // line (a prompt) and only when there is one.
    #[test]
    fn partial_lines_reach_the_output_on_flush() {
        let (mut u, sink) = uart();
        for &c in b"ok\n# " {
            write32(&mut u, DR, u32::from(c));
        }
        assert_eq!(sink.flushed(), 3, "flushed at the newline only");
        u.flush_output();
        assert_eq!(sink.flushed(), 5, "the prompt is out");
        *sink.1.lock().unwrap() = 0;
        u.flush_output();
        assert_eq!(sink.flushed(), 0, "nothing new: no flush");
    }

    #[test]
    fn flag_register_says_tx_empty_and_never_full() {
        let (mut u, _) = uart();
        let fr = read32(&mut u, FR);
        assert_eq!(fr & FR_TXFE, FR_TXFE);
        assert_eq!(fr & FR_TXFF, 0, "TXFF must be clear or the guest spins");
        assert_eq!(fr & FR_BUSY, 0, "never busy");
        assert_eq!(fr & FR_RXFE, FR_RXFE);
        assert_eq!(fr & FR_RXFF, 0);
    }

    #[test]
    fn control_registers_read_back_and_reset_values_hold() {
        let (mut u, _) = uart();
        assert_eq!(read32(&mut u, CR), 0x300);
        assert_eq!(read32(&mut u, IFLS), 0x12);
        assert_eq!(read32(&mut u, RSR), 0);
        u.write(0, CR, &0x301u32.to_le_bytes());
        u.write(0, IBRD, &0x1_0027u32.to_le_bytes());
        u.write(0, LCR_H, &0x70u32.to_le_bytes());
        assert_eq!(read32(&mut u, CR), 0x301);
        assert_eq!(read32(&mut u, IBRD), 0x27, "IBRD is 16 bits wide");
        assert_eq!(read32(&mut u, LCR_H), 0x70);
    }

    #[test]
    fn identification_registers_name_a_pl011() {
        let (mut u, _) = uart();
        let ids: Vec<u32> = (0..8).map(|i| read32(&mut u, ID_BASE + 4 * i)).collect();
        assert_eq!(ids, [0x11, 0x10, 0x34, 0x00, 0x0D, 0xF0, 0x05, 0xB1]);
    }

    #[test]
    fn odd_accesses_are_harmless() {
        let (mut u, sink) = uart();
        let mut b = [0xFFu8; 8];
        u.read(0, 0x3, &mut b);
        assert_eq!(b, [0; 8]);
        u.write(0, 0x1, b"x");
        u.write(0, 0xFFF_FFFF, &[1, 2, 3, 4]);
        u.read(0, u64::MAX - 3, &mut b[..4]);
        assert!(sink.0.lock().unwrap().is_empty());
    }

    // DDI 0183G 2.4.3 and 3.3.7: 32 entries with FEN, a 1-deep holding
    // register without; flow-controlled input takes what fits.
    #[test]
    fn the_receive_fifo_is_32_deep_with_fen_and_1_deep_without() {
        let (mut u, _) = receiver(true);
        assert_eq!(u.rx_space(), 32);
        let input: Vec<u8> = (0..40).collect();
        assert_eq!(u.receive(&input), 32, "the rest is the caller's to keep");
        assert_eq!(u.rx_space(), 0);
        assert_eq!(u.receive(&input[32..]), 0);
        assert_eq!(read32(&mut u, FR) & (FR_RXFF | FR_RXFE), FR_RXFF);
        read32(&mut u, DR);
        assert_eq!(read32(&mut u, FR) & (FR_RXFF | FR_RXFE), 0);
        assert_eq!(u.receive(&input[32..]), 1, "one entry freed, one taken");

        let (mut u, _) = receiver(false);
        assert_eq!(u.rx_space(), 1);
        assert_eq!(u.receive(b"ab"), 1);
        assert_eq!(read32(&mut u, FR) & (FR_RXFF | FR_RXFE), FR_RXFF);
        assert_eq!(read32(&mut u, DR), u32::from(b'a'));
        assert_eq!(read32(&mut u, FR) & (FR_RXFF | FR_RXFE), FR_RXFE);
    }

    // Flow-controlled input never overruns and never loses a byte, however
    // slowly the guest reads.
    #[test]
    fn flow_controlled_input_arrives_whole_and_in_order() {
        let (mut u, _) = receiver(true);
        let input: Vec<u8> = (0..=255).collect();
        let (mut offered, mut got) = (0, Vec::new());
        while got.len() < input.len() {
            offered += u.receive(&input[offered..]);
            // The guest reads a few at a time.
            for _ in 0..5 {
                if read32(&mut u, FR) & FR_RXFE == 0 {
                    got.push(read32(&mut u, DR) as u8);
                }
            }
        }
        assert_eq!(got, input);
        assert_eq!(read32(&mut u, RSR), 0, "no overrun");
        assert_eq!(read32(&mut u, RIS) & INT_OE, 0);
    }

    // DDI 0183G 3.3.8: nothing is received unless UARTEN and RXE are both
    // set (the reset value has RXE but not UARTEN; this project's firmware
    // sets UARTEN and TXE only).
    #[test]
    fn a_disabled_receiver_takes_nothing() {
        let (mut u, _) = uart();
        write32(&mut u, LCR_H, LCR_H_FEN);
        assert_eq!(u.rx_space(), 0);
        assert_eq!(u.receive(b"abc"), 0);
        assert_eq!(u.receive_unpaced(b"abc"), 0);
        write32(&mut u, CR, CR_UARTEN | (1 << 8));
        assert_eq!(u.receive(b"abc"), 0);
        assert_eq!(read32(&mut u, RIS), 0, "no interrupt, no overrun");
        assert_eq!(read32(&mut u, RSR), 0);
        assert_ne!(read32(&mut u, FR) & FR_RXFE, 0);
        write32(&mut u, CR, CR_ON);
        assert_eq!(u.receive(b"abc"), 3);
    }

    // DDI 0183G 3.3.1: a UARTDR read takes the oldest character, error bits
    // [11:8] clear; an empty FIFO reads as 0 and changes nothing.
    #[test]
    fn data_register_reads_pop_in_order() {
        let (mut u, _) = receiver(true);
        assert_eq!(u.receive(b"abc"), 3);
        assert_eq!(read32(&mut u, DR), u32::from(b'a'));
        // A 16-bit read (Linux's readw) pops too.
        let mut half = [0u8; 2];
        u.read(0, DR, &mut half);
        assert_eq!(u16::from_le_bytes(half), u16::from(b'b'));
        assert_eq!(drain(&mut u), [u32::from(b'c')]);
        assert_eq!(read32(&mut u, DR), 0);
        assert_eq!(u.rx_space(), 32);
    }

    // DDI 0183G 3.3.9: RXIFLSEL selects 1/8, 1/4, 1/2, 3/4 or 7/8 of the 32
    // entries (reserved encodings: 1/2 here). RXRIS is set once that many
    // are in; a read that leaves fewer clears it.
    #[test]
    fn the_receive_interrupt_follows_the_trigger_level() {
        for (sel, level) in [(0, 4), (1, 8), (2, 16), (3, 24), (4, 28), (5, 16), (7, 16)] {
            let (mut u, _) = receiver(true);
            write32(&mut u, IFLS, (sel << 3) | 0b010);
            let input = vec![b'x'; level];
            assert_eq!(u.receive(&input[..level - 1]), level - 1);
            assert_eq!(read32(&mut u, RIS) & INT_RX, 0, "RXIFLSEL {sel}: below");
            assert_eq!(u.receive(b"y"), 1);
            assert_eq!(read32(&mut u, RIS) & INT_RX, INT_RX, "RXIFLSEL {sel}: at");
            read32(&mut u, DR);
            assert_eq!(
                read32(&mut u, RIS) & INT_RX,
                0,
                "RXIFLSEL {sel}: below again"
            );
            assert_eq!(read32(&mut u, RIS) & INT_RT, INT_RT, "data is left");
        }
        // Without FIFOs any character triggers it, and the read clears it.
        let (mut u, _) = receiver(false);
        write32(&mut u, IFLS, 0b100 << 3);
        u.receive(b"z");
        assert_eq!(read32(&mut u, RIS) & (INT_RX | INT_RT), INT_RX | INT_RT);
        read32(&mut u, DR);
        assert_eq!(read32(&mut u, RIS) & (INT_RX | INT_RT), 0);
    }

    // DDI 0183G 3.4.4: data below the trigger level raises the receive
    // timeout (at once: there is no bit clock); it drops when the FIFO
    // empties, not before.
    #[test]
    fn data_below_the_level_raises_the_timeout_until_the_fifo_is_empty() {
        let (mut u, _) = receiver(true);
        u.receive(b"hi");
        assert_eq!(read32(&mut u, RIS), INT_RT);
        read32(&mut u, DR);
        assert_eq!(read32(&mut u, RIS), INT_RT, "one character left");
        read32(&mut u, DR);
        assert_eq!(read32(&mut u, RIS), 0);
    }

    // UARTICR clears RX and RT; they stay clear while the FIFO still holds
    // data, and new data raises them again. Reads do not re-raise them.
    #[test]
    fn icr_clears_receive_interrupts_until_new_data_arrives() {
        let (mut u, line) = receiver(true);
        write32(&mut u, IMSC, INT_RX | INT_RT);
        u.receive(&[b'x'; 20]);
        assert_eq!(read32(&mut u, MIS), INT_RX | INT_RT);
        assert!(line.level());
        write32(&mut u, ICR, INT_RX | INT_RT);
        assert_eq!(read32(&mut u, RIS), 0);
        assert!(!line.level(), "cleared with 20 characters still in");
        read32(&mut u, DR);
        assert_eq!(read32(&mut u, RIS), 0, "a read does not re-raise");
        u.receive(b"y");
        assert_eq!(read32(&mut u, RIS), INT_RX | INT_RT, "20 in again: both");
        assert!(line.level());
        assert_eq!(drain(&mut u).len(), 20);
        assert!(!line.level());
    }

    // UARTMIS = UARTRIS AND UARTIMSC (3.3.12), for the receive bits too;
    // the wire follows the masked status only.
    #[test]
    fn the_mask_selects_which_receive_interrupts_reach_the_wire() {
        let (mut u, line) = receiver(true);
        u.receive(b"a");
        assert_eq!(read32(&mut u, RIS), INT_RT);
        write32(&mut u, IMSC, INT_RX);
        assert_eq!(read32(&mut u, MIS), 0);
        assert!(!line.level(), "RT is raised but masked");
        write32(&mut u, IMSC, INT_RX | INT_RT);
        assert_eq!(read32(&mut u, MIS), INT_RT);
        assert!(line.level());
        read32(&mut u, DR);
        assert!(!line.level(), "the read emptied the FIFO");
    }

    // DDI 0183G 2.4.3 "Overrun bit", 3.3.1, 3.3.2: a character that finds
    // the FIFO full is lost, sets UARTRSR.OE and UARTRIS.OEIS at once, and
    // OE travels with the next character to enter the FIFO. UARTECR clears
    // UARTRSR, UARTICR the interrupt.
    #[test]
    fn a_full_fifo_without_flow_control_overruns() {
        let (mut u, line) = receiver(false);
        write32(&mut u, IMSC, INT_OE);
        assert_eq!(u.receive_unpaced(b"ab"), 1, "'b' is lost");
        assert_eq!(read32(&mut u, RSR), RSR_OE);
        assert_eq!(read32(&mut u, RIS) & INT_OE, INT_OE);
        assert!(line.level());
        assert_eq!(read32(&mut u, DR), u32::from(b'a'), "the FIFO kept 'a'");
        assert_eq!(u.receive_unpaced(b"c"), 1);
        assert_eq!(
            read32(&mut u, DR),
            u32::from(DR_OE) | u32::from(b'c'),
            "the next character carries OE"
        );
        assert_eq!(read32(&mut u, RSR), RSR_OE, "until UARTECR is written");
        write32(&mut u, RSR, 0x1234);
        assert_eq!(read32(&mut u, RSR), 0);
        assert!(line.level(), "UARTRIS.OEIS is UARTICR's to clear");
        write32(&mut u, ICR, INT_OE);
        assert!(!line.level());
        u.receive_unpaced(b"d");
        assert_eq!(read32(&mut u, DR), u32::from(b'd'), "no OE any more");

        // With FIFOs: the 33rd character overruns.
        let (mut u, _) = receiver(true);
        let input = [b'q'; 34];
        assert_eq!(u.receive_unpaced(&input), 32);
        assert_eq!(read32(&mut u, RSR), RSR_OE);
        // Flow-controlled input never does.
        let (mut u, _) = receiver(true);
        assert_eq!(u.receive(&input), 32);
        assert_eq!(read32(&mut u, RSR), 0);
        assert_eq!(read32(&mut u, RIS) & INT_OE, 0);
    }

    // Changing FEN starts the receive FIFO empty, and the receive
    // interrupts with it.
    #[test]
    fn toggling_fen_empties_the_receive_fifo() {
        let (mut u, line) = receiver(true);
        write32(&mut u, IMSC, INT_RX | INT_RT);
        u.receive(b"abc");
        assert!(line.level());
        write32(&mut u, LCR_H, 0x60);
        assert_ne!(read32(&mut u, FR) & FR_RXFE, 0);
        assert_eq!(read32(&mut u, RIS), 0);
        assert!(!line.level());
        u.receive(b"d");
        write32(&mut u, LCR_H, 0x60);
        assert_eq!(drain(&mut u), [u32::from(b'd')], "same FEN: kept");
    }

    // What Linux's amba-pl011 does, access by access: start-up
    // (pl011_hwinit, pl011_startup, pl011_enable_interrupts) throws away
    // what arrived before, then each interrupt is handled by pl011_int with
    // pl011_fifo_to_tty. Every byte sent after start-up reaches the tty and
    // the line is low once the handler returns.
    #[test]
    fn linux_amba_pl011_receives_everything_sent_after_startup() {
        const RTIS_RXIS: u32 = INT_RT | INT_RX;
        let line = Probed::default();
        let mut u = Pl011::new(Box::new(Sink::default()), Box::new(line.clone()));
        // The console had enabled the UART; input arrived before the port
        // was opened.
        write32(&mut u, CR, CR_ON);
        write32(&mut u, LCR_H, 0x70);
        u.receive(b"early");
        // pl011_hwinit: clear error and receive interrupts, RTIM | RXIM.
        write32(&mut u, ICR, 0x780 | RTIS_RXIS);
        let saved_im = read32(&mut u, IMSC);
        write32(&mut u, IMSC, RTIS_RXIS);
        // pl011_allocate_irq, pl011_startup.
        write32(&mut u, IMSC, saved_im);
        write32(&mut u, IFLS, 0x12);
        write32(&mut u, CR, CR_ON);
        // pl011_enable_interrupts.
        write32(&mut u, ICR, RTIS_RXIS);
        for _ in 0..64 {
            if read32(&mut u, FR) & FR_RXFE != 0 {
                break;
            }
            read32(&mut u, DR);
        }
        write32(&mut u, IMSC, RTIS_RXIS);
        assert!(!line.level(), "what came before start-up is gone");

        let mut tty = Vec::new();
        let handler = |u: &mut Pl011, tty: &mut Vec<u8>| {
            let mut status = read32(u, RIS) & RTIS_RXIS;
            let mut passes = 0;
            while status != 0 {
                write32(u, ICR, status & !(INT_TX | RTIS_RXIS));
                for _ in 0..256 {
                    if read32(u, FR) & FR_RXFE != 0 {
                        break;
                    }
                    let ch = read32(u, DR);
                    assert_eq!(ch & 0xF00, 0, "no error bits");
                    tty.push(ch as u8);
                }
                passes += 1;
                assert!(passes < 256, "the handler never finishes");
                status = read32(u, RIS) & RTIS_RXIS;
            }
        };
        let input = b"ls -l /proc\rexit\r".repeat(5);
        let mut offered = 0;
        while offered < input.len() {
            offered += u.receive(&input[offered..]);
            assert!(line.level(), "data in: the interrupt is up");
            handler(&mut u, &mut tty);
            assert!(!line.level(), "handled: the line is down");
        }
        assert_eq!(tty, input);
    }
}
