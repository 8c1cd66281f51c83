//! Ticket types and quotas (issue #12, item 2): an event sells several
//! types, each with its own capacity and price, and a quota caps several
//! types together; every count holds invariants 1 and 2.

use serde_json::{Value, json};
use testkit::{
    app::{TestApp, env},
    invariants,
};

async fn patch_type(app: &TestApp, id: i64, body: Value) -> (u16, Value) {
    let response = app
        .http
        .patch(app.url(&format!("/ticket-types/{id}")))
        .bearer_auth(env("ADMIN_TOKEN"))
        .json(&body)
        .send()
        .await
        .expect("PATCH ticket type");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn new_type(app: &TestApp, event: i64, body: Value) -> i64 {
    let (status, kind) = app
        .admin_post(&format!("/events/{event}/ticket-types"), body)
        .await;
    assert_eq!(status, 201, "{kind}");
    kind["id"].as_i64().expect("type id")
}

async fn tickets(app: &TestApp, event: i64) -> Value {
    let response = app
        .http
        .get(app.url(&format!("/events/{event}/tickets")))
        .send()
        .await
        .expect("GET tickets");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

#[tokio::test]
async fn a_shared_quota_drained_from_two_types_at_once_sells_no_more_than_itself() {
    let app = TestApp::spawn().await;
    let event = app.create_event(100).await;
    let (status, quota) = app
        .admin_post(
            &format!("/events/{event}/quotas"),
            json!({"name": "seats", "capacity": 10}),
        )
        .await;
    assert_eq!(status, 201, "{quota}");
    let quota = quota["id"].as_i64().expect("quota id");
    let adult = new_type(
        &app,
        event,
        json!({"name": "adult", "capacity": 8, "price_cents": 4500, "quota_id": quota}),
    )
    .await;
    let child = new_type(
        &app,
        event,
        json!({"name": "child", "capacity": 8, "price_cents": 2000, "quota_id": quota}),
    )
    .await;
    let vip = new_type(&app, event, json!({"name": "vip", "capacity": 3})).await;

    let asks = (0..24)
        .map(|i| {
            let kind = if i % 2 == 0 { adult } else { child };
            json!({"ticket_type": kind, "hold": i % 3 == 0})
        })
        .chain((0..5).map(|_| json!({"ticket_type": vip})));
    let answers = futures::future::join_all(asks.map(|body| app.reserve(event, Some(body)))).await;
    let ok = |kind: i64| {
        answers
            .iter()
            .filter(|(status, body)| *status == 200 && body["ticket_type_id"] == kind)
            .count()
    };
    for (status, body) in &answers {
        assert!(*status == 200 || *status == 409, "{status} {body}");
    }
    assert_eq!(ok(adult) + ok(child), 10, "the quota caps both types");
    assert!(ok(adult) <= 8 && ok(child) <= 8);
    assert_eq!(ok(vip), 3);

    let snapshot = invariants::check(&app.db, event).await;
    assert_eq!(snapshot.available, 100 - 13);
    let shown = tickets(&app, event).await;
    assert_eq!(shown["tickets"], 87, "{shown}");
    let left: Vec<(i64, i64)> = shown["ticket_types"]
        .as_array()
        .expect("per-type availability")
        .iter()
        .map(|t| {
            (
                t["id"].as_i64().unwrap_or(0),
                t["available"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        left,
        [
            (adult, 8 - ok(adult) as i64),
            (child, 8 - ok(child) as i64),
            (vip, 0)
        ]
    );
}

#[tokio::test]
async fn a_typed_event_needs_a_type_and_capacity_never_goes_below_what_is_sold() {
    let app = TestApp::spawn().await;
    let event = app.create_event(50).await;
    let standing = new_type(&app, event, json!({"name": "standing", "capacity": 5})).await;

    // Type names are unique per event; a type needs a quota of its event.
    let (status, _) = app
        .admin_post(
            &format!("/events/{event}/ticket-types"),
            json!({"name": "standing", "capacity": 5}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = app
        .admin_post(
            &format!("/events/{event}/ticket-types"),
            json!({"name": "seated", "capacity": 5, "quota_id": 999_999}),
        )
        .await;
    assert_eq!(status, 422);

    // Untyped on a typed event, a type on an untyped one, a stranger's type.
    for (on, body) in [
        (event, json!({})),
        (1, json!({"ticket_type": standing})),
        (event, json!({"ticket_type": 999_999})),
    ] {
        let (status, problem) = app.reserve(on, Some(body)).await;
        assert_eq!(status, 422, "{problem}");
    }

    let (status, sold) = app
        .reserve(event, Some(json!({"ticket_type": standing, "quantity": 3})))
        .await;
    assert_eq!(status, 200, "{sold}");
    assert_eq!(sold["ticket_type_id"], standing);
    let (status, held) = app
        .reserve(
            event,
            Some(json!({"ticket_type": standing, "quantity": 1, "hold": true})),
        )
        .await;
    assert_eq!(status, 200, "{held}");

    let (status, problem) = patch_type(&app, standing, json!({"capacity": 3})).await;
    assert_eq!(status, 409, "4 held or sold: {problem}");
    let (status, kind) = patch_type(&app, standing, json!({"capacity": 4})).await;
    assert_eq!(status, 200, "{kind}");
    assert_eq!(kind["available"], 0);
    let (status, kind) = patch_type(&app, standing, json!({"capacity": 6})).await;
    assert_eq!(status, 200);
    assert_eq!(kind["available"], 2);
    invariants::check(&app.db, event).await;

    // A closed type sells nothing more; what it gives back counts again.
    let (status, kind) = patch_type(&app, standing, json!({"closed": true})).await;
    assert_eq!((status, kind["closed"].clone()), (200, json!(true)));
    let (status, refused) = app
        .reserve(event, Some(json!({"ticket_type": standing})))
        .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["message"], "Ticket type closed");
    let held = held["reservation_id"].as_str().expect("id");
    let released = app
        .http
        .delete(app.url(&format!("/reservations/{held}")))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(released.status(), 200);
    let snapshot = invariants::check(&app.db, event).await;
    assert_eq!(snapshot.ticket_types[0].available, 3);
    assert_eq!(snapshot.available, 47);
}

#[tokio::test]
async fn a_ticket_type_sells_only_inside_its_own_sale_window() {
    use chrono::{Duration, SecondsFormat, Utc};
    let app = TestApp::spawn().await;
    let event = app.create_event(30).await;
    let at = |offset: Duration| (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Millis, true);
    let path = format!("/events/{event}/ticket-types");
    let (status, problem) = app
        .admin_post(
            &path,
            json!({"name": "bad", "capacity": 5, "sale_opens_at": at(Duration::hours(2)),
               "sale_closes_at": at(Duration::hours(1))}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    let late = new_type(
        &app,
        event,
        json!({"name": "late", "capacity": 10, "sale_opens_at": at(Duration::hours(1))}),
    )
    .await;
    let early = new_type(
        &app,
        event,
        json!({"name": "early bird", "capacity": 10, "sale_closes_at": at(-Duration::minutes(1))}),
    )
    .await;
    let open = new_type(&app, event, json!({"name": "regular", "capacity": 10})).await;

    let (status, problem) = app.reserve(event, Some(json!({"ticket_type": late}))).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["type"], "/problems/sale-not-open");
    let (status, problem) = app
        .reserve(event, Some(json!({"ticket_type": early})))
        .await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["type"], "/problems/sale-closed");
    let (status, body) = app
        .reserve(event, Some(json!({"ticket_type": open, "quantity": 2})))
        .await;
    assert_eq!(
        (status, body["status"].clone()),
        (200, json!("confirmed")),
        "{body}"
    );

    // The windows are shown with the types, and nothing was taken from the
    // refused types.
    let shown = tickets(&app, event).await;
    assert_eq!(shown["tickets"], 28, "{shown}");
    let types = shown["ticket_types"].as_array().expect("types");
    let of = |id: i64| {
        types
            .iter()
            .find(|t| t["id"] == id)
            .expect("a type")
            .clone()
    };
    assert!(of(late)["sale_opens_at"].is_string(), "{shown}");
    assert!(of(early)["sale_closes_at"].is_string(), "{shown}");
    assert_eq!(
        (
            of(late)["available"].clone(),
            of(early)["available"].clone()
        ),
        (json!(10), json!(10))
    );
    invariants::check(&app.db, event).await;
}
