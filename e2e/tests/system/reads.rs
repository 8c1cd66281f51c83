//! Availability reads from the replicas' in-memory views: kept current by
//! the workers' announcements, not by expiry (the tests allow a minute of
//! staleness), and never showing a count the database did not have.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use testkit::{
    app::{Options, TestApp, tickets_at},
    invariants,
};

/// Far longer than any test: a replica's count can only change through an
/// announcement or its own outcomes, never by ageing out.
fn minute_of_staleness() -> Options {
    Options {
        env: BTreeMap::from([("AVAILABILITY_MAX_STALENESS_MS", "60000".to_owned())]),
        ..Options::default()
    }
}

/// Polls the replica at `base` for up to `within` until it shows `expected`;
/// returns what it last showed.
async fn await_tickets(
    http: &reqwest::Client,
    base: &str,
    event: i64,
    expected: i64,
    within: Duration,
) -> i64 {
    let deadline = Instant::now() + within;
    loop {
        let shown = tickets_at(http, base, event).await;
        if shown == expected || Instant::now() >= deadline {
            return shown;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_reservation_through_one_replica_reaches_the_other_replicas_view() {
    let mut app = TestApp::spawn_with(minute_of_staleness()).await;
    let event = app.create_event(10).await;
    let other = app.add_api(None).await;
    // Replica A now holds the count in memory, fresh for a minute.
    assert_eq!(app.tickets(event).await, 10);

    let response = app
        .http
        .post(format!("{other}/events/{event}/reserve"))
        .json(&json!({"quantity": 3}))
        .send()
        .await
        .expect("POST reserve");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["remaining_tickets"], 7, "{body}");

    let shown = await_tickets(&app.http, &app.base, event, 7, Duration::from_secs(2)).await;
    assert_eq!(
        shown, 7,
        "replica A still shows {shown} 2 s after replica B answered the reservation"
    );
}

#[tokio::test]
async fn after_a_burst_through_two_replicas_both_show_the_database_count() {
    const CAPACITY: i64 = 100;
    let mut app = TestApp::spawn_with(minute_of_staleness()).await;
    let event = app.create_event(CAPACITY).await;
    let replicas = [app.base.clone(), app.add_api(None).await];
    for base in &replicas {
        assert_eq!(tickets_at(&app.http, base, event).await, CAPACITY);
    }

    // Readers on both replicas while 60 reservations of 1 to 3 tickets (120
    // in all) go through both: more than the capacity, so some are refused.
    let done = Arc::new(AtomicBool::new(false));
    let readers = replicas.iter().map(|base| {
        let (http, done) = (app.http.clone(), done.clone());
        async move {
            let mut shown = Vec::new();
            while !done.load(Ordering::Relaxed) {
                shown.push(tickets_at(&http, base, event).await);
            }
            shown
        }
    });
    let reserves = (0..60).map(|n| {
        let (http, base) = (app.http.clone(), replicas[n % 2].clone());
        async move {
            let response = http
                .post(format!("{base}/events/{event}/reserve"))
                .json(&json!({"quantity": n % 3 + 1}))
                .send()
                .await
                .expect("POST reserve");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    });
    let writers = async {
        let answers = futures::future::join_all(reserves).await;
        done.store(true, Ordering::Relaxed);
        answers
    };
    let (answers, shown) = tokio::join!(writers, futures::future::join_all(readers));
    assert!(
        answers
            .iter()
            .all(|(status, _)| *status == 200 || *status == 409),
        "{answers:?}"
    );
    let snapshot = invariants::check(&app.db, event).await;
    invariants::check_responses(&snapshot, &answers);
    assert!(snapshot.count(shared::messages::ReservationStatus::Rejected) > 0);

    // Only reservations, no cancellation: a replica's count never goes up,
    // and never leaves [0, capacity].
    for (base, shown) in replicas.iter().zip(&shown) {
        assert!(
            shown.iter().all(|n| (0..=CAPACITY).contains(n)),
            "{base} showed {shown:?}"
        );
        assert!(
            shown.windows(2).all(|pair| pair[1] <= pair[0]),
            "{base} showed a count going up: {shown:?}"
        );
    }
    for base in &replicas {
        let last = await_tickets(
            &app.http,
            base,
            event,
            snapshot.available,
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(
            last, snapshot.available,
            "{base} shows {last}, the database {}",
            snapshot.available
        );
    }
}
