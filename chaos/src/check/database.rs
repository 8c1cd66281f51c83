//! Reading the database for the checker: one consistent snapshot of the
//! history's events and their reservations, taken once the acknowledged
//! commands have settled (or the wait is over).

use std::time::{Duration, Instant};

use super::{DbState, EventRow, Limits, Row, Summary, check, split, unresolved};
use crate::history::Record;

/// Reads the events of the history (all events when it names none) and
/// their reservations, from one consistent snapshot: workers may still be
/// deciding (commands the api never acknowledged, late cancels), and rows
/// read at different moments would make a correct database look
/// unbalanced.
pub async fn load_db(database_url: &str, events: &[i64]) -> anyhow::Result<DbState> {
    use sea_orm::{
        AccessMode, ColumnTrait, EntityTrait, IsolationLevel, QueryFilter, TransactionTrait,
    };
    use shared::entities::{event, reservation};

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
                },
            );
        }
    }
    db.commit().await?;
    pool.close().await.ok();
    Ok(state)
}

/// Waits up to `wait` for the acknowledged commands to reach a final state
/// (reading the database every half second), then checks.
pub async fn check_database(
    history: &[Record],
    database_url: &str,
    wait: Duration,
    limits: Limits,
) -> anyhow::Result<Summary> {
    let events: Vec<i64> = split(history)
        .0
        .map(|m| m.events.iter().map(|e| e.id).collect())
        .unwrap_or_default();
    let deadline = Instant::now() + wait;
    loop {
        let db = load_db(database_url, &events).await;
        match db {
            Ok(db) if unresolved(history, &db).is_empty() || Instant::now() >= deadline => {
                return Ok(check(history, &db, limits));
            }
            Err(error) if Instant::now() >= deadline => return Err(error),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
