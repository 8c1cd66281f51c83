//! Rules on what the answers said of each reservation id: never decided two
//! ways (`inv3-decided-twice`), and in agreement with the final row
//! (`inv4-response-vs-db`, by [`testkit::invariants::rules::answer_agrees`]).

use std::collections::{BTreeSet, HashMap};

use shared::messages::ReservationStatus::{
    self, Cancelled, Confirmed, Expired, Held, Pending, Rejected, Released,
};
use testkit::invariants::rules;
use uuid::Uuid;

use super::model::{DbState, Row, Summary, Violation};
use crate::history::{Op, OpKind};

/// An answer that reported a reservation's status.
struct Seen<'a> {
    op: &'a Op,
    status: ReservationStatus,
}

/// What the history says of each reservation id.
#[derive(Default)]
struct Ids<'a> {
    /// The statuses answered, by id.
    seen: HashMap<Uuid, Vec<Seen<'a>>>,
    /// Ids someone asked to cancel.
    cancel_asked: BTreeSet<Uuid>,
    /// The ids each Idempotency-Key got.
    keys: HashMap<&'a str, BTreeSet<Uuid>>,
    /// Every id an answer or a request named.
    named: BTreeSet<Uuid>,
}

impl<'a> Ids<'a> {
    fn gather(ops: &[&'a Op]) -> Self {
        let mut ids = Self::default();
        for op in ops {
            let Some(id) = op.reservation_id else {
                continue;
            };
            ids.named.insert(id);
            if op.op == OpKind::Cancel {
                ids.cancel_asked.insert(id);
            }
            if let Some(key) = &op.idempotency_key
                && matches!(op.status, 200 | 202 | 409 | 503)
            {
                ids.keys.entry(key).or_default().insert(id);
            }
            if let Some(status) = op.reported_status().and_then(status_of) {
                ids.seen.entry(id).or_default().push(Seen { op, status });
            }
        }
        ids
    }
}

fn status_of(text: &str) -> Option<ReservationStatus> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

pub(super) fn check(
    ops: &[&Op],
    events: &[i64],
    db: &DbState,
    summary: &mut Summary,
) -> Vec<Violation> {
    let ids = Ids::gather(ops);
    summary.reservations_seen = ids.named.len();
    summary.rows_not_in_history = db
        .rows
        .iter()
        .filter(|(id, row)| events.contains(&row.event_id) && !ids.named.contains(id))
        .count();
    let mut violations = one_id_per_key(&ids.keys);
    let mut seen: Vec<(&Uuid, &Vec<Seen>)> = ids.seen.iter().collect();
    seen.sort_by_key(|(id, _)| **id);
    for (id, observations) in seen {
        violations.extend(decided_twice(id, observations));
        match db.rows.get(id) {
            Some(row) => violations.extend(disagreements(
                id,
                observations,
                row,
                ids.cancel_asked.contains(id),
            )),
            None => violations.push(Violation::new(
                "inv4-response-vs-db",
                id.to_string(),
                "answered as decided but no row in the database",
            )),
        }
    }
    violations
}

fn one_id_per_key(keys: &HashMap<&str, BTreeSet<Uuid>>) -> Vec<Violation> {
    keys.iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(key, ids)| {
            Violation::new(
                "inv3-decided-twice",
                format!("Idempotency-Key {key}"),
                format!("one key, several reservation ids: {ids:?}"),
            )
        })
        .collect()
}

/// The ways a reservation's state can go (DESIGN §10), each in order: a
/// reservation is seen only in states of one of them, and never in an
/// earlier state by a request that started after a later one was answered.
const PATHS: [&[ReservationStatus]; 4] = [
    &[Held, Confirmed, Cancelled],
    &[Held, Released],
    &[Held, Expired],
    &[Rejected],
];

/// Seen in states no one path holds (rejected and confirmed, released and
/// expired, …); seen going back along its path; two quantities.
fn decided_twice(id: &Uuid, observations: &[Seen]) -> Vec<Violation> {
    let mut found = Vec::new();
    let decided: Vec<&Seen> = observations
        .iter()
        .filter(|o| o.status != Pending)
        .collect();
    let path = PATHS
        .iter()
        .find(|path| decided.iter().all(|o| path.contains(&o.status)));
    match path {
        None => {
            let list: Vec<String> = decided
                .iter()
                .map(|o| format!("{:?} {}@{:.0}ms", o.op.op, o.op.status, o.op.end_ms))
                .collect();
            let states: BTreeSet<&str> = decided.iter().map(|o| o.status.as_str()).collect();
            found.push(format!(
                "seen in states no reservation goes through together ({}): {}",
                states.into_iter().collect::<Vec<_>>().join(", "),
                list.join(", ")
            ));
        }
        Some(path) => {
            let step = |s: ReservationStatus| path.iter().position(|p| *p == s);
            for later in &decided {
                if let Some(back) = decided.iter().find(|o| {
                    o.op.start_ms > later.op.end_ms && step(o.status) < step(later.status)
                }) {
                    found.push(format!(
                        "seen {} at {:.0} ms, then {} by {} {} started at {:.0} ms",
                        later.status.as_str(),
                        later.op.end_ms,
                        back.status.as_str(),
                        back.op.method,
                        back.op.path,
                        back.op.start_ms
                    ));
                    break;
                }
            }
        }
    }
    let quantities: BTreeSet<i64> = observations
        .iter()
        .filter_map(|o| o.op.body["quantity"].as_i64())
        .collect();
    if quantities.len() > 1 {
        found.push(format!("answers disagree on the quantity: {quantities:?}"));
    }
    found
        .into_iter()
        .map(|detail| Violation::new("inv3-decided-twice", id.to_string(), detail))
        .collect()
}

/// Invariant 4: the final row agrees with every decided answer.
fn disagreements(
    id: &Uuid,
    observations: &[Seen],
    row: &Row,
    cancel_asked: bool,
) -> Vec<Violation> {
    let mut found = Vec::new();
    for o in observations {
        if !rules::answer_agrees(o.status, row.status, cancel_asked) {
            found.push(format!(
                "{} {} answered {} ({:?}) but the row is {:?}{}",
                o.op.method,
                o.op.path,
                o.op.status,
                o.status,
                row.status,
                if row.status == Cancelled {
                    " and no cancel was asked"
                } else {
                    ""
                }
            ));
        }
        if let Some(q) = o.op.body["quantity"].as_i64()
            && q != i64::from(row.quantity)
        {
            found.push(format!("answered quantity {q}, row has {}", row.quantity));
        }
    }
    found
        .into_iter()
        .map(|detail| Violation::new("inv4-response-vs-db", id.to_string(), detail))
        .collect()
}
