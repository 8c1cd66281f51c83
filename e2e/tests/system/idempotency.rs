//! Idempotency keys under races: one key is one request, whatever arrives
//! at the same instant.

use serde_json::{Value, json};
use shared::messages::ReservationStatus;

use testkit::{app::TestApp, invariants};

/// The same key sent to two events at once (two tabs, a retry that changed
/// its target): one of the two is decided, the other is refused with 422
/// and takes nothing, and every answer matches the database.
#[tokio::test]
async fn same_key_to_two_events_at_once_is_one_decision_and_one_422() {
    let app = TestApp::spawn().await;
    let (first, second) = (app.create_event(1000).await, app.create_event(1000).await);
    let pairs = 300;
    let send = |event: i64, quantity: i64, key: String| {
        let request = app
            .http
            .post(app.url(&format!("/events/{event}/reserve")))
            .header("idempotency-key", key)
            .json(&json!({ "quantity": quantity }));
        async move {
            let response = request.send().await.expect("POST reserve");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let answers = futures::future::join_all((0..pairs).map(|i| {
        let key = format!("two-tabs-{i}");
        futures::future::join(send(first, 1, key.clone()), send(second, 2, key))
    }))
    .await;

    let mut decided: Vec<(u16, Value)> = Vec::new();
    for (i, (a, b)) in answers.into_iter().enumerate() {
        let (refused, kept) = match (a.0, b.0) {
            (422, _) => (a, b),
            (_, 422) => (b, a),
            _ => panic!(
                "pair {i}: want one 422, got {} {} and {} {}",
                a.0, a.1, b.0, b.1
            ),
        };
        assert!(
            refused.1["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("/idempotency-key-reused")),
            "pair {i}: {}",
            refused.1
        );
        assert!(
            matches!(kept.0, 200 | 409),
            "pair {i}: {} {}",
            kept.0,
            kept.1
        );
        decided.push(kept);
    }

    let snapshots = [
        invariants::check(&app.db, first).await,
        invariants::check(&app.db, second).await,
    ];
    let rows = snapshots
        .iter()
        .map(|s| s.reservations.len())
        .sum::<usize>();
    assert_eq!(rows, pairs, "one reservation per key, none for the 422s");
    for (status, body) in &decided {
        let event = body["event_id"].as_i64().expect("event_id");
        let snapshot = &snapshots[usize::from(event == second)];
        invariants::check_responses(snapshot, &[(*status, body.clone())]);
        let id = body["reservation_id"].as_str().unwrap().parse().unwrap();
        let row = &snapshot.reservations[&id];
        assert_eq!(row.event_id, event, "the answer names the stored event");
        assert_eq!(row.status, ReservationStatus::Confirmed);
    }
}

/// Before anything is decided (no worker yet), a key already taken by a
/// waiting or queued request refuses a different request on every path.
#[tokio::test]
async fn a_reused_key_is_refused_before_any_decision_on_every_path() {
    let mut app = testkit::app::TestApp::spawn_with(testkit::app::Options {
        workers: 0,
        env: [("RESERVE_WAIT_TIMEOUT_MS", "500".to_owned())].into(),
    })
    .await;
    let event = app.create_event(10).await;
    let send = |quantity: i64, query: &'static str| {
        app.http
            .post(app.url(&format!("/events/{event}/reserve{query}")))
            .header("idempotency-key", "queued-key")
            .json(&json!({ "quantity": quantity }))
            .send()
    };
    let (waiting, queued) = futures::future::join(send(1, ""), send(2, "?wait=false")).await;
    let mut statuses = [
        waiting.unwrap().status().as_u16(),
        queued.unwrap().status().as_u16(),
    ];
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 422], "one accepted, one refused");

    // The same request again is the same reservation, not a new one.
    let again = send(1, "?wait=false").await.unwrap();
    let again_status = again.status().as_u16();
    let again_body: Value = again.json().await.unwrap();
    let replayed = send(2, "?wait=false").await.unwrap().status().as_u16();
    assert!(
        (again_status, replayed) == (202, 422) || (again_status, replayed) == (422, 202),
        "{again_status} {again_body} / {replayed}"
    );

    app.add_worker();
    let snapshot = loop {
        let snapshot = invariants::snapshot(&app.db, event).await;
        if snapshot.reservations.len() == 1 {
            break snapshot;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(snapshot.violations().is_empty());
    assert_eq!(
        snapshot.available,
        10 - i64::from(snapshot.reservations.values().next().unwrap().quantity)
    );
}

/// Replaying the key of a reservation that was cancelled since answers with
/// what is stored now (cancelled, 409), not a fresh "Ticket reserved".
#[tokio::test]
async fn replaying_the_key_of_a_cancelled_reservation_returns_its_state() {
    let app = TestApp::spawn().await;
    let event = app.create_event(10).await;
    let send = || {
        app.http
            .post(app.url(&format!("/events/{event}/reserve")))
            .header("idempotency-key", "cancel-me")
            .json(&json!({"quantity": 2}))
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(first["status"], "confirmed");
    let id = first["reservation_id"].as_str().unwrap();
    let cancelled = app
        .http
        .delete(app.url(&format!("/reservations/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);

    let replay = send().await.unwrap();
    assert_eq!(replay.status(), 409);
    let body: Value = replay.json().await.unwrap();
    assert_eq!(body["status"], "cancelled", "{body}");
    assert_eq!(body["reservation_id"], id);
    assert_eq!(app.tickets(event).await, 10, "the replay took nothing");
}
