//! The admin's view and control of a sale over HTTP: every client's
//! reservations page by page, closing a sale, live settings, and the
//! conditional reads pollers use.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use testkit::app::{TestApp, env};

/// `method path` with `token` (none: anonymous) and an optional JSON body.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.http.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let response = call(app, method, path, Some(&env("ADMIN_TOKEN")), body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn reserve_id(app: &TestApp, event: i64, token: Option<&str>, body: Value) -> String {
    let path = format!("/events/{event}/reserve");
    let response = call(app, Method::POST, &path, token, Some(body)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["reservation_id"].as_str().unwrap().to_owned()
}

/// The ids of a page, and the path of the next one from its `Link` header
/// (checked against `next_after`).
async fn page(app: &TestApp, path: &str) -> (Vec<String>, Option<String>) {
    let response = call(app, Method::GET, path, Some(&env("ADMIN_TOKEN")), None).await;
    assert_eq!(response.status(), 200, "{path}");
    let link = response
        .headers()
        .get(header::LINK)
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    let ids = body["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reservation_id"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    let next = link.map(|link| {
        let (target, rel) = link.split_once(">; ").expect("<target>; rel");
        assert_eq!(rel, "rel=\"next\"");
        let target = target.trim_start_matches('<').to_owned();
        let cursor = body["next_after"].as_str().expect("next_after with a Link");
        assert!(target.ends_with(&format!("after={cursor}")), "{target}");
        target
    });
    if next.is_none() {
        assert!(body["next_after"].is_null());
    }
    (ids, next)
}

/// Walks every page from `first`, reserving two more tickets of `event`
/// after each page when `add` is set; returns the ids seen, in order.
async fn walk(app: &TestApp, first: &str, add: Option<i64>) -> Vec<String> {
    let mut seen = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(path) = next {
        let (ids, following) = page(app, &path).await;
        seen.extend(ids);
        if let Some(event) = add {
            for _ in 0..2 {
                reserve_id(app, event, None, json!({})).await;
            }
        }
        next = following;
    }
    seen
}

#[tokio::test]
async fn a_walk_sees_every_reservation_once_while_more_are_made() {
    let app = TestApp::spawn().await;
    let event = app.create_event(1000).await;
    let other = app.create_event(10).await;
    reserve_id(&app, other, None, json!({})).await;
    let mut before = HashSet::new();
    for _ in 0..23 {
        before.insert(reserve_id(&app, event, None, json!({})).await);
    }

    let first = format!("/admin/reservations?event_id={event}&limit=5");
    let seen = walk(&app, &first, Some(event)).await;
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no reservation twice: {seen:?}");
    for id in &before {
        assert!(unique.contains(id), "{id} was skipped");
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "id (time) order");

    // At rest, a walk finds exactly what the database holds for the event.
    let all = walk(&app, &first, None).await;
    let (stored,): (i64,) = {
        use sea_orm::{ConnectionTrait, Statement};
        let row = app
            .db
            .query_one_raw(Statement::from_string(
                app.db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM reservations WHERE event_id = {event}"),
            ))
            .await
            .unwrap()
            .unwrap();
        (row.try_get("", "n").unwrap(),)
    };
    assert_eq!(all.len() as i64, stored);
    assert!(
        all.len() > before.len(),
        "reservations made during the walk"
    );
}

#[tokio::test]
async fn filters_select_by_event_user_status_and_client_for_the_admin_only() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.create_event(10).await, app.create_event(10).await);
    let (status, client) = admin(
        &app,
        Method::POST,
        "/admin/clients",
        Some(json!({"name": "Box office"})),
    )
    .await;
    assert_eq!(status, 201);
    let (client_id, key) = (
        client["id"].as_i64().unwrap(),
        client["api_key"].as_str().unwrap().to_owned(),
    );
    let user = call(
        &app,
        Method::POST,
        "/users",
        None,
        Some(json!({"email": "ada@example.com", "name": "Ada"})),
    )
    .await;
    assert_eq!(user.status(), 201);
    let user = user.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    let keyed = reserve_id(&app, a, Some(&key), json!({"user_id": user, "quantity": 2})).await;
    let plain = reserve_id(&app, a, None, json!({})).await;
    let elsewhere = reserve_id(&app, b, None, json!({})).await;
    let cancel = call(
        &app,
        Method::DELETE,
        &format!("/reservations/{plain}"),
        None,
        None,
    )
    .await;
    assert_eq!(cancel.status(), 200);

    let ids = |path: String| {
        let app = &app;
        async move { page(app, &path).await.0 }
    };
    assert_eq!(
        ids(format!("/admin/reservations?event_id={a}")).await.len(),
        2
    );
    assert_eq!(
        ids(format!("/admin/reservations?event_id={b}")).await,
        std::slice::from_ref(&elsewhere)
    );
    assert_eq!(
        ids(format!("/admin/reservations?user_id={user}")).await,
        std::slice::from_ref(&keyed)
    );
    assert_eq!(
        ids(format!("/admin/reservations?client={client_id}")).await,
        std::slice::from_ref(&keyed)
    );
    assert_eq!(
        ids("/admin/reservations?status=cancelled".into()).await,
        std::slice::from_ref(&plain)
    );
    assert_eq!(
        ids(format!(
            "/admin/reservations?event_id={a}&status=confirmed&client={client_id}"
        ))
        .await,
        std::slice::from_ref(&keyed)
    );
    assert!(
        ids("/admin/reservations?client=0&user_id=1".into())
            .await
            .is_empty()
    );

    let (_, listed) = admin(
        &app,
        Method::GET,
        &format!("/admin/reservations?client={client_id}"),
        None,
    )
    .await;
    let row = &listed["reservations"][0];
    assert_eq!(row["client_id"], client_id);
    assert_eq!(row["quantity"], 2);
    assert_eq!(row["status"], "confirmed");

    for (token, want) in [
        (None, 401),
        (Some(key.as_str()), 401),
        (Some("tk_nonsense"), 401),
    ] {
        let response = call(&app, Method::GET, "/admin/reservations", token, None).await;
        assert_eq!(response.status().as_u16(), want, "{token:?}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
    for bad in [
        "limit=0",
        "limit=501",
        "status=sold",
        "after=nope",
        "event=1",
    ] {
        let (status, problem) = admin(
            &app,
            Method::GET,
            &format!("/admin/reservations?{bad}"),
            None,
        )
        .await;
        assert_eq!(status, 400, "{bad}: {problem}");
        assert_eq!(problem["type"], "/problems/malformed-request");
    }
}

/// Conditional GET: 304 while nothing changed, a new tag once it has.
async fn conditional(app: &TestApp, path: &str, tag: Option<&str>) -> (StatusCode, String) {
    let mut request = app.http.get(app.url(path));
    if let Some(tag) = tag {
        request = request.header(header::IF_NONE_MATCH, tag);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "no-cache",
        "{path}"
    );
    let tag = response.headers()[header::ETAG]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.bytes().await.unwrap();
    if status == StatusCode::NOT_MODIFIED {
        assert!(body.is_empty(), "a 304 has no body");
    }
    (status, tag)
}

#[tokio::test]
async fn reads_answer_304_until_a_reservation_changes_them() {
    let app = TestApp::spawn().await;
    let event = app.create_event(10).await;
    let paths = [
        format!("/events/{event}/tickets"),
        format!("/events/{event}"),
        "/events".to_owned(),
    ];
    let mut tags = Vec::new();
    for path in &paths {
        let (status, tag) = conditional(&app, path, None).await;
        assert_eq!(status, 200);
        assert_eq!(
            conditional(&app, path, Some(&tag)).await,
            (StatusCode::NOT_MODIFIED, tag.clone())
        );
        let weak_list = format!("\"stale\", W/{tag}");
        assert_eq!(
            conditional(&app, path, Some(&weak_list)).await.0,
            StatusCode::NOT_MODIFIED
        );
        tags.push(tag);
    }
    reserve_id(&app, event, None, json!({})).await;
    for (path, old) in paths.iter().zip(&tags) {
        let (status, tag) = conditional(&app, path, Some(old)).await;
        assert_eq!(status, 200, "{path} changed after a reservation");
        assert_ne!(&tag, old, "{path}");
    }
}

#[tokio::test]
async fn closing_a_sale_refuses_new_reservations() {
    let app = TestApp::spawn().await;
    let event = app.create_event(10).await;
    let path = format!("/events/{event}/close");
    assert_eq!(
        call(&app, Method::POST, &path, None, None).await.status(),
        401
    );
    assert_eq!(
        admin(&app, Method::POST, "/events/999999/close", None)
            .await
            .0,
        404
    );

    let (status, closed) = admin(&app, Method::POST, &path, None).await;
    assert_eq!(status, 200, "{closed}");
    let closes_at = closed["sale_closes_at"]
        .as_str()
        .expect("a closing time")
        .to_owned();
    let (status, refused) = app.reserve(event, None).await;
    assert_eq!(
        (status, refused["type"].as_str()),
        (403, Some("/problems/sale-closed"))
    );
    // Closing again keeps the first closing time.
    let (_, again) = admin(&app, Method::POST, &path, None).await;
    assert_eq!(again["sale_closes_at"], closes_at.as_str());
}

/// Reserves `quantity` until the answer is `want` (a setting reaches the
/// api through its etcd watch).
async fn eventually(app: &TestApp, event: i64, quantity: i64, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app
            .reserve(event, Some(json!({"quantity": quantity})))
            .await;
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "still {status}, not {want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn live_settings_are_checked_stored_and_applied() {
    let app = TestApp::spawn().await;
    let event = app.create_event(100).await;
    let (status, all) = admin(&app, Method::GET, "/admin/settings", None).await;
    assert_eq!(status, 200);
    let max = all["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "max_quantity")
        .cloned()
        .unwrap();
    assert_eq!(
        max,
        json!({"name": "max_quantity", "default": "10", "override": null, "effective": "10"})
    );

    let (status, problem) = admin(
        &app,
        Method::PUT,
        "/admin/settings/max_quantity",
        Some(json!({"value": "0"})),
    )
    .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (422, Some("/problems/validation"))
    );
    let (status, _) = admin(
        &app,
        Method::PUT,
        "/admin/settings/nonsense",
        Some(json!({"value": "1"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, set) = admin(
        &app,
        Method::PUT,
        "/admin/settings/max_quantity",
        Some(json!({"value": " 2 "})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (set["override"].as_str(), set["effective"].as_str()),
        (Some("2"), Some("2"))
    );
    eventually(&app, event, 3, 422).await;

    let pause = format!("/admin/settings/events/{event}/sales_paused");
    let (status, paused) = admin(&app, Method::PUT, &pause, Some(json!({"value": "true"}))).await;
    assert_eq!((status, paused["effective"].as_str()), (200, Some("true")));
    let refused = eventually(&app, event, 1, 503).await;
    assert_eq!(refused["type"], "/problems/sales-paused");
    let (_, all) = admin(&app, Method::GET, "/admin/settings", None).await;
    assert!(
        all["settings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == format!("events/{event}/sales_paused"))
    );

    for path in [pause.as_str(), "/admin/settings/max_quantity"] {
        let (status, removed) = admin(&app, Method::DELETE, path, None).await;
        assert_eq!(
            (status, removed["override"].clone()),
            (200, Value::Null),
            "{path}"
        );
    }
    eventually(&app, event, 3, 200).await;
    let anonymous = call(&app, Method::GET, "/admin/settings", None, None).await;
    assert_eq!(anonymous.status(), 401);
}
