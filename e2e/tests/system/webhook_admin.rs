//! Webhooks administered (issue #13): a failed delivery listed, shown and
//! replayed; endpoints removed, validated and their secrets shown once;
//! old messages swept. Against the real servers.

use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::json;
use shared::{
    domain::ReservationStatus,
    entities::{
        webhook_delivery::{self, DeliveryStatus},
        webhook_message,
    },
    webhook,
};
use testkit::{
    app::{Options, TestApp},
    receiver::{Behaviour, Receiver},
};
use uuid::Uuid;

use super::{
    clients::create_client,
    webhooks::{
        admin, check_against_database, client_with_endpoint, fast_webhooks, id_of, reserve, send,
        settled,
    },
};

#[tokio::test]
async fn a_failed_delivery_is_listed_and_replayed_and_a_removed_endpoint_gets_nothing_new() {
    let app = TestApp::spawn_with(fast_webhooks(&[("WEBHOOK_MAX_ATTEMPTS", "2")])).await;
    let receiver = Receiver::start(Behaviour {
        fail_all: true,
        ..Behaviour::default()
    })
    .await;
    let (client, key, endpoint, secret) = client_with_endpoint(&app, &receiver).await;
    let event = app.create_event(10).await;
    let (_, first) = reserve(&app, Some(&key), event, json!({})).await;
    let deliveries = settled(&app, Duration::from_secs(30)).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, DeliveryStatus::Failed);

    let (status, page) = admin(
        &app,
        reqwest::Method::GET,
        &format!("/admin/webhook-deliveries?status=failed&endpoint_id={endpoint}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let listed = &page["deliveries"][0];
    assert_eq!(listed["reservation_id"], first["reservation_id"]);
    assert_eq!(listed["event_type"], "reservation.confirmed");
    assert_eq!(listed["attempts"], 2);
    assert_eq!(listed["last_status"], 500);
    assert!(listed["next_attempt_at"].is_null(), "{listed}");
    assert_eq!(listed["client_id"], client);
    let message = listed["message_id"]
        .as_str()
        .expect("message id")
        .to_owned();
    let (status, shown) = admin(
        &app,
        reqwest::Method::GET,
        &format!("/admin/webhook-messages/{message}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["payload"]["data"]["status"], "confirmed");
    assert_eq!(shown["deliveries"][0]["status"], "failed");

    receiver.set(Behaviour::default());
    let (status, replayed) = admin(
        &app,
        reqwest::Method::POST,
        "/admin/webhook-deliveries/replay",
        Some(json!({"endpoint_id": endpoint})),
    )
    .await;
    assert_eq!(
        (status, replayed["replayed"].as_u64()),
        (200, Some(1)),
        "{replayed}"
    );
    let deliveries = settled(&app, Duration::from_secs(30)).await;
    assert_eq!(deliveries[0].status, DeliveryStatus::Delivered);
    check_against_database(&app, &receiver, client, &secret).await;

    let (status, _) = admin(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/webhooks/{endpoint}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = reserve(&app, Some(&key), event, json!({})).await;
    assert_eq!(status, 200);
    let messages = webhook_message::Entity::find()
        .filter(webhook_message::Column::ClientId.eq(client))
        .all(&app.db)
        .await
        .expect("messages");
    assert_eq!(messages.len(), 1, "no message for a removed endpoint");
}

#[tokio::test]
async fn endpoints_are_validated_and_their_secrets_shown_once() {
    let app = TestApp::spawn_with(Options {
        workers: 0,
        ..Options::default()
    })
    .await;
    let (client, _) = create_client(&app, "shop").await;
    for (body, expected) in [
        (json!({"url": "ftp://shop.example/x"}), 422),
        (json!({"url": "https://user:pw@shop.example/x"}), 422),
        (json!({"url": "not a url"}), 422),
        (json!({"url": "https://shop.example/x", "colour": 1}), 422),
        (json!({}), 422),
    ] {
        let (status, problem) = app
            .admin_post(&format!("/admin/clients/{client}/webhooks"), body.clone())
            .await;
        assert_eq!(status, expected, "{body} -> {problem}");
    }
    let (status, _) = app
        .admin_post(
            "/admin/clients/999999/webhooks",
            json!({"url": "https://shop.example/x"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, created) = app
        .admin_post(
            &format!("/admin/clients/{client}/webhooks"),
            json!({"url": "https://shop.example/x"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert!(
        created["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_"))
    );
    let (status, listed) = admin(
        &app,
        reqwest::Method::GET,
        &format!("/admin/webhooks?client_id={client}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert!(listed[0].get("secret").is_none(), "{listed}");
    let (status, _) = admin(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/clients/{client}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, problem) = app
        .admin_post(
            &format!("/admin/clients/{client}/webhooks"),
            json!({"url": "https://shop.example/y"}),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    let (status, _) = send(&app, reqwest::Method::GET, "/admin/webhooks", None, None).await;
    assert_eq!(status, 401);
    let (status, _) = admin(
        &app,
        reqwest::Method::GET,
        "/admin/webhook-deliveries?after=nope",
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, replayed) = admin(
        &app,
        reqwest::Method::POST,
        "/admin/webhook-deliveries/replay",
        Some(json!({"status": "delivered"})),
    )
    .await;
    assert_eq!((status, replayed["replayed"].as_u64()), (200, Some(0)));
}

#[tokio::test]
async fn messages_past_the_retention_are_deleted_unless_still_pending() {
    let mut app = TestApp::spawn_with(Options {
        workers: 1,
        ..fast_webhooks(&[])
    })
    .await;
    let receiver = Receiver::start(Behaviour::default()).await;
    let (_, key, _, _) = client_with_endpoint(&app, &receiver).await;
    let event = app.create_event(5).await;
    let (_, kept) = reserve(&app, Some(&key), event, json!({})).await;
    let (_, swept) = reserve(&app, Some(&key), event, json!({})).await;
    settled(&app, Duration::from_secs(30)).await;
    // Both 31 days old; `kept`'s delivery due again tomorrow.
    let backdate = [
        "UPDATE webhook_messages SET created_at = created_at - INTERVAL 31 DAY".to_owned(),
        format!(
            "UPDATE webhook_deliveries SET status = 'pending', \
             next_attempt_at = UTC_TIMESTAMP(6) + INTERVAL 1 DAY \
             WHERE message_id = UNHEX('{}')",
            webhook::message_id(id_of(&kept), ReservationStatus::Confirmed).simple()
        ),
    ];
    for sql in backdate {
        app.db.execute_unprepared(&sql).await.expect("backdate");
    }
    // A worker sweeps when it starts.
    app.add_worker();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<Uuid> = webhook_message::Entity::find()
            .all(&app.db)
            .await
            .expect("messages")
            .into_iter()
            .map(|m| m.reservation_id)
            .collect();
        if left == [id_of(&kept)] {
            break;
        }
        assert!(
            left.contains(&id_of(&kept)),
            "a pending message was deleted"
        );
        assert!(
            Instant::now() < deadline,
            "not swept: {left:?} ({})",
            id_of(&swept)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deliveries = webhook_delivery::Entity::find()
        .all(&app.db)
        .await
        .expect("deliveries");
    assert_eq!(deliveries.len(), 1);
}
