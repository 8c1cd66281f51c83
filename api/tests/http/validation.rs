//! Bad input gets a clear 4xx problem document and changes nothing.

use axum::{
    body::Body,
    http::{Method, Request},
};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::Value;
use shared::entities::{event, reservation, reservation_request, user};
use testkit::app::env;

use crate::harness::Api;

struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Option<String>,
    headers: Vec<(&'static str, String)>,
    admin: bool,
    want: u16,
}

fn case(name: &'static str, method: Method, path: &'static str, want: u16) -> Case {
    Case {
        name,
        method,
        path,
        content_type: None,
        body: None,
        headers: Vec::new(),
        admin: false,
        want,
    }
}

impl Case {
    fn json(mut self, body: &str) -> Self {
        self.content_type = Some("application/json");
        self.body = Some(body.to_owned());
        self
    }

    fn raw(mut self, content_type: &'static str, body: String) -> Self {
        self.content_type = Some(content_type);
        self.body = Some(body);
        self
    }

    fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    fn admin(mut self) -> Self {
        self.admin = true;
        self
    }
}

async fn counts(api: &Api) -> [u64; 4] {
    [
        event::Entity::find().count(&api.db).await.unwrap(),
        reservation::Entity::find().count(&api.db).await.unwrap(),
        reservation_request::Entity::find()
            .count(&api.db)
            .await
            .unwrap(),
        user::Entity::find().count(&api.db).await.unwrap(),
    ]
}

async fn tickets(api: &Api) -> Value {
    api.get("/events/1/tickets").await.body
}

