//! What a newcomer meets on a stock start: no rate limit tripped by one
//! host's load test, and no secret in `--help`. (Problem types and the
//! admin switch are tested in-process, in `api/tests/http`.)

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
