//! Reads of events and their availability: the replica's in-memory view
//! when it has a fresh count, else Redis when it has the answer, else
//! MySQL; whatever a read finds refreshes the view and the cache.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, Statement};
use shared::{entities::event, sale_window::SaleWindow};

use crate::{availability::Seen, known_events::Terms, metrics, problem::ApiError, state::AppState};

/// The terms of the event's sale if it exists, else 404 (a MySQL read when
/// this process has not read them lately; older ones while MySQL fails).
pub async fn terms(state: &AppState, event_id: i64) -> Result<Terms, ApiError> {
    if let Some(terms) = state.known_events.terms(event_id) {
        return Ok(terms);
    }
    match find(state, event_id).await {
        Ok(event) => Ok(terms_of(&event)),
        Err(error) => state.known_events.stale_terms(event_id).ok_or(error),
    }
}

fn terms_of(event: &event::Model) -> Terms {
    Terms {
        window: SaleWindow {
            opens_at: event.sale_opens_at,
            closes_at: event.sale_closes_at,
        },
        max_per_user: event.max_per_user,
        typed: event.ticket_types > 0,
    }
}

/// Tickets left for `event_id`, or 404.
pub async fn available(state: &AppState, event_id: i64) -> Result<i32, ApiError> {
    let view = &state.availability;
    if let Some(available) = view.get(event_id) {
        metrics::availability_read("memory");
        return Ok(available);
    }
    // Redis has no capacity: until a MySQL read gave it, the view could
    // not serve what Redis says, so the read goes to MySQL once.
    if !view.needs_capacity(event_id)
        && let Some(cached) = state.cache.available(event_id).await
    {
        view.refresh(
            event_id,
            Seen {
                version: cached.version,
                available: cached.available,
                capacity: None,
            },
        );
        metrics::availability_read("redis");
        return Ok(cached.available);
    }
    let event = find(state, event_id).await?;
    metrics::availability_read("mysql");
    cache(state, &event).await;
    Ok(event.available)
}

/// Puts the event's availability in the cache (unless a newer one is
/// there) and in the view.
pub async fn cache(state: &AppState, event: &event::Model) {
    state.availability.refresh(
        event.id,
        Seen {
            version: event.version,
            available: event.available,
            capacity: Some(event.capacity),
        },
    );
    state
        .cache
        .store(event.id, event.version, event.available)
        .await;
}

/// The event row, or 404.
pub async fn find(state: &AppState, event_id: i64) -> Result<event::Model, ApiError> {
    let event = event::Entity::find_by_id(event_id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("event {event_id} does not exist")))?;
    state.known_events.insert(event.id, terms_of(&event));
    Ok(event)
}

/// A count on the event row of the rows that point at it, which tells a
/// worker that locks the row whether to read them.
#[derive(Debug, Clone, Copy)]
pub enum Children {
    WaitingEntries,
    TicketTypes,
}

/// Counts one more of the event's `children`, in the transaction that
/// inserts it, *before* the insert: the update takes the event row's lock
/// first. Inserted first, the child's foreign key would share-lock the
/// event row, and two such transactions at once would each wait for the
/// other's share lock to update it (a deadlock, which the chaos workload
/// found as 500s on simultaneous waiting-list joins).
pub async fn count_child(
    txn: &DatabaseTransaction,
    event_id: i64,
    children: Children,
) -> Result<(), DbErr> {
    let sql = match children {
        Children::WaitingEntries => "UPDATE events SET waiting = waiting + 1 WHERE id = ?",
        Children::TicketTypes => "UPDATE events SET ticket_types = ticket_types + 1 WHERE id = ?",
    };
    txn.execute_raw(Statement::from_sql_and_values(
        txn.get_database_backend(),
        sql,
        [event_id.into()],
    ))
    .await?;
    Ok(())
}
