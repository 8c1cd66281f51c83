//! Idempotency keys, asynchronous mode with polling, and cancellation.

use serde_json::{Value, json};

use testkit::{app::TestApp, invariants};

#[tokio::test]
async fn same_idempotency_key_twenty_times_reserves_once() {
    let app = TestApp::spawn().await;
    let event = app.create_event(50).await;
    let send = || {
        app.http
            .post(app.url(&format!("/events/{event}/reserve")))
            .header("idempotency-key", "order-4711")
            .json(&json!({"quantity": 3}))
            .send()
    };
    let answers = futures::future::join_all((0..20).map(|_| send())).await;
    let mut ids = Vec::new();
    for response in answers {
        let response = response.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "confirmed");
        ids.push(body["reservation_id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one reservation id for one key");
    let snapshot = invariants::check(&app.db, event).await;
    assert_eq!(snapshot.reservations.len(), 1);
    assert_eq!(snapshot.available, 47);

    // A later replay returns the stored decision without taking more.
    let body: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(body["reservation_id"], ids[0].as_str());
    assert_eq!(app.tickets(event).await, 47);

    // Same key, different body.
    let response = app
        .http
        .post(app.url(&format!("/events/{event}/reserve")))
        .header("idempotency-key", "order-4711")
        .json(&json!({"quantity": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert_eq!(app.tickets(event).await, 47);
}

#[tokio::test]
async fn async_mode_returns_a_pollable_id() {
    let app = TestApp::spawn().await;
    let event = app.create_event(10).await;
    for (query, prefer) in [("?wait=false", None), ("", Some("respond-async"))] {
        let mut request = app
            .http
            .post(app.url(&format!("/events/{event}/reserve{query}")))
            .json(&json!({"quantity": 2}));
        if let Some(prefer) = prefer {
            request = request.header("prefer", prefer);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 202);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let body: Value = response.json().await.unwrap();
        let id = body["reservation_id"].as_str().unwrap().to_owned();
        assert_eq!(body["status"], "pending");
        assert_eq!(location, format!("/reservations/{id}"));

        // Pollable at once, whether or not it is decided yet.
        let response = app.http.get(app.url(&location)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let polled: Value = response.json().await.unwrap();
        assert!(["pending", "confirmed"].contains(&polled["status"].as_str().unwrap()));
        assert_eq!(polled["event_id"], event);
        assert_eq!(polled["quantity"], 2);

        let decided = app.wait_decided(&id).await;
        assert_eq!(decided["status"], "confirmed");
        assert!(decided["decided_at"].is_string());
    }
    assert_eq!(app.tickets(event).await, 6);
    invariants::check(&app.db, event).await;

    let unknown = app
        .http
        .get(app.url("/reservations/0190a5c4-0000-7000-8000-000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn cancellation_returns_the_tickets_once() {
    let app = TestApp::spawn().await;
    let event = app.create_event(5).await;
    let (status, body) = app.reserve(event, Some(json!({"quantity": 3}))).await;
    assert_eq!(status, 200);
    let id = body["reservation_id"].as_str().unwrap().to_owned();
    assert_eq!(app.tickets(event).await, 2);

    // Sold out for a quantity of 3: a 409 whose body is the reservation.
    let (status, rejected) = app.reserve(event, Some(json!({"quantity": 3}))).await;
    assert_eq!(status, 409);
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["message"], "Not enough tickets");
    assert_eq!(rejected["remaining_tickets"], 2);

    for _ in 0..3 {
        let response = app
            .http
            .delete(app.url(&format!("/reservations/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "cancelled");
        assert_eq!(app.tickets(event).await, 5, "tickets returned exactly once");
    }

    // A rejected reservation has nothing to cancel.
    let rejected_id = rejected["reservation_id"].as_str().unwrap();
    let response = app
        .http
        .delete(app.url(&format!("/reservations/{rejected_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );

    let snapshot = invariants::check(&app.db, event).await;
    assert_eq!(snapshot.available, 5);
}
