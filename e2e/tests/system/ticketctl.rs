//! `ticketctl` run as a process against a deployment, as an operator runs
//! it: its JSON output is what is checked.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::{
    app::{TestApp, binary, env},
    receiver::{Behaviour, Receiver},
};

use super::{clients::create_client, webhooks::fast_webhooks};

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        assert!(self.ok, "ticketctl failed: {}", self.stderr);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// `ticketctl --output json ARGS` against `app`, as `token`.
async fn ticketctl_as(app: &TestApp, token: &str, args: &[&str]) -> Run {
    let output = tokio::process::Command::new(binary("ticketctl"))
        .env_clear()
        .env("TICKETCTL_URL", &app.base)
        .env("TICKETCTL_TOKEN", token)
        .args(["--output", "json"])
        .args(args)
        .output()
        .await
        .expect("run ticketctl");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn ticketctl(app: &TestApp, args: &[&str]) -> Value {
    ticketctl_as(app, &env("ADMIN_TOKEN"), args).await.json()
}

#[tokio::test]
async fn events_and_reservations_are_administered_from_the_command_line() {
    let app = TestApp::spawn().await;
    let created = ticketctl(
        &app,
        &["events", "create", "--name", "Gala", "--capacity", "5"],
    )
    .await;
    assert_eq!(
        (created["name"].as_str(), created["capacity"].as_i64()),
        (Some("Gala"), Some(5))
    );
    let id = created["id"].as_i64().unwrap().to_string();

    let listed = ticketctl(&app, &["events", "list", "--all", "--limit", "1"]).await;
    let ids: Vec<i64> = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [1, created["id"].as_i64().unwrap()],
        "the demo event and ours, over two pages"
    );
    assert_eq!(
        ticketctl(&app, &["events", "update", &id, "--capacity", "8"]).await["capacity"],
        8
    );

    let event = created["id"].as_i64().unwrap();
    let mut reserved = Vec::new();
    for _ in 0..3 {
        let (status, body) = app.reserve(event, None).await;
        assert_eq!(status, 200);
        reserved.push(body["reservation_id"].as_str().unwrap().to_owned());
    }
    let page = ticketctl(
        &app,
        &["reservations", "list", "--event", &id, "--limit", "2"],
    )
    .await;
    assert_eq!(page["reservations"].as_array().unwrap().len(), 2);
    assert!(page["next_after"].is_string());
    let all = ticketctl(
        &app,
        &[
            "reservations",
            "list",
            "--event",
            &id,
            "--limit",
            "2",
            "--all",
        ],
    )
    .await;
    let walked: Vec<&str> = all["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reservation_id"].as_str().unwrap())
        .collect();
    assert_eq!(walked, reserved);
    assert!(all["next_after"].is_null());

    let shown = ticketctl(&app, &["reservations", "show", &reserved[0]]).await;
    assert_eq!(shown["status"], "confirmed");
    let cancelled = ticketctl(&app, &["reservations", "cancel", &reserved[0]]).await;
    assert_eq!(cancelled["status"], "cancelled");
    let confirmed = ticketctl(
        &app,
        &[
            "reservations",
            "list",
            "--event",
            &id,
            "--status",
            "confirmed",
        ],
    )
    .await;
    assert_eq!(confirmed["reservations"].as_array().unwrap().len(), 2);

    let file = std::env::temp_dir().join(format!("ticketctl-export-{}.jsonl", app.namespace));
    let exported = ticketctl(
        &app,
        &[
            "reservations",
            "export",
            "--event",
            &id,
            "--file",
            file.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(exported["exported"], 3);
    let lines = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).ok();
    let rows: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["event_id"] == event));

    let plan = ticketctl(&app, &["reservations", "cancel-all", "--event", &id]).await;
    assert_eq!(
        (plan["would_cancel"].as_i64(), plan["cancelled"].as_i64()),
        (Some(2), Some(0))
    );
    let done = ticketctl(
        &app,
        &["reservations", "cancel-all", "--event", &id, "--yes"],
    )
    .await;
    assert_eq!(done["cancelled"], 2);
    assert_eq!(done["failed"], json!([]));
    assert_eq!(
        ticketctl(&app, &["events", "show", &id]).await["remaining_tickets"],
        8
    );

    let closed = ticketctl(&app, &["events", "close", &id]).await;
    assert!(closed["sale_closes_at"].is_string());
    assert_eq!(app.reserve(event, None).await.0, 403);
}

