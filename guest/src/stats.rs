//! Recording samples in an interrupt handler and summarising them afterwards.
//!
//! # Sharing with an interrupt handler without locks
//!
//! The firmware runs on one core. Its main code and its IRQ handler share
//! state, and the handler can run between any two instructions of the main
//! code (whenever IRQs are unmasked). Everything shared here is an atomic,
//! so that is sound, and each value has **one writer**: the handler records,
//! the main code only reads. With one writer a plain `load` then `store`
//! cannot lose an update, so no read-modify-write atomic (`fetch_add`,
//! `compare_exchange`) is needed. That matters with the MMU off: all memory
//! is then Device memory, and whether the exclusive-access instructions
//! those operations compile to (`LDXR`/`STXR` on Armv8.0) work on Device
//! memory is IMPLEMENTATION DEFINED. Plain loads and stores always work.

use core::{
    fmt,
    sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering},
};

/// A counter with a single writer (see the module docs).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at zero.
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Adds one. Only the counter's single writer may call this.
    pub fn increment(&self) {
        let value = self.0.load(Ordering::Relaxed);
        self.0.store(value.wrapping_add(1), Ordering::Release);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// Up to `N` signed samples, appended by one writer (an interrupt handler)
/// and read by anyone.
///
/// A sample is stored before the length that covers it is published (with
/// `Release`), and readers load the length with `Acquire`, so a reader only
/// ever sees samples that were completely written.
pub struct SampleLog<const N: usize> {
    samples: [AtomicI64; N],
    len: AtomicUsize,
}

impl<const N: usize> SampleLog<N> {
    /// An empty log (usable in a `static`, which puts it in BSS).
    pub const fn new() -> Self {
        Self {
            samples: [const { AtomicI64::new(0) }; N],
            len: AtomicUsize::new(0),
        }
    }

    /// How many samples the log can hold.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Appends `sample`; `false` when the log is full. Only the log's single
    /// writer may call this.
    pub fn push(&self, sample: i64) -> bool {
        let len = self.len.load(Ordering::Relaxed);
        let Some(slot) = self.samples.get(len) else {
            return false;
        };
        slot.store(sample, Ordering::Relaxed);
        self.len.store(len + 1, Ordering::Release);
        true
    }

    /// The number of samples recorded so far.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sample `index`, if it has been recorded.
    pub fn get(&self, index: usize) -> Option<i64> {
        (index < self.len()).then(|| self.samples[index].load(Ordering::Relaxed))
    }

    /// Copies the recorded samples to the front of `out` and returns that
    /// part of it (at most `out.len()` samples).
    pub fn copy_to<'a>(&self, out: &'a mut [i64]) -> &'a mut [i64] {
        let n = self.len().min(out.len());
        for (dst, src) in out.iter_mut().zip(&self.samples[..n]) {
            *dst = src.load(Ordering::Relaxed);
        }
        &mut out[..n]
    }
}

impl<const N: usize> Default for SampleLog<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Minimum, median and maximum of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The smallest sample.
    pub min: i64,
    /// The middle sample; for an even count, the mean of the two middle ones
    /// (rounded towards negative infinity).
    pub median: i64,
    /// The largest sample.
    pub max: i64,
}

impl Summary {
    /// Summarises `samples`, sorting them in place; `None` when empty.
    pub fn of(samples: &mut [i64]) -> Option<Self> {
        samples.sort_unstable();
        let (&min, &max) = (samples.first()?, samples.last()?);
        let mid = samples.len() / 2;
        let median = if samples.len() % 2 == 1 {
            samples[mid]
        } else {
            // In 128 bits, so the sum of two large samples cannot overflow.
            let sum = i128::from(samples[mid - 1]) + i128::from(samples[mid]);
            // The mean of two i64 values is an i64.
            sum.div_euclid(2) as i64
        };
        Some(Self { min, median, max })
    }

    /// The summary with `f` applied to each statistic (e.g. ticks to ns;
    /// `f` must be monotonic for the result to stay a min/median/max).
    pub fn map(self, f: impl Fn(i64) -> i64) -> Self {
        Self {
            min: f(self.min),
            median: f(self.median),
            max: f(self.max),
        }
    }
}

/// Shown as `min/median/max`.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.min, self.median, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_counts() {
        let c = Counter::new();
        c.increment();
        c.increment();
        assert_eq!(c.get(), 2);
    }

    #[test]
    fn log_fills_up_and_refuses_more() {
        let log = SampleLog::<3>::new();
        assert!(log.is_empty());
        assert!(log.push(5));
        assert!(log.push(-1));
        assert!(log.push(7));
        assert!(!log.push(9), "full");
        assert_eq!(log.len(), 3);
        assert_eq!(log.get(1), Some(-1));
        assert_eq!(log.get(3), None);
        let mut out = [0; 5];
        assert_eq!(log.copy_to(&mut out), &[5, -1, 7]);
        let mut short = [0; 2];
        assert_eq!(log.copy_to(&mut short), &[5, -1]);
    }

    #[test]
    fn summary_of_odd_and_even_counts() {
        assert_eq!(Summary::of(&mut []), None);
        assert_eq!(
            Summary::of(&mut [3, 1, 2]),
            Some(Summary {
                min: 1,
                median: 2,
                max: 3
            })
        );
        assert_eq!(
            Summary::of(&mut [4, 1, 3, 2]),
            Some(Summary {
                min: 1,
                median: 2,
                max: 4
            }),
            "mean of 2 and 3, rounded down"
        );
        assert_eq!(
            Summary::of(&mut [-3, -2]),
            Some(Summary {
                min: -3,
                median: -3,
                max: -2
            })
        );
        assert_eq!(
            Summary::of(&mut [i64::MAX, i64::MAX]).unwrap().median,
            i64::MAX,
            "no overflow"
        );
    }

    #[test]
    fn summary_maps_and_displays() {
        let s = Summary {
            min: 1,
            median: 2,
            max: 3,
        }
        .map(|t| t * 16);
        assert_eq!(std::format!("{s}"), "16/32/48");
    }
}
