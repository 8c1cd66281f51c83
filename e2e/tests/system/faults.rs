//! Faults: a worker killed mid-stream, a stale fencing token, Redis absent.

use std::time::{Duration, Instant};

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    Statement, TransactionTrait,
};
use serde_json::{Value, json};
use shared::{
    entities::reservation,
    messages::{Command, ReservationStatus},
};
use uuid::Uuid;
use worker::store::{DecideError, decide};

use testkit::{
    app::{Options, TestApp},
    invariants,
};

async fn decided_count(app: &TestApp, event: i64) -> u64 {
    reservation::Entity::find()
        .filter(reservation::Column::EventId.eq(event))
        .filter(reservation::Column::Status.ne(ReservationStatus::Pending))
        .count(&app.db)
        .await
        .expect("count")
}

#[tokio::test]
async fn worker_killed_mid_stream_loses_nothing_and_decides_nothing_twice() {
    let mut app = TestApp::spawn_with(Options {
        workers: 0,
        env: [("BATCH_SIZE", "4".to_owned())].into(),
    })
    .await;
    let event = app.create_event(150).await;
    let total = 300;
    let answers = futures::future::join_all((0..total).map(|_| {
        app.http
            .post(app.url(&format!("/events/{event}/reserve?wait=false")))
            .send()
    }))
    .await;
    let mut acknowledged = Vec::new();
    for response in answers {
        let response = response.unwrap();
        assert_eq!(response.status(), 202);
        acknowledged.push((202, response.json::<Value>().await.unwrap()));
    }

    app.add_worker();
    app.add_worker();
    let deadline = Instant::now() + Duration::from_secs(60);
    while decided_count(&app, event).await < 20 {
        assert!(Instant::now() < deadline, "workers made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before_kill = decided_count(&app, event).await;
    app.workers[0].kill().expect("SIGKILL worker");
    app.workers[0].wait().expect("reap worker");
    app.add_worker();
    assert!(
        before_kill < total,
        "the kill must land while commands are in flight"
    );

    let deadline = Instant::now() + Duration::from_secs(90);
    while decided_count(&app, event).await < total {
        assert!(Instant::now() < deadline, "acknowledged commands were lost");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let snapshot = invariants::check(&app.db, event).await;
    invariants::check_responses(&snapshot, &acknowledged);
    assert_eq!(snapshot.reservations.len(), total as usize);
    assert_eq!(snapshot.count(ReservationStatus::Confirmed), 150);
    assert_eq!(snapshot.count(ReservationStatus::Rejected), 150);
    assert_eq!(snapshot.available, 0);
}

fn reserve(event_id: i64, quantity: i32) -> Command {
    Command::Reserve {
        reservation_id: Uuid::now_v7(),
        event_id,
        quantity,
        user_id: None,
        client_id: 0,
        hold_seconds: None,
        ticket_type_id: None,
    }
}

#[tokio::test]
async fn stale_fencing_token_is_refused_by_the_database_layer() {
    let app = TestApp::spawn_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let event = app.create_event(10).await;
    let first = reserve(event, 2);
    let decided = decide(&app.db, event, 1000, std::slice::from_ref(&first), 600)
        .await
        .expect("fresh token");
    assert_eq!(decided.outcomes[0].status, ReservationStatus::Confirmed);

    let stale = reserve(event, 3);
    match decide(&app.db, event, 999, std::slice::from_ref(&stale), 600).await {
        Err(DecideError::StaleFence { presented, stored }) => {
            assert_eq!((presented, stored), (999, 1000));
        }
        other => panic!("a stale token must be refused, got {other:?}"),
    }
    let snapshot = invariants::check(&app.db, event).await;
    assert_eq!(snapshot.available, 8, "the stale write changed nothing");
    assert!(!snapshot.reservations.contains_key(&stale.reservation_id()));

    // A redelivered command returns the stored decision and takes nothing.
    let again = decide(&app.db, event, 1001, &[first.clone(), first], 600)
        .await
        .unwrap();
    assert!(
        again
            .outcomes
            .iter()
            .all(|o| o.status == ReservationStatus::Confirmed)
    );
    assert_eq!(invariants::check(&app.db, event).await.available, 8);
}

#[tokio::test]
async fn redis_down_falls_back_to_mysql() {
    let app = TestApp::spawn_with(Options {
        env: [("REDIS_URL", "redis://127.0.0.1:1".to_owned())].into(),
        ..Options::default()
    })
    .await;
    let ready: Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["redis"], "down");
    let (status, body) = app.reserve(1, Some(json!({"quantity": 4}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["remaining_tickets"], 96);
    assert_eq!(app.tickets(1).await, 96);
    invariants::check(&app.db, 1).await;
}

/// The isolation level a transaction begun on `db` runs at.
async fn isolation_of(db: &DatabaseConnection) -> String {
    let txn = db.begin().await.expect("begin");
    let row = txn
        .query_one_raw(Statement::from_string(
            txn.get_database_backend(),
            "SELECT @@SESSION.tx_isolation AS level",
        ))
        .await
        .expect("select the isolation level")
        .expect("one row");
    let level: String = row.try_get("", "level").expect("level");
    txn.commit().await.expect("commit");
    level
}

/// The worker's transactions are written for READ COMMITTED (no gap locks
/// between groups of different events), and they no longer set it one
/// transaction at a time: the worker's pool starts every session at that
/// level, while other pools keep the server's default.
#[tokio::test]
async fn the_workers_pool_begins_its_transactions_read_committed() {
    let app = TestApp::spawn_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let timeout = Duration::from_secs(10);
    // More than one connection: the level must hold on every session.
    let workers = shared::db::connect_read_committed_url(&app.database_url, 3, timeout)
        .await
        .expect("the workers' pool");
    let levels = futures::future::join_all((0..3).map(|_| isolation_of(&workers))).await;
    assert!(levels.iter().all(|l| l == "READ-COMMITTED"), "{levels:?}");
    let other = shared::db::connect_url(&app.database_url, 1, timeout)
        .await
        .expect("a default pool");
    assert_eq!(isolation_of(&other).await, "REPEATABLE-READ");
}
