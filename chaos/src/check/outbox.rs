//! The webhook outbox against the reservations (`inv-outbox-complete`):
//! the worker writes a message for every state a reservation of a client
//! with an endpoint reaches, in the transaction that changes it. So the
//! states its messages name are exactly the steps of one path of the state
//! machine from `pending` to the row's status: none missing (a change
//! lost), none extra (a change invented), and each message says what the
//! row says of the reservation.

use std::collections::HashMap;

use shared::{
    messages::ReservationStatus,
    webhook::{self, Payload},
};
use uuid::Uuid;

use super::model::{DbState, Message, Row, Summary, Violation};

const RULE: &str = "inv-outbox-complete";

/// Whether a message is owed for `row`: its client had an enabled
/// endpoint before the row was first written. `None` when that cannot be
/// told (an endpoint created after it, or removed since: the messages
/// then stop or start midway), and the row is not judged.
fn owed(db: &DbState, row: &Row) -> Option<bool> {
    if row.client_id == 0 {
        return Some(false);
    }
    let mut endpoints = db
        .outbox
        .endpoints
        .iter()
        .filter(|e| e.client_id == row.client_id)
        .peekable();
    if endpoints.peek().is_none() {
        return Some(false);
    }
    endpoints
        .any(|e| e.disabled_at.is_none() && e.created_at <= row.created_at)
        .then_some(true)
}

pub(super) fn check(events: &[i64], db: &DbState, summary: &mut Summary) -> Vec<Violation> {
    let mut by_reservation: HashMap<Uuid, Vec<(&Uuid, &Message)>> = HashMap::new();
    for (id, message) in &db.outbox.messages {
        by_reservation
            .entry(message.reservation_id)
            .or_default()
            .push((id, message));
    }
    let mut violations = Vec::new();
    let mut ids: Vec<(&Uuid, &Row)> = db
        .rows
        .iter()
        .filter(|(_, row)| events.contains(&row.event_id))
        .collect();
    ids.sort_by_key(|(id, _)| **id);
    for (id, row) in ids {
        let messages = by_reservation.remove(id).unwrap_or_default();
        let found = match owed(db, row) {
            Some(false) if !messages.is_empty() => vec![format!(
                "{} message(s) for a reservation of client {}, which {}",
                messages.len(),
                row.client_id,
                if row.client_id == 0 {
                    "is anonymous"
                } else {
                    "has no webhook endpoint"
                }
            )],
            Some(true) => {
                summary.webhooks.reservations += 1;
                judge(id, row, &messages)
            }
            _ => Vec::new(),
        };
        violations.extend(
            found
                .into_iter()
                .map(|detail| Violation::new(RULE, id.to_string(), detail)),
        );
    }
    // What is left has no row of the history's events: invented if no
    // reservation has its id at all.
    let mut orphans: Vec<(&Uuid, &Message)> = by_reservation
        .into_values()
        .flatten()
        .filter(|(_, m)| m.event_id.is_none())
        .collect();
    orphans.sort_by_key(|(id, _)| **id);
    violations.extend(orphans.into_iter().map(|(id, m)| {
        Violation::new(
            RULE,
            m.reservation_id.to_string(),
            format!(
                "message {id} ({}) for a reservation that does not exist",
                m.event_type
            ),
        )
    }));
    violations
}

/// The messages of one reservation owed them, against its row.
fn judge(id: &Uuid, row: &Row, messages: &[(&Uuid, &Message)]) -> Vec<String> {
    let mut found = Vec::new();
    let mut states = Vec::new();
    for (message_id, message) in messages {
        let Some(status) = status_of(&message.event_type) else {
            found.push(format!(
                "message {message_id} has an unknown type {}",
                message.event_type
            ));
            continue;
        };
        states.push(status);
        if **message_id != webhook::message_id(*id, status) {
            found.push(format!(
                "message {message_id} ({}) is not the id of that change",
                message.event_type
            ));
        }
        if message.client_id != row.client_id {
            found.push(format!(
                "message {message_id} is for client {}, the reservation is client {}'s",
                message.client_id, row.client_id
            ));
        }
        found.extend(
            payload_disagrees(id, row, message, status)
                .map(|what| format!("message {message_id} ({}): {what}", message.event_type)),
        );
    }
    if !is_path(ReservationStatus::Pending, &states, row.status) {
        let mut names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        names.sort_unstable();
        found.push(format!(
            "messages for {{{}}}, which is not the way from pending to {}: a change lost or invented",
            names.join(", "),
            row.status.as_str()
        ));
    }
    found
}