#[tokio::test]
async fn bad_input_is_a_4xx_problem_and_changes_nothing() {
    use Method as M;
    let api = Api::spawn().await;
    let reserve = "/events/1/reserve";
    let cases = vec![
        case("non-numeric event id", M::POST, "/events/abc/reserve", 400),
        case("unknown event", M::POST, "/events/999999/reserve", 404),
        case("negative event id", M::POST, "/events/-5/reserve", 404),
        case(
            "huge event id",
            M::POST,
            "/events/99999999999999999999999/reserve",
            400,
        ),
        case("zero quantity", M::POST, reserve, 422).json(r#"{"quantity": 0}"#),
        case("negative quantity", M::POST, reserve, 422).json(r#"{"quantity": -1}"#),
        case("quantity over the maximum", M::POST, reserve, 422).json(r#"{"quantity": 11}"#),
        case("enormous quantity", M::POST, reserve, 422).json(r#"{"quantity": 1e30}"#),
        case("quantity as a string", M::POST, reserve, 422).json(r#"{"quantity": "2"}"#),
        case("fractional quantity", M::POST, reserve, 422).json(r#"{"quantity": 1.5}"#),
        case("unknown field", M::POST, reserve, 422).json(r#"{"qty": 1}"#),
        case("array body", M::POST, reserve, 422).json("[1, 2]"),
        case("malformed JSON", M::POST, reserve, 400).json(r#"{"quantity":"#),
        // Not JSON either, and a body: no body is zero bytes.
        case("only whitespace", M::POST, reserve, 400).json(" \n"),
        case("unknown user", M::POST, reserve, 422).json(r#"{"user_id": 424242}"#),
        case("wrong content type", M::POST, reserve, 415).raw("text/plain", "{}".into()),
        case("oversized body", M::POST, reserve, 413).raw(
            "application/json",
            format!(r#"{{"pad": "{}"}}"#, "x".repeat(20 * 1024)),
        ),
        case("idempotency key too long", M::POST, reserve, 400)
            .header("idempotency-key", "k".repeat(300)),
        case(
            "bad wait parameter",
            M::POST,
            "/events/1/reserve?wait=maybe",
            400,
        ),
        case(
            "reservation id not a uuid",
            M::GET,
            "/reservations/not-a-uuid",
            400,
        ),
        case(
            "unknown reservation",
            M::DELETE,
            "/reservations/0190a5c4-0000-7000-8000-000000000000",
            404,
        ),
        case("unknown route", M::GET, "/events/1/tickets/extra", 404),
        case("wrong method", M::DELETE, "/events/1", 405),
        case("create event without token", M::POST, "/events", 401)
            .json(r#"{"name": "x", "capacity": 10}"#),
        case("create event with a wrong token", M::POST, "/events", 401)
            .json(r#"{"name": "x", "capacity": 10}"#)
            .header("authorization", "Bearer wrong".into()),
        case("event with zero capacity", M::POST, "/events", 422)
            .json(r#"{"name": "x", "capacity": 0}"#)
            .admin(),
        case("event without a name", M::POST, "/events", 422)
            .json(r#"{"name": " ", "capacity": 10}"#)
            .admin(),
        case("event with a bad date", M::POST, "/events", 422)
            .json(r#"{"name": "x", "capacity": 10, "starts_at": "tomorrow"}"#)
            .admin(),
        case("user without email", M::POST, "/users", 422)
            .json(r#"{"email": "nope", "name": "A"}"#),
        case("user with missing name", M::POST, "/users", 422).json(r#"{"email": "a@b.c"}"#),
        case("events page too large", M::GET, "/events?limit=1000", 400),
    ];
    let before = counts(&api).await;
    let tickets_before = tickets(&api).await;
    for c in cases {
        let mut request = Request::builder().method(c.method.clone()).uri(c.path);
        if let Some(content_type) = c.content_type {
            request = request.header("content-type", content_type);
        }
        for (name, value) in c.headers {
            request = request.header(name, value);
        }
        if c.admin {
            request = request.header("authorization", format!("Bearer {}", env("ADMIN_TOKEN")));
        }
        let body = c.body.map_or_else(Body::empty, Body::from);
        let answer = api.call(request.body(body).unwrap()).await;
        let content_type = answer
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = answer.body;
        assert_eq!(answer.status, c.want, "{}: {body}", c.name);
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{}",
            c.name
        );
        assert_eq!(body["status"], c.want, "{}: problem status member", c.name);
        assert!(
            body["title"].is_string() && body["detail"].is_string(),
            "{}",
            c.name
        );
    }
    assert_eq!(
        counts(&api).await,
        before,
        "a rejected request changed the database"
    );
    assert_eq!(tickets(&api).await, tickets_before);

    // The API describes itself.
    let spec = api.get("/openapi.json").await.body;
    assert!(spec["paths"]["/events/{id}/reserve"]["post"].is_object());
}

/// A reserve sent with `?wait=false` (no worker runs here): its answer.
async fn reserve(api: &Api, body: &str, key: Option<&str>) -> crate::harness::Answer {
    let mut request =
        Request::post("/events/1/reserve?wait=false").header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    api.call(request.body(Body::from(body.to_owned())).unwrap())
        .await
}

/// `null` is the JSON for "nothing": where the body is optional it is the
/// same as no body (the OpenAPI document allows it there).
#[tokio::test]
async fn a_null_optional_body_is_no_body() {
    let api = Api::spawn().await;
    let answer = reserve(&api, "null", None).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let id = answer.body["reservation_id"].as_str().unwrap().to_owned();
    let stored = api.get(&format!("/reservations/{id}")).await;
    assert_eq!(stored.body["quantity"], 1, "{}", stored.body);

    // Where a body is required, `null` is still not one.
    let request = Request::post("/events")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", env("ADMIN_TOKEN")))
        .body(Body::from("null"))
        .unwrap();
    let refused = api.call(request).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["detail"], "a JSON body is required");
}

/// JSON has one number type: `2.0` is the integer 2 to JSON Schema, so
/// every integer field takes it; `2.5` stays refused (in the table above).
#[tokio::test]
async fn integral_numbers_are_integers() {
    let api = Api::spawn().await;
    let admin = |path: &str, body: &str| {
        Request::post(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", env("ADMIN_TOKEN")))
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let event = api
        .call(admin("/events", r#"{"name": "x", "capacity": 30076.0}"#))
        .await;
    assert_eq!(event.status, 201, "{}", event.body);
    assert_eq!(event.body["capacity"], 30076);

    let user = api
        .call(admin(
            "/users",
            r#"{"email": "a@example.com", "name": "A"}"#,
        ))
        .await;
    assert_eq!(user.status, 201, "{}", user.body);
    let user_id = user.body["id"].as_i64().unwrap();
    let body = format!(r#"{{"quantity": 2e0, "user_id": {user_id}.0}}"#);
    let answer = reserve(&api, &body, None).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let id = answer.body["reservation_id"].as_str().unwrap().to_owned();
    let stored = api.get(&format!("/reservations/{id}")).await;
    assert_eq!(stored.body["quantity"], 2, "{}", stored.body);
    assert_eq!(stored.body["user_id"], user_id, "{}", stored.body);
}

/// Whatever the declared pattern (`^[!-~]+$`, 1 to 255) allows is a key.
#[tokio::test]
async fn every_declared_idempotency_key_is_taken() {
    let api = Api::spawn().await;
    let visible: String = ('!'..='~').collect();
    for key in [visible, "~".repeat(255)] {
        let answer = reserve(&api, "", Some(&key)).await;
        assert_eq!(answer.status, 202, "{key}: {}", answer.body);
    }
}
