//! A picture of part of a trace: the VMM's `--trace` output (Chrome's
//! trace-event JSON) drawn as an SVG timeline, one row per track, for the
//! docs and for anyone without a trace viewer at hand.
//!
//! Slices (`"ph": "X"`) are bars with their names; instants (`"ph": "i"`)
//! are ticks with their names, staggered so neighbours stay legible. The
//! window is a time range, or [`Window::Interrupt`]: the n-th timer
//! interrupt of the run, from its level report to its EOI.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::Result;

/// Which part of the trace to draw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Window {
    /// From and to, in the trace's microseconds.
    Range(f64, f64),
    /// The n-th (from 1) virtual-timer interrupt: its level report to its
    /// EOI, with a margin either side.
    Interrupt(usize),
}

/// Width of the drawing area for time, in SVG units.
const PLOT_WIDTH: f64 = 900.0;
/// Width of the track names' column.
const LABEL_WIDTH: f64 = 190.0;
/// Height of one track's row: two levels of slices, then instants.
const ROW: f64 = 92.0;
/// Height of one level of slices.
const SLICE: f64 = 18.0;
/// Space above the first row (title) and below the last (time axis).
const TOP: f64 = 40.0;
const BOTTOM: f64 = 102.0;

/// The slice colours, for the legend: (fill, what it stands for).
const LEGEND: [(&str, &str); 6] = [
    ("#b7d7f0", "KVM_RUN: the guest runs"),
    ("#f2b5b5", "EINTR: a level report or a kick"),
    ("#c9e7b5", "a GIC register access, served"),
    ("#f6c48a", "KVM_IRQ_LINE"),
    ("#dddddd", "other exits"),
    ("#d9c8ef", "the guest's own timestamps"),
];

/// The guest's slice from its timer's deadline to its IRQ vector (the
/// VMM's `probes::trace::chrome`).
const GUEST_FIRED: &str = "timer fired → IRQ vector";
/// The trace's process of the guest's own timestamps.
const GUEST_PID: u64 = 2;

/// One event, as far as the picture needs it.
#[derive(Clone, Debug)]
struct Event {
    track: (u64, u64),
    name: String,
    ts: f64,
    dur: Option<f64>,
    /// How many slices of its track enclose it (0: none).
    depth: usize,
}

/// An event's label: its name, with the interrupt id or level it carries.
fn label(e: &Value) -> Option<String> {
    let name = e["name"].as_str()?;
    let args = &e["args"];
    Some(match (args["id"].as_u64(), args["level"].as_u64()) {
        (Some(id), _) => format!("{name} {id}"),
        (None, Some(level)) => format!("{name} = {level}"),
        _ => name.to_string(),
    })
}

/// Sets each slice's depth: how many earlier slices of its track enclose
/// it (a `KVM_IRQ_LINE` inside the VMM's work on an exit is 1).
fn nest(mut events: Vec<Event>) -> Vec<Event> {
    events.sort_by(|a, b| {
        a.track
            .cmp(&b.track)
            .then(a.ts.total_cmp(&b.ts))
            .then(b.dur.unwrap_or(0.0).total_cmp(&a.dur.unwrap_or(0.0)))
    });
    // Ends of the open slices of the current track.
    let mut open: Vec<f64> = Vec::new();
    let mut track = None;
    for e in &mut events {
        if track != Some(e.track) {
            open.clear();
            track = Some(e.track);
        }
        let Some(dur) = e.dur else { continue };
        // Tolerance: a slice that starts where another ends, up to the
        // rounding of µs floats, is not inside it.
        open.retain(|end| *end > e.ts + 1e-3);
        e.depth = open.len();
        open.push(e.ts + dur);
    }
    events
}

/// The time range of `window` in `trace`.
pub fn resolve(trace: &Value, window: Window) -> Result<(f64, f64)> {
    match window {
        Window::Range(a, b) if a.is_finite() && b.is_finite() && b > a => Ok((a, b)),
        Window::Range(a, b) => Err(format!("the window {a}..{b} is empty")),
        Window::Interrupt(n) => interrupt_window(trace, n),
    }
}

