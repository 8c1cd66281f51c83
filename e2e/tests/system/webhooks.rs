//! Webhooks (issue #13): every change of a client's reservations reaches
//! its endpoints signed, exactly as the database holds it, through a
//! receiver that fails and a worker SIGKILLed mid-delivery. The helpers
//! here serve `webhook_admin.rs` too.

use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant},
};

use sea_orm::EntityTrait;
use serde_json::{Value, json};
use shared::{
    domain::ReservationStatus,
    entities::{
        reservation,
        webhook_delivery::{self, DeliveryStatus},
        webhook_message,
    },
    webhook::{self, Payload},
};
use testkit::{
    app::{Options, TestApp, env},
    receiver::{Behaviour, Receiver},
};
use uuid::Uuid;

use super::{
    clients::create_client,
    metrics::{sample, scrape},
};

/// Short retries and polls, so that a test waits for conditions, not for
/// the production schedule.
pub(crate) fn fast_webhooks(extra: &[(&'static str, &str)]) -> Options {
    let mut options = Options::default();
    for (name, value) in [
        ("WEBHOOK_RETRY_BASE_MS", "100"),
        ("WEBHOOK_RETRY_MAX_MS", "400"),
        ("WEBHOOK_POLL_MS", "100"),
    ]
    .iter()
    .chain(extra)
    {
        options.env.insert(name, (*value).to_owned());
    }
    options
}

/// `method path` as `key` with an optional JSON body; status and body.
pub(crate) async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.http.request(method, app.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    send(app, method, path, Some(&env("ADMIN_TOKEN")), body).await
}

/// A client with an endpoint at `receiver`: (client id, key, endpoint id,
/// secret).
pub(crate) async fn client_with_endpoint(
    app: &TestApp,
    receiver: &Receiver,
) -> (i64, String, i64, String) {
    let (client, key) = create_client(app, "storefront").await;
    let (status, endpoint) = app
        .admin_post(
            &format!("/admin/clients/{client}/webhooks"),
            json!({"url": receiver.url, "description": "tests"}),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let secret = endpoint["secret"].as_str().expect("secret").to_owned();
    (
        client,
        key,
        endpoint["id"].as_i64().expect("endpoint id"),
        secret,
    )
}

pub(crate) async fn reserve(
    app: &TestApp,
    key: Option<&str>,
    event: i64,
    body: Value,
) -> (u16, Value) {
    send(
        app,
        reqwest::Method::POST,
        &format!("/events/{event}/reserve"),
        key,
        Some(body),
    )
    .await
}

/// Polls the reservation as its client until `done` says so.
async fn wait_status(app: &TestApp, key: &str, id: Uuid, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let path = format!("/reservations/{id}");
        let (status, body) = send(app, reqwest::Method::GET, &path, Some(key), None).await;
        if status == 200 && body["status"].as_str().is_some_and(&done) {
            return;
        }
        assert!(Instant::now() < deadline, "{id}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn id_of(body: &Value) -> Uuid {
    body["reservation_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("reservation_id in {body}"))
}

/// Waits until the outbox has no delivery left `pending`, and returns the
/// deliveries.
pub(crate) async fn settled(app: &TestApp, within: Duration) -> Vec<webhook_delivery::Model> {
    let deadline = Instant::now() + within;
    loop {
        let deliveries = webhook_delivery::Entity::find()
            .all(&app.db)
            .await
            .expect("deliveries");
        if deliveries
            .iter()
            .all(|d| d.status != DeliveryStatus::Pending)
        {
            return deliveries;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries still pending after {within:?}: {deliveries:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where a state comes in a reservation's life: no two states of one
/// life share a place.
fn life_order(status: ReservationStatus) -> u8 {
    use ReservationStatus::*;
    match status {
        Pending => 0,
        Held => 1,
        Confirmed | Rejected | Released | Expired => 2,
        Cancelled => 3,
    }
}

/// Checks what `receiver` accepted against the database: one message per
/// change of each of `client`'s reservations (a path of steps from
/// `pending` to the row's state), each delivered, signed with `secret`,
/// with the stored body, which tells the row as it is. Returns, for each
/// reservation reported, its states in the order of its life.
pub(crate) async fn check_against_database(
    app: &TestApp,
    receiver: &Receiver,
    client: i64,
    secret: &str,
) -> HashMap<Uuid, Vec<ReservationStatus>> {
    let messages = webhook_message::Entity::find()
        .all(&app.db)
        .await
        .expect("messages");
    let rows: HashMap<Uuid, reservation::Model> = reservation::Entity::find()
        .all(&app.db)
        .await
        .expect("reservations")
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let accepted = receiver.accepted();
    assert_eq!(
        accepted.keys().cloned().collect::<BTreeSet<_>>(),
        messages
            .iter()
            .map(|m| webhook::header_id(m.id))
            .collect::<BTreeSet<_>>(),
        "the receiver accepted exactly the outbox's messages"
    );
    for received in receiver.received() {
        let expected =
            webhook::sign(secret, &received.id, received.timestamp, &received.body).expect("sign");
        assert_eq!(received.signature, expected, "signature of {}", received.id);
    }
    let mut reported: HashMap<Uuid, Vec<ReservationStatus>> = HashMap::new();
    for message in &messages {
        assert_eq!(message.client_id, client);
        let got = &accepted[&webhook::header_id(message.id)];
        assert_eq!(
            got.body.as_ref(),
            message.payload.as_bytes(),
            "body as stored"
        );
        let payload: Payload = serde_json::from_str(&message.payload).expect("payload");
        let row = &rows[&message.reservation_id];
        assert_eq!(message.id, webhook::message_id(row.id, payload.data.status));
        assert_eq!(
            Some(payload.event_type.as_str()),
            webhook::event_type(payload.data.status)
        );
        assert_eq!(
            (
                payload.data.event_id,
                payload.data.quantity,
                payload.data.user_id,
                payload.data.ticket_type_id
            ),
            (row.event_id, row.quantity, row.user_id, row.ticket_type_id),
        );
        assert_eq!(payload.data.expires_at, row.expires_at);
        reported
            .entry(row.id)
            .or_default()
            .push(payload.data.status);
    }
    let mut paths = HashMap::new();
    for row in rows.values() {
        let states = reported.remove(&row.id).unwrap_or_default();
        if row.client_id != client {
            assert!(
                states.is_empty(),
                "messages for another client's {}",
                row.id
            );
            continue;
        }
        // The states reported, in the order a reservation lives them, are
        // steps from `pending` ending in the row's state.
        let mut path = states.clone();
        path.sort_by_key(|s| life_order(*s));
        let mut at = ReservationStatus::Pending;
        for step in &path {
            assert!(at.can_become(*step), "{}: {path:?}", row.id);
            at = *step;
        }
        assert_eq!(at, row.status, "{}: reported {path:?}", row.id);
        if !path.is_empty() {
            paths.insert(row.id, path);
        }
    }
    paths
}

#[tokio::test]
async fn every_change_of_a_clients_reservations_is_delivered_signed_as_the_database_has_it() {
    let app = TestApp::spawn_with(fast_webhooks(&[])).await;
    let receiver = Receiver::start(Behaviour::default()).await;
    let (client, key_text, _, secret) = client_with_endpoint(&app, &receiver).await;
    let key = Some(key_text.as_str());
    let event = app.create_event(4).await;

    let (_, confirmed) = reserve(&app, key, event, json!({"quantity": 1})).await;
    let (_, held) = reserve(&app, key, event, json!({"quantity": 1, "hold": true})).await;
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        &format!("/reservations/{}/confirm", id_of(&held)),
        key,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, released) = reserve(&app, key, event, json!({"quantity": 1, "hold": true})).await;
    let (status, _) = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/reservations/{}", id_of(&released)),
        key,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/reservations/{}", id_of(&confirmed)),
        key,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, rejected) = reserve(&app, key, event, json!({"quantity": 9})).await;
    assert_eq!(status, 409, "{rejected}");
    let (_, expired) = reserve(
        &app,
        key,
        event,
        json!({"quantity": 1, "hold": true, "hold_seconds": 1}),
    )
    .await;
    // Anonymous reservations have no endpoint to be told at.
    let (status, anonymous) = app.reserve(event, None).await;
    assert_eq!(status, 200, "{anonymous}");
    wait_status(&app, &key_text, id_of(&expired), |s| s == "expired").await;

    let deliveries = settled(&app, Duration::from_secs(30)).await;
    assert!(
        deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Delivered),
        "{deliveries:?}"
    );
    let reported = check_against_database(&app, &receiver, client, &secret).await;
    use ReservationStatus::{Cancelled, Confirmed, Expired, Held, Rejected, Released};
    assert_eq!(reported[&id_of(&confirmed)], [Confirmed, Cancelled]);
    assert_eq!(reported[&id_of(&held)], [Held, Confirmed]);
    assert_eq!(reported[&id_of(&released)], [Held, Released]);
    assert_eq!(reported[&id_of(&rejected)], [Rejected]);
    assert_eq!(reported[&id_of(&expired)], [Held, Expired]);
    assert!(!reported.contains_key(&id_of(&anonymous)));
    assert_eq!(deliveries.len(), 9);
}

#[tokio::test]
async fn a_receiver_that_fails_its_first_attempts_gets_every_message_once_it_answers() {
    let app = TestApp::spawn_with(fast_webhooks(&[])).await;
    let receiver = Receiver::start(Behaviour {
        fail_first: 2,
        ..Behaviour::default()
    })
    .await;
    let (client, key, _, secret) = client_with_endpoint(&app, &receiver).await;
    let event = app.create_event(10).await;
    for _ in 0..5 {
        let (status, body) = reserve(&app, Some(&key), event, json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    let deliveries = settled(&app, Duration::from_secs(30)).await;
    assert_eq!(deliveries.len(), 5);
    for delivery in &deliveries {
        assert_eq!(delivery.status, DeliveryStatus::Delivered);
        assert_eq!(delivery.attempts, 3, "{delivery:?}");
        assert_eq!(delivery.last_status, Some(204));
    }
    let received = receiver.received();
    assert_eq!(received.iter().filter(|r| r.answered == 500).count(), 10);
    // The workers' counters say the same.
    let mut attempts = [0.0; 3];
    for worker in &app.worker_ports {
        let text = scrape(&app, worker).await;
        for (count, result) in attempts.iter_mut().zip(["delivered", "retrying", "failed"]) {
            *count += sample(
                &text,
                "tickets_webhook_attempts_total",
                &[("result", result)],
            );
        }
    }
    assert_eq!(attempts, [5.0, 10.0, 0.0]);
    check_against_database(&app, &receiver, client, &secret).await;
}

#[tokio::test]
async fn deliveries_survive_a_worker_killed_while_sending_them() {
    // One worker, whose claims last 1 s + the margin: the replacement
    // sends what the killed one had claimed once those claims run out.
    let mut app = TestApp::spawn_with(Options {
        workers: 1,
        ..fast_webhooks(&[("WEBHOOK_TIMEOUT_MS", "1000")])
    })
    .await;
    let receiver = Receiver::start(Behaviour {
        first_delay: Duration::from_secs(30),
        ..Behaviour::default()
    })
    .await;
    let (client, key, _, secret) = client_with_endpoint(&app, &receiver).await;
    let event = app.create_event(20).await;
    for _ in 0..3 {
        let (status, body) = reserve(&app, Some(&key), event, json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    // The worker is sending (its requests hang at the receiver) when it is
    // killed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.attempted() < 3 {
        assert!(
            Instant::now() < deadline,
            "the deliveries were never attempted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.workers[0].kill().expect("SIGKILL the worker");
    app.workers[0].wait().expect("reap the worker");
    receiver.set(Behaviour::default());
    // Reserved while no worker runs: decided (and their messages written)
    // by the replacement.
    let mut later = Vec::new();
    for _ in 0..3 {
        let path = format!("/events/{event}/reserve?wait=false");
        let (status, body) = send(&app, reqwest::Method::POST, &path, Some(&key), None).await;
        assert!(status == 200 || status == 202, "{status} {body}");
        later.push(id_of(&body));
    }
    app.add_worker();
    for id in &later {
        wait_status(&app, &key, *id, |s| s != "pending").await;
    }
    let deliveries = settled(&app, Duration::from_secs(60)).await;
    assert_eq!(deliveries.len(), 6);
    assert!(
        deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Delivered),
        "{deliveries:?}"
    );
    check_against_database(&app, &receiver, client, &secret).await;
}
