//! The webhook rules can fail: a doctored outbox (a change lost or
//! invented, a body that disagrees with its row, a delivery left pending
//! or failed) and a doctored receiver (a message missing, one the outbox
//! does not hold, another body, a bad signature) each produce the
//! expected violation, and a consistent state none.

use std::collections::HashMap;

use chaos::{
    check::{
        self, DbState, Delivery, Endpoint, EventRow, Limits, Message, Receipt, Received, Row,
        Summary,
    },
    history::{EventMeta, Meta, Record},
};
use chrono::{DateTime, TimeDelta, Utc};
use shared::{
    entities::webhook_delivery::DeliveryStatus,
    messages::ReservationStatus::{self, Confirmed, Expired, Held, Rejected},
    webhook::{self, Payload},
};
use uuid::Uuid;

const EVENT: i64 = 7;
const CLIENT: i64 = 5;
const ENDPOINT: i64 = 1;

fn history() -> Vec<Record> {
    vec![Record::Meta(Meta {
        started_at: Utc::now(),
        apis: vec!["http://127.0.0.1:1".into()],
        events: vec![EventMeta::plain(EVENT, 10)],
        scenario: None,
    })]
}

fn row(client_id: i64, status: ReservationStatus, quantity: i32, at: DateTime<Utc>) -> Row {
    Row {
        event_id: EVENT,
        status,
        quantity,
        expires_at: None,
        ticket_type_id: Some(3),
        user_id: Some(11),
        client_id,
        created_at: at,
    }
}

/// The message the worker writes for reservation `id` (`row`) reaching
/// `status`.
fn message(id: Uuid, row: &Row, status: ReservationStatus) -> (Uuid, Message) {
    let event_type = webhook::event_type(status).expect("a change");
    let payload = Payload {
        event_type: event_type.into(),
        timestamp: row.created_at,
        data: webhook::Reservation {
            reservation_id: id,
            event_id: row.event_id,
            ticket_type_id: row.ticket_type_id,
            user_id: row.user_id,
            quantity: row.quantity,
            status,
            hold_seconds: None,
            expires_at: None,
        },
    };
    let message = Message {
        client_id: row.client_id,
        reservation_id: id,
        event_type: event_type.into(),
        payload: serde_json::to_string(&payload).expect("json"),
        created_at: row.created_at,
        event_id: Some(row.event_id),
    };
    (webhook::message_id(id, status), message)
}

/// A consistent state: client 5's endpoint, then a held-then-confirmed
/// (2), a rejected and a held-then-expired reservation of client 5, and
/// an anonymous confirmed one (1) without messages; every message
/// delivered (one after a retry) and received once.
fn consistent() -> (DbState, Received, [Uuid; 4]) {
    let t0 = Utc::now() - TimeDelta::seconds(60);
    let at = t0 + TimeDelta::seconds(10);
    let ids = [(); 4].map(|_| Uuid::now_v7());
    let [a, b, c, d] = ids;
    let mut db = DbState::default();
    db.events.insert(
        EVENT,
        EventRow {
            capacity: 10,
            available: 7,
            ..EventRow::default()
        },
    );
    db.outbox.endpoints.push(Endpoint {
        id: ENDPOINT,
        client_id: CLIENT,
        created_at: t0,
        disabled_at: None,
    });
    let rows = [
        (a, row(CLIENT, Confirmed, 2, at), vec![Held, Confirmed]),
        (b, row(CLIENT, Rejected, 4, at), vec![Rejected]),
        (c, row(0, Confirmed, 1, at), vec![]),
        (d, row(CLIENT, Expired, 1, at), vec![Held, Expired]),
    ];
    let mut received = Received::default();
    received.endpoints.insert(ENDPOINT);
    for (id, row, states) in rows {
        db.rows.insert(id, row);
        for status in states {
            let (message_id, message) = message(id, &row, status);
            db.outbox.deliveries.push(Delivery {
                message_id,
                endpoint_id: ENDPOINT,
                status: DeliveryStatus::Delivered,
                attempts: if status == Rejected { 2 } else { 1 },
                last_error: None,
            });
            received.messages.insert(
                (message_id, ENDPOINT),
                Receipt {
                    bodies: vec![message.payload.clone().into_bytes()],
                    attempts: 1,
                    accepted: 1,
                },
            );
            db.outbox.messages.insert(message_id, message);
        }
    }
    (db, received, ids)
}

/// The rules' names, the database's and the receiver's.
fn rules(db: &DbState, received: &Received, late: &HashMap<Uuid, String>) -> Vec<&'static str> {
    let mut summary = check::check(&history(), db, Limits::default());
    let found = check::check_received(db, received, late, &mut summary);
    summary.violations.extend(found);
    summary.violations.iter().map(|v| v.rule).collect()
}

fn summary(db: &DbState, received: &Received) -> Summary {
    let mut summary = check::check(&history(), db, Limits::default());
    let found = check::check_received(db, received, &HashMap::new(), &mut summary);
    summary.violations.extend(found);
    summary
}

#[test]
fn a_consistent_outbox_passes_and_is_counted() {
    let (db, received, _) = consistent();
    let summary = summary(&db, &received);
    assert!(summary.violations.is_empty(), "{}", summary.render());
    let w = summary.webhooks;
    assert_eq!((w.endpoints, w.messages, w.deliveries), (1, 5, 5));
    assert_eq!((w.delivered, w.retried, w.received), (5, 1, 5));
    assert_eq!(w.reservations, 3, "the anonymous one is owed none");
}

