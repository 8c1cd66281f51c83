//! Refusals a client can tell apart: one problem `type` per kind, each a
//! page the api serves.

use axum::{body::Body, http::Request};
use testkit::app::env;

use crate::harness::Api;

async fn reserve(api: &Api, body: &'static str) -> (u16, String) {
    let request = Request::post("/events/1/reserve")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let answer = api.call(request).await;
    (
        answer.status,
        answer.body["type"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn refusals_have_distinct_documented_problem_types() {
    let api = Api::spawn_with(&["--sales-paused"]).await;
    let paused = reserve(&api, "{}").await;
    let invalid = reserve(&api, r#"{"quantity": 0}"#).await;
    let malformed = reserve(&api, r#"{"quantity":"#).await;
    let missing = api.get("/events/987654/tickets").await;
    let missing = (
        missing.status,
        missing.body["type"].as_str().unwrap().to_owned(),
    );
    let kinds = [
        (paused, 503, "/problems/sales-paused"),
        (invalid, 422, "/problems/validation"),
        (malformed, 400, "/problems/malformed-request"),
        (missing, 404, "/problems/not-found"),
    ];
    for ((status, kind), want_status, want_kind) in &kinds {
        assert_eq!((*status, kind.as_str()), (*want_status, *want_kind));
        let page = api.get(kind).await;
        assert_eq!(page.status, 200, "{kind} is not served");
        let content_type = page.headers["content-type"].to_str().unwrap();
        assert!(content_type.starts_with("text/html"), "{content_type}");
    }
    assert_eq!(api.get("/problems").await.status, 200);
    assert_eq!(api.get("/problems/no-such-thing").await.status, 404);
}

#[tokio::test]
async fn admin_endpoints_without_admin_token_say_how_to_enable_them() {
    let api = Api::spawn_with(&["--admin-token", ""]).await;
    for (method, path) in [
        ("POST", "/events"),
        ("POST", "/admin/clients"),
        ("GET", "/admin/clients"),
        ("POST", "/events/1/close"),
        ("GET", "/admin/reservations"),
        ("GET", "/admin/settings"),
        ("PUT", "/admin/settings/max_quantity"),
        ("DELETE", "/admin/settings/events/1/sales_paused"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", env("ADMIN_TOKEN")))
            .header("content-type", "application/json")
            .body(Body::from(r#"{"name": "x", "capacity": 1}"#))
            .unwrap();
        let answer = api.call(request).await;
        assert_eq!(answer.status, 403, "{method} {path}: {}", answer.body);
        assert_eq!(answer.body["type"], "/problems/admin-disabled");
        assert!(
            answer.body["detail"]
                .as_str()
                .unwrap()
                .contains("ADMIN_TOKEN")
        );
    }
}
