//! The seed document's test scenario, step by step, with its exact JSON.

use serde_json::{Value, json};

use testkit::{app::TestApp, invariants};

#[tokio::test]
async fn seed_scenario() {
    let app = TestApp::spawn().await;

    // §2: tickets available for event 1.
    let response = app
        .http
        .get(app.url("/events/1/tickets"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"tickets": 100})
    );

    // §3: `curl -X POST .../events/1/reserve` (no body, no content type).
    let response = app
        .http
        .post(app.url("/events/1/reserve"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Ticket reserved");
    assert_eq!(body["remaining_tickets"], 99);
    assert_eq!(body["status"], "confirmed");
    assert_eq!(body["quantity"], 1);
    assert!(body["reservation_id"].is_string());

    // §4: the count went down.
    let response = app
        .http
        .get(app.url("/events/1/tickets"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"tickets": 99})
    );

    // §7: `ab -n 10 -c 5 -p reservation_payload.json -T application/json`
    // with `{}` as the payload: 10 requests, 5 at a time.
    let mut answers = Vec::new();
    for _ in 0..2 {
        let round = futures::future::join_all((0..5).map(|_| {
            app.http
                .post(app.url("/events/1/reserve"))
                .header("content-type", "application/json")
                .body("{}")
                .send()
        }))
        .await;
        for response in round {
            let response = response.unwrap();
            answers.push((
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            ));
        }
    }
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert_eq!(app.tickets(1).await, 89);

    let snapshot = invariants::check(&app.db, 1).await;
    assert_eq!(snapshot.taken_quantity(), 11);
    invariants::check_responses(&snapshot, &answers);
}
