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
//! | `inv-outbox-complete` | every reservation of a client with a webhook endpoint has one outbox message per state it reached: their states are the steps of one path from pending to the row's status (none lost, none invented), each with the row's event, quantity, user and ticket type; an anonymous reservation, or one of a client without an endpoint, has none; no message for a reservation that does not exist | [`outbox`] |
//! | `inv-outbox-delivered` | every delivery ended `delivered` (none `failed`, none still `pending` at the deadline); each message has a delivery to each endpoint its client had; the receiver accepted exactly the messages delivered to it, validly signed and with the stored body byte for byte | [`delivered`] |

mod database;
mod delivered;
mod events;
mod lost;
mod model;
mod outbox;
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
    delivered::{Receipt, Received, check_received},
    lost::unresolved,
    model::{
        DbState, Delivery, Endpoint, EventRow, EventSummary, Limits, Message, Outbox, Row, Summary,
        Violation, WaitingRow, WebhookSummary, split,
    },
};
use crate::{history::Record, receiver::Receiver};

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
    violations.extend(outbox::check(&events, db, &mut summary));
    violations.extend(delivered::check(db, &mut summary));
    summary.violations = violations;
    summary
}

/// Waits up to `wait` for the acknowledged commands to reach a final state
/// and for the webhook deliveries to end (reading the database every half
/// second), then checks; with the run's `receiver`, also what it got.
pub async fn check_database(
    history: &[Record],
    database_url: &str,
    wait: Duration,
    limits: Limits,
    receiver: Option<&Receiver>,
) -> anyhow::Result<Summary> {
    let events: Vec<i64> = split(history)
        .0
        .map(|m| m.events.iter().map(|e| e.id).collect())
        .unwrap_or_default();
    let deadline = Instant::now() + wait;
    loop {
        let db = load_db(database_url, &events).await;
        match db {
            Ok(db) if settled(history, &db) || Instant::now() >= deadline => {
                let mut summary = check(history, &db, limits);
                if let Some(receiver) = receiver {
                    // Read after the database: whatever it marked delivered
                    // the receiver has; what it holds beyond the snapshot
                    // is looked up again, to tell late from invented.
                    let received = receiver.snapshot();
                    let unknown: Vec<uuid::Uuid> = received
                        .messages
                        .keys()
                        .map(|(id, _)| *id)
                        .filter(|id| !db.outbox.messages.contains_key(id))
                        .collect();
                    let late = database::load_payloads(database_url, &unknown).await?;
                    let found = check_received(&db, &received, &late, &mut summary);
                    summary.violations.extend(found);
                }
                return Ok(summary);
            }
            Err(error) if Instant::now() >= deadline => return Err(error),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Nothing left to wait for: every acknowledged command decided, and no
/// webhook delivery still pending.
fn settled(history: &[Record], db: &DbState) -> bool {
    unresolved(history, db).is_empty() && db.outbox.pending() == 0
}
