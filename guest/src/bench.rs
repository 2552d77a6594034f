//! The latency benchmark's pure logic: its arguments, the consistency check
//! of each sample, and the writer of the result buffer (`uirq_abi::bench`).
//!
//! The firmware's `bench` program takes the samples; everything here is
//! plain code that the unit tests run on the build machine, the buffer
//! writer against ordinary host memory standing in for guest RAM.

use uirq_abi::bench::{
    Header, IpiSample, MmioSample, SgiSample, VtimerSample, DEFAULT_SAMPLES, DEFAULT_WARMUP,
    HOST_MAGIC, IPI_OFFSET, MAGIC, MAX_SAMPLES, MMIO_OFFSET, RESULTS_ADDR, RESULTS_SIZE,
    SGI_OFFSET, VERSION, VTIMER_OFFSET,
};
use uirq_abi::bench_dump;

/// The benchmark's arguments, from the boot registers `x1` and `x2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Args {
    /// Recorded samples per measurement.
    pub samples: u64,
    /// Discarded warm-up samples per measurement.
    pub warmup: u64,
    /// The sample count asked for when it was more than the buffer holds
    /// (and `samples` was capped to [`MAX_SAMPLES`]).
    pub capped_from: Option<u64>,
}

impl Args {
    /// `x1` samples (0 = [`DEFAULT_SAMPLES`], capped at [`MAX_SAMPLES`]),
    /// `x2` warm-up samples (0 = [`DEFAULT_WARMUP`]).
    pub fn from_boot_registers(x1: u64, x2: u64) -> Self {
        let (samples, capped_from) = match x1 {
            0 => (DEFAULT_SAMPLES, None),
            n if n > MAX_SAMPLES => (MAX_SAMPLES, Some(n)),
            n => (n, None),
        };
        let warmup = if x2 == 0 { DEFAULT_WARMUP } else { x2 };
        Self {
            samples,
            warmup,
            capped_from,
        }
    }
}

/// A sample is anomalous when one of its timestamps is earlier than the one
/// before it. Counter values are compared as they are: the virtual counter
/// is 64 bits wide and starts near zero, so it does not wrap.
pub trait Anomaly {
    /// Whether the timestamps go backwards somewhere.
    fn is_anomalous(&self) -> bool;
}

impl Anomaly for VtimerSample {
    /// The handler cannot start before the deadline, acknowledge before it
    /// started, or end the interrupt before acknowledging it.
    fn is_anomalous(&self) -> bool {
        self.entry < self.deadline || self.after_ack < self.entry || self.after_eoi < self.after_ack
    }
}

impl Anomaly for SgiSample {
    /// The SGI cannot arrive before it was sent.
    fn is_anomalous(&self) -> bool {
        self.entry < self.write
    }
}

impl Anomaly for IpiSample {
    /// The IPI cannot arrive before it was sent (both CPUs read the one
    /// system counter).
    fn is_anomalous(&self) -> bool {
        self.entry < self.write
    }
}

impl Anomaly for MmioSample {
    /// The read cannot end before it started.
    fn is_anomalous(&self) -> bool {
        self.end < self.start
    }
}

// The writer stores each struct with one volatile write, which the compiler
// may make one 128-bit store. The buffer is Normal memory (the identity map
// makes all of RAM Normal), where that would be fine at any alignment; but
// the same writer must also work on Device memory (with the MMU off, or if
// the map ever changes), where an access not aligned to its own size
// faults. So every record is 16-byte aligned.
const _: () = {
    assert!(RESULTS_ADDR % 16 == 0);
    assert!(VTIMER_OFFSET % 16 == 0 && SGI_OFFSET % 16 == 0 && MMIO_OFFSET % 16 == 0);
    assert!(IPI_OFFSET % 16 == 0);
    assert!(core::mem::size_of::<Header>() % 16 == 0);
    assert!(core::mem::size_of::<VtimerSample>() % 16 == 0);
    assert!(core::mem::size_of::<SgiSample>() % 16 == 0);
    assert!(core::mem::size_of::<MmioSample>() % 16 == 0);
    assert!(core::mem::size_of::<IpiSample>() % 16 == 0);
};

/// Byte offset of sample `index` in an array of `T` starting at `offset`
/// from the start of the buffer, or `None` past [`MAX_SAMPLES`].
pub fn sample_offset<T>(offset: u64, index: u64) -> Option<u64> {
    (index < MAX_SAMPLES).then(|| offset + index * core::mem::size_of::<T>() as u64)
}

/// The result buffer, written with volatile stores (it is read by the VMM
/// after the firmware has powered off, not by any Rust code).
pub struct Results {
    base: *mut u8,
}

