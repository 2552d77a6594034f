//! The latency benchmark's host half: decoding the firmware's result buffer
//! and turning samples into statistics. Plain Rust, tested anywhere.
//!
//! The firmware records raw counter values (see `uirq_abi::bench`); the VMM
//! adds its own timeline of the same interrupts on the same timebase
//! ([`IrqTimeline`]) and counts its exits per measurement. [`Report`] is
//! what `uirq-vmm --program bench` prints as one JSON line for
//! `cargo xtask bench-latency` to collect.

use serde::Serialize;

use uirq_abi::bench::{
    Header, IpiSample, MmioSample, SgiSample, VtimerSample, IPI_OFFSET, MAGIC, MAX_SAMPLES,
    MMIO_OFFSET, RESULTS_SIZE, SGI_OFFSET, VERSION, VTIMER_OFFSET,
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

/// Statistics of one series, in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Samples summarised (negative ones included in `negative`, not here).
    pub count: usize,
    /// Samples whose end came before their start (clock or recording error).
    pub negative: usize,
    /// Samples above the far-out fence (third quartile + 3 × IQR); counted,
    /// never dropped.
    pub outliers: usize,
    /// Smallest.
    pub min_ns: f64,
    /// Median.
    pub p50_ns: f64,
    /// 90th percentile.
    pub p90_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// 99.9th percentile.
    pub p999_ns: f64,
    /// Largest.
    pub max_ns: f64,
    /// Mean.
    pub mean_ns: f64,
    /// Log-spaced histogram for plotting.
    pub histogram: Histogram,
}

/// A histogram with logarithmically spaced bins.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Histogram {
    /// Bin edges in ns; `counts[i]` counts samples in `[edges[i], edges[i+1])`.
    pub edges_ns: Vec<f64>,
    /// Samples per bin.
    pub counts: Vec<u64>,
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
        count: ns.len(),
        negative,
        ..Summary::default()
    };
    if ns.is_empty() {
        return s;
    }
    let q1 = percentile(&ns, 25.0);
    let q3 = percentile(&ns, 75.0);
    let fence = q3 + 3.0 * (q3 - q1);
    s.outliers = ns.iter().filter(|&&x| x > fence).count();
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

/// Exits to userspace per recorded sample, by kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ExitsPerSample {
    /// All exits to userspace.
    pub total: f64,
    /// EINTR returns that reported a timer level change.
    pub level_report: f64,
    /// MMIO loads served by the VMM.
    pub mmio_read: f64,
    /// MMIO stores served by the VMM.
    pub mmio_write: f64,
    /// Other returns (kicks, unexpected exits).
    pub other: f64,
}

impl ExitsPerSample {
    /// Per-sample figures from exit counts over `samples` samples.
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
        Self {
            total: per(level_report + mmio_read + mmio_write + other),
            level_report: per(level_report),
            mmio_read: per(mmio_read),
            mmio_write: per(mmio_write),
            other: per(other),
        }
    }
}

/// One measurement of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// `vtimer`, `sgi` or `mmio`.
    pub measurement: &'static str,
    /// What is timed, in words.
    pub interval: &'static str,
    /// The statistics.
    #[serde(flatten)]
    pub summary: Summary,
    /// Exits to userspace per sample in this measurement's phase.
    pub exits_per_sample: ExitsPerSample,
}

/// A named stage of the virtual-timer path.
#[derive(Clone, Debug, Serialize)]
pub struct Stage {
    /// Stage name.
    pub stage: &'static str,
    /// What it spans.
    pub interval: &'static str,
    /// The statistics.
    #[serde(flatten)]
    pub summary: Summary,
}

/// Everything one benchmark run produced: the line the VMM prints.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `user` or `kernel`.
    pub irqchip: &'static str,
    /// CNTFRQ_EL0 in Hz, as the firmware read it.
    pub cntfrq_hz: u64,
    /// Recorded samples per measurement.
    pub samples: u64,
    /// Discarded warm-up samples per measurement.
    pub warmup: u64,
    /// Samples the firmware flagged as inconsistent.
    pub guest_anomalies: u64,
    /// How the VMM's clock was put on the guest's timebase.
    pub timebase: String,
    /// vCPUs in the VM.
    pub vcpus: usize,
    /// The three measurements.
    pub results: Vec<Measurement>,
    /// The virtual-timer path split into stages (user irqchip only).
    pub stages: Vec<Stage>,
    /// The VMM's resident memory apart from guest RAM, in KiB.
    pub vmm_rss_kib: Option<u64>,
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