#[test]
fn a_change_without_its_message_is_lost() {
    let (mut db, received, [a, ..]) = consistent();
    let confirmed = webhook::message_id(a, Confirmed);
    db.outbox.messages.remove(&confirmed);
    db.outbox.deliveries.retain(|d| d.message_id != confirmed);
    let mut received = received;
    received.messages.remove(&(confirmed, ENDPOINT));
    assert_eq!(
        rules(&db, &received, &HashMap::new()),
        ["inv-outbox-complete"]
    );
}

#[test]
fn a_message_for_a_change_that_did_not_happen_is_invented() {
    // a was confirmed; a message says its hold also expired.
    let (mut db, received, [a, ..]) = consistent();
    let (id, expired) = message(a, &db.rows[&a], Expired);
    db.outbox.messages.insert(id, expired);
    db.outbox.deliveries.push(Delivery {
        message_id: id,
        endpoint_id: ENDPOINT,
        status: DeliveryStatus::Delivered,
        attempts: 1,
        last_error: None,
    });
    assert!(rules(&db, &received, &HashMap::new()).contains(&"inv-outbox-complete"));

    // A message for a reservation that does not exist.
    let (mut db, received, _) = consistent();
    let ghost = Uuid::now_v7();
    let (id, mut message) = message(ghost, &row(CLIENT, Held, 1, Utc::now()), Held);
    message.event_id = None;
    db.outbox.messages.insert(id, message);
    assert!(rules(&db, &received, &HashMap::new()).contains(&"inv-outbox-complete"));
}

#[test]
fn an_anonymous_reservation_with_a_message_is_caught() {
    let (mut db, received, [_, _, c, _]) = consistent();
    let (id, message) = message(c, &db.rows[&c], Confirmed);
    db.outbox.messages.insert(id, message);
    let found = rules(&db, &received, &HashMap::new());
    assert_eq!(found[0], "inv-outbox-complete", "{found:?}");
}

#[test]
fn a_body_that_disagrees_with_its_row_is_caught() {
    let (mut db, received, [_, b, ..]) = consistent();
    let mut other = db.rows[&b];
    other.quantity = 3;
    let (id, wrong) = message(b, &other, Rejected);
    db.outbox.messages.insert(id, wrong);
    let found = rules(&db, &received, &HashMap::new());
    // The row's quantity differs; so does the body the receiver got.
    assert_eq!(found, ["inv-outbox-complete", "inv-outbox-delivered"]);
}

#[test]
fn a_delivery_left_pending_or_failed_or_missing_is_caught() {
    let (mut db, received, _) = consistent();
    for d in &mut db.outbox.deliveries[..2] {
        d.status = DeliveryStatus::Pending;
    }
    let summary = summary(&db, &received);
    assert_eq!(summary.violations.len(), 1, "{}", summary.render());
    assert!(
        summary.violations[0]
            .detail
            .starts_with("2 of 5 deliveries still pending"),
        "{}",
        summary.violations[0]
    );

    let (mut db, received, _) = consistent();
    db.outbox.deliveries[0].status = DeliveryStatus::Failed;
    assert_eq!(
        rules(&db, &received, &HashMap::new()),
        ["inv-outbox-delivered"]
    );

    // A message written with no delivery to its client's endpoint.
    let (mut db, received, _) = consistent();
    let gone = db.outbox.deliveries.remove(0);
    let mut received = received;
    received.messages.remove(&(gone.message_id, ENDPOINT));
    assert_eq!(
        rules(&db, &received, &HashMap::new()),
        ["inv-outbox-delivered"]
    );
}

#[test]
fn a_receiver_missing_a_message_or_given_another_is_caught() {
    // Marked delivered, never accepted: lost.
    let (db, mut received, _) = consistent();
    let first = *received.messages.keys().next().expect("a message");
    received.messages.get_mut(&first).expect("it").accepted = 0;
    assert_eq!(
        rules(&db, &received, &HashMap::new()),
        ["inv-outbox-delivered"]
    );

    // Received, but the outbox never held it: invented; unless it was
    // committed after the database was read (late).
    let (db, mut received, _) = consistent();
    let stranger = Uuid::now_v7();
    received.messages.insert(
        (stranger, ENDPOINT),
        Receipt {
            bodies: vec![b"{}".to_vec()],
            attempts: 1,
            accepted: 1,
        },
    );
    assert_eq!(
        rules(&db, &received, &HashMap::new()),
        ["inv-outbox-delivered"]
    );
    let late = HashMap::from([(stranger, "{}".to_owned())]);
    assert!(rules(&db, &received, &late).is_empty());
    let mut summary = Summary::default();
    check::check_received(&db, &received, &late, &mut summary);
    assert_eq!((summary.webhooks.received, summary.webhooks.late), (5, 1));
    let late = HashMap::from([(stranger, "{\"other\":1}".to_owned())]);
    assert_eq!(rules(&db, &received, &late), ["inv-outbox-delivered"]);

    // A body other than the stored one, and a request not validly signed.
    let (db, mut received, _) = consistent();
    let first = *received.messages.keys().next().expect("a message");
    received
        .messages
        .get_mut(&first)
        .expect("it")
        .bodies
        .push(b"{\"tampered\":true}".to_vec());
    received.invalid.push("msg_x: bad signature".into());
    assert_eq!(
        rules(&db, &received, &HashMap::new()),
        ["inv-outbox-delivered", "inv-outbox-delivered"]
    );
}