impl Results {
    /// A writer for the buffer at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be 16-byte aligned and the start of [`RESULTS_SIZE`]
    /// bytes of writable memory that no Rust object occupies, for the rest of
    /// the program.
    pub unsafe fn new(base: usize) -> Self {
        Self {
            base: base as *mut u8,
        }
    }

    /// Stores `value` at byte `offset`.
    fn store<T>(&self, offset: u64, value: T) {
        let end = offset + core::mem::size_of::<T>() as u64;
        assert!(end <= RESULTS_SIZE && offset % 16 == 0);
        // SAFETY: `new`'s caller promised RESULTS_SIZE writable, 16-byte
        // aligned bytes at `base`; the record is inside them (checked above)
        // and 16-byte aligned, which is enough for each of the u64-only
        // records of `uirq_abi::bench`.
        unsafe {
            self.base
                .add(offset as usize)
                .cast::<T>()
                .write_volatile(value)
        }
    }

    /// Whether the VMM announced the phase-marker register by leaving
    /// [`HOST_MAGIC`] in the header's `magic` word. Ask before
    /// [`Results::invalidate`], which clears it.
    pub fn host_has_marker(&self) -> bool {
        // SAFETY: `magic` is the first u64 of the header at offset 0, which
        // `new`'s caller promised is readable, writable and aligned.
        unsafe { self.base.cast::<u64>().read_volatile() == HOST_MAGIC }
    }

    /// Clears the header's magic, so a buffer left incomplete (the run
    /// failed or was cut short) is never taken for a result.
    pub fn invalidate(&self) {
        self.store(0, Header::default());
    }

    /// Records vtimer sample `index`; `false` past [`MAX_SAMPLES`].
    pub fn write_vtimer(&self, index: u64, sample: VtimerSample) -> bool {
        self.write_at(VTIMER_OFFSET, index, sample)
    }

    /// Records SGI sample `index`; `false` past [`MAX_SAMPLES`].
    pub fn write_sgi(&self, index: u64, sample: SgiSample) -> bool {
        self.write_at(SGI_OFFSET, index, sample)
    }

    /// Records MMIO sample `index`; `false` past [`MAX_SAMPLES`].
    pub fn write_mmio(&self, index: u64, sample: MmioSample) -> bool {
        self.write_at(MMIO_OFFSET, index, sample)
    }

    /// Records IPI sample `index`; `false` past [`MAX_SAMPLES`].
    pub fn write_ipi(&self, index: u64, sample: IpiSample) -> bool {
        self.write_at(IPI_OFFSET, index, sample)
    }

    fn write_at<T>(&self, array: u64, index: u64, sample: T) -> bool {
        match sample_offset::<T>(array, index) {
            Some(offset) => {
                self.store(offset, sample);
                true
            }
            None => false,
        }
    }

    /// Completes the buffer: the header without its magic, then `barrier`
    /// (which must make every earlier store visible: a DSB on the target),
    /// then the magic alone, so a reader that sees [`MAGIC`] sees everything.
    pub fn complete(&self, header: Header, barrier: impl Fn()) {
        self.store(
            0,
            Header {
                magic: 0,
                version: VERSION,
                ..header
            },
        );
        barrier();
        // SAFETY: `magic` is the first u64 of the header at offset 0, which
        // `new`'s caller promised is writable and aligned.
        unsafe { self.base.cast::<u64>().write_volatile(MAGIC) };
    }

    /// The word at byte `offset` (8-byte aligned, inside the buffer).
    fn word(&self, offset: u64) -> u64 {
        assert!(offset + 8 <= RESULTS_SIZE && offset % 8 == 0);
        // SAFETY: `new`'s caller promised RESULTS_SIZE readable bytes at
        // `base`; the word is inside them (checked above) and aligned.
        unsafe { self.base.add(offset as usize).cast::<u64>().read_volatile() }
    }

