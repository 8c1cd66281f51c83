//! The checker: a history and the database, judged together against the
//! invariants of DESIGN.md §2. One module per family of rules; the rules on
//! the database alone come from [`testkit::invariants::rules`], which the
//! system tests and the benchmark apply too.
//!
//! | rule | what is checked | module |
//! |---|---|---|
//! | `inv1-range` | every event: `0 <= available <= capacity` (database) | [`events`] |
//! | `inv2-conservation` | every event: `available + Σ confirmed quantities == capacity` | [`events`] |
//! | `inv3-decided-twice` | no reservation id was seen both rejected and confirmed/cancelled, nor confirmed again after it was seen cancelled, nor with two quantities; one Idempotency-Key, one id | [`reservations`] |
//! | `inv4-response-vs-db` | every decided answer agrees with the final row: confirmed ⇒ row confirmed (or cancelled by a cancel the history shows), rejected ⇒ row rejected, cancelled ⇒ row cancelled, same quantity | [`reservations`] |
//! | `inv5-lost` | every acknowledged command (reserve 200/202/409, cancel 200/202) reached a final state | [`lost`], [`requests`] |
//! | `read-range` | every availability the api showed (`tickets`, `remaining_tickets`) is within `[0, capacity]` | [`requests`] |
//! | `http-5xx` | no 5xx other than 503; every 503 and 429 carries `Retry-After`; a valid reserve is refused only with 409 (a decision), 429 (rate limit) or 503 | [`requests`] |
//! | `hang` | no request went unanswered or took longer than the bound | [`requests`] |

mod database;
mod events;
mod lost;
mod render;
mod requests;
mod reservations;

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
};

use serde::Serialize;
use shared::messages::ReservationStatus;
use uuid::Uuid;

pub use self::{
    database::{check_database, load_db},
    lost::unresolved,
};
use crate::history::{Fault, Meta, Op, Record};

/// What the checker needs of the database.
#[derive(Debug, Clone, Default)]
pub struct DbState {
    pub events: BTreeMap<i64, EventRow>,
    pub rows: HashMap<Uuid, Row>,
}

#[derive(Debug, Clone, Copy)]
pub struct EventRow {
    pub capacity: i64,
    pub available: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub event_id: i64,
    pub status: ReservationStatus,
    pub quantity: i32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub rule: &'static str,
    /// The offending reservation id, event or request.
    pub id: String,
    pub detail: String,
}

impl Violation {
    pub fn new(rule: &'static str, id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            rule,
            id: id.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.rule, self.id, self.detail)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request slower than this is a hang.
    pub max_latency_ms: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_latency_ms: 10_000.0,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub operations: usize,
    pub by_op: BTreeMap<String, BTreeMap<u16, usize>>,
    pub faults: usize,
    pub fault_kinds: BTreeMap<String, usize>,
    pub acknowledged: usize,
    pub reservations_seen: usize,
    /// Rows of the history's events that no answer named (e.g. a reserve
    /// whose answer was a 503 after the broker had stored it).
    pub rows_not_in_history: usize,
    pub max_latency_ms: f64,
    /// Slowest request that overlapped a fault window (or the 5 s after it).
    pub max_latency_during_faults_ms: f64,
    pub events: BTreeMap<i64, EventSummary>,
    pub violations: Vec<Violation>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EventSummary {
    pub capacity: i64,
    pub available: i64,
    pub confirmed_quantity: i64,
}

/// Splits a history into its parts.
pub fn split(history: &[Record]) -> (Option<&Meta>, Vec<&Op>, Vec<&Fault>) {
    let mut meta = None;
    let mut ops = Vec::new();
    let mut faults = Vec::new();
    for record in history {
        match record {
            Record::Meta(m) => meta = meta.or(Some(m)),
            Record::Op(op) => ops.push(op),
            Record::Fault(f) => faults.push(f),
        }
    }
    (meta, ops, faults)
}

/// Judges `history` against the final database state `db`.
pub fn check(history: &[Record], db: &DbState, limits: Limits) -> Summary {
    let (meta, ops, faults) = split(history);
    let mut summary = Summary {
        operations: ops.len(),
        faults: faults.len(),
        acknowledged: ops.iter().filter(|op| op.acknowledged()).count(),
        ..Summary::default()
    };
    for fault in &faults {
        *summary.fault_kinds.entry(fault.fault.clone()).or_default() += 1;
    }
    // The history's events (all of the database's when it names none),
    // with their capacities: from the history's meta, else the database.
    let events: Vec<i64> = match meta {
        Some(meta) => meta.events.iter().map(|e| e.id).collect(),
        None => db.events.keys().copied().collect(),
    };
    let mut capacity: BTreeMap<i64, i64> =
        db.events.iter().map(|(id, e)| (*id, e.capacity)).collect();
    if let Some(meta) = meta {
        capacity.extend(meta.events.iter().map(|e| (e.id, e.capacity)));
    }

    let mut violations = events::check(&events, db, &mut summary.events);
    violations.extend(requests::check(
        &ops,
        &faults,
        &capacity,
        limits,
        &mut summary,
    ));
    violations.extend(reservations::check(&ops, &events, db, &mut summary));
    violations.extend(lost::check(history, db));
    summary.violations = violations;
    summary
}
