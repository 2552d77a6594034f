//! The latency benchmark's host half: decoding the firmware's result buffer
//! and turning samples into statistics. Plain Rust, tested anywhere.
//!
//! The firmware records raw counter values (see `uirq_abi::bench`); the VMM
//! adds its own timeline of the same interrupts on the same timebase
//! ([`IrqTimeline`]) and counts its exits per measurement. [`run_report`]
//! is what `uirq-vmm --program bench` prints as one JSON line for
//! `cargo xtask bench-latency` to collect, and [`sample_chunks`] every
//! sample, with `--raw-samples`. Their types are the JSON schema's, shared
//! with xtask (`uirq_abi::bench_json`).

use serde::Serialize;

use uirq_abi::bench::{
    Header, IpiSample, MmioSample, SgiSample, VtimerSample, IPI_OFFSET, MAGIC, MAX_SAMPLES,
    MMIO_OFFSET, RESULTS_SIZE, SGI_OFFSET, VERSION, VTIMER_OFFSET,
};
use uirq_abi::bench_json::{self, SCHEMA_VERSION};
pub use uirq_abi::bench_json::{
    ExitsPerSample, Histogram, Measurement, RunReport, SampleChunk, Stage, Summary,
};

/// Why the result buffer could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResultsError {
    /// The buffer is shorter than the layout.
    #[error("the result buffer is {0} bytes, shorter than the layout's {RESULTS_SIZE}")]
    Short(usize),
    /// The firmware did not finish the buffer (no magic).
    #[error("the firmware did not complete the result buffer (magic {0:#x})")]
    Incomplete(u64),
    /// The firmware wrote another layout version.
    #[error("the result buffer has layout version {0}, this VMM reads version {VERSION}")]
    Version(u64),
    /// The header's counts are impossible.
    #[error("the result buffer claims {samples} samples (at most {MAX_SAMPLES}) at {cntfrq} Hz")]
    BadHeader {
        /// Claimed samples.
        samples: u64,
        /// Claimed counter frequency.
        cntfrq: u64,
    },
    /// The IPI sample count is not what the CPU count implies: the sample
    /// count with two CPUs or more, 0 with one.
    #[error("the result buffer claims {ipi} IPI samples with {samples} samples per measurement and {cpus} CPUs")]
    BadIpiCount {
        /// Claimed IPI samples.
        ipi: u64,
        /// Samples per measurement.
        samples: u64,
        /// Claimed CPUs.
        cpus: u64,
    },
    /// The CPU count is not one a GICv2 can have (1 to 8).
    #[error("the result buffer claims {0} CPUs (a GICv2 has 1 to 8)")]
    BadCpus(u64),
    /// More anomalies than timestamps that can be anomalous: at most one
    /// per recorded sample of each of the four measurements.
    #[error("the result buffer claims {anomalies} anomalies in {samples} samples per measurement")]
    BadAnomalies {
        /// Claimed anomalies.
        anomalies: u64,
        /// Samples per measurement.
        samples: u64,
    },
}

/// The firmware's measurements, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestResults {
    /// The header as written.
    pub header: Header,
    /// Virtual-timer interrupts.
    pub vtimer: Vec<VtimerSample>,
    /// SGIs to self.
    pub sgi: Vec<SgiSample>,
    /// Distributor register reads.
    pub mmio: Vec<MmioSample>,
    /// SGIs from CPU 0 to CPU 1 (empty with one CPU).
    pub ipi: Vec<IpiSample>,
}

fn words<const N: usize>(bytes: &[u8], at: usize) -> [u64; N] {
    let mut out = [0u64; N];
    for (i, w) in out.iter_mut().enumerate() {
        let start = at + 8 * i;
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[start..start + 8]);
        *w = u64::from_le_bytes(b);
    }
    out
}

