//! A dependency that stops answering without closing anything (black-holed
//! MySQL, Redis or RabbitMQ), and etcd whose revision went backwards: every
//! request gets a bounded answer and nothing is lost.

use std::time::{Duration, Instant};

use etcd_client::GetOptions;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use serde_json::{Value, json};

use testkit::{
    app::{COMMAND_PARTITIONS, Options, TestApp, env},
    blackhole::Blackhole,
    invariants,
};

/// Locks held on `event` in etcd (the holder and those queued behind it).
async fn lock_holders(app: &TestApp, event: i64) -> i64 {
    let name = shared::etcd::event_lock_name(&app.namespace, event);
    app.etcd()
        .await
        .get(
            format!("{name}/"),
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .expect("etcd get")
        .count()
}

const CUT_WORKER: &str = "cut-worker";

/// A name for a second worker such that, with both as members, the event's
/// partition stays with the cut worker.
fn healthy_worker_leaving_event_to_cut(event: i64) -> String {
    let topology = shared::topology::Topology::new("any", 1, COMMAND_PARTITIONS);
    let partition = topology.partition_of(event);
    (0..)
        .map(|i| format!("healthy-worker-{i}"))
        .find(|name| {
            let members = [CUT_WORKER.to_owned(), name.clone()];
            worker::assignment::partitions_of(COMMAND_PARTITIONS, &members, CUT_WORKER)
                .contains(&partition)
        })
        .unwrap_or_default()
}

async fn reserve_async(app: &TestApp, event: i64) -> String {
    let response = app
        .http
        .post(app.url(&format!("/events/{event}/reserve?wait=false")))
        .send()
        .await
        .expect("POST reserve");
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.expect("json");
    body["reservation_id"].as_str().expect("id").to_owned()
}

/// A worker whose MySQL went silent in the middle of a decision gives the
/// event's etcd lock back within its decision deadline, instead of holding
/// it for as long as TCP takes to notice (minutes), and the server ends its
/// abandoned transaction, so the event's row is free too; and it leaves
/// the workers, so that its command partitions (the event's among them)
/// go to a worker that can decide: the event's next command is decided
/// while the cut lasts. Once MySQL answers again the cut worker's command
/// is decided.
#[tokio::test]
async fn a_worker_cut_off_from_mysql_mid_decision_releases_the_event() {
    let mut app = TestApp::spawn_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let event = app.create_event(10).await;
    let (proxy, routed) = Blackhole::in_front_of(&app.database_url)
        .await
        .expect("proxy");
    app.add_worker_with(
        &[
            ("DATABASE_URL", routed),
            ("WORKER_NAME", CUT_WORKER.to_owned()),
        ],
        None,
    );
    let first = reserve_async(&app, event).await;
    app.wait_decided(&first).await;

    // Hold the event row, so that the worker's next decision waits inside
    // its transaction; then silence its MySQL and let the row go.
    let blocker = app.db.begin().await.expect("begin");
    blocker
        .execute_unprepared(&format!(
            "SELECT id FROM events WHERE id = {event} FOR UPDATE"
        ))
        .await
        .expect("lock the event row");
    // Straight onto the queue: only the worker should touch the held row.
    let id = uuid::Uuid::new_v4();
    app.publish_raw(
        event,
        format!(
            r#"{{"v":1,"type":"reserve","reservation_id":"{id}","event_id":{event},"quantity":1,"user_id":null}}"#
        )
        .as_bytes(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let waiting = app
            .db
            .query_one_raw(Statement::from_string(
                DbBackend::MySql,
                // The worker's locking read of the event row, still running
                // (MariaDB lists such a wait here, not in innodb_trx).
                "SELECT COUNT(*) AS n FROM information_schema.processlist \
                 WHERE db = DATABASE() AND id <> CONNECTION_ID() AND command <> 'Sleep' \
                 AND info LIKE '%FROM `events`%FOR UPDATE%'",
            ))
            .await
            .expect("processlist")
            .and_then(|row| row.try_get::<i64>("", "n").ok())
            .unwrap_or(0);
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never waited for the row"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        lock_holders(&app, event).await > 0,
        "the waiting worker holds the lock"
    );
    proxy.cut();
    blocker.commit().await.expect("release the row");
    let cut = Instant::now();
    while lock_holders(&app, event).await > 0 {
        assert!(
            cut.elapsed() < Duration::from_secs(8),
            "a worker stuck on MySQL kept the event's lock for 8 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The cut worker's session took the row when the blocker let it go and
    // went silent: a healthy worker must not wait for it until the heal,
    // even one that, were the cut worker still a member, would leave it the
    // event's partition.
    app.add_worker_with(
        &[("WORKER_NAME", healthy_worker_leaving_event_to_cut(event))],
        None,
    );
    let next = reserve_async(&app, event).await;
    let decided_at = Instant::now() + Duration::from_secs(12);
    loop {
        let polled: Value = app
            .http
            .get(app.url(&format!("/reservations/{next}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if polled["status"] == "confirmed" {
            break;
        }
        assert!(
            Instant::now() < decided_at,
            "the event's next command waited for the cut worker (its transaction or its partition)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    proxy.heal();
    assert_eq!(
        app.wait_decided(&id.to_string()).await["status"],
        "confirmed"
    );
    assert_eq!(invariants::check(&app.db, event).await.available, 7);
}

/// With Redis silent, reserving and reading availability stay fast: the
/// cache is never on the critical path.
#[tokio::test]
async fn a_black_holed_redis_slows_nothing() {
    let (proxy, routed) = Blackhole::in_front_of(&env("REDIS_URL"))
        .await
        .expect("proxy");
    let app = TestApp::spawn_with(Options {
        env: [("REDIS_URL", routed)].into(),
        ..Options::default()
    })
    .await;
    let event = app.create_event(100).await;
    assert_eq!(app.reserve(event, None).await.0, 200);

    proxy.cut();
    for i in 0..5 {
        let started = Instant::now();
        let (status, body) = app.reserve(event, None).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "reserve {i} took {:?} with Redis black-holed",
            started.elapsed()
        );
    }
    // The first read may wait for Redis once; after that it must not.
    app.tickets(event).await;
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(app.tickets(event).await, 94);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "5 reads took {:?} with Redis black-holed",
        started.elapsed()
    );
}

/// A deployment whose api reaches RabbitMQ through a proxy, an event of 10
/// tickets with one reserved, then the path to the broker cut.
async fn behind_a_cut_broker() -> (Blackhole, TestApp, i64) {
    let (proxy, routed) = Blackhole::in_front_of(&env("AMQP_URL"))
        .await
        .expect("proxy");
    let app = TestApp::spawn_with(Options {
        env: [
            ("AMQP_URL", routed),
            ("BACKEND_TIMEOUT_MS", "1000".to_owned()),
        ]
        .into(),
        ..Options::default()
    })
    .await;
    let event = app.create_event(10).await;
    assert_eq!(app.reserve(event, None).await.0, 200);
    proxy.cut();
    (proxy, app, event)
}

/// When the broker does not confirm a publish in time, the command may
/// still be queued: the client gets 202 and an id to poll (not a 503 that
/// makes it retry blind), and the reservation is decided once the broker
/// answers again.
#[tokio::test]
async fn an_unconfirmed_publish_answers_202_with_a_pollable_id() {
    let (proxy, app, event) = behind_a_cut_broker().await;
    let started = Instant::now();
    let response = app
        .http
        .post(app.url(&format!("/events/{event}/reserve")))
        .json(&json!({"quantity": 2}))
        .send()
        .await
        .expect("POST reserve");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "no bounded answer"
    );
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let id = body["reservation_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/reservations/{id}"));
    let polled: Value = app
        .http
        .get(app.url(&location))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(polled["status"], "pending", "{polled}");

    proxy.heal();
    let decided = app.wait_decided(&id).await;
    assert_eq!(decided["status"], "confirmed");
    assert_eq!(invariants::check(&app.db, event).await.available, 7);
}

/// A publish that was never confirmed because the broker connection died
/// with the command still in flight (a RabbitMQ node killed): the client
/// was answered 202, so the api must send the command again once it is
/// connected, or the reservation stays pending for good (invariant 5).
/// Found by the cluster node-loss run of `scripts/compose-test --cluster`.
#[tokio::test]
async fn a_command_lost_with_its_connection_after_a_202_is_sent_again() {
    let (proxy, app, event) = behind_a_cut_broker().await;
    let response = app
        .http
        .post(app.url(&format!("/events/{event}/reserve")))
        .json(&json!({"quantity": 3}))
        .send()
        .await
        .expect("POST reserve");
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let id = body["reservation_id"].as_str().unwrap().to_owned();
    // The connection dies with the command held back: it never reaches
    // the broker.
    proxy.sever();
    proxy.heal();

    let decided = app.wait_decided(&id).await;
    assert_eq!(decided["status"], "confirmed", "{decided}");
    assert_eq!(invariants::check(&app.db, event).await.available, 6);
}

/// After etcd is restored from an older snapshot its revisions, and so the
/// lock tokens, start again below what the event rows stored. Workers must
/// notice and carry on (under a new fencing epoch) rather than refuse every
/// write forever.
#[tokio::test]
async fn workers_recover_when_the_etcd_revision_goes_backwards() {
    let app = TestApp::spawn_with(Options {
        workers: 1,
        ..Options::default()
    })
    .await;
    let event = app.create_event(10).await;
    assert_eq!(app.reserve(event, None).await.0, 200);
    // What a restore looks like from MySQL: the stored token is far beyond
    // any revision the etcd now serving has issued.
    app.db
        .execute_unprepared(&format!(
            "UPDATE events SET fence_token = fence_token + 1000000000 WHERE id = {event}"
        ))
        .await
        .expect("simulate the restore");

    let id = reserve_async(&app, event).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let polled: Value = app
            .http
            .get(app.url(&format!("/reservations/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if polled["status"] == "confirmed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not decided 20 s after etcd's revision went backwards: {polled}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(invariants::check(&app.db, event).await.available, 8);
}
