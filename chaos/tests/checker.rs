//! The checker can fail: doctored histories and doctored database states
//! must produce the expected violation, and a consistent pair none.

use chaos::{
    check::{self, DbState, EventRow, Limits, Row, WaitingRow},
    history::{EventMeta, Fault, Meta, Op, OpKind, Record},
};
use serde_json::{Value, json};
use shared::messages::ReservationStatus::{self, Cancelled, Confirmed, Held, Pending, Rejected};
use uuid::Uuid;

const EVENT: i64 = 7;

fn meta() -> Record {
    Record::Meta(Meta {
        started_at: chrono::Utc::now(),
        apis: vec!["http://127.0.0.1:1".into()],
        events: vec![EventMeta::plain(EVENT, 10)],
        scenario: None,
    })
}

fn op(kind: OpKind, id: Option<Uuid>, status: u16, body: Value, at: f64) -> Record {
    let (method, path) = match kind {
        OpKind::Reserve => ("POST", format!("/events/{EVENT}/reserve")),
        OpKind::Confirm => ("POST", format!("/reservations/{}/confirm", id.unwrap())),
        OpKind::Cancel => ("DELETE", format!("/reservations/{}", id.unwrap())),
        OpKind::Poll => ("GET", format!("/reservations/{}", id.unwrap())),
        OpKind::Read => ("GET", format!("/events/{EVENT}/tickets")),
        OpKind::Join => ("POST", format!("/events/{EVENT}/waiting-list")),
        OpKind::Wait => ("GET", format!("/waiting-list/{}", id.unwrap())),
    };
    Record::Op(Op {
        op: kind,
        client: 0,
        api: 0,
        method: method.into(),
        path,
        event_id: matches!(kind, OpKind::Reserve | OpKind::Read).then_some(EVENT),
        reservation_id: id,
        quantity: None,
        idempotency_key: None,
        attempt: 1,
        asynchronous: false,
        start_ms: at,
        end_ms: at + 10.0,
        status,
        retry_after: matches!(status, 429 | 503).then(|| "1".into()),
        body,
        error: None,
    })
}

fn reserved(id: Uuid, quantity: i64, status: &str) -> Value {
    json!({"reservation_id": id, "status": status, "quantity": quantity, "remaining_tickets": 5})
}

/// A consistent pair: a, b confirmed (2 + 3), c rejected, d confirmed then
/// cancelled, e acknowledged async and decided later.
fn consistent() -> (Vec<Record>, DbState, [Uuid; 5]) {
    let ids = [(); 5].map(|_| Uuid::now_v7());
    let [a, b, c, d, e] = ids;
    let history = vec![
        meta(),
        op(
            OpKind::Reserve,
            Some(a),
            200,
            reserved(a, 2, "confirmed"),
            0.0,
        ),
        op(
            OpKind::Reserve,
            Some(b),
            200,
            reserved(b, 3, "confirmed"),
            5.0,
        ),
        op(
            OpKind::Reserve,
            Some(c),
            409,
            reserved(c, 9, "rejected"),
            20.0,
        ),
        op(
            OpKind::Reserve,
            Some(d),
            200,
            reserved(d, 1, "confirmed"),
            30.0,
        ),
        op(
            OpKind::Cancel,
            Some(d),
            200,
            reserved(d, 1, "cancelled"),
            40.0,
        ),
        op(
            OpKind::Poll,
            Some(d),
            200,
            reserved(d, 1, "cancelled"),
            60.0,
        ),
        op(
            OpKind::Reserve,
            Some(e),
            202,
            json!({"reservation_id": e, "status": "pending"}),
            70.0,
        ),
        op(OpKind::Read, None, 200, json!({"tickets": 5}), 80.0),
        op(OpKind::Read, None, 503, json!({"status": 503}), 90.0),
        Record::Fault(Fault {
            fault: "sigkill-worker".into(),
            detail: "test".into(),
            start_ms: 50.0,
            end_ms: 50.0,
        }),
    ];
    let row = |status: ReservationStatus, quantity: i32| Row {
        event_id: EVENT,
        status,
        quantity,
        expires_at: None,
        ticket_type_id: None,
        user_id: None,
        client_id: 0,
        created_at: chrono::Utc::now(),
    };
    let mut db = DbState::default();
    db.events.insert(
        EVENT,
        EventRow {
            capacity: 10,
            available: 4,
            ..EventRow::default()
        },
    );
    db.rows.insert(a, row(Confirmed, 2));
    db.rows.insert(b, row(Confirmed, 3));
    db.rows.insert(c, row(Rejected, 9));
    db.rows.insert(d, row(Cancelled, 1));
    db.rows.insert(e, row(Confirmed, 1));
    (history, db, ids)
}

fn rules(history: &[Record], db: &DbState) -> Vec<&'static str> {
    check::check(history, db, Limits::default())
        .violations
        .iter()
        .map(|v| v.rule)
        .collect()
}

