//! The probes this VMM ships (see [`crate::probe`] for the interface).
//!
//! | probe | what it records | used by |
//! |---|---|---|
//! | [`bench::BenchProbe`] | exits per benchmark phase, the VMM's timeline of each vtimer interrupt | `--program bench` |
//! | [`stopped_timer::StoppedTimerProbe`] | when the virtual timer last rose, for the diagnosis after `--timeout` | runs with `--timeout` |
//! | [`trace::TraceProbe`] | every exit, level report, `KVM_IRQ_LINE` and kick, timestamped, for a trace viewer | `--trace FILE` |

pub mod bench;
pub mod stopped_timer;
pub mod trace;
