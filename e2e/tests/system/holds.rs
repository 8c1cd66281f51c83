//! Holds (issue #12): reserve with `"hold": true`, then confirm, release
//! (DELETE) or let it expire; every transition and the races between the
//! client and the clock, against the real servers.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::messages::ReservationStatus;
use testkit::{app::TestApp, invariants};
use uuid::Uuid;

/// POST or DELETE on a reservation path; status and JSON body.
async fn call(app: &TestApp, method: reqwest::Method, path: &str) -> (u16, Value) {
    let response = app
        .http
        .request(method, app.url(path))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn confirm(app: &TestApp, id: &str) -> (u16, Value) {
    call(
        app,
        reqwest::Method::POST,
        &format!("/reservations/{id}/confirm"),
    )
    .await
}

async fn release(app: &TestApp, id: &str) -> (u16, Value) {
    call(app, reqwest::Method::DELETE, &format!("/reservations/{id}")).await
}

async fn hold(app: &TestApp, event: i64, quantity: i64, seconds: Option<i64>) -> Value {
    let mut body = json!({"hold": true, "quantity": quantity});
    if let Some(seconds) = seconds {
        body["hold_seconds"] = json!(seconds);
    }
    let (status, body) = app.reserve(event, Some(body)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "held", "{body}");
    body
}

fn id_of(body: &Value) -> String {
    body["reservation_id"].as_str().expect("id").to_owned()
}

fn expires_at(body: &Value) -> DateTime<Utc> {
    body["expires_at"]
        .as_str()
        .and_then(|at| at.parse().ok())
        .unwrap_or_else(|| panic!("expires_at in {body}"))
}

/// Polls the reservation until its status is no longer `held`.
async fn wait_not_held(app: &TestApp, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = call(app, reqwest::Method::GET, &format!("/reservations/{id}")).await;
        assert_eq!(status, 200, "{body}");
        if body["status"] != "held" {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{id} still held after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls availability until it shows `expected`: a hold that expired has
/// no client waiting, so replicas learn its count from the announcement
/// that follows the commit.
async fn wait_tickets(app: &TestApp, event: i64, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let tickets = app.tickets(event).await;
        if tickets == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "tickets {tickets}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every reservation's row agrees with the answer its client got.
async fn assert_rows_match(app: &TestApp, event: i64, answers: &[(String, ReservationStatus)]) {
    let snapshot = invariants::check(&app.db, event).await;
    for (id, answered) in answers {
        let id: Uuid = id.parse().expect("uuid");
        assert_eq!(
            snapshot.reservations[&id].status, *answered,
            "the answer for {id} does not match its row"
        );
    }
}

#[tokio::test]
async fn a_hold_takes_tickets_until_confirmed_then_cancelled() {
    let app = TestApp::spawn().await;
    let event = app.create_event(10).await;
    let held = hold(&app, event, 2, None).await;
    assert_eq!(held["hold_seconds"], 600);
    assert_eq!(held["remaining_tickets"], 8);
    let left = (expires_at(&held) - Utc::now()).num_seconds();
    assert!((590..=600).contains(&left), "expires in {left} s");
    assert_eq!(app.tickets(event).await, 8);
    let id = id_of(&held);

    for _ in 0..2 {
        let (status, body) = confirm(&app, &id).await;
        assert_eq!(status, 200, "confirming twice is harmless: {body}");
        assert_eq!(body["status"], "confirmed");
        assert_eq!(body["remaining_tickets"], 8);
    }
    assert_eq!(app.tickets(event).await, 8);
    let (status, body) = release(&app, &id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(app.tickets(event).await, 10);
    assert_rows_match(&app, event, &[(id, ReservationStatus::Cancelled)]).await;
}

#[tokio::test]
async fn a_released_hold_gives_its_tickets_back_and_cannot_be_confirmed() {
    let app = TestApp::spawn().await;
    let event = app.create_event(5).await;
    let id = id_of(&hold(&app, event, 3, Some(300)).await);
    assert_eq!(app.tickets(event).await, 2);
    for _ in 0..2 {
        let (status, body) = release(&app, &id).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "released");
    }
    assert_eq!(app.tickets(event).await, 5);
    let (status, body) = confirm(&app, &id).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["status"], "released");
    assert_rows_match(&app, event, &[(id, ReservationStatus::Released)]).await;
}

#[tokio::test]
async fn a_hold_expires_by_itself_on_time() {
    let app = TestApp::spawn().await;
    let event = app.create_event(5).await;
    let held = hold(&app, event, 4, Some(1)).await;
    let id = id_of(&held);
    assert_eq!(app.tickets(event).await, 1);
    let expired = wait_not_held(&app, &id, Duration::from_secs(10)).await;
    let seen_late = Utc::now() - expires_at(&held);
    assert_eq!(expired["status"], "expired", "{expired}");
    assert!(
        seen_late < chrono::TimeDelta::seconds(2),
        "expired {seen_late} after its time"
    );
    wait_tickets(&app, event, 5).await;
    let (status, body) = confirm(&app, &id).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["status"], "expired");
    assert_rows_match(&app, event, &[(id, ReservationStatus::Expired)]).await;
}

/// Holds of one second, each confirmed (or released) at a different
/// instant around its expiry: every one gets exactly one outcome, the one
/// its client was told.
async fn race_the_clock(release_instead: bool) {
    let app = TestApp::spawn().await;
    let event = app.create_event(40).await;
    let holds = futures::future::join_all((0..40).map(|_| hold(&app, event, 1, Some(1)))).await;
    let answers = futures::future::join_all(holds.iter().enumerate().map(|(i, held)| {
        let app = &app;
        async move {
            // From 600 ms before to 300 ms after the hold's end.
            let at = expires_at(held) + chrono::TimeDelta::milliseconds(i as i64 * 25 - 600);
            let wait = (at - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            let id = id_of(held);
            let (status, body) = if release_instead {
                release(app, &id).await
            } else {
                confirm(app, &id).await
            };
            let answered: ReservationStatus = serde_json::from_value(body["status"].clone())
                .unwrap_or_else(|_| panic!("a status in {body}"));
            let expected = match answered {
                ReservationStatus::Expired if !release_instead => 409,
                _ => 200,
            };
            assert_eq!(status, expected, "{body}");
            (id, answered)
        }
    }))
    .await;
    let won = |status| answers.iter().filter(|(_, s)| *s == status).count();
    let (client, clock) = if release_instead {
        (
            won(ReservationStatus::Released),
            won(ReservationStatus::Expired),
        )
    } else {
        (
            won(ReservationStatus::Confirmed),
            won(ReservationStatus::Expired),
        )
    };
    assert_eq!(client + clock, 40, "{answers:?}");
    assert!(
        client > 0 && clock > 0,
        "both sides of the race won some: {answers:?}"
    );
    assert_rows_match(&app, event, &answers).await;
    let left = if release_instead {
        40
    } else {
        40 - client as i64
    };
    wait_tickets(&app, event, left).await;
}

#[tokio::test]
async fn confirm_racing_expiry_gets_one_outcome_and_its_answer() {
    race_the_clock(false).await;
}

#[tokio::test]
async fn release_racing_expiry_gets_one_outcome_and_its_answer() {
    race_the_clock(true).await;
}

#[tokio::test]
async fn a_keyed_hold_replays_and_a_different_request_is_refused() {
    let app = TestApp::spawn().await;
    let event = app.create_event(10).await;
    let send = |body: Value| {
        app.http
            .post(app.url(&format!("/events/{event}/reserve")))
            .header("idempotency-key", "cart-17")
            .json(&body)
            .send()
    };
    let first: Value = send(json!({"hold": true, "hold_seconds": 120}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let again: Value = send(json!({"hold": true, "hold_seconds": 120}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["status"], "held");
    assert_eq!(again["reservation_id"], first["reservation_id"]);
    assert_eq!(again["expires_at"], first["expires_at"]);
    for other in [json!({}), json!({"hold": true, "hold_seconds": 60})] {
        let response = send(other).await.unwrap();
        assert_eq!(response.status(), 422);
    }
    assert_eq!(app.tickets(event).await, 9);
}

#[tokio::test]
async fn invalid_holds_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let event = app.create_event(10).await;
    for body in [
        json!({"hold_seconds": 60}),
        json!({"hold": false, "hold_seconds": 60}),
        json!({"hold": true, "hold_seconds": 0}),
        json!({"hold": true, "hold_seconds": 901}),
        json!({"hold": "yes"}),
    ] {
        let (status, problem) = app.reserve(event, Some(body.clone())).await;
        assert!(
            status == 422 || status == 400,
            "{body} answered {status} {problem}"
        );
    }
    let snapshot = invariants::check(&app.db, event).await;
    assert!(snapshot.reservations.is_empty());
    assert_eq!(snapshot.available, 10);
}

#[tokio::test]
async fn holds_expire_after_their_worker_is_killed() {
    let mut app = TestApp::spawn_with(testkit::app::Options {
        workers: 1,
        ..Default::default()
    })
    .await;
    let event = app.create_event(6).await;
    let ids: Vec<String> = futures::future::join_all((0..3).map(|_| hold(&app, event, 2, Some(2))))
        .await
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(app.tickets(event).await, 0);
    app.workers[0].kill().expect("SIGKILL the worker");
    app.workers[0].wait().expect("reap the worker");
    app.add_worker();
    // The new worker rebuilds the schedule from MySQL once the old lease
    // is gone (LOCK_LEASE_TTL_SECS, 5 s).
    for id in &ids {
        let body = wait_not_held(&app, id, Duration::from_secs(30)).await;
        assert_eq!(body["status"], "expired", "{body}");
    }
    let answers: Vec<_> = ids
        .into_iter()
        .map(|id| (id, ReservationStatus::Expired))
        .collect();
    assert_rows_match(&app, event, &answers).await;
    wait_tickets(&app, event, 6).await;
}
