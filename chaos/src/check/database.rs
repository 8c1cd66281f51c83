//! Reading the database for the checker: one consistent snapshot of the
//! history's events, their ticket types, quotas, reservations and waiting
//! lists, and the webhook outbox.

use std::{collections::HashMap, time::Duration};

use sea_orm::{
    AccessMode, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, IsolationLevel,
    QueryFilter, Statement, TransactionTrait,
};
use shared::entities::{
    event, quota, reservation, ticket_type, waiting_entry, webhook_delivery, webhook_endpoint,
    webhook_message,
};
use testkit::invariants::rules::{QuotaCount, TypeCount};
use uuid::Uuid;

use super::model::{DbState, Delivery, Endpoint, EventRow, Message, Outbox, Row, WaitingRow};

/// Reads the events of the history (all events when it names none) and
/// their reservations, from one consistent snapshot: workers may still be
/// deciding (commands the api never acknowledged, late cancels), and rows
/// read at different moments would make a correct database look
/// unbalanced.
pub async fn load_db(database_url: &str, events: &[i64]) -> anyhow::Result<DbState> {
    let pool = shared::db::connect_url(database_url, 2, Duration::from_secs(10)).await?;
    let db = pool
        .begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await?;
    let mut query = event::Entity::find();
    if !events.is_empty() {
        query = query.filter(event::Column::Id.is_in(events.iter().copied()));
    }
    let mut state = DbState::default();
    for e in query.all(&db).await? {
        state.events.insert(
            e.id,
            EventRow {
                capacity: e.capacity.into(),
                available: e.available.into(),
                max_per_user: e.max_per_user.map(i64::from),
                ticket_types: ticket_type::Entity::find()
                    .filter(ticket_type::Column::EventId.eq(e.id))
                    .all(&db)
                    .await?
                    .into_iter()
                    .map(|t| TypeCount::from(&t))
                    .collect(),
                quotas: quota::Entity::find()
                    .filter(quota::Column::EventId.eq(e.id))
                    .all(&db)
                    .await?
                    .into_iter()
                    .map(|q| QuotaCount::from(&q))
                    .collect(),
            },
        );
        let rows = reservation::Entity::find()
            .filter(reservation::Column::EventId.eq(e.id))
            .all(&db)
            .await?;
        for r in rows {
            state.rows.insert(
                r.id,
                Row {
                    event_id: r.event_id,
                    status: r.status,
                    quantity: r.quantity,
                    expires_at: r.expires_at,
                    ticket_type_id: r.ticket_type_id,
                    user_id: r.user_id,
                    client_id: r.client_id,
                    created_at: r.created_at,
                },
            );
        }
        let entries = waiting_entry::Entity::find()
            .filter(waiting_entry::Column::EventId.eq(e.id))
            .all(&db)
            .await?;
        for entry in entries {
            state.waiting.insert(
                entry.id,
                WaitingRow {
                    event_id: entry.event_id,
                    offered: entry.offered_at.is_some(),
                },
            );
        }
    }
    state.outbox = load_outbox(&db).await?;
    let now = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT UTC_TIMESTAMP(6) AS now",
        ))
        .await?
        .map(|row| row.try_get::<chrono::NaiveDateTime>("", "now"))
        .transpose()?;
    state.read_at = now.map(|now| now.and_utc());
    db.commit().await?;
    pool.close().await.ok();
    Ok(state)
}

/// The webhook tables, in the caller's snapshot. Each message with the
/// event of its reservation, if one has its id (a message for no
/// reservation is one invented).
async fn load_outbox(db: &DatabaseTransaction) -> anyhow::Result<Outbox> {
    let endpoints = webhook_endpoint::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|e| Endpoint {
            id: e.id,
            client_id: e.client_id,
            created_at: e.created_at,
            disabled_at: e.disabled_at,
        })
        .collect();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT m.id, m.client_id, m.reservation_id, m.event_type, m.payload, \
             m.created_at, r.event_id FROM webhook_messages m \
             LEFT JOIN reservations r ON r.id = m.reservation_id",
        ))
        .await?;
    let mut messages = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.try_get("", "id")?;
        let created_at: chrono::NaiveDateTime = row.try_get("", "created_at")?;
        messages.insert(
            id,
            Message {
                client_id: row.try_get("", "client_id")?,
                reservation_id: row.try_get("", "reservation_id")?,
                event_type: row.try_get("", "event_type")?,
                payload: row.try_get("", "payload")?,
                created_at: created_at.and_utc(),
                event_id: row.try_get("", "event_id")?,
            },
        );
    }
    let deliveries = webhook_delivery::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|d| Delivery {
            message_id: d.message_id,
            endpoint_id: d.endpoint_id,
            status: d.status,
            attempts: d.attempts,
            last_error: d.last_error,
        })
        .collect();
    Ok(Outbox {
        endpoints,
        messages,
        deliveries,
    })
}

/// The payloads of the messages `ids` that exist now: a receiver's
/// snapshot is taken after the database's, so it may hold messages
/// committed in between, which are late rather than invented.
pub async fn load_payloads(
    database_url: &str,
    ids: &[Uuid],
) -> anyhow::Result<HashMap<Uuid, String>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let pool = shared::db::connect_url(database_url, 1, Duration::from_secs(10)).await?;
    let found = webhook_message::Entity::find()
        .filter(webhook_message::Column::Id.is_in(ids.iter().copied()))
        .all(&pool)
        .await?
        .into_iter()
        .map(|m| (m.id, m.payload))
        .collect();
    pool.close().await.ok();
    Ok(found)
}
