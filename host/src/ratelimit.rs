//! Log lines a guest can trigger, limited per cause.
//!
//! A guest decides how often it touches an unmapped address, writes a
//! read-only GIC register or sends an EOI with nothing active: millions of
//! times a second, if it wants. Each of those is worth a log line the first
//! few times, and after that only a count; a log that grows as fast as the
//! guest can loop would fill the disk of whoever keeps the VMM's stderr, and
//! formatting the lines would slow every vCPU thread down.
//!
//! [`RateLimit`] is the state of one cause (one call site): the first
//! [`FULL`] occurrences are logged in full, the last of them saying that
//! more will only be counted; after that at most one line per
//! [`INTERVAL_MS`], carrying how many occurrences it stands for. The
//! [`limited!`](crate::limited) macro puts a `static` limiter at its call
//! site, so every site is its own cause:
//!
//! ```
//! # let offset = 0x40u64;
//! uirq_host::limited!(warn, offset, "PL011: write to an unimplemented register");
//! ```
//!
//! Over any stretch of `T` seconds a cause therefore writes at most
//! `FULL + T / INTERVAL + 1` lines, however fast it fires. The state is
//! three atomics, so a check costs no lock and vCPU threads share a cause
//! without waiting for each other. The limiters are per process: several
//! VMs in one process (the unit tests) share them, which only means fewer
//! lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

#[doc(hidden)]
pub use tracing;

/// Occurrences of a cause that are logged in full.
pub const FULL: u64 = 5;
/// After the first [`FULL`], at most one line per this many milliseconds.
pub const INTERVAL_MS: u64 = 1000;

/// What to do with one occurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it in full.
    Log,
    /// Log it in full, and say that further ones will only be counted.
    LastInFull,
    /// Log it with the number of occurrences (this one included) since the
    /// previous line.
    Summary(u64),
    /// Count it only.
    Quiet,
}

/// The state of one cause of log lines (see the module documentation).
#[derive(Debug)]
pub struct RateLimit {
    /// Occurrences so far. Wraps after 2^64, which no run reaches.
    seen: AtomicU64,
    /// `seen` when the last line was written.
    logged_at_count: AtomicU64,
    /// The earliest time (ms on [`now_ms`]'s clock) for the next summary.
    next_summary_ms: AtomicU64,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimit {
    /// A cause that has not occurred yet.
    pub const fn new() -> Self {
        Self {
            seen: AtomicU64::new(0),
            logged_at_count: AtomicU64::new(FULL),
            next_summary_ms: AtomicU64::new(0),
        }
    }

    /// Counts one occurrence now and says whether to log it.
    pub fn check(&self) -> Verdict {
        self.check_at(now_ms())
    }

    /// [`RateLimit::check`] at `now` milliseconds (any monotonic clock; the
    /// tests bring their own).
    pub fn check_at(&self, now: u64) -> Verdict {
        let n = self.seen.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if n < FULL {
            return Verdict::Log;
        }
        if n == FULL {
            self.next_summary_ms
                .store(now.saturating_add(INTERVAL_MS), Ordering::Relaxed);
            return Verdict::LastInFull;
        }
        let due = self.next_summary_ms.load(Ordering::Relaxed);
        if now < due {
            return Verdict::Quiet;
        }
        // One thread wins the right to write the summary; the others count.
        if self
            .next_summary_ms
            .compare_exchange(
                due,
                now.saturating_add(INTERVAL_MS),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Verdict::Quiet;
        }
        let before = self.logged_at_count.swap(n, Ordering::Relaxed);
        Verdict::Summary(n.wrapping_sub(before))
    }

    /// Occurrences counted so far.
    pub fn seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }
}

/// Milliseconds since the first call, on the monotonic clock.
pub fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let elapsed = EPOCH.get_or_init(Instant::now).elapsed();
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// Logs with `tracing` at `$level` (`warn`, `debug`, ...), limited per call
/// site by a [`RateLimit`] of its own. The arguments are those of the
/// `tracing` macro: fields, then the message. The last full line carries
/// `further = "counted, one line a second"`, and each summary line
/// `occurrences = N`, the number of times the cause fired since the line
/// before it.
#[macro_export]
macro_rules! limited {
    ($level:ident, $($args:tt)+) => {{
        static LIMIT: $crate::ratelimit::RateLimit = $crate::ratelimit::RateLimit::new();
        $crate::limited_by!(&LIMIT, $level, $($args)+)
    }};
}

