//! The invariants of DESIGN.md §2, checked against the database by the
//! system tests and the benchmark. The rules themselves are in [`rules`],
//! which the chaos checker applies too.

pub mod rules;

use std::collections::HashMap;

use sea_orm::{
    AccessMode, ColumnTrait, DatabaseConnection, EntityTrait, IsolationLevel, QueryFilter,
    TransactionTrait,
};
use serde_json::Value;
use shared::{
    entities::{event, quota, reservation, ticket_type},
    messages::ReservationStatus,
};
use uuid::Uuid;

pub struct Snapshot {
    pub capacity: i64,
    pub available: i64,
    pub reservations: HashMap<Uuid, reservation::Model>,
    /// The event's ticket types and quotas, each held to invariants 1 and
    /// 2 over the reservations it counts.
    pub ticket_types: Vec<ticket_type::Model>,
    pub quotas: Vec<quota::Model>,
    /// The event's per-user limit, if it has one.
    pub max_per_user: Option<i64>,
}

impl Snapshot {
    pub fn taken_quantity(&self) -> i64 {
        rules::taken_quantity(self.reservations.values().map(|r| (r.status, r.quantity)))
    }

    pub fn count(&self, status: ReservationStatus) -> usize {
        self.reservations
            .values()
            .filter(|r| r.status == status)
            .count()
    }

    /// Violations of invariants 1 and 2, described: for the event, each of
    /// its ticket types and each of its quotas; and of its per-user limit.
    pub fn violations(&self) -> Vec<String> {
        let event = rules::EventTally {
            capacity: self.capacity,
            available: self.available,
            taken: self.taken_quantity(),
        };
        let mut found: Vec<String> = rules::event_breaches(event)
            .into_iter()
            .map(|breach| format!("event: {}: {breach}", breach.rule()))
            .collect();
        let types: Vec<rules::TypeCount> = self
            .ticket_types
            .iter()
            .map(rules::TypeCount::from)
            .collect();
        let quotas: Vec<rules::QuotaCount> =
            self.quotas.iter().map(rules::QuotaCount::from).collect();
        let rows: Vec<_> = self
            .reservations
            .values()
            .map(|r| (r.ticket_type_id, r.status, r.quantity))
            .collect();
        found.extend(
            rules::type_breaches(&types, &quotas, &rows)
                .into_iter()
                .map(|(what, breach)| format!("{what}: {}: {breach}", breach.rule())),
        );
        if let Some(max) = self.max_per_user {
            let rows = self.reservations.values();
            for (user, has) in
                rules::users_over_limit(max, rows.map(|r| (r.user_id, r.status, r.quantity)))
            {
                found.push(format!(
                    "user {user}: has {has} tickets, over the limit {max}"
                ));
            }
        }
        found
    }
}

/// Reads the event and its reservations, in one read-only REPEATABLE READ
/// transaction: one consistent view, as of its first read. Found by the
/// benchmark's checkout run (`scripts/bench`): read one statement at a
/// time while holds were still expiring after the load, the event's count
/// came from before an expiry and the reservations from after it
/// (available 9975243 + held or confirmed 24753 != capacity 10000000).
pub async fn snapshot(db: &DatabaseConnection, event_id: i64) -> Snapshot {
    let txn = db
        .begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await
        .expect("begin a snapshot");
    let db = &txn;
    let event = event::Entity::find_by_id(event_id)
        .one(db)
        .await
        .expect("read event")
        .expect("event exists");
    let reservations = reservation::Entity::find()
        .filter(reservation::Column::EventId.eq(event_id))
        .all(db)
        .await
        .expect("read reservations")
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let ticket_types = ticket_type::Entity::find()
        .filter(ticket_type::Column::EventId.eq(event_id))
        .all(db)
        .await
        .expect("read ticket types");
    let quotas = quota::Entity::find()
        .filter(quota::Column::EventId.eq(event_id))
        .all(db)
        .await
        .expect("read quotas");
    txn.commit().await.expect("end the snapshot");
    Snapshot {
        capacity: event.capacity.into(),
        available: event.available.into(),
        reservations,
        ticket_types,
        quotas,
        max_per_user: event.max_per_user.map(i64::from),
    }
}

/// Reads the event and its reservations and asserts invariants 1 and 2.
pub async fn check(db: &DatabaseConnection, event_id: i64) -> Snapshot {
    let snapshot = snapshot(db, event_id).await;
    let violations = snapshot.violations();
    assert!(violations.is_empty(), "{violations:?}");
    snapshot
}

/// Invariants 4 and 5: every answer a client got matches the database. A
/// decided answer (200 confirmed; 409 rejected, or cancelled since) names
/// the status its row must have, with the same quantity; an acknowledged
/// one (202) must have reached a final state. No cancel is assumed asked.
pub fn check_responses(snapshot: &Snapshot, responses: &[(u16, Value)]) {
    for (status, body) in responses {
        let id: Uuid = body["reservation_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("response {status} without reservation_id: {body}"));
        let row = snapshot.reservations.get(&id);
        match status {
            200 | 409 => {
                let row = row.unwrap_or_else(|| panic!("no row for answered reservation {id}"));
                let answered: ReservationStatus = serde_json::from_value(body["status"].clone())
                    .unwrap_or_else(|_| panic!("{status} without a status: {body}"));
                assert!(
                    *status == 409 || answered == ReservationStatus::Confirmed,
                    "200 but {body}"
                );
                assert!(
                    rules::answer_agrees(answered, row.status, false),
                    "{status} {answered:?} but {row:?}"
                );
                let quantity = body["quantity"].as_i64();
                assert!(
                    *status == 409 || quantity.is_some(),
                    "200 without a quantity: {body}"
                );
                if let Some(quantity) = quantity {
                    assert_eq!(i64::from(row.quantity), quantity, "{body} but {row:?}");
                }
            }
            202 => assert!(
                rules::command_settled(rules::Asked::Reserve, row.map(|r| r.status)),
                "202 never decided: {row:?}"
            ),
            other => panic!("unexpected status {other}: {body}"),
        }
    }
}
