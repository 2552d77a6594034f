use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use uirq_abi::layout::{GICC_BASE, GICD_BASE, UART_BASE};

use super::chrome::{self, Trace};
use super::*;
use crate::exit::system_event;

/// A counter that advances 10 ticks per read.
fn fake_now() -> u64 {
    static T: AtomicU64 = AtomicU64::new(1_000);
    T.fetch_add(10, Ordering::Relaxed)
}

/// GICC_IAR and GICC_EOIR offsets (IHI 0048B 4.4).
const IAR: u64 = GICC_BASE + 0x0c;
const EOIR: u64 = GICC_BASE + 0x10;

fn served_read(addr: u64, value: u32) -> Exit {
    let mut data = [0u8; 8];
    data[..4].copy_from_slice(&value.to_le_bytes());
    Exit::MmioRead { addr, len: 4, data }
}

/// One timer interrupt as the loop and the model would report it: level
/// report, line raised, IAR, line lowered, EOIR; then SYSTEM_OFF.
fn one_tick(budget: u64) -> (Arc<Shared>, TraceProbe, Arc<GicRecorder>) {
    let shared = Shared::new(fake_now, budget);
    let gic = GicRecorder::new(shared.clone());
    let mut p = TraceProbe::new(shared.clone());
    p.reenter(0);
    p.exit(0, &Exit::Interrupted);
    p.timer_level(0, Timer::Virtual, true);
    gic.record(GicRecord::Pending {
        id: 27,
        cpu: Some(0),
        source: None,
    });
    p.served(0, &Exit::Interrupted);
    p.irq_line(0, Line::Irq, true);
    p.irq_line_done(0);
    p.reenter(0);
    p.exit(0, &Exit::read(IAR, 4));
    gic.record(GicRecord::Acknowledged {
        cpu: 0,
        id: 27,
        source: None,
    });
    p.served(0, &served_read(IAR, 27));
    p.irq_line(0, Line::Irq, false);
    p.irq_line_done(0);
    p.reenter(0);
    p.exit(0, &Exit::write(EOIR, 4, 27));
    gic.record(GicRecord::PriorityDropped { cpu: 0, id: 27 });
    gic.record(GicRecord::Deactivated { cpu: 0, id: 27 });
    p.served(0, &Exit::write(EOIR, 4, 27));
    p.reenter(0);
    p.exit(0, &Exit::SystemEvent(system_event::SHUTDOWN));
    (shared, p, gic)
}

fn render(
    probe: &TraceProbe,
    gic: &GicRecorder,
    guest: &[GuestTick],
    dropped: u64,
) -> (String, Value) {
    let vcpus = vec![probe.records.clone()];
    let gic = gic.take();
    let trace = Trace {
        vcpus: &vcpus,
        gic: &gic,
        guest,
        frequency: 1_000_000,
        dropped,
        about: serde_json::Map::new(),
    };
    let mut out = Vec::new();
    chrome::write(&mut out, &trace).unwrap();
    let text = String::from_utf8(out).unwrap();
    let json: Value = serde_json::from_str(&text).expect("the trace is valid JSON");
    (text, json)
}

fn events(json: &Value) -> Vec<Value> {
    json["traceEvents"].as_array().unwrap().clone()
}

fn named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["name"] == name).collect()
}

