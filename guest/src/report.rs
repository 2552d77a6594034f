//! What the timer programs conclude, and how they say so.
//!
//! The summary lines are read by the VMM's end-to-end tests, so their format
//! is pinned by unit tests here:
//!
//! ```text
//! timer: 10 interrupts, latency min/median/max = 41000/52000/98000 ns
//! smp-timer: core 1: 10 interrupts, latency min/median/max = 41000/52000/98000 ns
//! ```

use core::fmt;

use crate::stats::Summary;

/// What the timer program's interrupt handler saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerOutcome {
    /// Ticks the program asked for.
    pub expected: u64,
    /// Virtual-timer interrupts taken.
    pub timer_interrupts: u64,
    /// Interrupts with an id other than the virtual timer's.
    pub unexpected: u64,
    /// The id of the last of those.
    pub last_unexpected_id: u32,
    /// Timer interrupts whose handler started before the timer's deadline,
    /// which a correct timer and GIC never produce.
    pub negative_latencies: u64,
}

/// Why the timer program failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerFailure {
    /// A different number of timer interrupts than ticks asked for.
    WrongCount {
        /// Ticks asked for.
        expected: u64,
        /// Timer interrupts taken.
        got: u64,
    },
    /// An interrupt that is not the virtual timer's was acknowledged.
    UnexpectedInterrupt {
        /// How many.
        count: u64,
        /// The id of the last one.
        last_id: u32,
    },
    /// A timer interrupt was handled before its deadline.
    NegativeLatency {
        /// How many.
        count: u64,
    },
}

impl TimerOutcome {
    /// `Ok` when every check passed, else the first failure found.
    pub fn verdict(&self) -> Result<(), TimerFailure> {
        if self.unexpected != 0 {
            return Err(TimerFailure::UnexpectedInterrupt {
                count: self.unexpected,
                last_id: self.last_unexpected_id,
            });
        }
        if self.timer_interrupts != self.expected {
            return Err(TimerFailure::WrongCount {
                expected: self.expected,
                got: self.timer_interrupts,
            });
        }
        if self.negative_latencies != 0 {
            return Err(TimerFailure::NegativeLatency {
                count: self.negative_latencies,
            });
        }
        Ok(())
    }
}

impl fmt::Display for TimerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongCount { expected, got } => {
                write!(f, "expected {expected} timer interrupts, got {got}")
            }
            Self::UnexpectedInterrupt { count, last_id } => {
                write!(
                    f,
                    "{count} unexpected interrupt(s), the last with id {last_id}"
                )
            }
            Self::NegativeLatency { count } => write!(
                f,
                "{count} timer interrupt(s) handled before their deadline (negative latency)"
            ),
        }
    }
}

/// Writes the one summary line (without the newline): the interrupt count
/// and the latency statistics in nanoseconds, or `n/a` when there were none.
pub fn write_timer_summary(
    w: &mut impl fmt::Write,
    interrupts: u64,
    latency_ns: Option<Summary>,
) -> fmt::Result {
    write_latency_summary(w, format_args!("timer"), interrupts, latency_ns)
}

/// Writes the `smp-timer` program's line for one core (without the
/// newline), in the same format as the timer program's summary.
pub fn write_smp_timer_core(
    w: &mut impl fmt::Write,
    core: usize,
    interrupts: u64,
    latency_ns: Option<Summary>,
) -> fmt::Result {
    write_latency_summary(
        w,
        format_args!("smp-timer: core {core}"),
        interrupts,
        latency_ns,
    )
}

fn write_latency_summary(
    w: &mut impl fmt::Write,
    prefix: fmt::Arguments<'_>,
    interrupts: u64,
    latency_ns: Option<Summary>,
) -> fmt::Result {
    write!(
        w,
        "{prefix}: {interrupts} interrupts, latency min/median/max = "
    )?;
    match latency_ns {
        Some(summary) => write!(w, "{summary} ns"),
        None => write!(w, "n/a"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_format() {
        let mut line = String::new();
        let ns = Summary {
            min: 41_000,
            median: 52_000,
            max: 98_000,
        };
        write_timer_summary(&mut line, 10, Some(ns)).unwrap();
        assert_eq!(
            line,
            "timer: 10 interrupts, latency min/median/max = 41000/52000/98000 ns"
        );
        line.clear();
        write_timer_summary(&mut line, 0, None).unwrap();
        assert_eq!(line, "timer: 0 interrupts, latency min/median/max = n/a");
        line.clear();
        write_smp_timer_core(&mut line, 1, 10, Some(ns)).unwrap();
        assert_eq!(
            line,
            "smp-timer: core 1: 10 interrupts, latency min/median/max = 41000/52000/98000 ns"
        );
    }

    #[test]
    fn verdicts() {
        let good = TimerOutcome {
            expected: 10,
            timer_interrupts: 10,
            ..Default::default()
        };
        assert_eq!(good.verdict(), Ok(()));
        let short = TimerOutcome {
            timer_interrupts: 9,
            ..good
        };
        assert_eq!(
            short.verdict(),
            Err(TimerFailure::WrongCount {
                expected: 10,
                got: 9
            })
        );
        let stray = TimerOutcome {
            unexpected: 2,
            last_unexpected_id: 33,
            ..good
        };
        assert_eq!(
            stray.verdict(),
            Err(TimerFailure::UnexpectedInterrupt {
                count: 2,
                last_id: 33
            })
        );
        let early = TimerOutcome {
            negative_latencies: 1,
            ..good
        };
        assert_eq!(
            early.verdict(),
            Err(TimerFailure::NegativeLatency { count: 1 })
        );
        assert_eq!(
            std::format!("{}", early.verdict().unwrap_err()),
            "1 timer interrupt(s) handled before their deadline (negative latency)"
        );
    }
}
