//! The latency benchmark's JSON documents, defined once for the program
//! that writes each and the one that reads it (feature `json`).
//!
//! Two documents, and one report in pieces:
//!
//! - [`RunReport`]: one run of `uirq-vmm --program bench` (one irqchip),
//!   printed by the VMM as one `@@bench <tag> {json}` line
//!   (`crate::report`) and read back by `cargo xtask bench-latency`.
//! - [`SampleChunk`]: with `uirq-vmm --raw-samples`, every sample of a run
//!   in counter ticks, as `@@samples <tag> {json}` lines of at most
//!   [`SAMPLES_PER_CHUNK`] samples each (a console line the harness reads
//!   is at most 64 KiB). xtask joins them into [`Measurement::raw`].
//! - [`Document`]: what `cargo xtask bench-latency --json PATH` writes: the
//!   runs as the VMM reported them, whole, with where they ran and the
//!   user/kernel ratios.
//!
//! # Units
//!
//! Durations are in nanoseconds (`_ns`, floating point: ticks × 10⁹ /
//! CNTFRQ), counter values in ticks of CNTVCT_EL0 (`ticks`, integers),
//! frequencies in Hz, memory in KiB. A field's unit is in its name or its
//! documentation here.
//!
//! # Versions
//!
//! Every document carries [`SCHEMA_VERSION`], the producing program's name
//! and version (`tool`, `tool_version`: its `CARGO_PKG_VERSION`) and when
//! it was made (`timestamp`, RFC 3339 in UTC). The schema version is one
//! integer for all three documents, raised by one whenever any field is
//! added, removed, renamed, or changes type, unit or meaning; a reader
//! refuses any other version rather than guess (xtask refuses a VMM built
//! from other sources, say a stale binary). The version history:
//!
//! - 1: the first typed schema (run reports whole in the document, raw
//!   samples on request, the guest's anomaly count and every histogram).
//! - 2: runs name their VMM ([`RunReport::vmm`]: `uirq` or `qemu`), so
//!   a document compares VMMs as well as irqchips; exits per sample are
//!   null where the VMM's exits cannot be seen (QEMU); ratios name both
//!   sides ([`Ratio`]); the document gives each VMM's footprint
//!   ([`Footprint`]).

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// The schema version of every document in this module (see the module
/// documentation for when it changes).
pub const SCHEMA_VERSION: u32 = 2;

/// Most samples in one [`SampleChunk`]: 2048 ticks of at most 20
/// characters and a comma each keep a line under 44 KiB, below the 64 KiB
/// a harness line may have.
pub const SAMPLES_PER_CHUNK: usize = 2048;

/// Most [`SampleChunk`]s one run prints: every sample of four measurements
/// at the result buffer's largest sample count.
pub const MAX_CHUNKS: usize = 4 * (crate::bench::MAX_SAMPLES as usize).div_ceil(SAMPLES_PER_CHUNK);

