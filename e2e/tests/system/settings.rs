//! Live settings from etcd take effect without a restart.

use std::time::{Duration, Instant};

use serde_json::json;

use testkit::{app::TestApp, invariants};

/// Retries a reserve of `quantity` until it returns the wanted status (settings propagate
/// through an etcd watch, asynchronously).
async fn eventually_status(
    app: &TestApp,
    event: i64,
    quantity: i64,
    want: u16,
) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = app
            .http
            .post(app.url(&format!("/events/{event}/reserve")))
            .json(&json!({"quantity": quantity}))
            .send()
            .await
            .unwrap();
        if response.status().as_u16() == want {
            return response;
        }
        assert!(Instant::now() < deadline, "setting not applied within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn etcd_settings_apply_without_restart() {
    let app = TestApp::spawn().await;
    let event = app.create_event(100).await;
    let mut etcd = app.etcd().await;

    assert_eq!(
        app.reserve(event, Some(json!({"quantity": 3}))).await.0,
        200
    );
    etcd.put(app.etcd_key("max_quantity"), "2", None)
        .await
        .unwrap();
    eventually_status(&app, event, 3, 422).await;
    assert_eq!(
        app.reserve(event, Some(json!({"quantity": 2}))).await.0,
        200
    );

    let paused = app.etcd_key(&format!("events/{event}/sales_paused"));
    etcd.put(paused.clone(), "true", None).await.unwrap();
    let response = eventually_status(&app, event, 1, 503).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    // Other events keep selling.
    assert_eq!(app.reserve(1, None).await.0, 200);

    etcd.delete(paused, None).await.unwrap();
    etcd.delete(app.etcd_key("max_quantity"), None)
        .await
        .unwrap();
    eventually_status(&app, event, 3, 200).await;
    // Probes answered before a change applied did reserve; the books must
    // still balance.
    let snapshot = invariants::check(&app.db, event).await;
    assert_eq!(app.tickets(event).await, snapshot.available);
}