#[test]
fn a_consistent_history_passes() {
    let (history, db, _) = consistent();
    let summary = check::check(&history, &db, Limits::default());
    assert!(summary.violations.is_empty(), "{}", summary.render());
    assert_eq!(summary.operations, 9);
    assert_eq!(summary.faults, 1);
    assert_eq!(summary.acknowledged, 6);
}

#[test]
fn a_200_whose_row_is_rejected_is_caught() {
    let (history, mut db, [a, ..]) = consistent();
    db.rows.get_mut(&a).unwrap().status = Rejected;
    db.events.get_mut(&EVENT).unwrap().available += 2; // keep invariant 2
    let summary = check::check(&history, &db, Limits::default());
    assert_eq!(
        rules(&history, &db),
        ["inv4-response-vs-db"],
        "{}",
        summary.render()
    );
    assert_eq!(summary.violations[0].id, a.to_string());
}

#[test]
fn oversold_and_lost_tickets_are_caught() {
    let (history, mut db, _) = consistent();
    db.events.get_mut(&EVENT).unwrap().available = 3; // 3 + 6 confirmed != 10
    assert_eq!(rules(&history, &db), ["inv2-conservation"]);
    db.events.get_mut(&EVENT).unwrap().available = -1;
    assert_eq!(rules(&history, &db), ["inv1-range", "inv2-conservation"]);
}

#[test]
fn a_409_whose_row_is_confirmed_is_caught() {
    let (history, mut db, [_, _, c, ..]) = consistent();
    db.rows.get_mut(&c).unwrap().status = Confirmed;
    db.events.get_mut(&EVENT).unwrap().available -= 9;
    assert!(rules(&history, &db).contains(&"inv4-response-vs-db"));
}

#[test]
fn a_cancelled_row_without_a_cancel_is_caught() {
    let (history, mut db, [a, ..]) = consistent();
    db.rows.get_mut(&a).unwrap().status = Cancelled;
    db.events.get_mut(&EVENT).unwrap().available += 2;
    assert_eq!(rules(&history, &db), ["inv4-response-vs-db"]);
}

#[test]
fn an_acknowledged_command_never_decided_is_lost() {
    let (history, mut db, [.., e]) = consistent();
    db.rows.get_mut(&e).unwrap().status = Pending;
    db.events.get_mut(&EVENT).unwrap().available += 1;
    assert_eq!(rules(&history, &db), ["inv5-lost"]);
    db.rows.remove(&e);
    assert_eq!(rules(&history, &db), ["inv5-lost"]);
    assert_eq!(check::unresolved(&history, &db), vec![e]);
}

#[test]
fn a_reservation_decided_twice_is_caught() {
    let (mut history, db, [_, _, c, _, _]) = consistent();
    // c was answered 409; a retry now says confirmed.
    history.push(op(
        OpKind::Poll,
        Some(c),
        200,
        reserved(c, 9, "confirmed"),
        100.0,
    ));
    let found = rules(&history, &db);
    assert!(found.contains(&"inv3-decided-twice"), "{found:?}");

    // d was seen cancelled at 50 ms; a poll started later says confirmed.
    let (mut history, db, [_, _, _, d, _]) = consistent();
    history.push(op(
        OpKind::Poll,
        Some(d),
        200,
        reserved(d, 1, "confirmed"),
        200.0,
    ));
    assert_eq!(rules(&history, &db), ["inv3-decided-twice"]);

    // Two answers for a disagree on the quantity.
    let (mut history, db, [a, ..]) = consistent();
    history.push(op(
        OpKind::Poll,
        Some(a),
        200,
        reserved(a, 4, "confirmed"),
        200.0,
    ));
    assert!(rules(&history, &db).contains(&"inv3-decided-twice"));
}

#[test]
fn a_hold_seen_on_two_paths_or_going_back_is_caught() {
    // a is a confirmed reservation; an answer says its hold expired.
    let (mut history, db, [a, ..]) = consistent();
    history.push(op(
        OpKind::Poll,
        Some(a),
        200,
        reserved(a, 2, "expired"),
        200.0,
    ));
    assert!(rules(&history, &db).contains(&"inv3-decided-twice"));

    // d was seen cancelled at 50 ms; a confirm started later says held.
    let (mut history, db, [_, _, _, d, _]) = consistent();
    history.push(op(
        OpKind::Confirm,
        Some(d),
        200,
        reserved(d, 1, "held"),
        200.0,
    ));
    assert!(rules(&history, &db).contains(&"inv3-decided-twice"));
}

#[test]
fn a_hold_left_held_long_after_its_time_is_lost() {
    let (history, mut db, [.., e]) = consistent();
    let now = chrono::Utc::now();
    db.read_at = Some(now);
    let row = db.rows.get_mut(&e).unwrap();
    row.status = Held;
    row.expires_at = Some(now - chrono::TimeDelta::seconds(5));
    assert_eq!(rules(&history, &db), Vec::<&str>::new(), "within the slack");
    db.rows.get_mut(&e).unwrap().expires_at = Some(now - chrono::TimeDelta::seconds(60));
    assert_eq!(rules(&history, &db), ["inv5-lost"]);
}

