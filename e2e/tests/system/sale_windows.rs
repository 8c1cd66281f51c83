//! Sale windows: before an event's sale opens and after it closes, a
//! reserve is refused with its own problem type and nothing is recorded;
//! a replayed `Idempotency-Key` still gets what it asked while the sale was
//! open.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use testkit::app::TestApp;

async fn create(app: &TestApp, window: Value) -> (u16, Value) {
    let mut body = json!({"name": "Windowed", "capacity": 10});
    if let (Some(body), Some(window)) = (body.as_object_mut(), window.as_object()) {
        body.extend(window.clone());
    }
    app.create_event_with(body).await
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

async fn reserve(app: &TestApp, event: i64, key: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url(&format!("/events/{event}/reserve")))
        .json(&json!({"quantity": 1}));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.expect("POST reserve")
}

async fn rows(app: &TestApp, event: i64) -> (i64, i64) {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let count = |table: &str| {
        Statement::from_string(
            DbBackend::MySql,
            format!("SELECT COUNT(*) FROM {table} WHERE event_id = {event}"),
        )
    };
    let mut counts = Vec::new();
    for table in ["reservations", "reservation_requests"] {
        let row = app
            .db
            .query_one_raw(count(table))
            .await
            .expect("count")
            .expect("a row");
        counts.push(row.try_get_by_index::<i64>(0).expect("a count"));
    }
    (counts[0], counts[1])
}

#[tokio::test]
async fn outside_its_sale_window_an_event_refuses_reserves_with_its_own_problem_and_records_nothing()
 {
    let app = TestApp::spawn().await;
    let opens = Utc::now() + Duration::hours(1);
    let (status, event) = create(&app, json!({"sale_opens_at": rfc3339(opens)})).await;
    assert_eq!(status, 201, "{event}");
    let not_open = event["id"].as_i64().expect("an id");
    assert!(event["sale_opens_at"].is_string(), "{event}");

    for key in [None, Some("early-1")] {
        let response = reserve(&app, not_open, key).await;
        assert_eq!(response.status(), 403);
        let retry_after: i64 = response.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!(
            (3500..=3601).contains(&retry_after),
            "Retry-After {retry_after}"
        );
        let problem: Value = response.json().await.expect("a problem");
        assert_eq!(problem["type"], "/problems/sale-not-open");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&opens.format("%Y-%m-%dT%H:%M:%S").to_string())),
            "{problem}"
        );
    }
    assert_eq!(rows(&app, not_open).await, (0, 0));
    assert_eq!(app.tickets(not_open).await, 10);

    let closed_at = Utc::now() - Duration::seconds(1);
    let (status, event) = create(&app, json!({"sale_closes_at": rfc3339(closed_at)})).await;
    assert_eq!(status, 201, "{event}");
    let closed = event["id"].as_i64().expect("an id");
    let response = reserve(&app, closed, Some("late-1")).await;
    assert_eq!(response.status(), 403);
    let problem: Value = response.json().await.expect("a problem");
    assert_eq!(problem["type"], "/problems/sale-closed");
    assert_eq!(rows(&app, closed).await, (0, 0));

    let (status, problem) = create(
        &app,
        json!({"sale_opens_at": rfc3339(opens), "sale_closes_at": rfc3339(opens)}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["type"], "/problems/validation");
}

#[tokio::test]
async fn once_the_sale_closes_only_a_replayed_key_gets_an_answer_and_it_is_the_stored_one() {
    let app = TestApp::spawn().await;
    let closes = Utc::now() + Duration::seconds(3);
    let (status, event) = create(&app, json!({"sale_closes_at": rfc3339(closes)})).await;
    assert_eq!(status, 201, "{event}");
    let event = event["id"].as_i64().expect("an id");

    let before: Value = reserve(&app, event, Some("order-1"))
        .await
        .json()
        .await
        .expect("a decision");
    assert_eq!(before["status"], "confirmed", "{before}");

    // The window's end is a known instant: wait for it, then past it.
    let wait = (closes - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + std::time::Duration::from_millis(50)).await;

    let replay = reserve(&app, event, Some("order-1")).await;
    assert_eq!(replay.status(), 200);
    let replay: Value = replay.json().await.expect("a decision");
    assert_eq!(replay["reservation_id"], before["reservation_id"]);
    assert_eq!(replay["status"], "confirmed");

    for key in [Some("order-2"), None] {
        let response = reserve(&app, event, key).await;
        assert_eq!(response.status(), 403);
        let problem: Value = response.json().await.expect("a problem");
        assert_eq!(problem["type"], "/problems/sale-closed");
    }
    assert_eq!(rows(&app, event).await, (1, 1));
    assert_eq!(app.tickets(event).await, 9);
}