/// Decodes the result buffer (`RESULTS_SIZE` bytes read from
/// `RESULTS_ADDR`). The guest is untrusted: every count is checked before it
/// is used as a length.
pub fn decode(bytes: &[u8]) -> Result<GuestResults, ResultsError> {
    if bytes.len() < RESULTS_SIZE as usize {
        return Err(ResultsError::Short(bytes.len()));
    }
    let [magic, version, cntfrq, samples, warmup, anomalies, ipi_samples, cpus] =
        words::<8>(bytes, 0);
    if magic != MAGIC {
        return Err(ResultsError::Incomplete(magic));
    }
    if version != VERSION {
        return Err(ResultsError::Version(version));
    }
    if samples == 0 || samples > MAX_SAMPLES || cntfrq == 0 {
        return Err(ResultsError::BadHeader { samples, cntfrq });
    }
    // The firmware's contract (guest/src/programs/bench.rs): GICD_TYPER's
    // CPU count, IPI samples exactly when there is a second CPU, and at
    // most one anomaly per sample of each measurement.
    if !(1..=8).contains(&cpus) {
        return Err(ResultsError::BadCpus(cpus));
    }
    if ipi_samples != if cpus >= 2 { samples } else { 0 } {
        return Err(ResultsError::BadIpiCount {
            ipi: ipi_samples,
            samples,
            cpus,
        });
    }
    if anomalies > 4 * samples {
        return Err(ResultsError::BadAnomalies { anomalies, samples });
    }
    let n = samples as usize;
    let vtimer = (0..n)
        .map(|i| {
            let [deadline, entry, after_ack, after_eoi] =
                words::<4>(bytes, VTIMER_OFFSET as usize + 32 * i);
            VtimerSample {
                deadline,
                entry,
                after_ack,
                after_eoi,
            }
        })
        .collect();
    let sgi = (0..n)
        .map(|i| {
            let [write, entry] = words::<2>(bytes, SGI_OFFSET as usize + 16 * i);
            SgiSample { write, entry }
        })
        .collect();
    let mmio = (0..n)
        .map(|i| {
            let [start, end] = words::<2>(bytes, MMIO_OFFSET as usize + 16 * i);
            MmioSample { start, end }
        })
        .collect();
    let ipi = (0..ipi_samples as usize)
        .map(|i| {
            let [write, entry] = words::<2>(bytes, IPI_OFFSET as usize + 16 * i);
            IpiSample { write, entry }
        })
        .collect();
    Ok(GuestResults {
        header: Header {
            magic,
            version,
            cntfrq,
            samples,
            warmup,
            anomalies,
            ipi_samples,
            cpus,
        },
        vtimer,
        sgi,
        mmio,
        ipi,
    })
}

/// What the VMM saw of one virtual-timer interrupt, in counter ticks on the
/// guest's timebase (user irqchip only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IrqTimeline {
    /// `KVM_RUN` returned reporting the timer level high.
    pub level_seen: u64,
    /// Just before `KVM_IRQ_LINE` raised the vCPU's IRQ input.
    pub irq_line: u64,
    /// The GICC_IAR read was being served.
    pub iar: u64,
    /// The GICC_EOIR write was being served.
    pub eoi: u64,
    /// Ticks spent outside `KVM_RUN` on this interrupt's exits.
    pub vmm_ticks: u64,
    /// Of those, ticks spent inside the `KVM_IRQ_LINE` ioctls.
    pub irq_line_ticks: u64,
    /// Exits to userspace that belonged to this interrupt.
    pub exits: u32,
}

/// Bins per decade of the histograms.
const BINS_PER_DECADE: f64 = 20.0;

/// Converts counter ticks to nanoseconds at `cntfrq` Hz.
pub fn ticks_to_ns(ticks: u64, cntfrq: u64) -> f64 {
    ticks as f64 * 1e9 / cntfrq as f64
}

