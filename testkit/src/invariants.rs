//! The invariants of DESIGN.md §2, checked against the database.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::Value;
use shared::{
    entities::{event, reservation},
    messages::ReservationStatus,
};
use uuid::Uuid;

pub struct Snapshot {
    pub capacity: i64,
    pub available: i64,
    pub reservations: HashMap<Uuid, reservation::Model>,
}

impl Snapshot {
    pub fn confirmed_quantity(&self) -> i64 {
        self.reservations
            .values()
            .filter(|r| r.status == ReservationStatus::Confirmed)
            .map(|r| i64::from(r.quantity))
            .sum()
    }

    pub fn count(&self, status: ReservationStatus) -> usize {
        self.reservations
            .values()
            .filter(|r| r.status == status)
            .count()
    }
}

/// Reads the event and its reservations.
pub async fn snapshot(db: &DatabaseConnection, event_id: i64) -> Snapshot {
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
    Snapshot {
        capacity: event.capacity.into(),
        available: event.available.into(),
        reservations,
    }
}

impl Snapshot {
    /// Violations of invariants 1 and 2, described.
    pub fn violations(&self) -> Vec<String> {
        let mut found = Vec::new();
        if !(0..=self.capacity).contains(&self.available) {
            found.push(format!(
                "invariant 1: available {} outside [0, {}]",
                self.available, self.capacity
            ));
        }
        let confirmed = self.confirmed_quantity();
        if self.available + confirmed != self.capacity {
            found.push(format!(
                "invariant 2: available {} + confirmed {confirmed} != capacity {}",
                self.available, self.capacity
            ));
        }
        found
    }
}

/// Reads the event and its reservations and asserts invariants 1 and 2.
pub async fn check(db: &DatabaseConnection, event_id: i64) -> Snapshot {
    let snapshot = snapshot(db, event_id).await;
    let violations = snapshot.violations();
    assert!(violations.is_empty(), "{violations:?}");
    snapshot
}

/// Invariant 4: every decided answer a client got matches the database.
pub fn check_responses(snapshot: &Snapshot, responses: &[(u16, Value)]) {
    for (status, body) in responses {
        let id = || -> Uuid {
            body["reservation_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("response {status} without reservation_id: {body}"))
        };
        let row = |id: Uuid| {
            snapshot
                .reservations
                .get(&id)
                .unwrap_or_else(|| panic!("no row for answered reservation {id}"))
        };
        match status {
            200 => {
                let row = row(id());
                assert_eq!(row.status, ReservationStatus::Confirmed, "200 but {row:?}");
                assert_eq!(i64::from(row.quantity), body["quantity"].as_i64().unwrap());
            }
            409 => {
                let row = row(id());
                assert_ne!(row.status, ReservationStatus::Confirmed, "409 but {row:?}");
            }
            202 => {
                // Acknowledged: must have reached a final state (invariant 5).
                let row = row(id());
                assert!(row.status.is_decided(), "202 never decided: {row:?}");
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
}
