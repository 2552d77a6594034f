//! The `ipi-stress` program's arithmetic and verdict: who sends how many
//! IPIs to whom, what the counts must satisfy, and the summary line, whose
//! format the VMM's tests read:
//!
//! ```text
//! ipi-stress: 20000 sent, 20000 received, 0 lost, latency p50/p99 = 41000/98000 ns
//! ```
//!
//! The program itself (the SGIs, the handler, the lost-IPI check) is
//! `programs/ipi_stress.rs` in the firmware.

use core::fmt;

/// How many of `total` IPIs core `core` of `cores` sends: an equal share,
/// the remainder going one each to the lowest-numbered cores.
pub fn share(total: u64, cores: usize, core: usize) -> u64 {
    let cores = cores.max(1) as u64;
    let core = core as u64;
    total / cores + u64::from(core < total % cores)
}

/// The receiver of core `core`'s `k`-th IPI: the other cores in turn,
/// so every core receives as many IPIs as it sends, give or take one, and
/// every (sender, receiver) pair is exercised.
pub fn target(core: usize, cores: usize, k: u64) -> usize {
    let others = cores.saturating_sub(1).max(1) as u64;
    // Below `others`, so it fits in a usize.
    let i = (k % others) as usize;
    if i >= core {
        i + 1
    } else {
        i
    }
}

/// Everything the cores counted, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// IPIs sent (`GICD_SGIR` writes).
    pub sent: u64,
    /// IPIs received and checked (taken normally or recovered).
    pub received: u64,
    /// IPIs found pending in the GIC while the receiver's IRQ input was low
    /// (lost), then recovered by acknowledging them.
    pub lost: u64,
    /// Other interrupts found the same way (the watchdog timer).
    pub lost_other: u64,
    /// Acknowledges that came after the timeout without the IPI having been
    /// lost (late, not lost).
    pub late: u64,
    /// Sequence numbers that were not the next one expected from their
    /// sender.
    pub sequence_errors: u64,
    /// IPIs a sender gave up waiting for.
    pub unacknowledged: u64,
    /// Interrupts that were neither the IPI nor the watchdog.
    pub unexpected: u64,
    /// IPIs acknowledged in a handler whose vector entry came *before*
    /// they were sent: the exception was taken for another pending IPI, and
    /// `GICC_IAR` returned this one (the GIC chooses among equal-priority
    /// pending interrupts, 3.3.3). They have no latency of their own and add
    /// no sample; not a failure.
    pub entered_earlier: u64,
    /// Cores that did not finish in time.
    pub unfinished: u64,
}

impl Totals {
    /// `Ok` when every check passed; else the first failure, in the order
    /// of the fields.
    pub fn verdict(&self) -> Result<(), IpiFailure> {
        if self.lost != 0 || self.lost_other != 0 {
            return Err(IpiFailure::Lost {
                ipis: self.lost,
                other: self.lost_other,
            });
        }
        if self.sent != self.received {
            return Err(IpiFailure::Count {
                sent: self.sent,
                received: self.received,
            });
        }
        let checks = [
            (self.sequence_errors, IpiFailure::Sequence as fn(u64) -> _),
            (self.unacknowledged, IpiFailure::Unacknowledged),
            (self.unexpected, IpiFailure::Unexpected),
            (self.unfinished, IpiFailure::Unfinished),
        ];
        match checks.into_iter().find(|(n, _)| *n != 0) {
            Some((n, failure)) => Err(failure(n)),
            None => Ok(()),
        }
    }
}

/// Why `ipi-stress` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpiFailure {
    /// Interrupts were lost (and recovered).
    Lost {
        /// IPIs.
        ipis: u64,
        /// Other interrupts.
        other: u64,
    },
    /// Sent and received counts differ.
    Count {
        /// Sent.
        sent: u64,
        /// Received.
        received: u64,
    },
    /// Sequence numbers out of order.
    Sequence(u64),
    /// IPIs never acknowledged.
    Unacknowledged(u64),
    /// Unexpected interrupts.
    Unexpected(u64),
    /// Cores that did not finish.
    Unfinished(u64),
}