    /// The used words of a completed buffer (header `h`), in the order of
    /// `uirq_abi::bench_dump::regions`: what the firmware dumps where no
    /// VMM reads the buffer (`uirq_abi::bench_dump::write`).
    pub fn used_words(&self, h: &Header) -> (u64, impl Iterator<Item = u64> + '_) {
        let regions = bench_dump::regions(h);
        let count = regions.iter().map(|&(_, n)| n).sum();
        let words = regions
            .into_iter()
            .flat_map(|(offset, n)| (0..n).map(move |i| offset + 8 * i))
            .map(|offset| self.word(offset));
        (count, words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_default_and_cap() {
        assert_eq!(
            Args::from_boot_registers(0, 0),
            Args {
                samples: DEFAULT_SAMPLES,
                warmup: DEFAULT_WARMUP,
                capped_from: None
            }
        );
        assert_eq!(
            Args::from_boot_registers(200, 5),
            Args {
                samples: 200,
                warmup: 5,
                capped_from: None
            }
        );
        assert_eq!(
            Args::from_boot_registers(MAX_SAMPLES, 1).capped_from,
            None,
            "exactly the buffer's size is fine"
        );
        assert_eq!(
            Args::from_boot_registers(MAX_SAMPLES + 1, 0),
            Args {
                samples: MAX_SAMPLES,
                warmup: DEFAULT_WARMUP,
                capped_from: Some(MAX_SAMPLES + 1)
            }
        );
    }

    #[test]
    fn vtimer_anomalies() {
        let ok = VtimerSample {
            deadline: 10,
            entry: 20,
            after_ack: 30,
            after_eoi: 40,
        };
        assert!(!ok.is_anomalous());
        assert!(!VtimerSample {
            deadline: 5,
            entry: 5,
            after_ack: 5,
            after_eoi: 5
        }
        .is_anomalous());
        assert!(
            VtimerSample { entry: 9, ..ok }.is_anomalous(),
            "before deadline"
        );
        assert!(VtimerSample {
            after_ack: 19,
            ..ok
        }
        .is_anomalous());
        assert!(VtimerSample {
            after_eoi: 29,
            ..ok
        }
        .is_anomalous());
    }

    #[test]
    fn sgi_and_mmio_anomalies() {
        assert!(!SgiSample { write: 1, entry: 2 }.is_anomalous());
        assert!(!SgiSample { write: 2, entry: 2 }.is_anomalous());
        assert!(SgiSample { write: 3, entry: 2 }.is_anomalous());
        assert!(!MmioSample { start: 1, end: 1 }.is_anomalous());
        assert!(MmioSample { start: 2, end: 1 }.is_anomalous());
    }

    #[test]
    fn offsets_follow_the_abi() {
        assert_eq!(
            sample_offset::<VtimerSample>(VTIMER_OFFSET, 0),
            Some(0x1000)
        );
        assert_eq!(
            sample_offset::<VtimerSample>(VTIMER_OFFSET, 2),
            Some(0x1040)
        );
        assert_eq!(
            sample_offset::<MmioSample>(MMIO_OFFSET, MAX_SAMPLES - 1),
            Some(IPI_OFFSET - 16)
        );
        assert_eq!(
            sample_offset::<IpiSample>(IPI_OFFSET, MAX_SAMPLES - 1),
            Some(RESULTS_SIZE - 16)
        );
        assert_eq!(sample_offset::<SgiSample>(SGI_OFFSET, MAX_SAMPLES), None);
    }

    /// Host memory standing in for the buffer: u64 words, so 8-byte
    /// aligned; `Results` needs 16, hence the offset into a larger one.
    struct Fake(Box<[u64]>);

    impl Fake {
        fn new() -> Self {
            Self(vec![0u64; RESULTS_SIZE as usize / 8 + 2].into_boxed_slice())
        }
        fn base(&mut self) -> usize {
            let p = self.0.as_mut_ptr() as usize;
            p.next_multiple_of(16)
        }
        fn word(&mut self, offset: u64) -> u64 {
            let base = self.base();
            // SAFETY: inside the allocation (RESULTS_SIZE plus slack).
            unsafe { ((base + offset as usize) as *const u64).read_volatile() }
        }
    }

    // What the firmware prints under QEMU reads back, through the host's
    // decoder, as exactly the buffer the VMM would have read.
    #[test]
    fn the_dump_carries_the_used_buffer_word_for_word() {
        let mut fake = Fake::new();
        // SAFETY: RESULTS_SIZE bytes of 16-byte aligned memory we own.
        let results = unsafe { Results::new(fake.base()) };
        let n = 150;
        for i in 0..n {
            let t = 1_000_000_000 + i * 70_000;
            results.write_vtimer(
                i,
                VtimerSample {
                    deadline: t,
                    entry: t + 61_000,
                    after_ack: t + 90_000,
                    after_eoi: t + 95_000,
                },
            );
            results.write_sgi(
                i,
                SgiSample {
                    write: t,
                    entry: t + 40_000 - i,
                },
            );
            results.write_mmio(
                i,
                MmioSample {
                    start: t,
                    end: t + 30_000,
                },
            );
            results.write_ipi(
                i,
                IpiSample {
                    write: t,
                    entry: t + 100_000,
                },
            );
        }
        let header = Header {
            magic: 0,
            version: 0,
            cntfrq: 62_500_000,
            samples: n,
            warmup: 10,
            anomalies: 0,
            ipi_samples: n,
            cpus: 2,
        };
        results.complete(header, || {});
        let (count, words) = results.used_words(&header);
        let mut text = String::new();
        uirq_abi::bench_dump::write(count, words, &mut text).unwrap();
        let lines: Vec<String> = text.lines().map(String::from).collect();
        let words =
            uirq_abi::bench_dump::decode_lines(lines.iter().map(String::as_str), 1 << 20).unwrap();
        assert_eq!(words.len() as u64, 8 + n * 10);
        let rebuilt = uirq_abi::bench_dump::rebuild(&words, RESULTS_SIZE as usize).unwrap();
        for offset in (0..RESULTS_SIZE).step_by(8) {
            let at = offset as usize;
            let got = u64::from_le_bytes(rebuilt[at..at + 8].try_into().unwrap());
            assert_eq!(got, fake.word(offset), "word at {offset:#x}");
        }
        // Some 3-4 characters a timestamp, not 16 hex digits.
        let chars: usize = lines.iter().map(String::len).sum();
        assert!(
            chars < words.len() * 6,
            "{chars} characters for {} words",
            words.len()
        );
        assert!(lines.iter().all(|l| l.len() < 1000));
    }

    #[test]
    fn samples_land_at_their_offsets() {
        let mut fake = Fake::new();
        // SAFETY: RESULTS_SIZE bytes of 16-byte aligned memory we own.
        let results = unsafe { Results::new(fake.base()) };
        let v = VtimerSample {
            deadline: 1,
            entry: 2,
            after_ack: 3,
            after_eoi: 4,
        };
        assert!(results.write_vtimer(1, v));
        assert!(results.write_sgi(MAX_SAMPLES - 1, SgiSample { write: 5, entry: 6 }));
        assert!(results.write_mmio(0, MmioSample { start: 7, end: 8 }));
        assert!(!results.write_mmio(MAX_SAMPLES, MmioSample::default()));
        assert!(results.write_ipi(
            2,
            IpiSample {
                write: 9,
                entry: 10
            }
        ));
        assert!(!results.write_ipi(MAX_SAMPLES, IpiSample::default()));

        for (i, want) in [1, 2, 3, 4].into_iter().enumerate() {
            assert_eq!(fake.word(VTIMER_OFFSET + 32 + 8 * i as u64), want);
        }
        let sgi = SGI_OFFSET + (MAX_SAMPLES - 1) * 16;
        assert_eq!((fake.word(sgi), fake.word(sgi + 8)), (5, 6));
        assert_eq!((fake.word(MMIO_OFFSET), fake.word(MMIO_OFFSET + 8)), (7, 8));
        let ipi = IPI_OFFSET + 2 * 16;
        assert_eq!((fake.word(ipi), fake.word(ipi + 8)), (9, 10));
        assert!(IpiSample { write: 5, entry: 4 }.is_anomalous());
        assert!(!IpiSample { write: 4, entry: 5 }.is_anomalous());
    }

    #[test]
    fn the_magic_comes_last() {
        let mut fake = Fake::new();
        let base = fake.base();
        // SAFETY: as above.
        let results = unsafe { Results::new(base) };
        results.write_mmio(0, MmioSample { start: 1, end: 2 });
        let header = Header {
            magic: 12345, // ignored: the writer supplies MAGIC itself
            version: 0,   // likewise VERSION
            cntfrq: 62_500_000,
            samples: 200,
            warmup: 100,
            anomalies: 3,
            ipi_samples: 200,
            cpus: 2,
        };
        let magic_when_barrier_ran = std::cell::Cell::new(None);
        results.complete(header, || {
            // SAFETY: the header is at `base`.
            magic_when_barrier_ran.set(Some(unsafe { (base as *const u64).read_volatile() }));
        });
        assert_eq!(magic_when_barrier_ran.get(), Some(0), "magic after barrier");
        let words: Vec<u64> = (0..6).map(|i| fake.word(8 * i)).collect();
        assert_eq!(words, [MAGIC, VERSION, 62_500_000, 200, 100, 3]);

        results.invalidate();
        assert_eq!(fake.word(0), 0);
    }

    #[test]
    fn the_host_announces_the_marker_in_the_magic_word() {
        let mut fake = Fake::new();
        let base = fake.base();
        // SAFETY: as above.
        let results = unsafe { Results::new(base) };
        assert!(!results.host_has_marker(), "zeroed RAM: no VMM said so");
        // SAFETY: the header is at `base`.
        unsafe { (base as *mut u64).write_volatile(HOST_MAGIC) };
        assert!(results.host_has_marker());
        results.invalidate();
        assert!(!results.host_has_marker());
        assert_eq!(fake.word(0), 0);
    }
}
