//! What the scenarios read from their deployment's database besides the
//! checker: fencing tokens and epoch, open transactions.

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, Statement};

use crate::history::EventMeta;

/// A fencing token is `epoch << 40 | revision` (worker/src/fence.rs).
pub(super) const REVISION_MASK: i64 = (1 << 40) - 1;

/// The fencing token stored on the event row.
pub(super) async fn fence_token(db: &DatabaseConnection, event: i64) -> anyhow::Result<i64> {
    Ok(shared::entities::event::Entity::find_by_id(event)
        .one(db)
        .await?
        .map(|row| row.fence_token)
        .unwrap_or_default())
}

/// The fencing epoch; each move adds one.
pub(super) async fn fencing_epoch(db: &DatabaseConnection) -> anyhow::Result<i64> {
    query_i64(db, "SELECT epoch AS n FROM fencing_epoch WHERE id = 1").await
}

/// The highest fencing token stored on `events`.
pub(super) async fn max_stored_token(
    db: &DatabaseConnection,
    events: &[EventMeta],
) -> anyhow::Result<i64> {
    let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    query_i64(
        db,
        &format!(
            "SELECT MAX(fence_token) AS n FROM events WHERE id IN ({})",
            ids.join(",")
        ),
    )
    .await
}

/// Age in whole seconds of the oldest transaction open on this database;
/// `None` if the server will not say.
pub(super) async fn oldest_transaction_s(db: &DatabaseConnection) -> Option<i64> {
    db.query_one_raw(Statement::from_string(
        db.get_database_backend(),
        "SELECT COALESCE(MAX(TIMESTAMPDIFF(SECOND, t.trx_started, NOW())), 0) AS age \
         FROM information_schema.innodb_trx t \
         JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id \
         WHERE p.db = DATABASE()",
    ))
    .await
    .ok()??
    .try_get::<i64>("", "age")
    .ok()
}

async fn query_i64(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .with_context(|| format!("no row: {sql}"))?
        .try_get::<i64>("", "n")
        .with_context(|| sql.to_owned())
}
