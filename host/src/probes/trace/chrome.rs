//! Chrome's trace-event JSON, as ui.perfetto.dev and chrome://tracing load
//! it ("Trace Event Format", the JSON object form with `traceEvents`).
//!
//! Tracks (a process and its threads, in the format's terms):
//!
//! | pid | tid | track | events |
//! |---|---|---|---|
//! | 1 | 1 + n | `vCPU n` | `KVM_RUN` (the guest runs), `VMM: <exit>` (the VMM serves it), `KVM_IRQ_LINE` inside it; `timer level` and `kick` instants |
//! | 1 | 100 + n | `GIC CPU interface n` | `pending`, `acknowledge`, `EOI`, `deactivate`, `ignored` instants |
//! | 1 | 99 | `GIC distributor` | `pending` of SPIs |
//! | 2 | 1 + n | `vCPU n` of the guest | `timer fired → vector`, `acknowledge`, `to EOI` (the guest's own counter reads) |
//!
//! Times are microseconds since the run's first record, from counter
//! values (`otherData.cntfrq` ticks per second; `otherData.counter_at_zero`
//! is the counter at time 0). Every event's `args.seq` is its place in the
//! run's order, which settles records that share a counter tick.

use std::io::{self, Write};

use serde_json::{json, Map, Value};
use uirq_abi::layout;

use super::{GicRecord, GuestTick, Stamp, VcpuRecord};
use crate::exit::{system_event, Exit};
use crate::probe::{Line, Timer};

/// The VMM's process in the trace.
const VMM_PID: u32 = 1;
/// The guest's process in the trace.
const GUEST_PID: u32 = 2;
/// The distributor's track.
const DISTRIBUTOR_TID: u32 = 99;
/// CPU interface n's track is this plus n.
const CPU_INTERFACE_TID: u32 = 100;

/// Everything a trace file holds.
pub struct Trace<'a> {
    /// Each vCPU's records, indexed by vCPU.
    pub vcpus: &'a [Vec<(Stamp, VcpuRecord)>],
    /// The GIC model's records.
    pub gic: &'a [(Stamp, GicRecord)],
    /// The guest's own timestamps, where the run has them.
    pub guest: &'a [GuestTick],
    /// Counter ticks per second.
    pub frequency: u64,
    /// Records the run could not keep.
    pub dropped: u64,
    /// More to say in `otherData` (irqchip, program, ...).
    pub about: Map<String, Value>,
}

/// Writes `trace` to `out` as one JSON object.
pub fn write(out: &mut impl Write, trace: &Trace<'_>) -> io::Result<()> {
    let clock = Clock::new(trace);
    out.write_all(b"{\"traceEvents\":[\n")?;
    let mut events = Events { out, first: true };
    metadata(&mut events, trace)?;
    for (cpu, records) in trace.vcpus.iter().enumerate() {
        vcpu_track(&mut events, &clock, cpu, records)?;
    }
    for (stamp, record) in trace.gic {
        gic_event(&mut events, &clock, *stamp, record)?;
    }
    for tick in trace.guest {
        guest_tick(&mut events, &clock, tick)?;
    }
    let mut other = trace.about.clone();
    other.insert("cntfrq".into(), trace.frequency.into());
    other.insert("counter_at_zero".into(), clock.origin.into());
    other.insert("dropped_records".into(), trace.dropped.into());
    let tail = json!({ "displayTimeUnit": "ns", "otherData": other });
    let Value::Object(tail) = tail else {
        unreachable!("json! of an object literal is an object")
    };
    events.out.write_all(b"\n],\n")?;
    let body = serde_json::to_string(&tail)?;
    // `{"displayTimeUnit":..}` without its opening brace continues the
    // object opened above.
    events.out.write_all(&body.as_bytes()[1..])?;
    events.out.write_all(b"\n")
}

/// Counter values to trace time.
struct Clock {
    origin: u64,
    frequency: u64,
}