/// One run of the `bench` program: the `@@bench` report of `uirq-vmm`, or
/// what xtask made of the firmware's dump under QEMU
/// (`crate::bench_dump`), with the same code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// [`SCHEMA_VERSION`] of the program that wrote it.
    pub schema_version: u32,
    /// The program that wrote it: `uirq-vmm`, or `xtask` for a run under
    /// QEMU (from the firmware's dump).
    pub tool: String,
    /// Its version (`CARGO_PKG_VERSION`).
    pub tool_version: String,
    /// When the report was made, RFC 3339 in UTC (`2026-12-03T00:38:35Z`).
    pub timestamp: String,
    /// The VMM that ran the guest: `uirq` (`uirq-vmm`) or `qemu`
    /// (`qemu-system-aarch64` with KVM).
    pub vmm: String,
    /// The interrupt controller: `user` (the VMM's own GICv2: this
    /// project's model, or QEMU's with `kernel_irqchip=off`) or `kernel`
    /// (KVM's in-kernel vGICv2).
    pub irqchip: String,
    /// CNTFRQ_EL0 as the firmware read it, in Hz: ticks per second.
    pub cntfrq_hz: u64,
    /// Recorded samples per measurement (the ipi measurement's too).
    pub samples: u64,
    /// Warm-up samples per measurement, taken and discarded.
    pub warmup: u64,
    /// Samples the firmware found inconsistent (a timestamp earlier than
    /// the one before it) and recorded anyway, over all measurements.
    pub guest_anomalies: u64,
    /// How the VMM's clock was put on the guest's timebase, in words.
    pub timebase: String,
    /// vCPUs in the VM.
    pub vcpus: u64,
    /// The measurements: `vtimer`, `sgi`, `mmio` and, with two vCPUs or
    /// more, `ipi`, in that order.
    pub results: Vec<Measurement>,
    /// The virtual-timer path split into stages, from the VMM's own
    /// timeline of the same interrupts (`user` irqchip only; empty with
    /// `kernel`, where the VMM sees none of it).
    pub stages: Vec<Stage>,
    /// The VMM's resident memory apart from guest RAM, in KiB; null where
    /// it could not be read.
    pub vmm_rss_kib: Option<u64>,
}

/// One measurement of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// `vtimer`, `sgi`, `mmio` or `ipi`.
    pub measurement: String,
    /// What is timed, in words (from which event to which).
    pub interval: String,
    /// The statistics (their fields appear at this level in the JSON).
    #[serde(flatten)]
    pub summary: Summary,
    /// Exits to userspace per sample during this measurement; null where
    /// the VMM's exits cannot be seen (QEMU).
    pub exits_per_sample: Option<ExitsPerSample>,
    /// Every sample, in the order taken: only when raw samples were asked
    /// for (`bench-latency --raw`), absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<RawSamples>,
}

/// A named stage of the virtual-timer path (`user` irqchip).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// `deadline_to_vmm`, `vmm_work`, `injection_to_vector`,
    /// `guest_handler`, `vmm_work_per_irq` or `irq_line_ioctls_per_irq`.
    pub stage: String,
    /// What it spans, in words.
    pub interval: String,
    /// The statistics (their fields appear at this level in the JSON).
    #[serde(flatten)]
    pub summary: Summary,
}

/// Statistics of one series of intervals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Samples summarised: those whose end was not before their start.
    pub count: u64,
    /// Samples whose end came before their start (a clock or recording
    /// error), left out of every figure below.
    pub negative: u64,
    /// Samples above the far-out fence (third quartile + 3 × IQR):
    /// counted, never dropped.
    pub outliers: u64,
    /// Smallest sample, in ns (0 when `count` is 0, as for every figure).
    pub min_ns: f64,
    /// Median (nearest rank), in ns.
    pub p50_ns: f64,
    /// 90th percentile (nearest rank), in ns.
    pub p90_ns: f64,
    /// 99th percentile (nearest rank), in ns.
    pub p99_ns: f64,
    /// 99.9th percentile (nearest rank), in ns. With fewer than 1000
    /// samples it is the largest sample; tables show it only from 1000.
    pub p999_ns: f64,
    /// Largest sample, in ns.
    pub max_ns: f64,
    /// Arithmetic mean, in ns.
    pub mean_ns: f64,
    /// The samples in logarithmically spaced bins.
    pub histogram: Histogram,
}

/// A histogram with logarithmically spaced bins (20 per decade).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Bin edges in ns, increasing; `counts[i]` counts the samples in
    /// `[edges_ns[i], edges_ns[i + 1])`. One more edge than bins; both
    /// empty when there are no samples.
    pub edges_ns: Vec<f64>,
    /// Samples per bin.
    pub counts: Vec<u64>,
}

/// Exits to userspace per recorded sample, by kind (0 with `kernel`,
/// nearly).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExitsPerSample {
    /// All exits to userspace, per sample.
    pub total: f64,
    /// EINTR returns that reported a timer level change, per sample.
    pub level_report: f64,
    /// MMIO loads served by the VMM, per sample.
    pub mmio_read: f64,
    /// MMIO stores served by the VMM, per sample.
    pub mmio_write: f64,
    /// Other returns (kicks, unexpected exits), per sample.
    pub other: f64,
}

