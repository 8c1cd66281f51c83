//! The storefront example (`examples/storefront.py`, the flow of
//! docs/INTEGRATION.md) run as a buyer would run it, against the real
//! servers: so the guide's client keeps working as the api changes.

use std::process::Command;

use serde_json::{Value, json};
use shared::messages::ReservationStatus;
use testkit::{app::TestApp, invariants};

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
