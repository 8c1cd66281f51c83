//! The storefront example (`examples/storefront.py`, the flow of
//! docs/INTEGRATION.md) run as a buyer would run it, against the real
//! servers: so the guide's client keeps working as the api changes.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::{Value, json};
use shared::messages::ReservationStatus;
use testkit::{
    app::{TestApp, free_port},
    invariants,
};

use super::{clients::create_client, webhooks::fast_webhooks};

/// Runs the example with `args`; its steps, one JSON object each.
fn storefront(app: &TestApp, args: &[&str]) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/storefront.py");
    let output = Command::new("python3")
        .arg(script)
        .args(["--api", &app.base])
        .args(args)
        .output()
        .expect("run python3 examples/storefront.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON step"))
        .collect()
}

fn last(steps: &[Value]) -> &Value {
    steps.last().expect("at least one step")
}

#[tokio::test]
async fn the_storefront_example_holds_pays_and_confirms_or_releases() {
    let app = TestApp::spawn().await;
    let event = app.create_event(5).await;
    let id = event.to_string();

    let steps = storefront(&app, &["--event", &id, "--quantity", "2"]);
    let done = last(&steps);
    assert_eq!(done["outcome"], "confirmed", "{steps:?}");
    assert_eq!(steps[1]["reservation"]["status"], "held", "{steps:?}");
    let confirmed = done["reservation"]["reservation_id"]
        .as_str()
        .expect("an id");

    let steps = storefront(&app, &["--event", &id, "--fail-payment"]);
    assert_eq!(last(&steps)["outcome"], "released", "{steps:?}");

    let snapshot = invariants::check(&app.db, event).await;
    assert_eq!(snapshot.available, 3);
    let row = &snapshot.reservations[&confirmed.parse().expect("a uuid")];
    assert_eq!(
        (row.status, row.quantity),
        (ReservationStatus::Confirmed, 2)
    );
    assert_eq!(snapshot.count(ReservationStatus::Released), 1);
}

#[tokio::test]
async fn the_storefront_example_queues_a_buyer_when_sold_out() {
    let app = TestApp::spawn().await;
    let event = app.create_event(1).await;
    let (status, _) = app.reserve(event, Some(json!({"quantity": 1}))).await;
    assert_eq!(status, 200);
    let id = event.to_string();

    let steps = storefront(&app, &["--event", &id]);
    assert_eq!(last(&steps)["outcome"], "sold out", "{steps:?}");
    let steps = storefront(&app, &["--event", &id, "--wait-list"]);
    let done = last(&steps);
    assert_eq!(done["outcome"], "waiting", "{steps:?}");
    assert_eq!(done["entry"]["position"], 1, "{steps:?}");
}

/// The example receiver (`examples/webhook_receiver.py`) as the guide runs
/// it: it checks the real signatures and prints each change once.
#[tokio::test]
async fn the_webhook_receiver_example_verifies_and_prints_each_change() {
    let app = TestApp::spawn_with(fast_webhooks(&[])).await;
    let (client, key) = create_client(&app, "shop").await;
    let port = free_port();
    let (status, endpoint) = app
        .admin_post(
            &format!("/admin/clients/{client}/webhooks"),
            json!({"url": format!("http://127.0.0.1:{port}/hooks")}),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/webhook_receiver.py"
    );
    let mut receiver = Command::new("python3")
        .arg(script)
        .args(["--port", &port.to_string()])
        .env(
            "WEBHOOK_SECRET",
            endpoint["secret"].as_str().expect("secret"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run python3 examples/webhook_receiver.py");
    let (lines, printed) = mpsc::channel();
    let stdout = receiver.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });

    let event = app.create_event(5).await;
    let reserve = app
        .http
        .post(app.url(&format!("/events/{event}/reserve")))
        .bearer_auth(&key)
        .json(&json!({"hold": true, "quantity": 2}))
        .send()
        .await
        .expect("reserve");
    let held: Value = reserve.json().await.expect("json");
    let id = held["reservation_id"].as_str().expect("id").to_owned();
    let confirm = app
        .http
        .post(app.url(&format!("/reservations/{id}/confirm")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("confirm");
    assert_eq!(confirm.status(), 200);

    // Until the receiver is up, attempts fail and are retried.
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 2 {
        let line = printed
            .recv_timeout(Duration::from_secs(30))
            .expect("the receiver printed both changes within 30 s");
        let printed: Value = serde_json::from_str(&line).expect("a JSON line");
        assert_eq!(printed["data"]["reservation_id"], id.as_str(), "{printed}");
        assert_eq!(printed["data"]["quantity"], 2);
        assert!(
            seen.insert(printed["type"].as_str().unwrap_or_default().to_owned()),
            "printed twice: {printed}"
        );
    }
    assert_eq!(
        seen,
        ["reservation.confirmed", "reservation.held"]
            .map(str::to_owned)
            .into()
    );
    receiver.kill().ok();
    receiver.wait().ok();
}
