//! Command partitions: workers share them out, and partitions move while
//! workers join and die under load without a command lost or decided
//! twice. Which worker consumes what is read from the structured (JSON)
//! log, not from its wording.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::Value;
use shared::messages::ReservationStatus;
use testkit::{
    app::{COMMAND_PARTITIONS, Options, TestApp},
    invariants,
};

use crate::metrics::{sample, scrape};

/// The partitions a worker last said it consumes, from its JSON log.
fn assigned(log: &Path) -> Option<BTreeSet<u16>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let line = text
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["fields"]["message"] == "command partitions assigned")?;
    let list = line["fields"]["partitions"].as_str()?;
    Some(list.split(',').filter_map(|p| p.parse().ok()).collect())
}

/// Batches a worker decided, from its JSON log.
fn batches(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "batch decided")
        .count()
}

fn add_logged_worker(app: &mut TestApp, name: &str) -> PathBuf {
    let log = std::env::temp_dir().join(format!("{}-{name}.log", app.namespace));
    app.add_worker_with(
        &[
            ("LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "worker=info".to_owned()),
        ],
        Some(&log),
    );
    log
}

/// Waits until the workers of `logs` say they consume disjoint sets of
/// partitions that together cover every partition.
async fn wait_shared_out(logs: &[&Path]) -> Vec<BTreeSet<u16>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let shares: Vec<BTreeSet<u16>> = logs
            .iter()
            .map(|log| assigned(log).unwrap_or_default())
            .collect();
        let total: usize = shares.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<u16> = shares.iter().flatten().copied().collect();
        if total == usize::from(COMMAND_PARTITIONS)
            && union.len() == total
            && shares.iter().all(|share| !share.is_empty())
        {
            return shares;
        }
        assert!(
            Instant::now() < deadline,
            "partitions not shared out among {} workers: {shares:?}",
            logs.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn reserve_async(app: &TestApp, events: &[i64], count: usize) -> Vec<(u16, Value)> {
    // 64 at a time: a load, not a connection storm.
    let answers: Vec<_> = futures::stream::iter((0..count).map(|i| {
        let event = events[i % events.len()];
        app.http
            .post(app.url(&format!("/events/{event}/reserve?wait=false")))
            .send()
    }))
    .buffer_unordered(64)
    .collect()
    .await;
    let mut acknowledged = Vec::new();
    for response in answers {
        let response = response.expect("POST reserve");
        assert_eq!(response.status(), 202);
        acknowledged.push((202, response.json::<Value>().await.expect("json")));
    }
    acknowledged
}

async fn decided(app: &TestApp, events: &[i64]) -> usize {
    let mut total = 0;
    for event in events {
        let snapshot = invariants::snapshot(&app.db, *event).await;
        total += snapshot.reservations.len() - snapshot.count(ReservationStatus::Pending);
    }
    total
}

#[tokio::test]
async fn partitions_move_as_workers_join_and_die_and_every_command_is_decided_once() {
    let mut app = TestApp::spawn_with(Options {
        workers: 0,
        env: [("BATCH_SIZE", "8".to_owned())].into(),
    })
    .await;
    let mut events = Vec::new();
    for _ in 0..8 {
        events.push(app.create_event(90).await);
    }
    let first = add_logged_worker(&mut app, "first");
    wait_shared_out(&[&first]).await;
    let mut acknowledged = reserve_async(&app, &events, 400).await;

    // Two workers join while the first is deciding: partitions move to them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while decided(&app, &events).await < 40 {
        assert!(
            Instant::now() < deadline,
            "the first worker made no progress"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = add_logged_worker(&mut app, "second");
    let third = add_logged_worker(&mut app, "third");
    wait_shared_out(&[&first, &second, &third]).await;
    // Counted before the next 400 are sent: three workers can decide them
    // all before a count taken afterwards (a sold-out event rejects
    // fast), which would leave fewer than 40 to wait for.
    let progress = decided(&app, &events).await;
    acknowledged.extend(reserve_async(&app, &events, 400).await);

    // One of them dies with its partitions' commands in flight; another
    // takes its place.
    let deadline = Instant::now() + Duration::from_secs(30);
    while decided(&app, &events).await < progress + 40 {
        assert!(Instant::now() < deadline, "no progress with three workers");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    app.workers[1].kill().expect("SIGKILL the second worker");
    app.workers[1].wait().expect("reap it");
    let fourth = add_logged_worker(&mut app, "fourth");
    acknowledged.extend(reserve_async(&app, &events, 400).await);
    wait_shared_out(&[&first, &third, &fourth]).await;

    let total = acknowledged.len();
    let deadline = Instant::now() + Duration::from_secs(90);
    while decided(&app, &events).await < total {
        assert!(Instant::now() < deadline, "acknowledged commands were lost");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every event's invariants, then every answer against the rows of all
    // events at once (an answer does not say its event).
    let mut all = std::collections::HashMap::new();
    for event in &events {
        let snapshot = invariants::check(&app.db, *event).await;
        assert_eq!(snapshot.count(ReservationStatus::Confirmed), 90);
        all.extend(snapshot.reservations);
    }
    assert_eq!(all.len(), total, "one row per acknowledged command");
    let snapshot = invariants::Snapshot {
        reservations: all,
        ..invariants::snapshot(&app.db, events[0]).await
    };
    invariants::check_responses(&snapshot, &acknowledged);
    for (name, log) in [("second", &second), ("third", &third), ("fourth", &fourth)] {
        assert!(batches(log) > 0, "the {name} worker never decided a batch");
    }
}

/// Two events of one partition, reserved at once, are decided in batches
/// that carry both. Their locks stay with the partition's worker across
/// those batches: one etcd lock each, not one per batch (an unlock and a
/// lock, two raft writes, for every event of every batch).
#[tokio::test]
async fn a_partition_keeps_its_events_locks_across_batches_that_carry_both() {
    let mut app = TestApp::spawn_with(Options {
        workers: 0,
        env: [("BATCH_SIZE", "16".to_owned())].into(),
    })
    .await;
    let topology = shared::topology::Topology::new("any", 1, COMMAND_PARTITIONS);
    let first = app.create_event(1_000).await;
    let mut second = app.create_event(1_000).await;
    while topology.partition_of(second) != topology.partition_of(first) {
        second = app.create_event(1_000).await;
    }
    app.add_worker();
    app.wait_worker_ready(0).await;
    let events = [first, second];
    let acknowledged = reserve_async(&app, &events, 400).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while decided(&app, &events).await < acknowledged.len() {
        assert!(Instant::now() < deadline, "acknowledged commands were lost");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for event in events {
        let snapshot = invariants::check(&app.db, event).await;
        assert_eq!(snapshot.count(ReservationStatus::Confirmed), 200);
    }
    let text = scrape(&app, &app.worker_ports[0]).await;
    let batches = sample(&text, "tickets_batch_size_count", &[]);
    let locks = sample(&text, "tickets_lock_acquisitions_total", &[]);
    // 400 commands in batches of at most 16.
    assert!(batches >= 25.0, "{batches} batches");
    assert!(
        locks <= 4.0,
        "{locks} etcd locks taken for {batches} batches of the same two events"
    );
}
