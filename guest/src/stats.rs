//! Recording samples in an interrupt handler and summarising them afterwards.
//!
//! # Sharing with an interrupt handler without locks
//!
//! A program's main code and its IRQ handler share state, and the handler
//! can run between any two instructions of the main code (whenever IRQs are
//! unmasked). Everything shared here is an atomic, so that is sound, and
//! each value has **one writer**: one core's handler (or its main code)
//! records, everyone else only reads. With one writer a plain `load` then
//! `store` cannot lose an update, so no read-modify-write atomic
//! (`fetch_add`, `compare_exchange`) is needed, and the types work the same
//! whether the memory is cached Normal memory (the MMU on, as the firmware
//! runs) or Device memory (MMU off), where the exclusive-access
//! instructions those operations compile to are IMPLEMENTATION DEFINED.
//! With several cores, each keeps its own copy (an array indexed by core),
//! and readers on other cores see a value once the writer has published it
//! (`Release` stores, `Acquire` loads).

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

/// A uniform random sample of at most `N` of all the values offered to it
/// (reservoir sampling, Vitter's "Algorithm R"), with one writer.
///
/// The first `N` values are kept; after that, the `k`-th value offered
/// replaces a random kept one with probability `N / k`, so at any time
/// every value offered so far is in the reservoir with the same probability.
/// Percentiles of the reservoir estimate those of everything offered,
/// without storing everything. The random numbers come from a xorshift
/// generator with a fixed seed, so a run is reproducible.
pub struct Reservoir<const N: usize> {
    kept: SampleLog<N>,
    offered: AtomicU64,
    /// The generator's state; 0 until the first random number is drawn
    /// (so that an empty reservoir is all zeros and a `static` of it lives
    /// in BSS, not in the image).
    rng: AtomicU64,
}

/// The generator's first state (xorshift needs a non-zero one).
const RESERVOIR_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

impl<const N: usize> Reservoir<N> {
    /// An empty reservoir.
    pub const fn new() -> Self {
        Self {
            kept: SampleLog::new(),
            offered: AtomicU64::new(0),
            rng: AtomicU64::new(0),
        }
    }

    /// Offers `sample`. Only the reservoir's single writer may call this.
    pub fn offer(&self, sample: i64) {
        let offered = self.offered.load(Ordering::Relaxed) + 1;
        self.offered.store(offered, Ordering::Relaxed);
        if self.kept.push(sample) {
            return;
        }
        // xorshift64 (Marsaglia): a full-period generator over non-zero
        // 64-bit states.
        let mut x = match self.rng.load(Ordering::Relaxed) {
            0 => RESERVOIR_SEED,
            x => x,
        };
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        let j = x % offered;
        if let Ok(j) = usize::try_from(j) {
            if j < N {
                self.kept.samples[j].store(sample, Ordering::Relaxed);
            }
        }
    }

    /// How many values were offered in all.
    pub fn offered(&self) -> u64 {
        self.offered.load(Ordering::Relaxed)
    }

    /// Copies the kept values to the front of `out` and returns that part.
    pub fn copy_to<'a>(&self, out: &'a mut [i64]) -> &'a mut [i64] {
        self.kept.copy_to(out)
    }
}

impl<const N: usize> Default for Reservoir<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The `permille`-th per-mille of `sorted` (ascending), nearest-rank
/// method: the smallest sample with at least `permille` / 1000 of all
/// samples at or below it. `None` for no samples.
pub fn percentile(sorted: &[i64], permille: u32) -> Option<i64> {
    let n = sorted.len() as u64;
    let rank = (u64::from(permille.min(1000)) * n).div_ceil(1000).max(1);
    sorted.get(usize::try_from(rank - 1).ok()?).copied()
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
    fn reservoir_keeps_the_first_n_then_samples() {
        let r = Reservoir::<4>::new();
        for v in 0..4 {
            r.offer(v);
        }
        let mut out = [0; 8];
        assert_eq!(r.copy_to(&mut out), &[0, 1, 2, 3]);
        for v in 4..10_000 {
            r.offer(v);
        }
        assert_eq!(r.offered(), 10_000);
        let kept = r.copy_to(&mut out);
        assert_eq!(kept.len(), 4);
        // Late values replace early ones: a uniform sample of 0..10000 is
        // very unlikely to be all below 100.
        assert!(kept.iter().any(|&v| v >= 100), "{kept:?}");
    }

    #[test]
    fn reservoir_is_roughly_uniform() {
        // 1000 values, 100 kept: about half of them from the upper half.
        let r = Reservoir::<100>::new();
        for v in 0..1000 {
            r.offer(v);
        }
        let mut out = [0; 100];
        let upper = r.copy_to(&mut out).iter().filter(|&&v| v >= 500).count();
        assert!(
            (30..=70).contains(&upper),
            "{upper} of 100 from the upper half"
        );
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let sorted: std::vec::Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 500), Some(50));
        assert_eq!(percentile(&sorted, 990), Some(99));
        assert_eq!(percentile(&sorted, 1000), Some(100));
        assert_eq!(percentile(&sorted, 0), Some(1));
        assert_eq!(percentile(&[7], 990), Some(7));
        assert_eq!(percentile(&[1, 2, 3], 500), Some(2));
        assert_eq!(percentile(&[], 500), None);
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