impl ExitsPerSample {
    /// Per-sample figures from exit counts over `samples` samples (all 0
    /// when `samples` is 0).
    pub fn from_counts(
        level_report: u64,
        mmio_read: u64,
        mmio_write: u64,
        other: u64,
        samples: u64,
    ) -> Self {
        let per = |n: u64| {
            if samples == 0 {
                0.0
            } else {
                n as f64 / samples as f64
            }
        };
        let total = level_report
            .saturating_add(mmio_read)
            .saturating_add(mmio_write)
            .saturating_add(other);
        Self {
            total: per(total),
            level_report: per(level_report),
            mmio_read: per(mmio_read),
            mmio_write: per(mmio_write),
            other: per(other),
        }
    }
}

/// Every sample of one measurement, in the order the firmware took them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RawSamples {
    /// Each sample's end minus its start, in counter ticks (negative for a
    /// sample that ended before it began; see [`Summary::negative`]).
    pub ticks: Vec<i64>,
    /// The same samples in ns: `ticks[i]` × 10⁹ / `cntfrq_hz`.
    pub ns: Vec<f64>,
}

impl RawSamples {
    /// The samples `ticks` of a run whose counter runs at `cntfrq_hz`.
    pub fn from_ticks(ticks: Vec<i64>, cntfrq_hz: u64) -> Self {
        let hz = cntfrq_hz.max(1) as f64;
        let ns = ticks.iter().map(|&t| t as f64 * 1e9 / hz).collect();
        Self { ticks, ns }
    }
}

/// A run of samples of one measurement: the `@@samples` report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleChunk {
    /// [`SCHEMA_VERSION`] of the VMM that wrote it.
    pub schema_version: u32,
    /// The measurement ([`Measurement::measurement`]).
    pub measurement: String,
    /// Index of this chunk's first sample in the measurement.
    pub first: u64,
    /// Samples in the whole measurement.
    pub total: u64,
    /// At most [`SAMPLES_PER_CHUNK`] samples, in counter ticks as in
    /// [`RawSamples::ticks`].
    pub ticks: Vec<i64>,
}

/// Splits the samples `ticks` of `measurement` into chunks, in order.
pub fn chunks(measurement: &str, ticks: &[i64]) -> Vec<SampleChunk> {
    ticks
        .chunks(SAMPLES_PER_CHUNK)
        .enumerate()
        .map(|(i, part)| SampleChunk {
            schema_version: SCHEMA_VERSION,
            measurement: measurement.into(),
            first: (i * SAMPLES_PER_CHUNK) as u64,
            total: ticks.len() as u64,
            ticks: part.to_vec(),
        })
        .collect()
}

/// Why chunks did not join into a measurement's samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinError {
    /// A chunk of another schema version.
    Version(u32),
    /// A chunk that does not start where the previous one ended, or runs
    /// past the total.
    Gap {
        /// Where the chunk said it starts.
        first: u64,
        /// Where it should have.
        expected: u64,
    },
    /// Fewer samples than the chunks' total, or than the measurement has.
    Count {
        /// Samples joined.
        got: u64,
        /// Samples expected.
        expected: u64,
    },
}

impl core::fmt::Display for JoinError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Version(v) => write!(
                f,
                "a sample chunk has schema version {v}, expected {SCHEMA_VERSION}"
            ),
            Self::Gap { first, expected } => write!(
                f,
                "a sample chunk starts at sample {first}, expected {expected}"
            ),
            Self::Count { got, expected } => {
                write!(f, "{got} samples arrived, expected {expected}")
            }
        }
    }
}

