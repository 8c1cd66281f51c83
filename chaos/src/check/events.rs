//! Invariants 1 and 2 on the database: per event, and per ticket type and
//! quota, `available` within `[0, capacity]` and `available + Σ held or
//! confirmed == capacity`; and the per-user limit. By the rules the system
//! tests apply ([`testkit::invariants::rules`]).

use std::collections::BTreeMap;

use testkit::invariants::rules::{self, EventTally};

use super::model::{DbState, EventSummary, Violation};

/// Checks `events` in `db`, and records each one's figures in `summary`.
pub(super) fn check(
    events: &[i64],
    db: &DbState,
    summary: &mut BTreeMap<i64, EventSummary>,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    for event_id in events {
        let id = format!("event {event_id}");
        let Some(event) = db.events.get(event_id) else {
            violations.push(Violation::new(
                "inv1-range",
                id,
                "event missing from the database",
            ));
            continue;
        };
        let taken = rules::taken_quantity(
            db.rows
                .values()
                .filter(|r| r.event_id == *event_id)
                .map(|r| (r.status, r.quantity)),
        );
        summary.insert(
            *event_id,
            EventSummary {
                capacity: event.capacity,
                available: event.available,
                taken_quantity: taken,
            },
        );
        let tally = EventTally {
            capacity: event.capacity,
            available: event.available,
            taken,
        };
        for breach in rules::event_breaches(tally) {
            violations.push(Violation::new(breach.rule(), &*id, breach.to_string()));
        }
        let rows: Vec<_> = db
            .rows
            .values()
            .filter(|r| r.event_id == *event_id)
            .collect();
        let counted: Vec<_> = rows
            .iter()
            .map(|r| (r.ticket_type_id, r.status, r.quantity))
            .collect();
        for (what, breach) in rules::type_breaches(&event.ticket_types, &event.quotas, &counted) {
            violations.push(Violation::new(
                breach.rule(),
                format!("{id}, {what}"),
                breach.to_string(),
            ));
        }
        if let Some(max) = event.max_per_user {
            let users = rows.iter().map(|r| (r.user_id, r.status, r.quantity));
            for (user, has) in rules::users_over_limit(max, users) {
                violations.push(Violation::new(
                    "inv-per-user",
                    format!("{id}, user {user}"),
                    format!("holds and has confirmed {has} tickets, over the limit {max}"),
                ));
            }
        }
    }
    violations
}
