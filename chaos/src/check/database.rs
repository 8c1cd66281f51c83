//! Reading the database for the checker: one consistent snapshot of the
//! history's events, their ticket types, quotas, reservations and waiting
//! lists.

use std::time::Duration;

use super::model::{DbState, EventRow, Row, WaitingRow};

/// Reads the events of the history (all events when it names none) and
/// their reservations, from one consistent snapshot: workers may still be
/// deciding (commands the api never acknowledged, late cancels), and rows
/// read at different moments would make a correct database look
/// unbalanced.
pub async fn load_db(database_url: &str, events: &[i64]) -> anyhow::Result<DbState> {
    use sea_orm::{
        AccessMode, ColumnTrait, ConnectionTrait, EntityTrait, IsolationLevel, QueryFilter,
        TransactionTrait,
    };
    use shared::entities::{event, quota, reservation, ticket_type, waiting_entry};
    use testkit::invariants::rules::{QuotaCount, TypeCount};

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