/// Joins `measurement`'s chunks (in the order they came; other
/// measurements' chunks are skipped) into its `expected` samples.
pub fn join<'a>(
    measurement: &str,
    chunks: impl IntoIterator<Item = &'a SampleChunk>,
    expected: u64,
) -> Result<Vec<i64>, JoinError> {
    let mut ticks = Vec::new();
    for c in chunks.into_iter().filter(|c| c.measurement == measurement) {
        if c.schema_version != SCHEMA_VERSION {
            return Err(JoinError::Version(c.schema_version));
        }
        let at = ticks.len() as u64;
        if c.first != at || c.total != expected || at + c.ticks.len() as u64 > expected {
            return Err(JoinError::Gap {
                first: c.first,
                expected: at,
            });
        }
        ticks.extend_from_slice(&c.ticks);
    }
    if ticks.len() as u64 != expected {
        return Err(JoinError::Count {
            got: ticks.len() as u64,
            expected,
        });
    }
    Ok(ticks)
}

/// What `cargo xtask bench-latency --json PATH` writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The program that wrote it: `xtask`.
    pub tool: String,
    /// Its version (`CARGO_PKG_VERSION`).
    pub tool_version: String,
    /// When the document was written, RFC 3339 in UTC.
    pub timestamp: String,
    /// Where and how the runs were made.
    pub environment: Environment,
    /// One run per VMM and irqchip, in the order run, each exactly as it
    /// was reported (raw samples joined in when asked for).
    pub runs: Vec<RunReport>,
    /// Run over run, per measurement both have: `uirq/user` over
    /// `uirq/kernel` and, when QEMU ran, `uirq/user` over `qemu/user`
    /// and `qemu/user` over `qemu/kernel`.
    pub ratios: Vec<Ratio>,
    /// Each run's VMM on a trivial guest: its size and its start-to-exit
    /// time, per (VMM, irqchip).
    pub footprints: Vec<Footprint>,
    /// The VMM's own work per timer interrupt set against the user path's
    /// latency; null without a `user` run.
    pub vmm_work: Option<VmmWork>,
}

/// Where and how the runs were made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// `native` (an aarch64 KVM host) or `nested` (an aarch64 Linux with
    /// KVM under QEMU).
    pub kind: String,
    /// The release of the kernel whose KVM ran the VMM.
    pub host_kernel: String,
    /// QEMU's version line when nested; null natively.
    pub qemu: Option<String>,
    /// The VMMs measured, in order (`uirq`, `qemu`).
    pub vmms: Vec<String>,
    /// The QEMU that ran the `qemu` rows, as its version line; null
    /// without them.
    pub peer_qemu: Option<String>,
    /// The architecture xtask ran on (`x86_64`, `aarch64`).
    pub build_machine: String,
    /// Samples per measurement asked for.
    pub samples: u64,
    /// Warm-up samples per measurement asked for.
    pub warmup: u64,
    /// vCPUs asked for.
    pub vcpus: u64,
    /// Whether every sample is in the runs ([`Measurement::raw`]).
    pub raw_samples: bool,
}

/// One run's figure over another's for one measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    /// The measurement.
    pub measurement: String,
    /// The run on top, as `vmm/irqchip` (`uirq/user`).
    pub of: String,
    /// The run below, as `vmm/irqchip` (`uirq/kernel`, `qemu/user`).
    pub over: String,
    /// Its p50 over the other's (a plain number); null when the other's
    /// is 0.
    pub p50: Option<f64>,
    /// The same for p99.
    pub p99: Option<f64>,
}

/// One VMM with one irqchip on a trivial guest (the `oneshot` program:
/// one timer interrupt, then SYSTEM_OFF), started and waited for by the
/// harness where the VMM runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Footprint {
    /// `uirq` or `qemu`.
    pub vmm: String,
    /// `user` or `kernel`.
    pub irqchip: String,
    /// Guest RAM given to it, in MiB (the same for every VMM).
    pub guest_ram_mib: u64,
    /// The VMM process's peak resident set size (guest RAM it touched
    /// included), in KiB; null where it could not be read.
    pub peak_rss_kib: Option<u64>,
    /// From the VMM's start to its exit, in ms; null where not measured.
    pub start_to_exit_ms: Option<f64>,
}

