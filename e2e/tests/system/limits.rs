//! Per-user limits (issue #12, item 3): an event caps the tickets one user
//! holds and has confirmed, enforced in the worker's decision, so one user
//! in two tabs at once cannot pass it.

use serde_json::json;
use shared::messages::ReservationStatus;
use testkit::{app::TestApp, invariants};
use uuid::Uuid;

async fn limited_event(app: &TestApp, capacity: i64, max_per_user: i64) -> i64 {
    let (status, event) = app
        .create_event_with(json!({
            "name": "Limited", "capacity": capacity, "max_per_user": max_per_user
        }))
        .await;
    assert_eq!(status, 201, "{event}");
    assert_eq!(event["max_per_user"], max_per_user);
    event["id"].as_i64().expect("event id")
}

/// Σ quantity of `user`'s held and confirmed reservations of the event.
fn taken_by(snapshot: &invariants::Snapshot, user: i64) -> i32 {
    snapshot
        .reservations
        .values()
        .filter(|r| r.user_id == Some(user) && r.status.takes_tickets())
        .map(|r| r.quantity)
        .sum()
}

#[tokio::test]
async fn two_tabs_of_one_user_never_exceed_the_limit() {
    let app = TestApp::spawn().await;
    let event = limited_event(&app, 100, 4).await;
    let (ada, bob) = (app.create_user("ada").await, app.create_user("bob").await);
    // Ada asks for one ticket twenty times at once, half of them holds;
    // Bob three times for two.
    let asks = (0..20)
        .map(|i| json!({"quantity": 1, "user_id": ada, "hold": i % 2 == 0}))
        .chain((0..3).map(|_| json!({"quantity": 2, "user_id": bob})));
    let answers = futures::future::join_all(asks.map(|body| app.reserve(event, Some(body)))).await;
    let mut told = Vec::new();
    for (status, body) in &answers {
        let answered: ReservationStatus =
            serde_json::from_value(body["status"].clone()).expect("a status");
        match answered {
            ReservationStatus::Confirmed | ReservationStatus::Held => assert_eq!(*status, 200),
            ReservationStatus::Rejected => {
                assert_eq!(*status, 409);
                assert_eq!(body["message"], "Limit of 4 tickets per user reached");
            }
            other => panic!("unexpected {other:?}: {body}"),
        }
        let id: Uuid = body["reservation_id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("uuid");
        told.push((id, answered));
    }
    let snapshot = invariants::check(&app.db, event).await;
    assert_eq!(taken_by(&snapshot, ada), 4);
    assert_eq!(taken_by(&snapshot, bob), 4);
    for (id, answered) in &told {
        assert_eq!(snapshot.reservations[id].status, *answered, "{id}");
    }
    assert_eq!(snapshot.available, 92);

    // A released hold gives Ada room for one more.
    let held = told
        .iter()
        .find(|(_, status)| *status == ReservationStatus::Held)
        .map(|(id, _)| *id);
    if let Some(held) = held {
        let response = app
            .http
            .delete(app.url(&format!("/reservations/{held}")))
            .send()
            .await
            .expect("DELETE");
        assert_eq!(response.status(), 200);
        let (status, body) = app
            .reserve(event, Some(json!({"quantity": 1, "user_id": ada})))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = app
        .reserve(event, Some(json!({"quantity": 1, "user_id": ada})))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(taken_by(&invariants::check(&app.db, event).await, ada), 4);
}

#[tokio::test]
async fn a_limited_event_needs_a_user_and_a_valid_limit() {
    let app = TestApp::spawn().await;
    let event = limited_event(&app, 10, 2).await;
    for body in [None, Some(json!({})), Some(json!({"quantity": 1}))] {
        let (status, problem) = app.reserve(event, body).await;
        assert_eq!(status, 422, "{problem}");
    }
    for bad in [0, -1, 10_000_001] {
        let (status, problem) = app
            .create_event_with(json!({"name": "Bad", "capacity": 10, "max_per_user": bad}))
            .await;
        assert_eq!(status, 422, "{bad}: {problem}");
    }
    let snapshot = invariants::check(&app.db, event).await;
    assert!(snapshot.reservations.is_empty());
    // The seed's event has no limit: anonymous reservations work as before.
    let (status, body) = app.reserve(1, None).await;
    assert_eq!(status, 200, "{body}");
}