#[test]
fn one_idempotency_key_with_two_ids_is_caught() {
    let (mut history, mut db, _) = consistent();
    let (x, y) = (Uuid::now_v7(), Uuid::now_v7());
    for (id, at) in [(x, 300.0), (y, 310.0)] {
        let mut record = op(
            OpKind::Reserve,
            Some(id),
            409,
            reserved(id, 1, "rejected"),
            at,
        );
        if let Record::Op(op) = &mut record {
            op.idempotency_key = Some("order-1".into());
        }
        history.push(record);
        db.rows.insert(
            id,
            Row {
                event_id: EVENT,
                status: Rejected,
                quantity: 1,
                expires_at: None,
                ticket_type_id: None,
                user_id: None,
                client_id: 0,
                created_at: chrono::Utc::now(),
            },
        );
    }
    assert_eq!(rules(&history, &db), ["inv3-decided-twice"]);
}

#[test]
fn bad_reads_500s_and_hangs_are_caught() {
    let (mut history, db, _) = consistent();
    history.push(op(OpKind::Read, None, 200, json!({"tickets": 11}), 400.0));
    assert_eq!(rules(&history, &db), ["read-range"]);

    let (mut history, db, _) = consistent();
    history.push(op(OpKind::Read, None, 500, json!({}), 400.0));
    let mut no_retry = op(OpKind::Read, None, 503, json!({}), 410.0);
    if let Record::Op(op) = &mut no_retry {
        op.retry_after = None;
    }
    history.push(no_retry);
    assert_eq!(rules(&history, &db), ["http-5xx", "http-5xx"]);

    let (mut history, db, _) = consistent();
    let mut slow = op(OpKind::Read, None, 200, json!({"tickets": 4}), 400.0);
    if let Record::Op(op) = &mut slow {
        op.end_ms = 400.0 + 30_000.0;
    }
    history.push(slow);
    history.push(op(OpKind::Read, None, 0, Value::Null, 500.0));
    assert_eq!(rules(&history, &db), ["hang", "hang"]);
}

#[test]
fn a_rate_limited_reserve_needs_retry_after_and_other_4xx_refusals_are_caught() {
    let (mut history, db, _) = consistent();
    history.push(op(OpKind::Reserve, None, 429, json!({}), 400.0));
    assert!(
        rules(&history, &db).is_empty(),
        "429 with Retry-After is a refusal"
    );

    let mut bare = op(OpKind::Reserve, None, 429, json!({}), 410.0);
    if let Record::Op(op) = &mut bare {
        op.retry_after = None;
    }
    history.push(bare);
    history.push(op(OpKind::Reserve, None, 422, json!({}), 420.0));
    assert_eq!(rules(&history, &db), ["http-5xx", "http-5xx"]);
}

#[test]
fn the_history_round_trips_through_a_file() {
    let (history, db, _) = consistent();
    let path = std::env::temp_dir().join(format!("chaos-history-{}.jsonl", Uuid::now_v7()));
    {
        let Record::Meta(meta) = history[0].clone() else {
            unreachable!()
        };
        let writer = chaos::history::HistoryWriter::create(&path, meta).unwrap();
        for record in &history[1..] {
            writer.write(record);
        }
        writer.flush();
    }
    let read = chaos::history::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(read.len(), history.len());
    assert!(rules(&read, &db).is_empty());
}

#[test]
fn a_ticket_type_quota_or_user_over_its_count_and_a_half_made_offer_are_caught() {
    use testkit::invariants::rules::{QuotaCount, TypeCount};
    let (history, mut db, [a, b, ..]) = consistent();
    // a (2 confirmed) is of type 1, in quota 9; b (3 confirmed) is user 5's.
    if let Some(row) = db.rows.get_mut(&a) {
        row.ticket_type_id = Some(1);
    }
    if let Some(row) = db.rows.get_mut(&b) {
        row.user_id = Some(5);
    }
    if let Some(event) = db.events.get_mut(&EVENT) {
        event.ticket_types = vec![TypeCount {
            id: 1,
            quota: Some(9),
            capacity: 5,
            available: 3,
        }];
        event.quotas = vec![QuotaCount {
            id: 9,
            capacity: 4,
            available: 2,
        }];
        event.max_per_user = Some(3);
    }
    assert!(
        rules(&history, &db).is_empty(),
        "{:?}",
        rules(&history, &db)
    );

    let mut over = db.clone();
    if let Some(event) = over.events.get_mut(&EVENT) {
        event.ticket_types[0].available = 4;
        event.quotas[0].available = -1;
        event.max_per_user = Some(2);
    }
    assert_eq!(
        rules(&history, &over),
        [
            "inv2-conservation",
            "inv1-range",
            "inv2-conservation",
            "inv-per-user"
        ]
    );

    let offered = |offered| WaitingRow {
        event_id: EVENT,
        offered,
    };
    let mut half = db.clone();
    half.waiting.insert(Uuid::now_v7(), offered(true));
    half.waiting.insert(a, offered(false));
    half.waiting.insert(b, offered(true));
    assert_eq!(
        rules(&history, &half),
        ["inv-waiting-offer", "inv-waiting-offer"]
    );
}
