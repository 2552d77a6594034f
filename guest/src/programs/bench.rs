//! `bench`: the guest half of the interrupt-latency benchmark
//! (`uirq_abi::bench` is the contract; `cargo xtask bench-latency` the
//! host half).
//!
//! # What happens
//!
//! ```text
//!  marker  run()                                        on_irq() (IRQs masked)
//!  ──────  ─────                                        ────────
//!  Idle    GICD/GICC init, VTIMER and SGI 1 enabled
//!          vtimer warm-ups
//!  Vtimer  N x: CVAL = now + ~30 us; WFI ─────────────▶ entry (vector) ; IAR ; after_ack
//!                                                       CNTV_CTL = 0  (line drops)
//!                                                       EOIR ; after_eoi
//!  Idle    VTIMER off; SGI warm-ups
//!  Sgi     N x: IRQs on; write = now; GICD_SGIR ──────▶ entry (vector) ; IAR ; EOIR
//!  Idle    MMIO warm-ups
//!  Mmio    N x: start = now; GICD_TYPER read; end = now
//!  Idle    (2+ CPUs) core 1 started, IPI warm-ups
//!  Ipi     N x: write = now; GICD_SGIR ────────────────▶ core 1: entry (vector) ; IAR ; EOIR;
//!          wait (WFE) for core 1's count                  count it; SEV
//!  Idle    header, DSB, magic
//!  Done    (no VMM marker: the buffer as `bench-dump` lines)
//!          one summary line, SYSTEM_OFF
//! ```
//!
//! The ipi measurement needs a second core: with one, the firmware records
//! none (`Header::ipi_samples` = 0). Core 1 only receives: it sleeps in WFI
//! with its IRQs enabled, and its handler counts each SGI and stores its
//! vector-entry timestamp; core 0 waits for that count with IRQs masked.
//!
//! Every timestamp is a raw `CNTVCT_EL0` value, stored into the result
//! buffer in guest RAM (no exit) as soon as the sample is complete; nothing
//! is converted or printed per sample. Each marker write is one MMIO exit,
//! always outside a measured window, and warm-ups run before their phase's
//! marker, so the VMM counts exactly the exits of the measured samples.
//!
//! The markers are written only when the VMM announced its marker register
//! (`uirq_abi::bench::HOST_MAGIC`); under QEMU, whose `virt` board answers
//! that address with an external abort, the program measures without them.
//! There no VMM reads the result buffer either, so the program prints it
//! once the measuring is over (`uirq_abi::bench_dump`: a few characters a
//! timestamp), and `cargo xtask bench-latency --vmm qemu` summarises those
//! words with the same code as `uirq-vmm`'s own runs.

use core::{
    hint::black_box,
    sync::atomic::{AtomicU64, Ordering},
};

use aarch64_cpu::{
    asm::{barrier, wfi},
    registers::{ReadWriteable, DAIF},
};
use uirq_abi::{
    bench::{
        Header, IpiSample, MmioSample, Phase, SgiSample, VtimerSample, BENCH_SGI, MARKER_BASE,
        MAX_SAMPLES, RESULTS_ADDR,
    },
    exit::Status,
    gicv2::{IntId, VTIMER},
};
use uirq_guest::{
    bench::{Anomaly, Args, Results},
    drivers::{
        gicv2::{Gicd, Priority, SgiTarget},
        marker::Marker,
        timer::{us_to_ticks, VirtualTimer},
    },
    stats::Counter,
};

use crate::{board, psci, smp};

/// The SGI the benchmark sends itself, as a range-checked id.
const SGI: IntId = match IntId::sgi(BENCH_SGI) {
    Some(id) => id,
    None => panic!("BENCH_SGI must be an SGI (0-15)"),
};

/// Priority of both interrupts: above the distributor's default (0xA0), well
/// inside the mask (`PMR` = 0xFF).
const PRIORITY: Priority = 0x80;

/// How far ahead each vtimer deadline is set. Long enough for the few
/// instructions between arming and `WFI` even under emulation (were the
/// deadline already past, the sample would still be valid, just not a
/// wake-up from `WFI`), short enough for 10 000 samples to take well under a
/// second natively.
const VTIMER_DELAY_US: u64 = 30;

/// How long core 0 waits for core 1 to take one IPI before it gives up:
/// generous, since nested emulation can stall a vCPU for milliseconds.
const IPI_WAIT_US: u64 = 2_000_000;

/// Spurious acknowledges (IAR = 1023) tolerated in a whole run. A correct
/// GIC gives none here; a storm of them means the buffer cannot be
/// completed, and the run fails instead of spinning forever.
const MAX_SPURIOUS: u64 = 1000;

