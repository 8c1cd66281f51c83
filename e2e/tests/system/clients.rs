//! Clients and their API keys: a reservation is its client's alone, an
//! idempotency key is scoped to its client, and a revoked key is refused.

use serde_json::{Value, json};

use testkit::app::{Options, TestApp, env};

pub(crate) async fn create_client(app: &TestApp, name: &str) -> (i64, String) {
    let response = app
        .http
        .post(app.url("/admin/clients"))
        .bearer_auth(env("ADMIN_TOKEN"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let key = body["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("tk_") && key.len() > 40, "{key}");
    (body["id"].as_i64().unwrap(), key)
}

/// `method path` as `key` (anonymous when `None`); status and body.
pub(crate) async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
) -> (u16, Value) {
    let mut request = app.http.request(method, app.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_reservation_is_visible_and_cancellable_by_its_client_only() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let event = app.create_event(10).await;
    let (_, alice) = create_client(&app, "Alice's shop").await;
    let (_, bob) = create_client(&app, "Bob's box office").await;

    let (status, listed) = call(
        &app,
        Method::GET,
        "/admin/clients",
        Some(&env("ADMIN_TOKEN")),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(
        !listed.to_string().contains("tk_"),
        "keys are never listed: {listed}"
    );

    let (status, reserved) = call(
        &app,
        Method::POST,
        &format!("/events/{event}/reserve"),
        Some(&alice),
    )
    .await;
    assert_eq!(status, 200, "{reserved}");
    let path = format!(
        "/reservations/{}",
        reserved["reservation_id"].as_str().unwrap()
    );

    assert_eq!(call(&app, Method::GET, &path, Some(&alice)).await.0, 200);
    assert_eq!(
        call(&app, Method::GET, &path, Some(&env("ADMIN_TOKEN")))
            .await
            .0,
        200
    );
    for other in [Some(bob.as_str()), None] {
        let (status, problem) = call(&app, Method::GET, &path, other).await;
        assert_eq!(status, 404, "another client sees nothing: {problem}");
        assert!(problem["type"].as_str().unwrap().ends_with("/not-found"));
        assert_eq!(call(&app, Method::DELETE, &path, other).await.0, 404);
    }
    assert_eq!(app.tickets(event).await, 9, "nobody else cancelled it");
    let (status, cancelled) = call(&app, Method::DELETE, &path, Some(&alice)).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(app.tickets(event).await, 10);

    // An unknown key is refused, not taken for anonymous.
    let (status, problem) = call(&app, Method::GET, &path, Some("tk_unknown")).await;
    assert_eq!(status, 401);
    assert!(problem["type"].as_str().unwrap().ends_with("/unauthorized"));
}

#[tokio::test]
async fn idempotency_keys_are_scoped_to_their_client() {
    let app = TestApp::spawn().await;
    let event = app.create_event(10).await;
    let (_, alice) = create_client(&app, "Alice").await;
    let (_, bob) = create_client(&app, "Bob").await;
    let reserve = |key: Option<String>| {
        let mut request = app
            .http
            .post(app.url(&format!("/events/{event}/reserve")))
            .header("idempotency-key", "order-1");
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()["reservation_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let ids = [
        reserve(Some(alice.clone())).await,
        reserve(Some(bob)).await,
        reserve(None).await,
    ];
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[0], ids[2]);
    assert_ne!(ids[1], ids[2]);
    assert_eq!(
        reserve(Some(alice)).await,
        ids[0],
        "a replay is the same reservation"
    );
    assert_eq!(app.tickets(event).await, 7);
}

#[tokio::test]
async fn a_revoked_key_is_refused_and_keys_can_be_required() {
    use reqwest::Method;
    let app = TestApp::spawn_with(Options {
        env: [("REQUIRE_API_KEY", "true".to_owned())].into(),
        ..Options::default()
    })
    .await;
    let event = app.create_event(10).await;
    let (id, key) = create_client(&app, "Shop").await;
    let reserve = format!("/events/{event}/reserve");

    let (status, problem) = call(&app, Method::POST, &reserve, None).await;
    assert_eq!(status, 401, "{problem}");
    assert!(problem["type"].as_str().unwrap().ends_with("/unauthorized"));
    assert_eq!(call(&app, Method::POST, &reserve, Some(&key)).await.0, 200);
    // Availability stays public.
    assert_eq!(app.tickets(event).await, 9);

    let (status, revoked) = call(
        &app,
        Method::DELETE,
        &format!("/admin/clients/{id}"),
        Some(&env("ADMIN_TOKEN")),
    )
    .await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    assert_eq!(call(&app, Method::POST, &reserve, Some(&key)).await.0, 401);
    assert_eq!(app.tickets(event).await, 9);
}
