//! Invariant 5: every command the api acknowledged reached a final state
//! ([`testkit::invariants::rules::command_settled`]).

use std::collections::BTreeSet;

use shared::messages::ReservationStatus;
use testkit::invariants::rules;
use uuid::Uuid;

use super::model::{DbState, Violation, split};
use crate::history::{OpKind, Record};

/// How long after its `expires_at` a hold may still be `held`: the worker
/// sends its expiry 0.1 s late, sends it again every 5 s until it is
/// decided, and a partition whose worker died waits for the lease to
/// expire and the next owner to read the holds back.
const EXPIRY_SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(15);

/// Acknowledged commands that have not reached a final state in `db`, and
/// holds still held well after their time.
pub fn unresolved(history: &[Record], db: &DbState) -> Vec<Uuid> {
    let (_, ops, _) = split(history);
    let mut ids: BTreeSet<Uuid> = overdue_holds(db).collect();
    for op in ops.iter().filter(|op| op.acknowledged()) {
        let Some(id) = op.reservation_id else {
            continue;
        };
        let row = db.rows.get(&id).map(|row| row.status);
        let asked = match op.op {
            OpKind::Cancel => rules::Asked::Cancel,
            OpKind::Confirm => rules::Asked::Confirm,
            _ => rules::Asked::Reserve,
        };
        if !rules::command_settled(asked, row) {
            ids.insert(id);
        }
    }
    ids.into_iter().collect()
}

fn overdue_holds(db: &DbState) -> impl Iterator<Item = Uuid> + '_ {
    db.rows
        .iter()
        .filter(|(_, row)| {
            row.status == ReservationStatus::Held
                && row
                    .expires_at
                    .zip(db.read_at)
                    .is_some_and(|(expires_at, now)| expires_at + EXPIRY_SLACK < now)
        })
        .map(|(id, _)| *id)
}

pub(super) fn check(history: &[Record], db: &DbState) -> Vec<Violation> {
    unresolved(history, db)
        .into_iter()
        .map(|id| {
            let state = db
                .rows
                .get(&id)
                .map_or("no row".to_owned(), |r| format!("row {:?}", r.status));
            Violation::new(
                "inv5-lost",
                id.to_string(),
                format!("acknowledged but never reached a final state ({state})"),
            )
        })
        .collect()
}
