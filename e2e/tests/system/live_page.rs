//! The live page (`/live/{id}`) and its Server-Sent Events stream
//! (`/events/{id}/live`): the count a browser shows follows reservations
//! as the workers announce them, the stream is bounded (a cap on open
//! streams, ends on shutdown), and bad requests are problems.

use std::{
    collections::BTreeMap,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use testkit::app::{Options, TestApp};

use crate::browser::{Browser, PATIENCE};

/// A `text/event-stream` answer, read one event at a time.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    async fn open(url: &str) -> Self {
        // No overall timeout: the stream is meant to stay open; each read
        // below is bounded instead.
        let response = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .expect("GET the stream");
        assert_eq!(response.status(), 200, "{url}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("an ASCII content type");
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event's name and data (comments are skipped), or `None`
    /// when the stream ended; panics when nothing comes for [`PATIENCE`].
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|line| line.strip_prefix(name))
                        .map(|value| value.trim_start().to_owned())
                };
                if let Some(data) = field("data:") {
                    let data = serde_json::from_str(&data).expect("JSON data");
                    return Some((field("event:").unwrap_or_default(), data));
                }
                continue;
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("nothing on the stream for {PATIENCE:?}"));
            match chunk {
                Ok(Some(bytes)) => self
                    .buffer
                    .push_str(std::str::from_utf8(&bytes).expect("UTF-8")),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Reads events until one shows `tickets`; returns it.
    async fn await_tickets(&mut self, tickets: i64) -> Value {
        loop {
            let (name, update) = self
                .next()
                .await
                .unwrap_or_else(|| panic!("the stream ended before showing {tickets} tickets"));
            assert_eq!(name, "tickets");
            if update["tickets"] == tickets {
                return update;
            }
        }
    }
}

async fn reserve(app: &TestApp, event: i64, quantity: i64) {
    let (status, body) = app
        .reserve(event, Some(json!({"quantity": quantity})))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_live_page_follows_reservations_in_a_browser() {
    let app = TestApp::spawn().await;
    let event = app.create_event(20).await;
    let browser = Browser::start().await;
    browser
        .client
        .goto(&app.url(&format!("/live/{event}")))
        .await
        .expect("open the live page");

    browser.await_text("tickets", "20").await;
    browser.await_text("state", "live").await;
    assert_eq!(browser.text("name").await, "Test event");
    assert_eq!(browser.text("capacity").await, "20");
    assert_eq!(browser.text("rate").await, "0.0");

    reserve(&app, event, 3).await;
    browser.await_text("tickets", "17").await;
    reserve(&app, event, 2).await;
    browser.await_text("tickets", "15").await;
    // 5 tickets within the 5 s window: 1 ticket/s until the window passes.
    let rate: f64 = browser.text("rate").await.parse().expect("a number");
    assert!(rate > 0.0, "the page shows a pace of {rate} after a sale");
    browser.stop().await;
}

#[tokio::test]
async fn the_stream_sends_the_count_then_each_change() {
    let app = TestApp::spawn().await;
    let event = app.create_event(10).await;
    let mut stream = EventStream::open(&app.url(&format!("/events/{event}/live"))).await;

    let (name, first) = stream.next().await.expect("a first event");
    assert_eq!(name, "tickets");
    assert_eq!(
        first,
        json!({"event_id": event, "name": "Test event", "capacity": 10, "tickets": 10, "rate_per_sec": 0.0})
    );

    reserve(&app, event, 4).await;
    let update = stream.await_tickets(6).await;
    assert_eq!(update["rate_per_sec"], 0.8, "4 tickets over 5 s: {update}");
    reserve(&app, event, 6).await;
    stream.await_tickets(0).await;
    // A refused reservation changes nothing: the next event is the pace
    // falling once the window has passed, with the count still at 0.
    let (status, body) = app.reserve(event, None).await;
    assert_eq!(status, 409, "{body}");
    let (_, later) = stream.next().await.expect("the pace falls");
    assert_eq!(later["tickets"], 0, "{later}");
}

#[tokio::test]
async fn bad_requests_unknown_events_and_too_many_streams_are_refused() {
    let app = TestApp::spawn_with(Options {
        env: BTreeMap::from([("LIVE_MAX_STREAMS", "1".to_owned())]),
        ..Options::default()
    })
    .await;
    for (path, status, kind) in [
        ("/live/999999", 404, "/problems/not-found"),
        ("/events/999999/live", 404, "/problems/not-found"),
        ("/live/abc", 400, "/problems/malformed-request"),
        ("/events/abc/live", 400, "/problems/malformed-request"),
    ] {
        let response = app.http.get(app.url(path)).send().await.expect("GET");
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let body: Value = response.json().await.expect("a problem");
        assert_eq!(body["type"], kind, "{path}: {body}");
    }

    let event = app.create_event(5).await;
    let url = app.url(&format!("/events/{event}/live"));
    let mut open = EventStream::open(&url).await;
    open.await_tickets(5).await;
    let refused = app.http.get(&url).send().await.expect("GET");
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.expect("a problem");
    assert_eq!(body["type"], "/problems/overloaded", "{body}");
    // The page itself is no stream: it is still served.
    let page = app
        .http
        .get(app.url(&format!("/live/{event}")))
        .send()
        .await
        .expect("GET the page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("the page");
    assert!(
        html.contains("EventSource"),
        "the page listens to the stream"
    );
}

#[tokio::test]
async fn open_streams_end_as_the_api_shuts_down() {
    let app = TestApp::spawn().await;
    let event = app.create_event(5).await;
    let mut stream = EventStream::open(&app.url(&format!("/events/{event}/live"))).await;
    stream.await_tickets(5).await;

    let (api, _) = app.pids();
    let sent = Command::new("kill")
        .args(["-TERM", &api.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let asked = Instant::now();
    assert!(stream.next().await.is_none(), "an event after shutdown");
    // Well within the 10 s the server gives open requests to finish: the
    // stream ended, it was not cut at the end of the drain.
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the stream ended after {took:?}"
    );
}