impl Clock {
    fn new(trace: &Trace<'_>) -> Self {
        let vcpu = trace.vcpus.iter().flatten().map(|(s, _)| s.t);
        let gic = trace.gic.iter().map(|(s, _)| s.t);
        let guest = trace.guest.iter().map(|g| g.deadline.min(g.vector));
        Self {
            origin: vcpu.chain(gic).chain(guest).min().unwrap_or(0),
            frequency: trace.frequency.max(1),
        }
    }

    /// Microseconds since the origin (counter values before it, which a
    /// guest's bogus record could hold, clamp to 0).
    fn us(&self, t: u64) -> f64 {
        t.saturating_sub(self.origin) as f64 * 1e6 / self.frequency as f64
    }

    /// Microseconds from `a` to `b` (0 if `b` is not after `a`).
    fn dur(&self, a: u64, b: u64) -> f64 {
        b.saturating_sub(a) as f64 * 1e6 / self.frequency as f64
    }
}

/// The event array being written.
struct Events<'w, W: Write> {
    out: &'w mut W,
    first: bool,
}

impl<W: Write> Events<'_, W> {
    fn push(&mut self, event: Value) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        }
        self.first = false;
        serde_json::to_writer(&mut *self.out, &event)?;
        Ok(())
    }
}

fn metadata<W: Write>(events: &mut Events<'_, W>, trace: &Trace<'_>) -> io::Result<()> {
    let name = |pid: u32, tid: Option<u32>, name: String| {
        let mut e = json!({ "ph": "M", "pid": pid, "args": { "name": name } });
        match tid {
            Some(tid) => {
                e["name"] = "thread_name".into();
                e["tid"] = tid.into();
            }
            None => e["name"] = "process_name".into(),
        }
        e
    };
    events.push(name(VMM_PID, None, "uirq-vmm".into()))?;
    events.push(name(
        GUEST_PID,
        None,
        "guest (its own counter reads)".into(),
    ))?;
    let cpus = trace.vcpus.len() as u32;
    for cpu in 0..cpus {
        events.push(name(VMM_PID, Some(1 + cpu), format!("vCPU {cpu}")))?;
        events.push(name(
            VMM_PID,
            Some(CPU_INTERFACE_TID + cpu),
            format!("GIC CPU interface {cpu}"),
        ))?;
    }
    events.push(name(
        VMM_PID,
        Some(DISTRIBUTOR_TID),
        "GIC distributor".into(),
    ))?;
    let guest_cpus = trace.guest.iter().map(|g| g.cpu as u32 + 1).max();
    for cpu in 0..guest_cpus.unwrap_or(0) {
        events.push(name(GUEST_PID, Some(1 + cpu), format!("vCPU {cpu}")))?;
    }
    Ok(())
}

/// A complete event ("X"): `name` from `a` to `b`.
fn slice(clock: &Clock, pid: u32, tid: u32, name: &str, a: u64, b: u64, args: Value) -> Value {
    json!({
        "ph": "X", "pid": pid, "tid": tid, "name": name,
        "ts": clock.us(a), "dur": clock.dur(a, b), "args": args,
    })
}

/// An instant event ("i") on its thread's track.
fn instant(clock: &Clock, pid: u32, tid: u32, name: &str, stamp: Stamp, mut args: Value) -> Value {
    args["seq"] = stamp.seq.into();
    json!({
        "ph": "i", "s": "t", "pid": pid, "tid": tid, "name": name,
        "ts": clock.us(stamp.t), "args": args,
    })
}

