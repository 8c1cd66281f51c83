//! The checker: a history and the database, judged together against the
//! invariants of DESIGN.md §2. One module per family of rules; the rules on
//! the database alone come from [`testkit::invariants::rules`], which the
//! system tests and the benchmark apply too.
//!
//! | rule | what is checked | module |
//! |---|---|---|
//! | `inv1-range` | every event, ticket type and quota: `0 <= available <= capacity` (database) | [`events`] |
//! | `inv2-conservation` | every event, ticket type and quota: `available + Σ held or confirmed quantities == capacity` | [`events`] |
//! | `inv-per-user` | no user holds and has confirmed more of an event's tickets than its `max_per_user` | [`events`] |
//! | `inv-waiting-offer` | a waiting-list entry is marked offered if and only if a reservation has its id | [`waiting`] |
//! | `inv3-decided-twice` | every reservation id was seen only in states of one path of its state machine (held → confirmed → cancelled, held → released, held → expired, rejected), never back along it by a later request, and with one quantity; one Idempotency-Key, one id | [`reservations`] |
//! | `inv4-response-vs-db` | every decided answer agrees with the final row: confirmed ⇒ row confirmed (or cancelled by a cancel the history shows), held ⇒ row in a state that follows a hold, rejected, cancelled, released, expired ⇒ the same, same quantity | [`reservations`] |
//! | `inv5-lost` | every acknowledged command (reserve 200/202/409, confirm 200/202/409, cancel 200/202) reached a final state; no hold is still held well after its `expires_at` | [`lost`], [`requests`] |
//! | `read-range` | every availability the api showed (`tickets`, `remaining_tickets`) is within `[0, capacity]` | [`requests`] |
//! | `http-5xx` | no 5xx other than 503; every 503 and 429 carries `Retry-After`; a valid reserve is refused only with 409 (a decision), 429 (rate limit) or 503 | [`requests`] |
//! | `hang` | no request went unanswered or took longer than the bound | [`requests`] |

mod database;
mod events;
mod lost;
mod model;
mod render;
mod requests;
mod reservations;
mod waiting;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

pub use self::{
    database::load_db,
    lost::unresolved,
    model::{DbState, EventRow, EventSummary, Limits, Row, Summary, Violation, WaitingRow, split},
};
use crate::history::Record;

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
    violations.extend(waiting::check(&events, db));
    summary.violations = violations;
    summary
}

/// Waits up to `wait` for the acknowledged commands to reach a final state
/// (reading the database every half second), then checks.
pub async fn check_database(
    history: &[Record],
    database_url: &str,
    wait: Duration,
    limits: Limits,
) -> anyhow::Result<Summary> {
    let events: Vec<i64> = split(history)
        .0
        .map(|m| m.events.iter().map(|e| e.id).collect())
        .unwrap_or_default();
    let deadline = Instant::now() + wait;
    loop {
        let db = load_db(database_url, &events).await;
        match db {
            Ok(db) if unresolved(history, &db).is_empty() || Instant::now() >= deadline => {
                return Ok(check(history, &db, limits));
            }
            Err(error) if Instant::now() >= deadline => return Err(error),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