// State shared with the IRQ handler: written only by the handler (one
// writer each, see `uirq_guest::stats`), read by `run` after the counter
// that covers them has moved.

/// Virtual-timer interrupts handled.
static VTIMER_IRQS: Counter = Counter::new();
/// SGIs handled.
static SGI_IRQS: Counter = Counter::new();
/// Acknowledges that returned the spurious id 1023.
static SPURIOUS: Counter = Counter::new();
/// Interrupts with any other id (disabled at the distributor when seen).
static UNEXPECTED: Counter = Counter::new();
/// The last interrupt's vector-entry timestamp.
static ENTRY: AtomicU64 = AtomicU64::new(0);
/// IPIs core 1 handled (written by core 1's handler only).
static IPI_IRQS: Counter = Counter::new();
/// The last IPI's vector-entry timestamp on core 1.
static IPI_ENTRY: AtomicU64 = AtomicU64::new(0);
/// Set by core 0 when core 1 may stop receiving.
static IPI_DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// The last virtual-timer interrupt's timestamp just after `GICC_IAR`.
static AFTER_ACK: AtomicU64 = AtomicU64::new(0);
/// The last virtual-timer interrupt's timestamp just after `GICC_EOIR`.
static AFTER_EOI: AtomicU64 = AtomicU64::new(0);

/// Why the buffer could not be completed.
#[derive(Clone, Copy, Debug)]
enum Failure {
    /// More than [`MAX_SPURIOUS`] acknowledges returned 1023.
    SpuriousStorm,
    /// The second core did not come up (PSCI CPU_ON failed or it never
    /// reported in).
    NoSecondCore,
    /// Core 1 did not take an IPI within [`IPI_WAIT_US`].
    IpiTimeout,
}

