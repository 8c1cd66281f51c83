//! Many concurrent reservations on one small event: no oversell, every
//! answer matches the database.

use rand::Rng;
use serde_json::{Value, json};
use shared::messages::ReservationStatus;

use testkit::{
    app::{Options, TestApp},
    invariants,
};

#[tokio::test]
async fn thousand_concurrent_reservations_never_oversell() {
    let app = TestApp::spawn_with(Options {
        env: [("RESERVE_WAIT_TIMEOUT_MS", "30000".to_owned())].into(),
        ..Options::default()
    })
    .await;
    let event = app.create_event(100).await;
    let quantities: Vec<i64> = {
        let mut rng = rand::rng();
        (0..1000).map(|_| rng.random_range(1..=4)).collect()
    };
    let answers: Vec<(u16, Value)> = futures::future::join_all(
        quantities
            .iter()
            .map(|&q| app.reserve(event, Some(json!({"quantity": q})))),
    )
    .await;

    for (status, body) in &answers {
        if *status == 202 {
            app.wait_decided(body["reservation_id"].as_str().unwrap())
                .await;
        }
    }
    let snapshot = invariants::check(&app.db, event).await;
    invariants::check_responses(&snapshot, &answers);
    assert_eq!(snapshot.reservations.len(), 1000, "one row per request");
    assert_eq!(snapshot.count(ReservationStatus::Pending), 0);

    let sold: i64 = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b["quantity"].as_i64().unwrap())
        .sum();
    let left = app.tickets(event).await;
    assert_eq!(left, 100 - snapshot.taken_quantity());
    assert_eq!(left, snapshot.available);
    // Availability only fell, so whatever is left was too little for every
    // rejected request: nothing was refused that could have been sold.
    let smallest_rejected = snapshot
        .reservations
        .values()
        .filter(|r| r.status == ReservationStatus::Rejected)
        .map(|r| i64::from(r.quantity))
        .min()
        .expect("demand exceeds supply, so some requests are rejected");
    assert!(
        left < smallest_rejected,
        "{left} left yet a request for {smallest_rejected} was rejected"
    );
    assert!(sold <= 100);
}
