//! The deliveries table as the dispatchers use it: claim due deliveries,
//! load what to send, record how an attempt went. Every time here is the
//! database's, so dispatchers on hosts whose clocks disagree share one
//! schedule.
//!
//! A claim moves a delivery's `next_attempt_at` past the attempt's
//! deadline, in a transaction that skips rows another dispatcher is
//! claiming (`FOR UPDATE SKIP LOCKED`): any number of workers dispatch,
//! none sends what another is sending, and a delivery whose dispatcher
//! died is due again when its claim runs out.

use std::{collections::HashMap, time::Duration};

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Statement,
    TransactionTrait,
    sea_query::{Expr, ExprTrait},
};
use shared::entities::{
    webhook_delivery::{self, DeliveryStatus},
    webhook_endpoint, webhook_message,
};
use uuid::Uuid;

/// A claimed delivery, with what it sends and where.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub message: webhook_message::Model,
    pub endpoint: webhook_endpoint::Model,
    /// Attempts made before this one.
    pub attempts: i32,
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The endpoint answered 2xx.
    Delivered(u16),
    /// Anything else: another status, or no answer (`None`).
    Failed { status: Option<u16>, error: String },
}

/// Claims up to `limit` due deliveries for `hold` (the longest an attempt
/// may take, and a margin).
pub async fn claim(
    db: &DatabaseConnection,
    limit: usize,
    hold: Duration,
) -> Result<Vec<Claimed>, DbErr> {
    // READ COMMITTED, the level of the worker's sessions.
    let txn = db.begin().await?;
    let backend = txn.get_database_backend();
    let due = txn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            "SELECT message_id, endpoint_id, attempts FROM webhook_deliveries \
             WHERE status = 'pending' AND next_attempt_at <= UTC_TIMESTAMP(6) \
             ORDER BY next_attempt_at LIMIT ? FOR UPDATE SKIP LOCKED",
            [(limit as u64).into()],
        ))
        .await?;
    let mut keys = Vec::with_capacity(due.len());
    for row in &due {
        let message: Uuid = row.try_get("", "message_id")?;
        let endpoint: i64 = row.try_get("", "endpoint_id")?;
        let attempts: i32 = row.try_get("", "attempts")?;
        keys.push((message, endpoint, attempts));
    }
    if keys.is_empty() {
        txn.commit().await?;
        return Ok(Vec::new());
    }
    for (message, endpoint, _) in &keys {
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            "UPDATE webhook_deliveries \
             SET next_attempt_at = DATE_ADD(UTC_TIMESTAMP(6), INTERVAL ? MICROSECOND) \
             WHERE message_id = ? AND endpoint_id = ?",
            [
                (hold.as_micros() as u64).into(),
                message.as_bytes().to_vec().into(),
                (*endpoint).into(),
            ],
        ))
        .await?;
    }
    txn.commit().await?;

    let messages: HashMap<Uuid, webhook_message::Model> = webhook_message::Entity::find()
        .filter(webhook_message::Column::Id.is_in(keys.iter().map(|(m, ..)| *m)))
        .all(db)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    let endpoints: HashMap<i64, webhook_endpoint::Model> = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Id.is_in(keys.iter().map(|(_, e, _)| *e)))
        .all(db)
        .await?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();
    Ok(keys
        .into_iter()
        .filter_map(|(message, endpoint, attempts)| {
            Some(Claimed {
                message: messages.get(&message)?.clone(),
                endpoint: endpoints.get(&endpoint)?.clone(),
                attempts,
            })
        })
        .collect())
}

/// Records `attempt` of `claimed`: delivered, due again after `retry_in`,
/// or failed for good when `retry_in` is `None`. Only if the delivery is
/// still as it was claimed (an admin's replay meanwhile wins).
pub async fn record(
    db: &DatabaseConnection,
    claimed: &Claimed,
    attempt: &Attempt,
    retry_in: Option<Duration>,
) -> Result<(), DbErr> {
    use webhook_delivery::Column as C;
    let now = Expr::cust("UTC_TIMESTAMP(6)");
    let mut update = webhook_delivery::Entity::update_many()
        .col_expr(C::Attempts, Expr::col(C::Attempts).add(1))
        .col_expr(C::LastAttemptAt, now.clone());
    update = match attempt {
        Attempt::Delivered(status) => update
            .col_expr(C::Status, Expr::value(DeliveryStatus::Delivered))
            .col_expr(C::LastStatus, Expr::value(i32::from(*status)))
            .col_expr(C::LastError, Expr::value(Option::<String>::None))
            .col_expr(C::DeliveredAt, now),
        Attempt::Failed { status, error } => {
            let update = update
                .col_expr(C::LastStatus, Expr::value(status.map(i32::from)))
                .col_expr(C::LastError, Expr::value(truncated(error)));
            match retry_in {
                Some(delay) => update.col_expr(
                    C::NextAttemptAt,
                    Expr::cust_with_values(
                        "DATE_ADD(UTC_TIMESTAMP(6), INTERVAL ? MICROSECOND)",
                        [delay.as_micros() as u64],
                    ),
                ),
                None => update.col_expr(C::Status, Expr::value(DeliveryStatus::Failed)),
            }
        }
    };
    update
        .filter(C::MessageId.eq(claimed.message.id))
        .filter(C::EndpointId.eq(claimed.endpoint.id))
        .filter(C::Status.eq(DeliveryStatus::Pending))
        .filter(C::Attempts.eq(claimed.attempts))
        .exec(db)
        .await?;
    Ok(())
}

/// `last_error` holds 500 characters.
fn truncated(error: &str) -> String {
    error.chars().take(500).collect()
}

/// Deletes up to `limit` of the oldest messages created more than `days`
/// days ago, with their deliveries, unless one of those is still pending;
/// returns how many messages went. Any number of workers may sweep at
/// once: each statement only deletes what is still there.
pub async fn sweep(db: &DatabaseConnection, days: u32, limit: u64) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let old = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            "SELECT id FROM webhook_messages \
             WHERE created_at < DATE_SUB(UTC_TIMESTAMP(6), INTERVAL ? DAY) \
             ORDER BY created_at LIMIT ?",
            [days.into(), limit.into()],
        ))
        .await?;
    let ids: Vec<Vec<u8>> = old
        .iter()
        .map(|row| {
            row.try_get::<Uuid>("", "id")
                .map(|id| id.as_bytes().to_vec())
        })
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(0);
    }
    let marks = vec!["?"; ids.len()].join(", ");
    let values: Vec<sea_orm::Value> = ids.into_iter().map(Into::into).collect();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND message_id IN ({marks})"
        ),
        values.clone(),
    ))
    .await?;
    let deleted = db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "DELETE FROM webhook_messages WHERE id IN ({marks}) AND NOT EXISTS \
                 (SELECT 1 FROM webhook_deliveries d WHERE d.message_id = webhook_messages.id)"
            ),
            values,
        ))
        .await?;
    Ok(deleted.rows_affected())
}