/// Whether `states`, in some order, are the steps from `from` to `to`
/// (`ReservationStatus::can_become`), each once.
fn is_path(from: ReservationStatus, states: &[ReservationStatus], to: ReservationStatus) -> bool {
    if states.is_empty() {
        return from == to;
    }
    states.iter().enumerate().any(|(i, next)| {
        from.can_become(*next) && {
            let mut rest = states.to_vec();
            rest.remove(i);
            is_path(*next, &rest, to)
        }
    })
}

/// The state a message's type reports (`reservation.held` → held).
fn status_of(event_type: &str) -> Option<ReservationStatus> {
    ReservationStatus::ALL
        .into_iter()
        .find(|s| webhook::event_type(*s) == Some(event_type))
}

/// How a message's body disagrees with the row it tells of.
fn payload_disagrees(
    id: &Uuid,
    row: &Row,
    message: &Message,
    status: ReservationStatus,
) -> impl Iterator<Item = String> {
    let found: Vec<String> = match serde_json::from_str::<Payload>(&message.payload) {
        Err(error) => vec![format!("the payload is not a webhook body: {error}")],
        Ok(payload) => [
            (payload.event_type != message.event_type)
                .then(|| format!("the body's type is {}", payload.event_type)),
            (payload.data.status != status)
                .then(|| format!("data.status is {}", payload.data.status.as_str())),
            (payload.data.reservation_id != *id)
                .then(|| format!("data.reservation_id is {}", payload.data.reservation_id)),
            (payload.data.event_id != row.event_id)
                .then(|| format!("data.event_id {} ≠ {}", payload.data.event_id, row.event_id)),
            (payload.data.quantity != row.quantity)
                .then(|| format!("data.quantity {} ≠ {}", payload.data.quantity, row.quantity)),
            (payload.data.user_id != row.user_id).then(|| {
                format!(
                    "data.user_id {:?} ≠ {:?}",
                    payload.data.user_id, row.user_id
                )
            }),
            (payload.data.ticket_type_id != row.ticket_type_id).then(|| {
                format!(
                    "data.ticket_type_id {:?} ≠ {:?}",
                    payload.data.ticket_type_id, row.ticket_type_id
                )
            }),
        ]
        .into_iter()
        .flatten()
        .collect(),
    };
    found.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReservationStatus::*;

    #[test]
    fn the_valid_sets_are_exactly_the_paths_of_the_state_machine() {
        let valid: [(&[ReservationStatus], ReservationStatus); 9] = [
            (&[], Pending),
            (&[Rejected], Rejected),
            (&[Confirmed], Confirmed),
            (&[Cancelled, Confirmed], Cancelled),
            (&[Held], Held),
            (&[Confirmed, Held], Confirmed),
            (&[Held, Cancelled, Confirmed], Cancelled),
            (&[Released, Held], Released),
            (&[Held, Expired], Expired),
        ];
        for (states, to) in valid {
            assert!(is_path(Pending, states, to), "{states:?} → {to:?}");
        }
        let invalid: [(&[ReservationStatus], ReservationStatus); 7] = [
            (&[], Confirmed),
            (&[Held], Confirmed),
            (&[Confirmed], Held),
            (&[Held, Expired, Released], Expired),
            (&[Rejected, Confirmed], Confirmed),
            (&[Cancelled], Cancelled),
            (&[Held, Held], Held),
        ];
        for (states, to) in invalid {
            assert!(!is_path(Pending, states, to), "{states:?} → {to:?}");
        }
    }

    #[test]
    fn every_event_type_names_its_state() {
        for status in ReservationStatus::ALL {
            match webhook::event_type(status) {
                Some(name) => assert_eq!(status_of(name), Some(status)),
                None => assert_eq!(status, Pending),
            }
        }
        assert_eq!(status_of("reservation.unknown"), None);
    }
}
