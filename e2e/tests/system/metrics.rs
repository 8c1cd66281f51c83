//! The api's and a worker's Prometheus metrics move by what the requests
//! did: scraped before and after a known sequence of reservations, read
//! from the text exposition as Prometheus would.

use std::time::{Duration, Instant};

use testkit::app::{Options, TestApp};

/// The sum of the samples of `name` whose labels include `labels` (0 when
/// there is none).
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let wanted = labels
                .iter()
                .all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\"")));
            (series_name == name && wanted).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

pub(crate) async fn scrape(app: &TestApp, base: &str) -> String {
    let response = app
        .http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.expect("metrics text")
}

#[tokio::test]
async fn counters_and_histograms_move_by_what_the_reservations_did() {
    let mut app = TestApp::spawn_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    app.add_worker();
    app.wait_worker_ready(0).await;
    let worker = app.worker_ports[0].clone();
    let health = app
        .http
        .get(format!("{worker}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let event = app.create_event(5).await;
    let api_before = scrape(&app, &app.base).await;
    let worker_before = scrape(&app, &worker).await;

    // 7 reservations of one ticket each, one after the other: 5 confirmed,
    // then 2 rejected.
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(app.reserve(event, None).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 409, 409]);
    for _ in 0..3 {
        assert_eq!(app.tickets(event).await, 0);
    }
    let missing = app
        .http
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // One message that is not a command, one the database refuses (no
    // such user): both dead-lettered.
    app.publish_raw(event, b"not a command").await;
    let refused = format!(
        r#"{{"v":1,"type":"reserve","reservation_id":"{}","event_id":{event},"quantity":1,"user_id":987654321}}"#,
        uuid::Uuid::new_v4()
    );
    app.publish_raw(event, refused.as_bytes()).await;
    assert_eq!(app.dead_letters(2, Duration::from_secs(20)).await.len(), 2);

    let api = scrape(&app, &app.base).await;
    let worker_after = scrape(&app, &worker).await;
    let api_delta = |name: &str, labels: &[(&str, &str)]| {
        sample(&api, name, labels) - sample(&api_before, name, labels)
    };
    let worker_delta = |name: &str, labels: &[(&str, &str)]| {
        sample(&worker_after, name, labels) - sample(&worker_before, name, labels)
    };

    // The api: requests by route template and status, not by raw path.
    let reserve = "/events/{id}/reserve";
    let requests = "tickets_http_requests_total";
    let post = [("method", "POST"), ("route", reserve)];
    assert_eq!(
        api_delta(requests, &[post[0], post[1], ("status", "200")]),
        5.0
    );
    assert_eq!(
        api_delta(requests, &[post[0], post[1], ("status", "409")]),
        2.0
    );
    assert_eq!(
        api_delta(
            "tickets_http_request_duration_seconds_count",
            &[post[0], post[1], ("status", "200")]
        ),
        5.0
    );
    assert!(
        api_delta(
            "tickets_http_request_duration_seconds_sum",
            &[post[0], post[1]]
        ) > 0.0
    );
    assert_eq!(
        api_delta(requests, &[("route", "unmatched"), ("status", "404")]),
        1.0
    );
    assert!(
        !api.contains(&format!("/events/{event}/")),
        "a raw path became a label:\n{api}"
    );
    assert_eq!(
        api_delta(
            requests,
            &[("route", "/events/{id}/tickets"), ("status", "200")]
        ),
        3.0
    );
    // Every availability read came from one of the three sources.
    assert_eq!(api_delta("tickets_availability_reads_total", &[]), 3.0);
    assert_eq!(
        api_delta("tickets_commands_published_total", &[("result", "queued")]),
        7.0
    );
    assert_eq!(sample(&api, "tickets_waiters", &[]), 0.0);

    // The worker: decisions by state, batches, locks, dead letters.
    let decisions = "tickets_decisions_total";
    assert_eq!(worker_delta(decisions, &[("status", "confirmed")]), 5.0);
    assert_eq!(worker_delta(decisions, &[("status", "rejected")]), 2.0);
    assert_eq!(worker_delta(decisions, &[]), 7.0, "{worker_after}");
    let batches = worker_delta("tickets_batch_size_count", &[]);
    assert!(
        batches >= 3.0,
        "at least one batch per reserve and per poison"
    );
    assert_eq!(worker_delta("tickets_batch_size_sum", &[]), 9.0);
    assert!(worker_delta("tickets_decide_duration_seconds_count", &[]) >= 8.0);
    assert!(worker_delta("tickets_lock_acquisitions_total", &[]) >= 1.0);
    assert_eq!(
        worker_delta("tickets_dead_lettered_total", &[("reason", "unparseable")]),
        1.0
    );
    assert_eq!(
        worker_delta("tickets_dead_lettered_total", &[("reason", "refused")]),
        1.0
    );
    assert_eq!(
        sample(&worker_after, "tickets_fencing_rejections_total", &[]),
        0.0
    );

    // Sampled every 5 s: the event's tickets left, the partitions owned
    // (all of them, as the only worker) and their depth.
    let event_label = event.to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(&app, &worker).await;
        // One sample sets these one after the other.
        let shown = text.contains(&format!("tickets_available{{event_id=\"{event}\"}}"))
            && text.contains("tickets_command_queue_depth{partition=\"3\"}");
        if shown {
            assert_eq!(
                sample(&text, "tickets_available", &[("event_id", &event_label)]),
                0.0
            );
            assert_eq!(sample(&text, "tickets_partitions_owned", &[]), 4.0);
            assert!(
                text.contains("tickets_command_queue_depth{partition=\"0\"}"),
                "{text}"
            );
            assert_eq!(sample(&text, "tickets_command_queue_depth", &[]), 0.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no tickets_available for event {event}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
