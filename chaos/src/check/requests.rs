//! Rules on each request alone: it was answered in time (`hang`), with a
//! status a correct api may give (`http-5xx`), an acknowledgement named its
//! reservation (`inv5-lost`), and an availability shown was within the
//! event's capacity (`read-range`). Also counts the answers and the
//! latencies for the summary.

use std::collections::BTreeMap;

use super::model::{Limits, Summary, Violation};
use crate::history::{Fault, Op, OpKind};

/// A request this long after a fault healed still counts as during it.
const FAULT_TAIL_MS: f64 = 5_000.0;

pub(super) fn check(
    ops: &[&Op],
    faults: &[&Fault],
    capacity: &BTreeMap<i64, i64>,
    limits: Limits,
    summary: &mut Summary,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    for op in ops {
        tally(op, faults, summary);
        let request = format!("{} {} @{:.0}ms", op.method, op.path, op.start_ms);
        let found = [
            hang(op, limits),
            server_error(op),
            no_retry_after(op),
            acknowledged_without_id(op),
            read_out_of_range(op, capacity),
            valid_reserve_refused(op),
        ];
        violations.extend(
            found
                .into_iter()
                .flatten()
                .map(|(rule, detail)| Violation::new(rule, &*request, detail)),
        );
    }
    violations
}

type Found = Option<(&'static str, String)>;

/// Counts the answer by operation and status, and its latency.
fn tally(op: &Op, faults: &[&Fault], summary: &mut Summary) {
    let key = serde_json::to_value(op.op)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    *summary
        .by_op
        .entry(key)
        .or_default()
        .entry(op.status)
        .or_default() += 1;
    summary.max_latency_ms = summary.max_latency_ms.max(op.latency_ms());
    let in_fault = faults
        .iter()
        .any(|f| op.start_ms <= f.end_ms + FAULT_TAIL_MS && op.end_ms >= f.start_ms);
    if in_fault {
        summary.max_latency_during_faults_ms =
            summary.max_latency_during_faults_ms.max(op.latency_ms());
    }
}

fn hang(op: &Op, limits: Limits) -> Found {
    if op.status == 0 {
        Some((
            "hang",
            format!(
                "no answer after {:.0} ms: {}",
                op.latency_ms(),
                op.error.as_deref().unwrap_or("?")
            ),
        ))
    } else if op.latency_ms() > limits.max_latency_ms {
        Some((
            "hang",
            format!("answered {} after {:.0} ms", op.status, op.latency_ms()),
        ))
    } else {
        None
    }
}

fn server_error(op: &Op) -> Found {
    (op.status >= 500 && op.status != 503)
        .then(|| ("http-5xx", format!("{}: {}", op.status, op.body)))
}

fn no_retry_after(op: &Op) -> Found {
    (matches!(op.status, 429 | 503) && op.retry_after.is_none())
        .then(|| ("http-5xx", format!("{} without Retry-After", op.status)))
}

fn acknowledged_without_id(op: &Op) -> Found {
    (op.acknowledged() && op.reservation_id.is_none()).then(|| {
        (
            "inv5-lost",
            format!(
                "acknowledged ({}) without a reservation id: {}",
                op.status, op.body
            ),
        )
    })
}

fn read_out_of_range(op: &Op, capacity: &BTreeMap<i64, i64>) -> Found {
    let (field, value) = match (op.op, op.status) {
        (OpKind::Read, 200) => ("tickets", op.body["tickets"].as_i64()?),
        (OpKind::Reserve, 200 | 409) => {
            ("remaining_tickets", op.body["remaining_tickets"].as_i64()?)
        }
        _ => return None,
    };
    let event_id = op.event_id?;
    let cap = capacity.get(&event_id)?;
    (!(0..=*cap).contains(&value)).then(|| {
        (
            "read-range",
            format!("{field} {value} outside [0, {cap}] of event {event_id}"),
        )
    })
}

fn valid_reserve_refused(op: &Op) -> Found {
    (op.op == OpKind::Reserve && (400..500).contains(&op.status) && !matches!(op.status, 409 | 429))
        .then(|| {
            (
                "http-5xx",
                format!(
                    "a valid reserve was refused with {}: {}",
                    op.status, op.body
                ),
            )
        })
}