/// Builds the stage breakdown of the virtual-timer path from the guest's
/// samples and the VMM's timeline of the same interrupts (already on the
/// guest's timebase), matched in order.
pub fn stages(vtimer: &[VtimerSample], timeline: &[IrqTimeline], cntfrq: u64) -> Vec<Stage> {
    // The timeline also holds the warm-up interrupts, which came first.
    let skip = timeline.len().saturating_sub(vtimer.len());
    let t = &timeline[skip..];
    let pairs = vtimer.iter().zip(t);
    let series = |f: &dyn Fn(&VtimerSample, &IrqTimeline) -> (u64, u64)| {
        summarize(pairs.clone().map(|(g, h)| f(g, h)), cntfrq)
    };
    vec![
        Stage {
            stage: STAGE_NAMES[0],
            interval: "timer deadline (CNTV_CVAL) -> VMM sees the level (KVM_RUN returned)",
            summary: series(&|g, h| (g.deadline, h.level_seen)),
        },
        Stage {
            stage: STAGE_NAMES[1],
            interval: "VMM sees the level -> KVM_IRQ_LINE issued",
            summary: series(&|_, h| (h.level_seen, h.irq_line)),
        },
        Stage {
            stage: STAGE_NAMES[2],
            interval: "KVM_IRQ_LINE issued -> first instruction of the guest's IRQ vector",
            summary: series(&|g, h| (h.irq_line, g.entry)),
        },
        Stage {
            stage: STAGE_NAMES[3],
            interval: "IRQ vector -> after GICC_EOIR (acknowledge, silence timer, EOI)",
            summary: series(&|g, _| (g.entry, g.after_eoi)),
        },
        Stage {
            stage: STAGE_NAMES[4],
            interval: "time outside KVM_RUN spent on one interrupt's exits",
            summary: series(&|_, h| (0, h.vmm_ticks)),
        },
        Stage {
            stage: STAGE_NAMES[5],
            interval: "of that, time inside the KVM_IRQ_LINE ioctls (raise and lower)",
            summary: series(&|_, h| (0, h.irq_line_ticks)),
        },
    ]
}

/// The measurements of a run, with `exits` the per-phase exit counts
/// (vtimer, sgi, mmio, ipi); ipi only when the firmware recorded it.
pub fn measurements(results: &GuestResults, exits: [ExitsPerSample; 4]) -> Vec<Measurement> {
    let f = results.header.cntfrq;
    let [e_vtimer, e_sgi, e_mmio, e_ipi] = exits;
    let mut all = vec![
        Measurement {
            measurement: "vtimer",
            interval: "timer deadline (CNTV_CVAL) -> first instruction of the IRQ vector",
            summary: summarize(results.vtimer.iter().map(|s| (s.deadline, s.entry)), f),
            exits_per_sample: e_vtimer,
        },
        Measurement {
            measurement: "sgi",
            interval: "GICD_SGIR write (SGI to self) -> first instruction of the IRQ vector",
            summary: summarize(results.sgi.iter().map(|s| (s.write, s.entry)), f),
            exits_per_sample: e_sgi,
        },
        Measurement {
            measurement: "mmio",
            interval: "one GICD_TYPER read, counter to counter",
            summary: summarize(results.mmio.iter().map(|s| (s.start, s.end)), f),
            exits_per_sample: e_mmio,
        },
    ];
    if !results.ipi.is_empty() {
        all.push(Measurement {
            measurement: "ipi",
            interval:
                "CPU 0's GICD_SGIR write (SGI to CPU 1) -> first instruction of CPU 1's IRQ vector",
            summary: summarize(results.ipi.iter().map(|s| (s.write, s.entry)), f),
            exits_per_sample: e_ipi,
        });
    }
    all
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