/// The nearest-rank percentile `p` (0..=100) of sorted `v`.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summarises intervals given as `(start, end)` counter pairs.
pub fn summarize(pairs: impl IntoIterator<Item = (u64, u64)>, cntfrq: u64) -> Summary {
    let mut negative = 0;
    let mut ns: Vec<f64> = Vec::new();
    for (start, end) in pairs {
        match end.checked_sub(start) {
            Some(d) => ns.push(ticks_to_ns(d, cntfrq)),
            None => negative += 1,
        }
    }
    ns.sort_by(f64::total_cmp);
    let mut s = Summary {
        count: ns.len() as u64,
        negative,
        ..Summary::default()
    };
    if ns.is_empty() {
        return s;
    }
    let q1 = percentile(&ns, 25.0);
    let q3 = percentile(&ns, 75.0);
    let fence = q3 + 3.0 * (q3 - q1);
    s.outliers = ns.iter().filter(|&&x| x > fence).count() as u64;
    s.min_ns = ns[0];
    s.p50_ns = percentile(&ns, 50.0);
    s.p90_ns = percentile(&ns, 90.0);
    s.p99_ns = percentile(&ns, 99.0);
    s.p999_ns = percentile(&ns, 99.9);
    s.max_ns = ns[ns.len() - 1];
    s.mean_ns = ns.iter().sum::<f64>() / ns.len() as f64;
    s.histogram = histogram(&ns);
    s
}

fn histogram(sorted: &[f64]) -> Histogram {
    let lo = sorted[0].max(1.0);
    let hi = sorted[sorted.len() - 1].max(lo * 1.0001);
    let first = (lo.log10() * BINS_PER_DECADE).floor() as i32;
    let last = (hi.log10() * BINS_PER_DECADE).floor() as i32 + 1;
    let edges_ns: Vec<f64> = (first..=last)
        .map(|k| 10f64.powf(f64::from(k) / BINS_PER_DECADE))
        .collect();
    let mut counts = vec![0u64; edges_ns.len() - 1];
    for &x in sorted {
        let x = x.max(1.0);
        let k = ((x.log10() * BINS_PER_DECADE).floor() as i32 - first)
            .clamp(0, counts.len() as i32 - 1) as usize;
        counts[k] += 1;
    }
    Histogram { edges_ns, counts }
}

/// Names of the stage series, in order.
pub const STAGE_NAMES: [&str; 6] = [
    "deadline_to_vmm",
    "vmm_work",
    "injection_to_vector",
    "guest_handler",
    "vmm_work_per_irq",
    "irq_line_ioctls_per_irq",
];

/// Where a stage starts and ends, from a guest sample and the VMM's
/// timeline entry of the same interrupt.
type Span = dyn Fn(&VtimerSample, &IrqTimeline) -> (u64, u64);

/// Builds the stage breakdown of the virtual-timer path from the guest's
/// samples and the VMM's timeline of the same interrupts (already on the
/// guest's timebase), matched in order.
pub fn stages(vtimer: &[VtimerSample], timeline: &[IrqTimeline], cntfrq: u64) -> Vec<Stage> {
    // The timeline also holds the warm-up interrupts, which came first.
    let skip = timeline.len().saturating_sub(vtimer.len());
    let t = &timeline[skip..];
    let pairs = vtimer.iter().zip(t);
    let summary_of = |f: &Span| summarize(pairs.clone().map(|(g, h)| f(g, h)), cntfrq);
    let spans: [(&str, &Span); 6] = [
        (
            "timer deadline (CNTV_CVAL) -> VMM sees the level (KVM_RUN returned)",
            &|g, h| (g.deadline, h.level_seen),
        ),
        ("VMM sees the level -> KVM_IRQ_LINE issued", &|_, h| {
            (h.level_seen, h.irq_line)
        }),
        (
            "KVM_IRQ_LINE issued -> first instruction of the guest's IRQ vector",
            &|g, h| (h.irq_line, g.entry),
        ),
        (
            "IRQ vector -> after GICC_EOIR (acknowledge, silence timer, EOI)",
            &|g, _| (g.entry, g.after_eoi),
        ),
        (
            "time outside KVM_RUN spent on one interrupt's exits",
            &|_, h| (0, h.vmm_ticks),
        ),
        (
            "of that, time inside the KVM_IRQ_LINE ioctls (raise and lower)",
            &|_, h| (0, h.irq_line_ticks),
        ),
    ];
    STAGE_NAMES
        .iter()
        .zip(spans)
        .map(|(name, (interval, span))| Stage {
            stage: (*name).into(),
            interval: interval.into(),
            summary: summary_of(span),
        })
        .collect()
}