fn vcpu_track<W: Write>(
    events: &mut Events<'_, W>,
    clock: &Clock,
    cpu: usize,
    records: &[(Stamp, VcpuRecord)],
) -> io::Result<()> {
    let tid = 1 + cpu as u32;
    // The open `KVM_RUN`, the exit being served (and its served form) and
    // the open `KVM_IRQ_LINE`.
    let mut entered: Option<Stamp> = None;
    let mut exited: Option<(Stamp, &Exit, Option<&Exit>)> = None;
    let mut line: Option<(Stamp, usize, Line, bool)> = None;
    let last = records.last().map(|(s, _)| *s);
    for (stamp, record) in records {
        match record {
            VcpuRecord::Enter => {
                if let Some((at, exit, served)) = exited.take() {
                    events.push(vmm_slice(clock, tid, at, *stamp, exit, served))?;
                }
                entered = Some(*stamp);
            }
            VcpuRecord::Exit(exit) => {
                if let Some(at) = entered.take() {
                    let args = json!({ "seq": at.seq, "exit_seq": stamp.seq });
                    events.push(slice(clock, VMM_PID, tid, "KVM_RUN", at.t, stamp.t, args))?;
                }
                exited = Some((*stamp, exit, None));
            }
            VcpuRecord::Served(exit) => {
                if let Some((_, _, served)) = exited.as_mut() {
                    *served = Some(exit);
                }
            }
            VcpuRecord::TimerLevel { timer, level } => {
                let timer = match timer {
                    Timer::Virtual => "virtual",
                    Timer::Physical => "physical",
                };
                let args = json!({ "timer": timer, "level": u8::from(*level) });
                events.push(instant(clock, VMM_PID, tid, "timer level", *stamp, args))?;
            }
            VcpuRecord::IrqLine {
                target,
                line: which,
                level,
            } => line = Some((*stamp, *target, *which, *level)),
            VcpuRecord::IrqLineDone => {
                if let Some((at, target, which, level)) = line.take() {
                    let which = match which {
                        Line::Irq => "irq",
                        Line::Fiq => "fiq",
                    };
                    let args = json!({
                        "seq": at.seq, "target": target, "line": which, "level": u8::from(level),
                    });
                    events.push(slice(
                        clock,
                        VMM_PID,
                        tid,
                        "KVM_IRQ_LINE",
                        at.t,
                        stamp.t,
                        args,
                    ))?;
                }
            }
            VcpuRecord::Kicked { target } => {
                let args = json!({ "target": target });
                events.push(instant(clock, VMM_PID, tid, "kick", *stamp, args))?;
            }
            VcpuRecord::Stopped => {
                events.push(instant(clock, VMM_PID, tid, "stopped", *stamp, json!({})))?;
            }
        }
    }
    // The run ended while the VMM served an exit (SYSTEM_OFF, say).
    if let (Some((at, exit, served)), Some(end)) = (exited, last) {
        events.push(vmm_slice(clock, tid, at, end, exit, served))?;
    }
    Ok(())
}

/// The VMM's work on one exit, from `KVM_RUN`'s return to the next entry.
fn vmm_slice(
    clock: &Clock,
    tid: u32,
    at: Stamp,
    end: Stamp,
    exit: &Exit,
    served: Option<&Exit>,
) -> Value {
    let (name, mut args) = describe(served.unwrap_or(exit));
    args["seq"] = at.seq.into();
    args["exit"] = exit.kind().into();
    slice(clock, VMM_PID, tid, &name, at.t, end.t, args)
}

/// The name of the register at guest physical address `addr`, when a
/// device of this machine is there.
pub fn register_name(addr: u64) -> Option<String> {
    let within = |base: u64, size: u64| addr.checked_sub(base).filter(|off| *off < size);
    if let Some(off) = within(layout::GICD_BASE, layout::GICD_SIZE) {
        return Some(gic_register(true, off));
    }
    if let Some(off) = within(layout::GICC_BASE, layout::GICC_SIZE) {
        return Some(gic_register(false, off));
    }
    if let Some(off) = within(layout::UART_BASE, layout::UART_SIZE) {
        return Some(crate::devices::pl011::register_name(off));
    }
    if within(uirq_abi::bench::MARKER_BASE, 4).is_some() {
        return Some("bench marker".into());
    }
    None
}