/// [`limited!`](crate::limited) with the cause's [`RateLimit`] given
/// instead of put at the call site: for one call site that logs several
/// causes, each with a limiter of its own (`devices::gic_log` keeps one per
/// reason the GIC model gives).
#[macro_export]
macro_rules! limited_by {
    ($limit:expr, $level:ident, $($args:tt)+) => {{
        let limit: &$crate::ratelimit::RateLimit = $limit;
        match limit.check() {
            $crate::ratelimit::Verdict::Log => $crate::ratelimit::tracing::$level!($($args)+),
            $crate::ratelimit::Verdict::LastInFull => {
                $crate::ratelimit::tracing::$level!(further = "counted, one line a second", $($args)+)
            }
            $crate::ratelimit::Verdict::Summary(occurrences) => {
                $crate::ratelimit::tracing::$level!(occurrences, $($args)+)
            }
            $crate::ratelimit::Verdict::Quiet => {}
        }
    }};
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// The lines a `tracing` subscriber wrote while `f` ran on this thread.
    pub(crate) fn log_lines(f: impl FnOnce()) -> Vec<String> {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl Write for Buffer {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect()
    }

    // The first FULL are logged, the FULL-th says more will be counted,
    // then one summary per interval carrying the count since the last line.
    #[test]
    fn the_first_few_in_full_then_one_count_per_interval() {
        let limit = RateLimit::new();
        let verdicts: Vec<Verdict> = (0..FULL).map(|_| limit.check_at(0)).collect();
        assert_eq!(verdicts[..FULL as usize - 1], [Verdict::Log; 4]);
        assert_eq!(verdicts[FULL as usize - 1], Verdict::LastInFull);
        for t in 0..INTERVAL_MS {
            assert_eq!(limit.check_at(t), Verdict::Quiet, "at {t} ms");
        }
        // FULL in full, INTERVAL_MS counted quietly, and this one.
        assert_eq!(
            limit.check_at(INTERVAL_MS),
            Verdict::Summary(INTERVAL_MS + 1)
        );
        assert_eq!(limit.check_at(INTERVAL_MS + 1), Verdict::Quiet);
        assert_eq!(limit.check_at(10 * INTERVAL_MS), Verdict::Summary(2));
        assert_eq!(limit.seen(), FULL + INTERVAL_MS + 3);
    }

    // A burst of a million occurrences within one second, and another
    // million spread over ten seconds: a handful of lines each. The lines
    // account for every occurrence but those of the last interval, which
    // wait for the next occurrence to be reported.
    #[test]
    fn a_million_occurrences_make_a_bounded_number_of_lines() {
        for (span_ms, max_lines) in [(1_000u64, FULL + 2), (10_000, FULL + 11)] {
            let limit = RateLimit::new();
            let calls = 1_000_000u64;
            let mut lines = 0;
            let mut accounted = 0;
            for i in 0..calls {
                match limit.check_at(i * span_ms / calls) {
                    Verdict::Log | Verdict::LastInFull => {
                        lines += 1;
                        accounted += 1;
                    }
                    Verdict::Summary(n) => {
                        lines += 1;
                        accounted += n;
                    }
                    Verdict::Quiet => {}
                }
            }
            assert!(lines <= max_lines, "{lines} lines over {span_ms} ms");
            let tail = calls * INTERVAL_MS / span_ms;
            assert!(accounted <= calls && calls - accounted <= tail + 1);
        }
    }

    #[test]
    fn threads_share_a_cause_without_losing_counts() {
        let limit = Arc::new(RateLimit::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let limit = limit.clone();
                std::thread::spawn(move || {
                    (0..10_000)
                        .filter(|_| limit.check_at(0) != Verdict::Quiet)
                        .count()
                })
            })
            .collect();
        let logged: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(logged as u64, FULL, "no summary within the interval");
        assert_eq!(limit.seen(), 40_000);
    }

    // The macro: each call site is its own cause, and the lines say so.
    #[test]
    fn the_macro_limits_each_call_site_on_its_own() {
        let lines = log_lines(|| {
            for i in 0..100_000u32 {
                crate::limited!(warn, i, "first cause");
                if i % 2 == 0 {
                    crate::limited!(debug, "second cause");
                }
            }
        });
        let first = lines.iter().filter(|l| l.contains("first cause")).count();
        let second = lines.iter().filter(|l| l.contains("second cause")).count();
        assert!(
            (FULL as usize..=FULL as usize + 2).contains(&first),
            "{lines:#?}"
        );
        assert!(
            (FULL as usize..=FULL as usize + 2).contains(&second),
            "{lines:#?}"
        );
        let fifth = lines.iter().filter(|l| l.contains("first cause")).nth(4);
        assert!(
            fifth.is_some_and(|l| l.contains("further=\"counted, one line a second\"")),
            "{lines:#?}"
        );
    }
}
