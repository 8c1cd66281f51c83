//! One id follows a request from the HTTP answer to the worker that
//! decided it, and so does the client's W3C trace (`traceparent`), read
//! from the structured (JSON) log, not from its wording.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

use testkit::app::{Options, TestApp};

/// A client's W3C trace context, and the trace it names.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn the_request_id_and_trace_reach_the_workers_log_line_for_its_reservation() {
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
        .header("traceparent", TRACEPARENT)
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
            assert_eq!(line["fields"]["trace_id"], TRACE_ID, "{line}");
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

/// What a stand-in OTLP collector received: each request's path and body.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A stand-in OTLP/HTTP collector on a free port: answers every request
/// 200 and keeps what it got. Returns its base URL.
async fn collector(received: Received) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let received = received.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                // One request after another on a kept-alive connection.
                loop {
                    let mut head = String::new();
                    let mut line = String::new();
                    while stream.read_line(&mut line).await.unwrap_or(0) > 2 {
                        head.push_str(&line);
                        line.clear();
                    }
                    let Some(path) = head.split_whitespace().nth(1).map(str::to_owned) else {
                        return;
                    };
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    if stream.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    received.lock().unwrap().push((path, body));
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if stream.get_mut().write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    base
}

#[tokio::test]
async fn with_an_otlp_endpoint_the_api_and_the_worker_export_spans_of_the_clients_trace() {
    let received = Received::default();
    let endpoint = collector(received.clone()).await;
    let otlp = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        // Export within 100 ms instead of the default 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ];
    let mut app = TestApp::spawn_with(Options {
        workers: 0,
        env: otlp.iter().cloned().collect(),
    })
    .await;
    app.add_worker_with(&otlp, None);
    let event = app.create_event(5).await;
    let response = app
        .http
        .post(app.url(&format!("/events/{event}/reserve")))
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // OTLP/protobuf carries the trace id as its 16 bytes; the span names
    // tell the api's request span from the worker's decision.
    let trace_id: Vec<u8> = (0..TRACE_ID.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&TRACE_ID[i..i + 2], 16).unwrap())
        .collect();
    let has = |body: &[u8], part: &[u8]| body.windows(part.len()).any(|w| w == part);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (api, worker) = {
            let received = received.lock().unwrap();
            let ours = |name: &[u8]| {
                received.iter().any(|(path, body)| {
                    path == "/v1/traces" && has(body, &trace_id) && has(body, name)
                })
            };
            (ours(b"request"), ours(b"decide"))
        };
        if api && worker {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "spans of the client's trace not exported (api: {api}, worker: {worker})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