/// One measurement's samples as `(start, end)` counter pairs, in the order
/// taken.
struct Series {
    name: &'static str,
    interval: &'static str,
    pairs: Vec<(u64, u64)>,
}

/// The measurements the firmware recorded: vtimer, sgi, mmio and, when it
/// recorded it, ipi.
fn series(results: &GuestResults) -> Vec<Series> {
    let mut all = vec![
        Series {
            name: "vtimer",
            interval: "timer deadline (CNTV_CVAL) -> first instruction of the IRQ vector",
            pairs: results
                .vtimer
                .iter()
                .map(|s| (s.deadline, s.entry))
                .collect(),
        },
        Series {
            name: "sgi",
            interval: "GICD_SGIR write (SGI to self) -> first instruction of the IRQ vector",
            pairs: results.sgi.iter().map(|s| (s.write, s.entry)).collect(),
        },
        Series {
            name: "mmio",
            interval: "one GICD_TYPER read, counter to counter",
            pairs: results.mmio.iter().map(|s| (s.start, s.end)).collect(),
        },
    ];
    if !results.ipi.is_empty() {
        all.push(Series {
            name: "ipi",
            interval:
                "CPU 0's GICD_SGIR write (SGI to CPU 1) -> first instruction of CPU 1's IRQ vector",
            pairs: results.ipi.iter().map(|s| (s.write, s.entry)).collect(),
        });
    }
    all
}

/// The measurements of a run, with `exits` the per-phase exit counts
/// (vtimer, sgi, mmio, ipi) where the VMM saw them; ipi only when the
/// firmware recorded it.
pub fn measurements(
    results: &GuestResults,
    exits: Option<[ExitsPerSample; 4]>,
) -> Vec<Measurement> {
    let f = results.header.cntfrq;
    let exits = exits.map_or([None, None, None, None], |e| e.map(Some));
    series(results)
        .into_iter()
        .zip(exits)
        .map(|(s, exits_per_sample)| Measurement {
            measurement: s.name.into(),
            interval: s.interval.into(),
            summary: summarize(s.pairs, f),
            exits_per_sample,
            raw: None,
        })
        .collect()
}

/// One sample in signed counter ticks: end minus start, negative when the
/// end came first (as `Summary::negative` counts it), saturating at the
/// ends of `i64`.
pub fn signed_ticks(start: u64, end: u64) -> i64 {
    match end.checked_sub(start) {
        Some(d) => i64::try_from(d).unwrap_or(i64::MAX),
        None => i64::try_from(start - end).map_or(i64::MIN, |d| -d),
    }
}

/// Every sample of every measurement, in signed counter ticks
/// ([`signed_ticks`]), in the order of [`measurements`].
pub fn sample_ticks(results: &GuestResults) -> Vec<(&'static str, Vec<i64>)> {
    series(results)
        .into_iter()
        .map(|s| {
            let ticks = s.pairs.iter().map(|&(a, b)| signed_ticks(a, b)).collect();
            (s.name, ticks)
        })
        .collect()
}

/// Every sample of a run as the `@@samples` reports that carry them, in
/// order (`uirq_abi::bench_json::chunks`).
pub fn sample_chunks(results: &GuestResults) -> Vec<SampleChunk> {
    sample_ticks(results)
        .iter()
        .flat_map(|(name, ticks)| bench_json::chunks(name, ticks))
        .collect()
}