/// A GIC register's architectural name, with its index in an array
/// (`GICD_ISENABLER1`), or the frame and offset of a reserved one.
fn gic_register(distributor: bool, off: u64) -> String {
    use uirq_gicv2::{regs, Frame};
    let frame = if distributor {
        Frame::Distributor
    } else {
        Frame::CpuInterface
    };
    match regs::register(frame, off) {
        Some(r) => r.to_string(),
        None => format!("{}+{off:#x}", if distributor { "GICD" } else { "GICC" }),
    }
}

/// A served exit's name and details.
fn describe(exit: &Exit) -> (String, Value) {
    let value = |data: &[u8; 8], len: usize| {
        let mut bytes = [0u8; 8];
        bytes[..len.min(8)].copy_from_slice(&data[..len.min(8)]);
        format!("{:#x}", u64::from_le_bytes(bytes))
    };
    match exit {
        Exit::MmioRead { addr, len, data } | Exit::MmioWrite { addr, len, data } => {
            let write = matches!(exit, Exit::MmioWrite { .. });
            let register = register_name(*addr);
            let name = match &register {
                Some(r) => format!("{r} {}", if write { "write" } else { "read" }),
                None => format!("unmapped {}", if write { "write" } else { "read" }),
            };
            let args = json!({
                "addr": format!("{addr:#x}"), "len": len, "value": value(data, *len),
                "register": register,
            });
            (name, args)
        }
        Exit::SystemEvent(kind) => {
            let name = match *kind {
                system_event::SHUTDOWN => "PSCI SYSTEM_OFF".to_string(),
                system_event::RESET => "PSCI SYSTEM_RESET".to_string(),
                system_event::CRASH => "guest crash".to_string(),
                other => format!("system event {other}"),
            };
            (name, json!({}))
        }
        Exit::Interrupted => ("EINTR (level report or kick)".into(), json!({})),
        Exit::UndecodableMmio { addr, iss } => (
            "undecodable MMIO".into(),
            json!({ "addr": format!("{addr:#x}"), "iss": format!("{iss:#x}") }),
        ),
        other => (other.kind().to_string(), json!({})),
    }
}

fn gic_event<W: Write>(
    events: &mut Events<'_, W>,
    clock: &Clock,
    stamp: Stamp,
    record: &GicRecord,
) -> io::Result<()> {
    let on = |cpu: usize| CPU_INTERFACE_TID + cpu as u32;
    let (tid, name, args) = match *record {
        GicRecord::Pending { id, cpu, source } => (
            cpu.map_or(DISTRIBUTOR_TID, on),
            "pending",
            json!({ "id": id, "cpu": cpu, "source": source }),
        ),
        GicRecord::Acknowledged { cpu, id, source } => (
            on(cpu),
            "acknowledge",
            json!({ "id": id, "source": source }),
        ),
        GicRecord::PriorityDropped { cpu, id } => (on(cpu), "EOI", json!({ "id": id })),
        GicRecord::Deactivated { cpu, id } => (on(cpu), "deactivate", json!({ "id": id })),
        GicRecord::Ignored {
            cpu,
            register,
            reason,
        } => (
            on(cpu),
            "ignored",
            json!({ "register": register, "reason": reason }),
        ),
    };
    events.push(instant(clock, VMM_PID, tid, name, stamp, args))
}

fn guest_tick<W: Write>(
    events: &mut Events<'_, W>,
    clock: &Clock,
    tick: &GuestTick,
) -> io::Result<()> {
    let tid = 1 + tick.cpu as u32;
    let steps = [
        ("timer fired → IRQ vector", tick.deadline, tick.vector),
        ("acknowledge (GICC_IAR)", tick.vector, tick.acked),
        ("to end of interrupt (GICC_EOIR)", tick.acked, tick.eoi),
    ];
    for (name, a, b) in steps {
        let args = json!({ "from": a, "to": b });
        events.push(slice(clock, GUEST_PID, tid, name, a, b, args))?;
    }
    Ok(())
}