fn events(trace: &Value) -> Result<Vec<&Value>> {
    trace["traceEvents"]
        .as_array()
        .map(|a| a.iter().collect())
        .ok_or_else(|| "the file is not a trace: it has no traceEvents array".to_string())
}

fn seq(e: &Value) -> u64 {
    e["args"]["seq"].as_u64().unwrap_or(u64::MAX)
}

/// The n-th rising virtual-timer level report to the EOI that follows it.
fn interrupt_window(trace: &Value, n: usize) -> Result<(f64, f64)> {
    let mut all = events(trace)?;
    all.retain(|e| e["args"]["seq"].is_u64());
    all.sort_by_key(|e| seq(e));
    let rises: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            e["name"] == "timer level" && e["args"]["level"] == 1 && e["args"]["timer"] == "virtual"
        })
        .map(|(i, _)| i)
        .collect();
    let Some(&start) = n.checked_sub(1).and_then(|i| rises.get(i)) else {
        return Err(format!(
            "the trace has {} timer interrupts, so there is no number {n}",
            rises.len()
        ));
    };
    let eoi = all[start..]
        .iter()
        .find(|e| e["name"] == "EOI" && e["args"]["id"] == 27)
        .ok_or_else(|| format!("timer interrupt {n} has no EOI in the trace"))?;
    let level = all[start]["ts"].as_f64().unwrap_or(0.0);
    // The guest's own record of this interrupt, where the run has one,
    // starts at the deadline, before KVM noticed it.
    let a = events(trace)?
        .iter()
        .filter(|e| e["name"] == GUEST_FIRED)
        .filter_map(|e| Some((e["ts"].as_f64()?, e["dur"].as_f64()?)))
        .filter(|(ts, dur)| *ts <= level && ts + dur >= level)
        .map(|(ts, _)| ts)
        .fold(level, f64::min);
    let b = eoi["ts"].as_f64().unwrap_or(a);
    let margin = ((b - a) * 0.08).max(1.0);
    Ok((a - margin, b + margin))
}