#[tokio::test]
async fn clients_settings_pauses_and_watch_from_the_command_line() {
    let app = TestApp::spawn().await;
    let event = app.create_event(10).await;
    let id = event.to_string();

    let client = ticketctl(&app, &["clients", "create", "--name", "Shop"]).await;
    assert!(client["api_key"].as_str().unwrap().starts_with("tk_"));
    let listed = ticketctl(&app, &["clients", "list"]).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let client_id = client["id"].as_i64().unwrap().to_string();
    let revoked = ticketctl(&app, &["clients", "revoke", &client_id]).await;
    assert!(revoked["revoked_at"].is_string());

    let refused = ticketctl_as(
        &app,
        &env("ADMIN_TOKEN"),
        &["settings", "set", "max_quantity", "0"],
    )
    .await;
    assert!(
        !refused.ok && refused.stderr.contains("(422)"),
        "{}",
        refused.stderr
    );
    let set = ticketctl(&app, &["settings", "set", "max_quantity", "3"]).await;
    assert_eq!(
        (set["effective"].as_str(), set["default"].as_str()),
        (Some("3"), Some("10"))
    );
    let all = ticketctl(&app, &["settings", "show"]).await;
    assert!(
        all["settings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "max_quantity" && s["override"] == "3")
    );
    assert_eq!(
        ticketctl(&app, &["settings", "unset", "max_quantity"]).await["effective"],
        "10"
    );

    let paused = ticketctl(&app, &["events", "pause", &id]).await;
    assert_eq!(paused["paused"], true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.reserve(event, None).await.0 != 503 {
        assert!(
            Instant::now() < deadline,
            "the pause did not apply within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let view = ticketctl(&app, &["watch", &id, "--once"]).await;
    assert_eq!(
        (view["paused"].as_bool(), view["capacity"].as_i64()),
        (Some(true), Some(10))
    );
    assert_eq!(
        ticketctl(&app, &["events", "resume", &id]).await["paused"],
        false
    );
    let view = ticketctl(&app, &["watch", &id, "--once"]).await;
    assert_eq!(view["paused"], false);
    assert_eq!(
        view["taken"].as_i64().unwrap() + view["remaining_tickets"].as_i64().unwrap(),
        10
    );

    let anonymous = ticketctl_as(&app, "", &["clients", "list"]).await;
    assert!(
        !anonymous.ok && anonymous.stderr.contains("(401)"),
        "{}",
        anonymous.stderr
    );
    let missing = ticketctl_as(&app, &env("ADMIN_TOKEN"), &["events", "pause", "999999"]).await;
    assert!(
        !missing.ok && missing.stderr.contains("(404)"),
        "{}",
        missing.stderr
    );

    let script = tokio::process::Command::new(binary("ticketctl"))
        .args(["completions", "bash"])
        .output()
        .await
        .unwrap();
    assert!(script.status.success());
    assert!(String::from_utf8_lossy(&script.stdout).contains("ticketctl"));
}

#[tokio::test]
async fn webhooks_are_registered_watched_and_replayed_from_the_command_line() {
    let app = TestApp::spawn_with(fast_webhooks(&[("WEBHOOK_MAX_ATTEMPTS", "1")])).await;
    let receiver = Receiver::start(Behaviour {
        fail_all: true,
        ..Behaviour::default()
    })
    .await;
    let (client, key) = create_client(&app, "shop").await;
    let client_arg = client.to_string();
    let added = ticketctl(&app, &["webhooks", "add", &client_arg, &receiver.url]).await;
    assert!(
        added["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")),
        "{added}"
    );
    let endpoint = added["id"].as_i64().expect("endpoint id").to_string();
    let listed = ticketctl(&app, &["webhooks", "list", "--client", &client_arg]).await;
    assert_eq!(listed[0]["url"], receiver.url.as_str(), "{listed}");

    let event = app.create_event(5).await;
    let reserved = app
        .http
        .post(app.url(&format!("/events/{event}/reserve")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("reserve");
    assert_eq!(reserved.status(), 200);
    // One attempt, refused: the delivery fails.
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let page = ticketctl(
            &app,
            &["webhooks", "deliveries", "--status", "failed", "--all"],
        )
        .await;
        if page["deliveries"].as_array().is_some_and(|d| d.len() == 1) {
            break page["deliveries"][0].clone();
        }
        assert!(Instant::now() < deadline, "no failed delivery: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(failed["last_status"], 500, "{failed}");
    let message = failed["message_id"].as_str().expect("message id");
    let shown = ticketctl(&app, &["webhooks", "show", message]).await;
    assert_eq!(shown["payload"]["type"], "reservation.confirmed", "{shown}");

    receiver.set(Behaviour::default());
    let replayed = ticketctl(&app, &["webhooks", "replay", "--endpoint", &endpoint]).await;
    assert_eq!(replayed["replayed"], 1, "{replayed}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.accepted().len() != 1 {
        assert!(Instant::now() < deadline, "the replay was never delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let removed = ticketctl_as(
        &app,
        &env("ADMIN_TOKEN"),
        &["webhooks", "remove", &endpoint],
    )
    .await;
    assert!(removed.ok, "{}", removed.stderr);
    let listed = ticketctl(&app, &["webhooks", "list"]).await;
    assert!(listed[0]["disabled_at"].is_string(), "{listed}");
}

#[tokio::test]
async fn the_watch_view_counts_the_commands_waiting_in_the_events_queue() {
    let mut app = TestApp::spawn_with(testkit::app::Options {
        workers: 0,
        ..Default::default()
    })
    .await;
    let event = app.create_event(10).await;
    let id = event.to_string();
    // No worker yet: accepted commands wait in the event's partition.
    for _ in 0..3 {
        let response = app
            .http
            .post(app.url(&format!("/events/{event}/reserve?wait=false")))
            .send()
            .await
            .expect("reserve");
        assert_eq!(response.status(), 202);
    }
    let queued = |view: &Value| view["queued"].as_u64();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let view = ticketctl(&app, &["watch", &id, "--once"]).await;
        if queued(&view) == Some(3) {
            break;
        }
        assert!(Instant::now() < deadline, "{view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.add_worker();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = ticketctl(&app, &["watch", &id, "--once"]).await;
        if queued(&view) == Some(0) && view["remaining_tickets"] == 7 {
            break;
        }
        assert!(Instant::now() < deadline, "{view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