/// Runs the benchmark: `x1` samples per measurement, `x2` warm-ups
/// (`uirq_guest::bench::Args`).
pub fn run(x1: u64, x2: u64) -> ! {
    crate::irq::set_handler(on_irq);
    let args = Args::from_boot_registers(x1, x2);
    if let Some(asked) = args.capped_from {
        println!("bench: {asked} samples asked for; capped at {MAX_SAMPLES}, the buffer's size");
    }
    let timer = VirtualTimer;
    let Some(freq) = timer.frequency() else {
        println!("bench: CNTFRQ_EL0 reads 0, so the counter frequency is unknown; refusing to run");
        psci::system_off(Status::Failure)
    };
    let gicd = board::gicd();
    let gicc = board::gicc();
    // SAFETY: RESULTS_ADDR is guest RAM above the image, BSS and stack (the
    // linker script asserts it), 4 KiB aligned, and no Rust object lives
    // there.
    let results = unsafe { Results::new(RESULTS_ADDR as usize) };
    // The marker register exists only if the VMM said so (QEMU's `virt`
    // board has nothing there and answers a write with an external abort).
    let marker = results.host_has_marker().then(|| {
        // SAFETY: the VMM announced its phase-marker frame at MARKER_BASE
        // (`uirq_abi::bench::HOST_MAGIC`); nothing else uses the address.
        // (board.rs argues the same for the other devices.)
        unsafe { Marker::new(MARKER_BASE as usize) }
    });
    let mark = |phase| {
        if let Some(marker) = &marker {
            marker.mark(phase);
        }
    };
    results.invalidate();
    mark(Phase::Idle);

    // The GIC, as the timer program sets it up, plus the SGI. (SGIs may be
    // always enabled; enabling is harmless then.)
    gicd.init();
    gicc.init();
    gicd.set_priority(VTIMER, PRIORITY);
    gicd.set_priority(SGI, PRIORITY);
    gicd.enable(VTIMER);
    gicd.enable(SGI);

    let cpus = smp::cpu_count();
    let mut anomalies = 0;
    let outcome = (|| -> Result<u64, Failure> {
        // vtimer: deadline → vector → after IAR → after EOIR.
        let delay = us_to_ticks(VTIMER_DELAY_US, freq);
        for _ in 0..args.warmup {
            vtimer_sample(delay)?;
        }
        mark(Phase::Vtimer);
        for i in 0..args.samples {
            let sample = vtimer_sample(delay)?;
            anomalies += u64::from(sample.is_anomalous());
            results.write_vtimer(i, sample);
        }
        mark(Phase::Idle);
        // Nothing but the SGI may interrupt from here on: the timer is off
        // (its handler cleared CNTV_CTL) and now also disabled at the GIC.
        gicd.disable(VTIMER);

        // sgi: just before the GICD_SGIR write → vector.
        for _ in 0..args.warmup {
            sgi_sample(&gicd)?;
        }
        mark(Phase::Sgi);
        for i in 0..args.samples {
            let sample = sgi_sample(&gicd)?;
            anomalies += u64::from(sample.is_anomalous());
            results.write_sgi(i, sample);
        }
        mark(Phase::Idle);

        // mmio: one trapped distributor read.
        for _ in 0..args.warmup {
            mmio_sample(&gicd);
        }
        mark(Phase::Mmio);
        for i in 0..args.samples {
            let sample = mmio_sample(&gicd);
            anomalies += u64::from(sample.is_anomalous());
            results.write_mmio(i, sample);
        }
        mark(Phase::Idle);

        // ipi: core 0's GICD_SGIR write → core 1's vector.
        if cpus < 2 {
            return Ok(0);
        }
        match smp::start_secondaries() {
            Ok(_) if smp::run_on(1, ipi_receiver) => {}
            _ => return Err(Failure::NoSecondCore),
        }
        for _ in 0..args.warmup {
            ipi_sample(&gicd)?;
        }
        mark(Phase::Ipi);
        for i in 0..args.samples {
            let sample = ipi_sample(&gicd)?;
            anomalies += u64::from(sample.is_anomalous());
            results.write_ipi(i, sample);
        }
        mark(Phase::Idle);
        IPI_DONE.store(true, Ordering::Release);
        // Wake core 1 from its WFI with one last SGI, uncounted.
        gicd.send_sgi(SgiTarget::List(0b10), SGI);
        Ok(args.samples)
    })();

    let ipi_samples = match outcome {
        Ok(n) => n,
        Err(failure) => {
            mark(Phase::Done);
            println!(
                "bench: FAILED: {failure:?} ({} spurious acknowledge(s)); the buffer is incomplete",
                SPURIOUS.get()
            );
            psci::system_off(Status::Failure)
        }
    };

    let header = Header {
        magic: 0,
        version: 0,
        cntfrq: freq.get(),
        samples: args.samples,
        warmup: args.warmup,
        anomalies,
        ipi_samples,
        cpus: cpus as u64,
    };
    results.complete(header, || barrier::dsb(barrier::SY));
    mark(Phase::Done);
    if marker.is_none() {
        // No uirq-vmm here to read the buffer (QEMU): print it, after
        // every measurement, so the printing costs none of them.
        let (count, words) = results.used_words(&header);
        let _console = crate::console::lock();
        // The PL011 driver's `write_str` cannot fail.
        let _ = uirq_abi::bench_dump::write(count, words, &mut board::uart());
    }

    println!(
        "bench: {} x {} samples recorded ({} warm-up, {} CPU(s)), CNTFRQ_EL0 = {} Hz, anomalies = {}, spurious = {}, unexpected = {}{}",
        if ipi_samples > 0 { 4 } else { 3 },
        args.samples,
        args.warmup,
        cpus,
        freq,
        anomalies,
        SPURIOUS.get(),
        UNEXPECTED.get(),
        if marker.is_some() { "" } else { " (no phase markers: the VMM did not announce them)" },
    );
    psci::system_off(Status::Success)
}

/// One virtual-timer sample: arm `delay` ticks ahead, sleep until the
/// handler has run.
fn vtimer_sample(delay: u64) -> Result<VtimerSample, Failure> {
    let target = VTIMER_IRQS.get() + 1;
    let deadline = VirtualTimer.arm_after(delay);
    wait_until(&VTIMER_IRQS, target)?;
    Ok(VtimerSample {
        deadline,
        entry: ENTRY.load(Ordering::Relaxed),
        after_ack: AFTER_ACK.load(Ordering::Relaxed),
        after_eoi: AFTER_EOI.load(Ordering::Relaxed),
    })
}

/// One SGI sample: with IRQs unmasked, timestamp, write `GICD_SGIR`.
///
/// Under a VMM the write exits, the GIC model makes the SGI pending and
/// raises the vCPU's IRQ line, and the interrupt is taken as soon as the
/// vCPU resumes, right after the store. Nothing else can interrupt: the
/// SGI is the only interrupt still enabled.
fn sgi_sample(gicd: &Gicd) -> Result<SgiSample, Failure> {
    let target = SGI_IRQS.get() + 1;
    DAIF.modify(DAIF::I::Unmasked);
    // The unmask is in effect before the timestamp (and the write).
    barrier::isb(barrier::SY);
    let write = VirtualTimer.now();
    let sent = gicd.send_sgi_to_self(SGI);
    // SGI is an SGI (checked at compile time above), so the write happened.
    debug_assert!(sent);
    wait_until(&SGI_IRQS, target)?;
    Ok(SgiSample {
        write,
        entry: ENTRY.load(Ordering::Relaxed),
    })
}