/// The VMM's work per timer interrupt (user irqchip).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VmmWork {
    /// Median time outside `KVM_RUN` spent on one timer interrupt's exits
    /// (stage `vmm_work_per_irq`), in ns.
    pub per_timer_irq_p50_ns: f64,
    /// That over the user run's vtimer p50 (a fraction, 0 to 1); null
    /// when the latter is 0.
    pub share_of_user_vtimer_p50: Option<f64>,
}

/// `unix_secs` seconds after 1970-01-01T00:00:00Z as RFC 3339 in UTC,
/// `YYYY-MM-DDTHH:MM:SSZ` (leap seconds aside, as Unix time has none).
pub fn rfc3339_utc(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let rem = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    alloc::format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::vec;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339_utc(1_796_258_315), "2026-12-03T00:38:35Z");
        assert_eq!(rfc3339_utc(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn chunks_join_back_and_bad_ones_are_refused() {
        let ticks: Vec<i64> = (0..5000).map(|i| i * 7 - 3).collect();
        let parts = chunks("sgi", &ticks);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|c| c.ticks.len() <= SAMPLES_PER_CHUNK));
        let other = chunks("mmio", &[1, 2]);
        let mixed: Vec<&SampleChunk> = other.iter().chain(&parts).collect();
        assert_eq!(join("sgi", mixed.iter().copied(), 5000), Ok(ticks.clone()));
        assert_eq!(join("mmio", mixed.iter().copied(), 2), Ok(vec![1, 2]));
        assert_eq!(
            join("sgi", [&parts[0], &parts[2]], 5000),
            Err(JoinError::Gap {
                first: 4096,
                expected: 2048
            })
        );
        assert_eq!(
            join("sgi", &parts[..2], 5000),
            Err(JoinError::Count {
                got: 4096,
                expected: 5000
            })
        );
        assert!(join("sgi", &parts, 4999).is_err());
        assert_eq!(join("ipi", &parts, 0), Ok(vec![]));
        let mut stale = parts[0].clone();
        stale.schema_version = SCHEMA_VERSION + 1;
        assert_eq!(
            join("sgi", [&stale], 5000),
            Err(JoinError::Version(SCHEMA_VERSION + 1))
        );
        assert_eq!(MAX_CHUNKS, 32);
    }

    #[test]
    fn raw_samples_convert_ticks_to_ns() {
        let r = RawSamples::from_ticks(vec![1, -2, 625], 62_500_000);
        assert_eq!(r.ns, [16.0, -32.0, 10_000.0]);
    }

    // Raw samples appear in the JSON only when there are some, and a
    // measurement without them reads back as it was.
    #[test]
    fn measurements_round_trip_with_and_without_raw_samples() {
        let mut m = Measurement {
            measurement: "vtimer".into(),
            interval: "a -> b".into(),
            summary: Summary {
                count: 3,
                p50_ns: 0.1 + 0.2,
                histogram: Histogram {
                    edges_ns: vec![1.0, 1.122_018_454_301_963_3],
                    counts: vec![3],
                },
                ..Summary::default()
            },
            exits_per_sample: Some(ExitsPerSample::from_counts(1, 1, 1, 0, 3)),
            raw: None,
        };
        let text = serde_json::to_string(&m).unwrap();
        assert!(!text.contains("raw") && text.contains("\"p50_ns\":0.30000000000000004"));
        assert_eq!(serde_json::from_str::<Measurement>(&text).unwrap(), m);
        // Unseen exits (QEMU) are null, not zero.
        let unseen = Measurement {
            exits_per_sample: None,
            ..m.clone()
        };
        let text = serde_json::to_string(&unseen).unwrap();
        assert!(text.contains("\"exits_per_sample\":null"), "{text}");
        assert_eq!(serde_json::from_str::<Measurement>(&text).unwrap(), unseen);
        m.raw = Some(RawSamples::from_ticks(vec![3, 4, 5], 3));
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Measurement>(&text).unwrap(), m);
    }
}
