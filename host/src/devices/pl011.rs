//! A PL011 UART, transmit side: what the guest prints reaches the VMM's
//! standard output.
//!
//! Register offsets and reset values follow the ARM PrimeCell UART (PL011)
//! Technical Reference Manual (ARM DDI 0183G), section 3.2, "Summary of
//! registers". The model never blocks the guest: the transmit FIFO is always
//! empty (UARTFR.TXFE = 1, TXFF = 0), so a driver that polls the flag register
//! before each byte needs one extra exit per byte at most. Nothing is ever
//! received (UARTFR.RXFE = 1).
//!
//! **Interrupt.** The UART's combined interrupt output (UARTINTR, DDI 0183G
//! 3.5) drives an [`IrqLine`]; on QEMU's `virt` layout, which this VMM
//! follows, it is SPI 1 (interrupt id 33, `uirq_abi::layout::UART_SPI`).
//! The only source this model raises is the transmit interrupt (UARTTXINTR):
//! each byte leaves the (instant) transmitter at once, so after every data
//! register write the raw status UARTRIS.TXRIS is set, as in QEMU's model;
//! UARTICR clears it. The output is UARTMIS = UARTRIS AND UARTIMSC, non-zero
//! meaning high, and the line is driven only when that changes.

use std::io::Write;

use crate::bus::MmioDevice;
use crate::devices::irq_line::IrqLine;

/// Data Register: a write transmits the low byte.
const DR: u64 = 0x000;
/// Receive Status / Error Clear Register.
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

/// UARTFR.RXFE: receive FIFO empty.
const FR_RXFE: u32 = 1 << 4;
/// UARTFR.TXFE: transmit FIFO empty.
const FR_TXFE: u32 = 1 << 7;
/// UARTRIS.TXRIS (and the same bit of IMSC, MIS and ICR): transmit
/// interrupt (DDI 0183G 3.3.11-3.3.14).
const INT_TX: u32 = 1 << 5;
/// The interrupt bits of UARTRIS/MIS/IMSC/ICR: bits [10:0].
const INT_ALL: u32 = 0x7FF;

/// UARTPeriphID0-3 then UARTPCellID0-3 (DDI 0183G, 3.3.14 and 3.3.15): part
/// number 0x011, designer ARM (0x41), revision r1p5, and the PrimeCell id.
const ID_BYTES: [u8; 8] = [0x11, 0x10, 0x34, 0x00, 0x0D, 0xF0, 0x05, 0xB1];

/// The PL011 model. Transmitted bytes go to `out`, flushed at each newline
/// so console lines appear as the guest prints them.
pub struct Pl011 {
    out: Box<dyn Write + Send>,
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
}

impl Pl011 {
    /// A UART in its reset state (DDI 0183G, 3.2: UARTCR resets to 0x300,
    /// UARTIFLS to 0x12) that writes what the guest sends to `out` and
    /// drives `irq` with its interrupt output.
    pub fn new(out: Box<dyn Write + Send>, irq: Box<dyn IrqLine>) -> Self {
        Self {
            out,
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
        }
    }

    fn transmit(&mut self, byte: u8) {
        // The console is best effort: a closed stdout must not stop the guest.
        let _ = self.out.write_all(&[byte]);
        if byte == b'\n' {
            let _ = self.out.flush();
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

    fn read_reg(&self, offset: u64) -> u32 {
        match offset {
            FR => FR_TXFE | FR_RXFE,
            IBRD => self.ibrd,
            FBRD => self.fbrd,
            LCR_H => self.lcr_h,
            CR => self.cr,
            IFLS => self.ifls,
            IMSC => self.imsc,
            DMACR => self.dmacr,
            RIS => self.ris,
            MIS => self.ris & self.imsc,
            // Nothing is received.
            DR | RSR => 0,
            o if (ID_BASE..ID_BASE + 0x20).contains(&o) && o % 4 == 0 => {
                u32::from(ID_BYTES[((o - ID_BASE) / 4) as usize])
            }
            _ => {
                tracing::debug!(offset, "PL011: read of unimplemented register");
                0
            }
        }
    }

    fn write_reg(&mut self, offset: u64, value: u32) {
        match offset {
            DR => self.transmit(value as u8),
            IBRD => self.ibrd = value & 0xFFFF,
            FBRD => self.fbrd = value & 0x3F,
            LCR_H => self.lcr_h = value & 0xFF,
            CR => self.cr = value & 0xFF87,
            IFLS => self.ifls = value & 0x3F,
            IMSC => self.imsc = value & 0x7FF,
            DMACR => self.dmacr = value & 0x7,
            ICR => self.ris &= !(value & INT_ALL),
            RSR => {}
            _ => tracing::debug!(
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
        // as on the real bus, and an unaligned one reads as zero.
        let value = if offset % 4 == 0 {
            self.read_reg(offset)
        } else {
            0
        };
        let bytes = u64::from(value).to_le_bytes();
        data.copy_from_slice(&bytes[..data.len().min(8)]);
    }

    fn write(&mut self, _vcpu: usize, offset: u64, data: &[u8]) {
        if offset % 4 != 0 || data.is_empty() {
            tracing::debug!(offset, "PL011: unaligned write ignored");
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

    /// A `Write` whose bytes the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
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

    // DDI 0183G 3.3.11-3.3.14 and 3.5: a transmitted byte sets TXRIS; the
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

    #[test]
    fn flag_register_says_tx_empty_and_never_full() {
        let (mut u, _) = uart();
        let fr = read32(&mut u, FR);
        assert_eq!(fr & FR_TXFE, FR_TXFE);
        assert_eq!(fr & (1 << 5), 0, "TXFF must be clear or the guest spins");
        assert_eq!(fr & FR_RXFE, FR_RXFE);
    }

    #[test]
    fn control_registers_read_back_and_reset_values_hold() {
        let (mut u, _) = uart();
        assert_eq!(read32(&mut u, CR), 0x300);
        assert_eq!(read32(&mut u, IFLS), 0x12);
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
}
