//! Commands that decode but that MySQL refuses for good (a foreign key or
//! CHECK violation): they go to the dead-letter queue with their reason and
//! never hold up the commands behind them.

use std::time::{Duration, Instant};

use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::Value;
use shared::entities::reservation;

use testkit::{
    app::{Options, TestApp},
    invariants,
};

#[tokio::test]
async fn a_command_mysql_refuses_is_dead_lettered_and_blocks_nothing() {
    let app = TestApp::spawn_with(Options {
        workers: 1,
        ..Options::default()
    })
    .await;
    let event = app.create_event(100).await;
    let poisons = [
        // No such user: foreign key violation (1452).
        format!(
            r#"{{"v":1,"type":"reserve","reservation_id":"{}","event_id":{event},"quantity":1,"user_id":987654321}}"#,
            uuid::Uuid::new_v4()
        ),
        // Quantity 0: CHECK violation (3819 on MySQL, 4025 on MariaDB).
        format!(
            r#"{{"v":1,"type":"reserve","reservation_id":"{}","event_id":{event},"quantity":0,"user_id":null}}"#,
            uuid::Uuid::new_v4()
        ),
    ];
    for poison in &poisons {
        app.publish_raw(event, poison.as_bytes()).await;
    }

    let answers = futures::future::join_all((0..20).map(|_| {
        app.http
            .post(app.url(&format!("/events/{event}/reserve?wait=false")))
            .send()
    }))
    .await;
    let mut ids = Vec::new();
    for response in answers {
        let response = response.expect("POST reserve");
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.expect("json");
        ids.push(body["reservation_id"].as_str().unwrap().to_owned());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in &ids {
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
                "reservation {id} still {} 30 s after a poison command",
                polled["status"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let dead = app.dead_letters(2, Duration::from_secs(10)).await;
    assert_eq!(dead.len(), 2, "both refused commands are dead-lettered");
    for letter in &dead {
        let reason = letter.reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains("foreign key") || reason.contains("CONSTRAINT"),
            "the dead letter says why: {reason:?}"
        );
    }
    let snapshot = invariants::check(&app.db, event).await;
    assert_eq!(snapshot.available, 80);
    assert_eq!(
        reservation::Entity::find().count(&app.db).await.unwrap(),
        20,
        "nothing of the refused commands was stored"
    );
}
