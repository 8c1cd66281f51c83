//! Invariant 5: every command the api acknowledged reached a final state
//! ([`testkit::invariants::rules::command_settled`]).

use std::collections::BTreeSet;

use testkit::invariants::rules;
use uuid::Uuid;

use super::model::{DbState, Violation, split};
use crate::history::{OpKind, Record};

/// Acknowledged commands that have not reached a final state in `db`.
pub fn unresolved(history: &[Record], db: &DbState) -> Vec<Uuid> {
    let (_, ops, _) = split(history);
    let mut ids = BTreeSet::new();
    for op in ops.iter().filter(|op| op.acknowledged()) {
        let Some(id) = op.reservation_id else {
            continue;
        };
        let row = db.rows.get(&id).map(|row| row.status);
        if !rules::command_settled(op.op == OpKind::Cancel, row) {
            ids.insert(id);
        }
    }
    ids.into_iter().collect()
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