#[test]
fn one_timer_interrupt_shows_report_line_acknowledge_and_eoi_in_order() {
    let (shared, probe, gic) = one_tick(DEFAULT_BUDGET);
    assert_eq!(shared.dropped(), 0);
    let (_, json) = render(&probe, &gic, &[], 0);
    let ev = events(&json);

    // Four entries into KVM_RUN, each closed by its exit.
    assert_eq!(named(&ev, "KVM_RUN").len(), 4);
    // The VMM's work per exit, named by the register the guest touched.
    assert_eq!(named(&ev, "EINTR (level report or kick)").len(), 1);
    assert_eq!(named(&ev, "PSCI SYSTEM_OFF").len(), 1);
    let iar = named(&ev, "GICC_IAR read");
    assert_eq!(iar.len(), 1);
    assert_eq!(iar[0]["args"]["value"], "0x1b");

    // In order: level report, line raised, acknowledge, EOI.
    let seq = |e: &Value| e["args"]["seq"].as_u64().unwrap();
    let level = named(&ev, "timer level");
    let lines = named(&ev, "KVM_IRQ_LINE");
    let ack = named(&ev, "acknowledge");
    let eoi = named(&ev, "EOI");
    assert_eq!(level.len(), 1);
    assert_eq!(level[0]["args"]["level"], 1);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["args"]["level"], 1);
    assert_eq!(lines[1]["args"]["level"], 0);
    assert_eq!((ack.len(), eoi.len()), (1, 1));
    assert_eq!(ack[0]["args"]["id"], 27);
    assert!(seq(level[0]) < seq(lines[0]));
    assert!(seq(lines[0]) < seq(ack[0]));
    assert!(seq(ack[0]) < seq(lines[1]));
    assert!(seq(lines[1]) < seq(eoi[0]));
    assert_eq!(named(&ev, "deactivate").len(), 1);

    // GIC events sit on the CPU interface's track, vCPU events on the
    // vCPU's, and the tracks are named.
    assert_eq!(ack[0]["tid"], 100);
    assert_eq!(level[0]["tid"], 1);
    let thread_names: Vec<&str> = ev
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert!(thread_names.contains(&"vCPU 0"));
    assert!(thread_names.contains(&"GIC CPU interface 0"));
}

#[test]
fn slices_nest_and_never_overlap_on_a_track() {
    let (_, probe, gic) = one_tick(DEFAULT_BUDGET);
    let (_, json) = render(&probe, &gic, &[], 0);
    let ev = events(&json);
    let mut slices: Vec<(f64, f64, &str)> = ev
        .iter()
        .filter(|e| e["ph"] == "X" && e["tid"] == 1)
        .map(|e| {
            let ts = e["ts"].as_f64().unwrap();
            (
                ts,
                ts + e["dur"].as_f64().unwrap(),
                e["name"].as_str().unwrap(),
            )
        })
        .collect();
    slices.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    // A slice either ends before the next one starts or contains it.
    for pair in slices.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(
            a.1 <= b.0 || (b.0 >= a.0 && b.1 <= a.1),
            "{a:?} and {b:?} overlap"
        );
    }
    // Each KVM_IRQ_LINE lies inside the VMM's work on an exit.
    let line = slices.iter().find(|s| s.2 == "KVM_IRQ_LINE").unwrap();
    assert!(slices
        .iter()
        .any(|s| s.2.starts_with("EINTR") && s.0 <= line.0 && line.1 <= s.1));
}

#[test]
fn the_budget_keeps_the_first_records_and_counts_the_rest() {
    let (shared, probe, gic) = one_tick(5);
    let kept = probe.records.len() + gic.take().len();
    assert_eq!(kept, 5);
    assert!(shared.dropped() > 0);
    let seqs: Vec<u64> = probe.records.iter().map(|(s, _)| s.seq).collect();
    assert!(seqs.iter().all(|s| *s < 5));
    let (_, json) = render(
        &probe,
        &GicRecorder::new(shared.clone()),
        &[],
        shared.dropped(),
    );
    assert_eq!(json["otherData"]["dropped_records"], shared.dropped());
}

#[test]
fn guest_ticks_become_slices_on_the_guest_timeline() {
    let (_, probe, gic) = one_tick(DEFAULT_BUDGET);
    let first = probe.records[0].0.t;
    let tick = GuestTick {
        cpu: 0,
        deadline: first + 5,
        vector: first + 40,
        acked: first + 60,
        eoi: first + 90,
    };
    let (_, json) = render(&probe, &gic, &[tick], 0);
    let ev = events(&json);
    let fired = named(&ev, "timer fired → IRQ vector");
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0]["pid"], 2);
    // 35 ticks at 1 MHz.
    assert_eq!(fired[0]["dur"].as_f64().unwrap(), 35.0);
    assert_eq!(named(&ev, "acknowledge (GICC_IAR)").len(), 1);
    assert_eq!(named(&ev, "to end of interrupt (GICC_EOIR)").len(), 1);
    assert_eq!(json["otherData"]["cntfrq"], 1_000_000);
}

#[test]
fn devices_are_named_by_register() {
    assert_eq!(chrome::register_name(UART_BASE).as_deref(), Some("UARTDR"));
    assert_eq!(
        chrome::register_name(UART_BASE + 0x18).as_deref(),
        Some("UARTFR")
    );
    assert!(chrome::register_name(GICD_BASE).is_some());
    assert_eq!(chrome::register_name(0x10), None);
}
