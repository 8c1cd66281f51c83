//! What a newcomer meets on a stock start: no rate limit tripped by one
//! host's load test, admin endpoints that say how to turn them on, no
//! secret in `--help`, and refusals a client can tell apart.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use testkit::app::{Options, TestApp, binary};

/// Every client behind Docker's port proxy (or one load balancer) arrives
/// from one address: a per-address limit would refuse them all as one.
#[tokio::test]
async fn one_host_load_testing_anonymously_is_never_rate_limited() {
    let app = TestApp::spawn_with(Options {
        env: [
            ("RESERVE_RATE_LIMIT_PER_SEC", "20".to_owned()),
            ("RESERVE_RATE_LIMIT_BURST", "40".to_owned()),
        ]
        .into(),
        ..Options::default()
    })
    .await;
    let event = app.create_event(1000).await;
    let answers = futures::future::join_all((0..200).map(|_| {
        app.http
            .post(app.url(&format!("/events/{event}/reserve?wait=false")))
            .send()
    }))
    .await;
    let limited = answers
        .into_iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.status() == 429))
        .count();
    assert_eq!(limited, 0, "anonymous requests from one address got 429");
}

#[tokio::test]
async fn admin_endpoints_without_admin_token_say_how_to_enable_them() {
    let app = TestApp::spawn_with(Options {
        env: [("ADMIN_TOKEN", String::new())].into(),
        ..Options::default()
    })
    .await;
    let response = app
        .http
        .post(app.url("/events"))
        .bearer_auth("anything")
        .json(&json!({"name": "x", "capacity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/admin-disabled"),
        "{problem}"
    );
    assert!(problem["detail"].as_str().unwrap().contains("ADMIN_TOKEN"));
}

#[test]
fn no_help_prints_a_password_from_the_environment() {
    for name in ["api", "worker", "migrate"] {
        let output = std::process::Command::new(binary(name))
            .arg("--help")
            .env("DATABASE_URL", "mysql://u:s3cr3t-db@127.0.0.1:1/db")
            .env("AMQP_URL", "amqp://u:s3cr3t-mq@127.0.0.1:1/%2f")
            .env("REDIS_URL", "redis://:s3cr3t-redis@127.0.0.1:1")
            .env("ADMIN_TOKEN", "s3cr3t-admin")
            .output()
            .expect("run --help");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("DATABASE_URL"), "{name} --help: {text}");
        assert!(
            !text.contains("s3cr3t"),
            "{name} --help prints a secret: {text}"
        );
    }
}

/// Each kind of refusal has its own problem type, and the type is a page
/// the api serves.
#[tokio::test]
async fn refusals_have_distinct_documented_problem_types() {
    let app = TestApp::spawn_with(Options {
        env: [("SALES_PAUSED", "true".to_owned())].into(),
        ..Options::default()
    })
    .await;
    let problem = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        (status, body["type"].as_str().unwrap_or_default().to_owned())
    };
    let paused = problem(
        app.http
            .post(app.url("/events/1/reserve"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let invalid = problem(
        app.http
            .post(app.url("/events/1/reserve"))
            .json(&json!({"quantity": 0}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let missing = problem(
        app.http
            .get(app.url("/events/987654/tickets"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(paused.0, 503);
    assert!(paused.1.ends_with("/sales-paused"), "{paused:?}");
    assert_eq!(invalid.0, 422);
    assert!(invalid.1.ends_with("/validation"), "{invalid:?}");
    assert_eq!(missing.0, 404);
    assert!(missing.1.ends_with("/not-found"), "{missing:?}");

    let started = Instant::now();
    for (_, kind) in [paused, invalid, missing] {
        let page = app.http.get(app.url(&kind)).send().await.unwrap();
        assert_eq!(page.status(), 200, "{kind} is not served");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
