//! One id follows a request from the HTTP answer to the worker that
//! decided it, read from the structured (JSON) log, not from its wording.

use std::time::{Duration, Instant};

use serde_json::Value;

use testkit::app::{Options, TestApp};

#[tokio::test]
async fn the_request_id_reaches_the_workers_log_line_for_its_reservation() {
    let mut app = TestApp::spawn_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let log = std::env::temp_dir().join(format!("{}-worker.log", app.namespace));
    app.add_worker_with(
        &[
            ("LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "worker=debug".to_owned()),
        ],
        Some(&log),
    );
    let event = app.create_event(5).await;
    let response = app
        .http
        .post(app.url(&format!("/events/{event}/reserve")))
        .header("x-request-id", "trace-me-4711")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "trace-me-4711");
    let body: Value = response.json().await.unwrap();
    let id = body["reservation_id"].as_str().unwrap().to_owned();

    // Without one, the api makes one up, and answers with it.
    let other = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(other.headers().contains_key("x-request-id"));

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let found = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| {
                line["fields"]["message"] == "decided"
                    && line["fields"]["reservation_id"] == id.as_str()
            });
        if let Some(line) = found {
            assert_eq!(line["fields"]["request_id"], "trace-me-4711", "{line}");
            assert_eq!(line["fields"]["status"], "confirmed");
            assert_eq!(line["span"]["event_id"], event, "{line}");
            assert!(line["span"]["batch"].is_string(), "{line}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no decided line for {id}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::remove_file(&log).ok();
}