/// Draws the part of `trace` in `window` as an SVG document.
pub fn render(trace: &Value, window: Window, title: &str) -> Result<String> {
    let (from, to) = resolve(trace, window)?;
    let all = events(trace)?;
    // Track names from the metadata events.
    let mut names: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut processes: BTreeMap<u64, String> = BTreeMap::new();
    for e in &all {
        let (pid, tid) = (e["pid"].as_u64().unwrap_or(0), e["tid"].as_u64());
        let name = e["args"]["name"].as_str().unwrap_or_default().to_string();
        match (e["ph"].as_str(), e["name"].as_str(), tid) {
            (Some("M"), Some("thread_name"), Some(tid)) => {
                names.insert((pid, tid), name);
            }
            (Some("M"), Some("process_name"), _) => {
                processes.insert(pid, name);
            }
            _ => {}
        }
    }
    let shown: Vec<Event> = all
        .iter()
        .filter_map(|e| {
            let ph = e["ph"].as_str()?;
            if ph != "X" && ph != "i" {
                return None;
            }
            let ts = e["ts"].as_f64()?;
            let dur = e["dur"].as_f64();
            let end = ts + dur.unwrap_or(0.0);
            if end < from || ts > to {
                return None;
            }
            Some(Event {
                track: (e["pid"].as_u64()?, e["tid"].as_u64()?),
                name: label(e)?,
                ts,
                dur: (ph == "X").then_some(dur.unwrap_or(0.0)),
                depth: 0,
            })
        })
        .collect();
    let shown = nest(shown);
    if shown.is_empty() {
        return Err(format!("nothing happens between {from:.1} and {to:.1} µs"));
    }
    let mut tracks: Vec<(u64, u64)> = shown.iter().map(|e| e.track).collect();
    tracks.sort();
    tracks.dedup();

    let x = |t: f64| LABEL_WIDTH + (t.clamp(from, to) - from) / (to - from) * PLOT_WIDTH;
    let width = LABEL_WIDTH + PLOT_WIDTH + 20.0;
    let height = TOP + ROW * tracks.len() as f64 + BOTTOM;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="22" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    for (row, track) in tracks.iter().enumerate() {
        let y = TOP + ROW * row as f64;
        let process = processes.get(&track.0).map(String::as_str).unwrap_or("");
        let name = names
            .get(track)
            .cloned()
            .unwrap_or_else(|| format!("{track:?}"));
        let fill = if row % 2 == 0 { "#f4f4f4" } else { "#ffffff" };
        let _ = writeln!(
            svg,
            r#"<rect x="0" y="{y}" width="{width}" height="{ROW}" fill="{fill}"/>"#
        );
        let _ = writeln!(
            svg,
            r##"<text x="8" y="{:.1}" font-weight="bold">{}</text><text x="8" y="{:.1}" fill="#666">{}</text>"##,
            y + 20.0,
            escape(&name),
            y + 34.0,
            escape(process)
        );
        let mut instants = 0usize;
        for e in shown.iter().filter(|e| e.track == *track) {
            match e.dur {
                Some(dur) => {
                    let (x0, x1) = (x(e.ts), x(e.ts + dur));
                    let w = (x1 - x0).max(1.0);
                    let top = y + 6.0 + SLICE * e.depth.min(2) as f64;
                    let _ = writeln!(
                        svg,
                        r##"<rect x="{x0:.1}" y="{top:.1}" width="{w:.1}" height="{:.1}" fill="{}" stroke="#333" stroke-width="0.5"><title>{} ({dur:.1} µs)</title></rect>"##,
                        SLICE - 2.0,
                        if e.track.0 == GUEST_PID {
                            LEGEND[5].0
                        } else {
                            colour(&e.name)
                        },
                        escape(&e.name)
                    );
                    if w > 6.5 * e.name.chars().count() as f64 + 4.0 {
                        let _ = writeln!(
                            svg,
                            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                            x0 + 3.0,
                            top + 12.0,
                            escape(&e.name)
                        );
                    }
                }
                None => {
                    let xi = x(e.ts);
                    let level = (instants % 3) as f64;
                    instants += 1;
                    let base = y + 6.0 + 2.0 * SLICE;
                    let _ = writeln!(
                        svg,
                        r##"<line x1="{xi:.1}" y1="{:.1}" x2="{xi:.1}" y2="{:.1}" stroke="#c00" stroke-width="1.5"/><text x="{:.1}" y="{:.1}" fill="#900">{}</text>"##,
                        base,
                        base + 8.0 + 11.0 * level,
                        xi + 2.0,
                        base + 12.0 + 11.0 * level,
                        escape(&e.name)
                    );
                }
            }
        }
    }
    // The time axis: ticks at round steps.
    let axis_y = TOP + ROW * tracks.len() as f64 + 8.0;
    let _ = writeln!(
        svg,
        r##"<line x1="{LABEL_WIDTH}" y1="{axis_y}" x2="{:.1}" y2="{axis_y}" stroke="#333"/>"##,
        LABEL_WIDTH + PLOT_WIDTH
    );
    let step = crate::bench::tick_step(to - from, 8);
    let mut t = from;
    while t <= to {
        let xt = x(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{xt:.1}" y1="{axis_y}" x2="{xt:.1}" y2="{:.1}" stroke="#333"/><text x="{xt:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            axis_y + 5.0,
            axis_y + 18.0,
            format_us(t - from)
        );
        t += step;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time since {} µs into the run (µs)</text>"#,
        LABEL_WIDTH + PLOT_WIDTH / 2.0,
        axis_y + 36.0,
        format_us(from)
    );
    let (mut lx, mut ly) = (LABEL_WIDTH, axis_y + 62.0);
    for (fill, text) in LEGEND {
        let needs = 24.0 + 6.2 * text.chars().count() as f64;
        if lx + needs > width {
            (lx, ly) = (LABEL_WIDTH, ly + 18.0);
        }
        let _ = writeln!(
            svg,
            r##"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{fill}" stroke="#333" stroke-width="0.5"/><text x="{:.1}" y="{ly:.1}">{}</text>"##,
            ly - 10.0,
            lx + 16.0,
            escape(text)
        );
        lx += needs;
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}

fn format_us(t: f64) -> String {
    if t.abs() >= 100.0 || t == t.round() {
        format!("{t:.0}")
    } else {
        format!("{t:.1}")
    }
}

/// A fill colour per kind of slice.
fn colour(name: &str) -> &'static str {
    let [run, eintr, gic, line, other, _] = LEGEND.map(|(fill, _)| fill);
    if name == "KVM_RUN" {
        run
    } else if name.starts_with("KVM_IRQ_LINE") {
        line
    } else if name.starts_with("GICC") || name.starts_with("GICD") {
        gic
    } else if name.starts_with("EINTR") {
        eintr
    } else {
        other
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trace() -> Value {
        json!({ "traceEvents": [
            { "ph": "M", "name": "process_name", "pid": 1, "args": { "name": "uirq-vmm" } },
            { "ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": { "name": "vCPU 0" } },
            { "ph": "M", "name": "thread_name", "pid": 1, "tid": 100, "args": { "name": "GIC CPU interface 0" } },
            { "ph": "X", "pid": 1, "tid": 1, "name": "KVM_RUN", "ts": 0.0, "dur": 50.0, "args": { "seq": 0 } },
            { "ph": "i", "s": "t", "pid": 1, "tid": 1, "name": "timer level", "ts": 51.0, "args": { "seq": 2, "timer": "virtual", "level": 1 } },
            { "ph": "X", "pid": 1, "tid": 1, "name": "KVM_IRQ_LINE", "ts": 53.0, "dur": 4.0, "args": { "seq": 4, "target": 0, "level": 1 } },
            { "ph": "i", "s": "t", "pid": 1, "tid": 100, "name": "acknowledge", "ts": 70.0, "args": { "seq": 7, "id": 27 } },
            { "ph": "i", "s": "t", "pid": 1, "tid": 100, "name": "EOI", "ts": 90.0, "args": { "seq": 9, "id": 27 } },
            { "ph": "X", "pid": 1, "tid": 1, "name": "far away", "ts": 5000.0, "dur": 5.0, "args": { "seq": 11 } }
        ]})
    }

    #[test]
    fn the_nth_interrupt_spans_its_level_report_to_its_eoi() {
        let (a, b) = resolve(&trace(), Window::Interrupt(1)).unwrap();
        assert!(a < 51.0 && a > 40.0, "{a}");
        assert!(b > 90.0 && b < 100.0, "{b}");
        let err = resolve(&trace(), Window::Interrupt(2)).unwrap_err();
        assert!(err.contains("1 timer interrupts"), "{err}");
        assert!(resolve(&trace(), Window::Range(5.0, 5.0)).is_err());
    }

    #[test]
    fn the_picture_has_a_row_per_track_and_only_the_window() {
        let svg = render(&trace(), Window::Interrupt(1), "one <tick>").unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("vCPU 0") && svg.contains("GIC CPU interface 0"));
        assert!(svg.contains("KVM_IRQ_LINE") && svg.contains("acknowledge"));
        assert!(svg.contains("one &lt;tick&gt;"));
        assert!(!svg.contains("far away"));
        assert!(svg.contains("(µs)"));
        let err = render(&trace(), Window::Range(10_000.0, 20_000.0), "x").unwrap_err();
        assert!(err.contains("nothing happens"), "{err}");
        assert!(render(&json!({}), Window::Range(0.0, 1.0), "x").is_err());
    }

    #[test]
    fn axis_steps_are_round() {
        // Eight steps at most over the window.
        let step = |span: f64| crate::bench::tick_step(span, 8);
        assert_eq!(step(25.6), 5.0);
        assert_eq!(step(5.6), 1.0);
        assert_eq!(step(960.0), 200.0);
        assert_eq!(step(0.0), 1.0);
    }
}