/// What the VMM knows of a benchmark run besides the firmware's buffer.
#[derive(Clone, Debug, Default)]
pub struct RunContext {
    /// The program making the report: `uirq-vmm`, or `xtask` for a
    /// firmware dump.
    pub tool: &'static str,
    /// `uirq` or `qemu`.
    pub vmm: &'static str,
    /// `user` or `kernel`.
    pub irqchip: &'static str,
    /// vCPUs in the VM.
    pub vcpus: u64,
    /// Exits per sample of the vtimer, sgi, mmio and ipi phases, where the
    /// VMM counted them.
    pub exits: Option<[ExitsPerSample; 4]>,
    /// The VMM's timeline of the vtimer phase (user irqchip; else empty).
    pub timeline: Vec<IrqTimeline>,
    /// How the VMM's clock was put on the guest's timebase.
    pub timebase: String,
    /// The VMM's resident memory apart from guest RAM, in KiB.
    pub vmm_rss_kib: Option<u64>,
    /// Seconds since the Unix epoch when the report is made.
    pub unix_secs: u64,
}

/// The `@@bench` report of a run: the firmware's `results` summarised,
/// with what the VMM saw (`run`).
pub fn run_report(results: &GuestResults, run: RunContext) -> RunReport {
    let cntfrq = results.header.cntfrq;
    RunReport {
        schema_version: SCHEMA_VERSION,
        tool: run.tool.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        timestamp: bench_json::rfc3339_utc(run.unix_secs),
        vmm: run.vmm.into(),
        irqchip: run.irqchip.into(),
        cntfrq_hz: cntfrq,
        samples: results.header.samples,
        warmup: results.header.warmup,
        guest_anomalies: results.header.anomalies,
        timebase: run.timebase,
        vcpus: run.vcpus,
        results: measurements(results, run.exits),
        stages: if run.timeline.is_empty() {
            Vec::new()
        } else {
            stages(&results.vtimer, &run.timeline, cntfrq)
        },
        vmm_rss_kib: run.vmm_rss_kib,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 99.9), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 50.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn summaries_convert_ticks_count_negatives_and_outliers() {
        // 62.5 MHz: one tick is 16 ns.
        let mut pairs: Vec<(u64, u64)> = (0..99).map(|i| (1000, 1000 + 100 + i % 3)).collect();
        pairs.push((1000, 1000 + 100_000)); // far out
        pairs.push((2000, 1000)); // negative
        let s = summarize(pairs, 62_500_000);
        assert_eq!(s.count, 100);
        assert_eq!(s.negative, 1);
        assert_eq!(s.outliers, 1);
        assert_eq!(s.min_ns, 1600.0);
        assert_eq!(s.max_ns, 1_600_000.0);
        assert!(s.p50_ns >= 1600.0 && s.p50_ns <= 1632.0);
        assert_eq!(s.histogram.counts.iter().sum::<u64>(), 100);
        assert_eq!(s.histogram.edges_ns.len(), s.histogram.counts.len() + 1);
        assert!(s.histogram.edges_ns.windows(2).all(|w| w[0] < w[1]));
    }

    fn buffer(samples: u64) -> Vec<u8> {
        let mut b = vec![0u8; RESULTS_SIZE as usize];
        for (i, w) in [MAGIC, VERSION, 1_000_000_000, samples, 5, 0, samples, 2]
            .iter()
            .enumerate()
        {
            b[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        for i in 0..samples as usize {
            let at = VTIMER_OFFSET as usize + 32 * i;
            for (k, w) in [10u64, 20, 30, 40].iter().enumerate() {
                b[at + 8 * k..at + 8 * k + 8].copy_from_slice(&(w + i as u64).to_le_bytes());
            }
            let at = SGI_OFFSET as usize + 16 * i;
            b[at..at + 8].copy_from_slice(&1u64.to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&3u64.to_le_bytes());
            let at = MMIO_OFFSET as usize + 16 * i;
            b[at + 8..at + 16].copy_from_slice(&9u64.to_le_bytes());
            let at = IPI_OFFSET as usize + 16 * i;
            b[at..at + 8].copy_from_slice(&100u64.to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&170u64.to_le_bytes());
        }
        b
    }

    #[test]
    fn the_buffer_decodes_with_the_shared_layout() {
        let r = decode(&buffer(3)).unwrap();
        assert_eq!(r.header.samples, 3);
        assert_eq!(r.header.warmup, 5);
        assert_eq!(r.vtimer[2].after_eoi, 42);
        assert_eq!(r.sgi[1], SgiSample { write: 1, entry: 3 });
        assert_eq!(r.mmio[0], MmioSample { start: 0, end: 9 });
        assert_eq!(
            r.ipi[2],
            IpiSample {
                write: 100,
                entry: 170
            }
        );
        assert_eq!(r.header.cpus, 2);
        let m = measurements(&r, Default::default());
        assert_eq!(m[0].summary.p50_ns, 10.0);
        assert_eq!(m[1].summary.p50_ns, 2.0);
        assert_eq!(m[2].summary.p50_ns, 9.0);
        assert_eq!(m[3].measurement, "ipi");
        assert_eq!(m[3].summary.p50_ns, 70.0);
    }

    // One CPU: no IPI samples, and no ipi measurement in the report; an
    // IPI count that is neither 0 nor the sample count is refused.
    #[test]
    fn the_ipi_measurement_exists_only_with_its_samples() {
        let mut b = buffer(3);
        b[48..56].copy_from_slice(&0u64.to_le_bytes());
        b[56..64].copy_from_slice(&1u64.to_le_bytes());
        let r = decode(&b).unwrap();
        assert!(r.ipi.is_empty());
        assert_eq!(measurements(&r, Default::default()).len(), 3);
        b[48..56].copy_from_slice(&2u64.to_le_bytes());
        assert_eq!(
            decode(&b),
            Err(ResultsError::BadIpiCount {
                ipi: 2,
                samples: 3,
                cpus: 1
            })
        );
    }

    // Fuzzing finding (bench_decode): a header claiming 0 CPUs, or more
    // than a GICv2 has, was accepted.
    #[test]
    fn impossible_cpu_counts_are_refused() {
        for cpus in [0, 9, u64::MAX] {
            let mut b = buffer(3);
            b[56..64].copy_from_slice(&cpus.to_le_bytes());
            assert_eq!(decode(&b), Err(ResultsError::BadCpus(cpus)));
        }
    }

    // Fuzzing finding (bench_decode): IPI samples were accepted from a
    // one-CPU run, and their absence from a run with two CPUs (where the
    // firmware either measures them or fails the run).
    #[test]
    fn ipi_samples_must_match_the_cpu_count() {
        let mut b = buffer(3);
        b[56..64].copy_from_slice(&1u64.to_le_bytes());
        assert_eq!(
            decode(&b),
            Err(ResultsError::BadIpiCount {
                ipi: 3,
                samples: 3,
                cpus: 1
            })
        );
        let mut b = buffer(3);
        b[48..56].copy_from_slice(&0u64.to_le_bytes());
        assert!(matches!(
            decode(&b),
            Err(ResultsError::BadIpiCount {
                ipi: 0,
                cpus: 2,
                ..
            })
        ));
    }

    // Fuzzing finding (bench_decode): more anomalies than recorded
    // timestamps could have were accepted; the boundary is still fine.
    #[test]
    fn more_anomalies_than_samples_are_refused() {
        let mut b = buffer(3);
        b[40..48].copy_from_slice(&12u64.to_le_bytes());
        assert!(decode(&b).is_ok());
        b[40..48].copy_from_slice(&13u64.to_le_bytes());
        assert_eq!(
            decode(&b),
            Err(ResultsError::BadAnomalies {
                anomalies: 13,
                samples: 3
            })
        );
    }

    #[test]
    fn hostile_buffers_are_refused_not_trusted() {
        assert_eq!(decode(&[0; 16]), Err(ResultsError::Short(16)));
        let mut b = buffer(3);
        b[0] = 0;
        assert!(matches!(decode(&b), Err(ResultsError::Incomplete(_))));
        let mut b = buffer(3);
        b[24..32].copy_from_slice(&(MAX_SAMPLES + 1).to_le_bytes());
        assert!(matches!(decode(&b), Err(ResultsError::BadHeader { .. })));
        let mut b = buffer(3);
        b[8..16].copy_from_slice(&99u64.to_le_bytes());
        assert_eq!(decode(&b), Err(ResultsError::Version(99)));
    }

    #[test]
    fn raw_samples_are_signed_ticks_in_measurement_order() {
        assert_eq!(signed_ticks(10, 25), 15);
        assert_eq!(signed_ticks(25, 10), -15);
        assert_eq!(signed_ticks(0, u64::MAX), i64::MAX);
        assert_eq!(signed_ticks(u64::MAX, 0), i64::MIN);
        let mut b = buffer(3);
        // The second sgi sample ends before it starts.
        let at = SGI_OFFSET as usize + 16;
        b[at..at + 8].copy_from_slice(&5u64.to_le_bytes());
        let r = decode(&b).unwrap();
        let ticks = sample_ticks(&r);
        let names: Vec<&str> = ticks.iter().map(|t| t.0).collect();
        assert_eq!(names, ["vtimer", "sgi", "mmio", "ipi"]);
        assert_eq!(ticks[0].1, [10, 10, 10]);
        assert_eq!(ticks[1].1, [2, -2, 2]);
        let m = measurements(&r, Default::default());
        assert_eq!(m[1].summary.negative, 1, "the same sample, counted");
        let chunks = sample_chunks(&r);
        assert_eq!(chunks.len(), 4, "one chunk per measurement of 3 samples");
        assert_eq!(chunks[3].ticks, [70, 70, 70]);
        assert!(chunks.iter().all(|c| c.total == 3 && c.first == 0));
    }

    // Everything the VMM knows goes into the report: the guest's anomaly
    // count, the stages with their histograms, the VMM's memory.
    #[test]
    fn the_run_report_carries_the_whole_run() {
        let mut b = buffer(3);
        b[40..48].copy_from_slice(&2u64.to_le_bytes());
        let r = decode(&b).unwrap();
        let t = IrqTimeline {
            level_seen: 12,
            irq_line: 14,
            iar: 15,
            eoi: 16,
            vmm_ticks: 4,
            irq_line_ticks: 1,
            exits: 3,
        };
        let report = run_report(
            &r,
            RunContext {
                tool: "uirq-vmm",
                vmm: "uirq",
                irqchip: "user",
                vcpus: 2,
                exits: Some(Default::default()),
                timeline: vec![t; 3],
                timebase: "shared counter".into(),
                vmm_rss_kib: Some(2048),
                unix_secs: 86_400,
            },
        );
        assert_eq!(report.schema_version, SCHEMA_VERSION);
        assert_eq!(report.tool, "uirq-vmm");
        assert_eq!(report.vmm, "uirq");
        assert!(report.results.iter().all(|m| m.exits_per_sample.is_some()));
        assert_eq!(report.tool_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(report.timestamp, "1970-01-02T00:00:00Z");
        assert_eq!(report.guest_anomalies, 2);
        assert_eq!((report.samples, report.warmup, report.vcpus), (3, 5, 2));
        assert_eq!(report.results.len(), 4);
        assert_eq!(report.stages.len(), STAGE_NAMES.len());
        assert!(report
            .stages
            .iter()
            .all(|s| s.summary.histogram.counts.iter().sum::<u64>() == 3));
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<RunReport>(&json).unwrap(), report);
        let kernel = run_report(
            &r,
            RunContext {
                irqchip: "kernel",
                ..RunContext::default()
            },
        );
        assert!(kernel.stages.is_empty(), "no timeline, no stages");
    }

    #[test]
    fn stages_match_the_last_timeline_entries_to_the_samples() {
        let g = [VtimerSample {
            deadline: 100,
            entry: 400,
            after_ack: 450,
            after_eoi: 500,
        }];
        let warmup = IrqTimeline::default();
        let t = IrqTimeline {
            level_seen: 150,
            irq_line: 200,
            iar: 420,
            eoi: 480,
            vmm_ticks: 60,
            irq_line_ticks: 20,
            exits: 3,
        };
        let s = stages(&g, &[warmup, t], 1_000_000_000);
        let p50: Vec<f64> = s.iter().map(|s| s.summary.p50_ns).collect();
        assert_eq!(p50, [50.0, 50.0, 200.0, 100.0, 60.0, 20.0]);
    }
}
