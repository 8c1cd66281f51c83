//! Hostile clients: one that sends too fast, one with huge or too many
//! headers, one that sends its request slowly. Each gets a bounded answer
//! and none changes anything.

use std::time::{Duration, Instant};

use futures::future::join_all;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use shared::{entities::reservation, messages::ReservationStatus};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use testkit::app::{Options, TestApp};

/// Bound on every wait in this file: far above the timeouts under test.
const PATIENCE: Duration = Duration::from_secs(10);

async fn spawn_with(env: &[(&'static str, &str)]) -> TestApp {
    TestApp::spawn_with(Options {
        workers: 1,
        env: env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
    })
    .await
}

async fn reservations(app: &TestApp) -> u64 {
    reservation::Entity::find().count(&app.db).await.unwrap()
}

async fn decided(app: &TestApp) -> u64 {
    reservation::Entity::find()
        .filter(reservation::Column::Status.ne(ReservationStatus::Pending))
        .count(&app.db)
        .await
        .unwrap()
}

/// Sends `n` async reserves at once, as the client `client_ip` when given,
/// and returns their statuses with the `Retry-After` of each 429.
async fn burst(app: &TestApp, n: usize, client_ip: Option<&str>) -> Vec<(u16, Option<u64>)> {
    let requests = (0..n).map(|_| {
        let mut request = app.http.post(app.url("/events/1/reserve?wait=false"));
        if let Some(ip) = client_ip {
            request = request.header("x-real-ip", ip);
        }
        async move {
            let response = request.send().await.unwrap();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            let status = response.status().as_u16();
            if status == 429 {
                let problem: serde_json::Value = response.json().await.unwrap();
                assert_eq!(problem["type"], "/problems/rate-limited");
            }
            (status, retry_after)
        }
    });
    join_all(requests).await
}

#[tokio::test]
async fn a_client_over_its_reserve_budget_gets_429_and_others_do_not() {
    let app = spawn_with(&[
        ("RESERVE_RATE_LIMIT_PER_SEC", "1"),
        ("RESERVE_RATE_LIMIT_BURST", "5"),
        ("CLIENT_IP_HEADER", "x-real-ip"),
    ])
    .await;

    let greedy = burst(&app, 20, Some("10.0.0.1")).await;
    let accepted = greedy.iter().filter(|(s, _)| *s == 202).count();
    let limited: Vec<_> = greedy.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(accepted + limited.len(), 20, "only 202 or 429: {greedy:?}");
    // The burst, plus at most what one second of refill adds while the
    // requests are in flight.
    assert!((5..=7).contains(&accepted), "{greedy:?}");
    assert!(limited.iter().all(|(_, retry)| matches!(retry, Some(1..))));

    // Another client behind the same proxy, and the peer address itself,
    // have budgets of their own.
    let other = burst(&app, 5, Some("10.0.0.2")).await;
    assert!(other.iter().all(|(s, _)| *s == 202), "{other:?}");
    let direct = burst(&app, 5, None).await;
    assert!(direct.iter().all(|(s, _)| *s == 202), "{direct:?}");

    // A limited request queued nothing: only the accepted ones have rows,
    // and once they are decided, only they took tickets.
    let queued = (accepted + 10) as u64;
    let deadline = Instant::now() + PATIENCE;
    while decided(&app).await < queued && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(decided(&app).await, queued);
    assert_eq!(reservations(&app).await, queued);
    assert_eq!(app.tickets(1).await, 100 - queued as i64);
}

#[tokio::test]
async fn oversized_or_too_many_headers_get_431() {
    let app = spawn_with(&[("MAX_HEADER_BYTES", "8192"), ("MAX_HEADERS", "32")]).await;
    let before = reservations(&app).await;

    let huge = app
        .http
        .post(app.url("/events/1/reserve"))
        .header("x-padding", "a".repeat(10_000))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status().as_u16(), 431);

    let mut many = app.http.post(app.url("/events/1/reserve"));
    for i in 0..40 {
        many = many.header(format!("x-h{i}"), "1");
    }
    assert_eq!(many.send().await.unwrap().status().as_u16(), 431);

    // Within the limits, the same request goes through.
    let fine = app
        .http
        .post(app.url("/events/1/reserve"))
        .header("x-padding", "a".repeat(4_000))
        .send()
        .await
        .unwrap();
    assert_eq!(fine.status().as_u16(), 200);
    assert_eq!(reservations(&app).await, before + 1);
}

/// Opens a raw connection to the api, sends `bytes`, then reads until the
/// server closes; returns what it answered and how long it took.
async fn send_and_stall(app: &TestApp, bytes: &[u8]) -> (String, Duration) {
    let address = app.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    let started = Instant::now();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .expect("the server must close a stalled connection")
        .ok();
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_change_nothing() {
    let app = spawn_with(&[
        ("HEADER_READ_TIMEOUT_MS", "500"),
        ("BODY_READ_TIMEOUT_MS", "500"),
    ])
    .await;
    let before = reservations(&app).await;

    // A head that never ends: the connection is closed after the timeout.
    let (_, took) = send_and_stall(&app, b"POST /events/1/reserve HTTP/1.1\r\nHost: x\r\n").await;
    assert!(took >= Duration::from_millis(400), "closed after {took:?}");

    // A body that never completes: 408 with a problem document.
    let (answer, took) = send_and_stall(
        &app,
        b"POST /events/1/reserve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 20\r\n\r\n{\"quan",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request-timeout"), "{answer}");
    assert!(
        took >= Duration::from_millis(400),
        "answered after {took:?}"
    );

    assert_eq!(reservations(&app).await, before);
    assert_eq!(app.tickets(1).await, 100);
}
