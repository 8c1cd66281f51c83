//! What the answers looked like while a fault lasted, next to the rest of
//! the run: latencies, and how long an event went without a decision. The
//! checker only bounds the worst answer; these say what a client felt.

use std::collections::HashMap;

use crate::{
    check,
    history::{Fault, Op, OpKind, Record},
};

/// Latencies inside the fault windows and outside them, and the longest
/// stretch without a decision on an event, from a finished history.
pub(super) fn notes(records: &[Record]) -> Vec<String> {
    let (_, ops, faults) = check::split(records);
    let during = |op: &Op| {
        faults
            .iter()
            .any(|f| op.start_ms <= f.end_ms && op.end_ms >= f.start_ms)
    };
    let decided = |op: &&Op| op.op == OpKind::Reserve && matches!(op.status, 200 | 409);
    let read = |op: &&Op| op.op == OpKind::Read && op.status == 200;
    let mut notes = Vec::new();
    for (what, kind) in [
        (
            "synchronous reserves decided (200/409)",
            &decided as &dyn Fn(&&Op) -> bool,
        ),
        ("availability reads (200)", &read),
    ] {
        let (inside, outside): (Vec<&Op>, Vec<&Op>) =
            ops.iter().copied().filter(kind).partition(|op| during(op));
        notes.push(format!(
            "latency of {what}: during the faults {}; outside {}",
            percentiles(&inside),
            percentiles(&outside)
        ));
    }
    notes.push(decision_gaps(&ops, &faults));
    notes
}

fn percentiles(ops: &[&Op]) -> String {
    let mut latencies: Vec<f64> = ops.iter().map(|op| op.latency_ms()).collect();
    if latencies.is_empty() {
        return "none".to_owned();
    }
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| latencies[((p * latencies.len() as f64).ceil() as usize).max(1) - 1];
    format!(
        "n={} p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        latencies.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

/// The longest time an event went without a synchronous decision, among
/// the stretches that overlap a fault and among the others.
fn decision_gaps(ops: &[&Op], faults: &[&Fault]) -> String {
    let mut by_event: HashMap<i64, Vec<f64>> = HashMap::new();
    for op in ops {
        if let (OpKind::Reserve, 200 | 409, Some(event)) = (op.op, op.status, op.event_id) {
            by_event.entry(event).or_default().push(op.end_ms);
        }
    }
    let (mut around, mut elsewhere) = (None::<(f64, i64, f64)>, 0.0f64);
    for (event, mut ends) in by_event {
        ends.sort_by(f64::total_cmp);
        for pair in ends.windows(2) {
            let (from, to) = (pair[0], pair[1]);
            let gap = to - from;
            if faults.iter().any(|f| from <= f.end_ms && to >= f.start_ms) {
                if around.is_none_or(|(longest, ..)| gap > longest) {
                    around = Some((gap, event, from));
                }
            } else {
                elsewhere = elsewhere.max(gap);
            }
        }
    }
    let around = around.map_or("none".to_owned(), |(gap, event, from)| {
        format!(
            "{:.1} s (event {event}, from {:.1} s into the run)",
            gap / 1000.0,
            from / 1000.0
        )
    });
    format!(
        "longest time an event went without a synchronous decision: around the faults {around}; \
         elsewhere {:.1} s",
        elsewhere / 1000.0
    )
}