async fn patch_event(app: &TestApp, event: i64, body: Value) -> (u16, Value) {
    let response = app
        .http
        .patch(app.url(&format!("/events/{event}")))
        .bearer_auth(testkit::app::env("ADMIN_TOKEN"))
        .json(&body)
        .send()
        .await
        .expect("PATCH event");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn closing_an_event_stops_its_sale_even_where_it_was_read_open() {
    let mut app = TestApp::spawn().await;
    let event = app.create_event(10).await;
    let other = app.add_api(None).await;
    // The second replica reads the event's terms (open) and keeps them
    // for a few seconds.
    let first = app
        .http
        .post(format!("{other}/events/{event}/reserve"))
        .send()
        .await
        .expect("reserve");
    assert_eq!(first.status(), 200);
    let held: Value = app.reserve(event, Some(json!({"hold": true}))).await.1;
    assert_eq!(held["status"], "held");

    let (status, closed) = patch_event(&app, event, json!({"closed": true})).await;
    assert_eq!(status, 200, "{closed}");
    assert!(closed["sale_closes_at"].is_string(), "{closed}");
    // Where it was closed: refused before anything is queued.
    let (status, problem) = app.reserve(event, None).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["type"], "/problems/sale-closed");
    // Where it was read open: queued, and rejected by the worker, which
    // judges the window on the database's clock.
    let late = app
        .http
        .post(format!("{other}/events/{event}/reserve"))
        .send()
        .await
        .expect("reserve");
    let status = late.status().as_u16();
    let body: Value = late.json().await.expect("json");
    assert!(
        status == 403 || (status == 409 && body["message"] == "Sale closed"),
        "{status} {body}"
    );
    // A hold taken while the sale was open can still be confirmed.
    let id = held["reservation_id"].as_str().expect("id");
    let confirmed = app
        .http
        .post(app.url(&format!("/reservations/{id}/confirm")))
        .send()
        .await
        .expect("confirm");
    assert_eq!(confirmed.status(), 200);
    let snapshot = testkit::invariants::check(&app.db, event).await;
    assert_eq!(snapshot.available, 8);
}

#[tokio::test]
async fn an_event_capacity_moves_but_never_below_what_is_sold() {
    let app = TestApp::spawn().await;
    let event = app.create_event(5).await;
    let (status, body) = app.reserve(event, Some(json!({"quantity": 3}))).await;
    assert_eq!(status, 200, "{body}");
    let (status, problem) = patch_event(&app, event, json!({"capacity": 2})).await;
    assert_eq!(status, 409, "{problem}");
    let (status, moved) = patch_event(&app, event, json!({"capacity": 8})).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        (
            moved["capacity"].clone(),
            moved["remaining_tickets"].clone()
        ),
        (json!(8), json!(5))
    );
    assert_eq!(app.tickets(event).await, 5);
    let (status, moved) = patch_event(&app, event, json!({"capacity": 3})).await;
    assert_eq!(
        (status, moved["remaining_tickets"].clone()),
        (200, json!(0))
    );
    let (status, body) = app.reserve(event, None).await;
    assert_eq!(status, 409, "{body}");
    for bad in [
        json!({"capacity": 0}),
        json!({"capacity": "x"}),
        json!({"nope": 1}),
    ] {
        let (status, _) = patch_event(&app, event, bad.clone()).await;
        assert!(status == 422 || status == 400, "{bad}: {status}");
    }
    testkit::invariants::check(&app.db, event).await;
}