/// One IPI sample: timestamp, then `GICD_SGIR` with core 1 in the target
/// list; wait (WFE, IRQs masked on this core) until core 1's handler has
/// counted it.
///
/// Under a VMM the write exits on core 0's thread; the GIC model makes the
/// SGI pending at CPU interface 1, which raises vCPU 1's line (the owner
/// thread rule: core 0's thread kicks core 1's, which calls `KVM_IRQ_LINE`).
fn ipi_sample(gicd: &Gicd) -> Result<IpiSample, Failure> {
    let target = IPI_IRQS.get() + 1;
    let write = VirtualTimer.now();
    gicd.send_sgi(SgiTarget::List(0b10), SGI);
    if !smp::wait_until(IPI_WAIT_US, || IPI_IRQS.get() >= target) {
        return Err(Failure::IpiTimeout);
    }
    Ok(IpiSample {
        write,
        entry: IPI_ENTRY.load(Ordering::Acquire),
    })
}

/// Core 1's part of the ipi measurement: take SGIs until core 0 is done.
fn ipi_receiver(_core: usize) {
    crate::irq::set_handler(on_irq);
    let gicd = board::gicd();
    // SGI state is banked: core 1 sets up its own copy.
    gicd.set_priority(SGI, PRIORITY);
    gicd.enable(SGI);
    loop {
        DAIF.modify(DAIF::I::Masked);
        if IPI_DONE.load(Ordering::Acquire) {
            return;
        }
        wfi();
        DAIF.modify(DAIF::I::Unmasked);
        barrier::isb(barrier::SY);
    }
}

/// One MMIO sample: a `GICD_TYPER` read between two counter reads (each
/// after an ISB, so neither is taken early). The value is kept
/// (`black_box`), so the read cannot be left out.
fn mmio_sample(gicd: &Gicd) -> MmioSample {
    let timer = VirtualTimer;
    let start = timer.now();
    black_box(gicd.typer_raw());
    let end = timer.now();
    MmioSample { start, end }
}

/// Sleeps until `counter` reaches `target`, and leaves IRQs masked.
///
/// As in the timer program: the check runs with IRQs masked and `WFI`
/// sleeps with them masked (a pending IRQ wakes it all the same), then a
/// short unmasked window with an ISB lets the interrupt in. Checking with
/// IRQs unmasked could lose the wake-up: the interrupt could be handled
/// between the check and `WFI`, which would then sleep for good.
fn wait_until(counter: &Counter, target: u64) -> Result<(), Failure> {
    loop {
        DAIF.modify(DAIF::I::Masked);
        if counter.get() >= target {
            return Ok(());
        }
        if SPURIOUS.get() > MAX_SPURIOUS {
            return Err(Failure::SpuriousStorm);
        }
        wfi();
        DAIF.modify(DAIF::I::Unmasked);
        barrier::isb(barrier::SY);
    }
}

/// The IRQ handler, called from the vector with its entry timestamp.
pub fn on_irq(entry_ticks: u64) {
    let timer = VirtualTimer;
    let gicc = board::gicc();
    let Some(irq) = gicc.acknowledge() else {
        SPURIOUS.increment();
        return;
    };
    let after_ack = timer.now();
    let id = irq.id();

    if id == VTIMER {
        // Silence the timer before the EOI: its level drops now, and the
        // EOIR exit reports the low level to the VMM before it is served.
        timer.disable();
        gicc.end_of_interrupt(irq);
        let after_eoi = timer.now();
        ENTRY.store(entry_ticks, Ordering::Relaxed);
        AFTER_ACK.store(after_ack, Ordering::Relaxed);
        AFTER_EOI.store(after_eoi, Ordering::Relaxed);
        VTIMER_IRQS.increment();
    } else if id == SGI && smp::core_id() != 0 {
        // Core 1: an IPI from core 0 (or the final wake-up).
        gicc.end_of_interrupt(irq);
        IPI_ENTRY.store(entry_ticks, Ordering::Release);
        IPI_IRQS.increment();
        smp::notify();
    } else if id == SGI {
        gicc.end_of_interrupt(irq);
        ENTRY.store(entry_ticks, Ordering::Relaxed);
        SGI_IRQS.increment();
    } else {
        // Nothing else was enabled; make sure it cannot come back.
        UNEXPECTED.increment();
        board::gicd().disable(id);
        gicc.end_of_interrupt(irq);
    }
}