impl fmt::Display for IpiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lost { ipis, other } => {
                write!(f, "{ipis} IPI(s) and {other} other interrupt(s) lost")
            }
            Self::Count { sent, received } => {
                write!(f, "{sent} IPIs sent but {received} received")
            }
            Self::Sequence(n) => write!(f, "{n} sequence number(s) out of order"),
            Self::Unacknowledged(n) => write!(f, "{n} IPI(s) never acknowledged"),
            Self::Unexpected(n) => write!(f, "{n} unexpected interrupt(s)"),
            Self::Unfinished(n) => write!(f, "{n} core(s) did not finish in time"),
        }
    }
}

/// Writes the summary line (without the newline): the program's last line.
pub fn write_summary(
    w: &mut impl fmt::Write,
    totals: &Totals,
    p50_ns: Option<i64>,
    p99_ns: Option<i64>,
) -> fmt::Result {
    write!(
        w,
        "ipi-stress: {} sent, {} received, {} lost, latency p50/p99 = ",
        totals.sent, totals.received, totals.lost
    )?;
    match (p50_ns, p99_ns) {
        (Some(p50), Some(p99)) => write!(w, "{p50}/{p99} ns"),
        _ => write!(w, "n/a"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for cores in 1..=8 {
            for total in [0, 1, 7, 20_000, 20_001] {
                let sum: u64 = (0..cores).map(|c| share(total, cores, c)).sum();
                assert_eq!(sum, total, "{total} over {cores} cores");
            }
        }
        assert_eq!(share(10, 3, 0), 4);
        assert_eq!(share(10, 3, 2), 3);
    }

    #[test]
    fn targets_are_the_other_cores_in_turn() {
        let t: std::vec::Vec<usize> = (0..6).map(|k| target(1, 4, k)).collect();
        assert_eq!(t, [0, 2, 3, 0, 2, 3]);
        assert!((0..10).all(|k| target(0, 2, k) == 1));
        assert!((0..10).all(|k| target(1, 2, k) == 0));
        // Over a full round every core receives from every other.
        for cores in 2..=8 {
            let mut received = [0u64; 8];
            for core in 0..cores {
                for k in 0..(cores as u64 - 1) {
                    let t = target(core, cores, k);
                    assert_ne!(t, core);
                    received[t] += 1;
                }
            }
            assert!(received[..cores].iter().all(|&r| r == cores as u64 - 1));
        }
    }

    #[test]
    fn verdicts() {
        let good = Totals {
            sent: 10,
            received: 10,
            ..Default::default()
        };
        assert_eq!(good.verdict(), Ok(()));
        let late = Totals {
            late: 3,
            entered_earlier: 2,
            ..good
        };
        assert_eq!(late.verdict(), Ok(()), "late is not lost");
        let lost = Totals { lost: 1, ..good };
        assert_eq!(lost.verdict(), Err(IpiFailure::Lost { ipis: 1, other: 0 }));
        let short = Totals {
            received: 9,
            ..good
        };
        assert_eq!(
            short.verdict(),
            Err(IpiFailure::Count {
                sent: 10,
                received: 9
            })
        );
        let disorder = Totals {
            sequence_errors: 2,
            ..good
        };
        assert_eq!(disorder.verdict(), Err(IpiFailure::Sequence(2)));
        assert_eq!(
            std::format!("{}", IpiFailure::Sequence(2)),
            "2 sequence number(s) out of order"
        );
    }

    #[test]
    fn summary_line_format() {
        let totals = Totals {
            sent: 20_000,
            received: 20_000,
            ..Default::default()
        };
        let mut line = std::string::String::new();
        write_summary(&mut line, &totals, Some(41_000), Some(98_000)).unwrap();
        assert_eq!(
            line,
            "ipi-stress: 20000 sent, 20000 received, 0 lost, latency p50/p99 = 41000/98000 ns"
        );
        line.clear();
        write_summary(&mut line, &Totals::default(), None, None).unwrap();
        assert_eq!(
            line,
            "ipi-stress: 0 sent, 0 received, 0 lost, latency p50/p99 = n/a"
        );
    }
}
