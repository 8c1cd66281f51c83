//! Reads of events and their availability: Redis first when it has the
//! answer, MySQL otherwise (and then the cache is refilled).

use sea_orm::EntityTrait;
use shared::entities::event;

use crate::{problem::ApiError, state::AppState};

/// `Ok` if the event exists, else 404.
pub async fn ensure_exists(state: &AppState, event_id: i64) -> Result<(), ApiError> {
    if !state.known_events.contains(event_id) {
        available(state, event_id).await?;
    }
    Ok(())
}

/// Tickets left for `event_id`, or 404.
pub async fn available(state: &AppState, event_id: i64) -> Result<i32, ApiError> {
    if let Some(available) = state.cache.available(event_id).await {
        state.known_events.insert(event_id);
        return Ok(available);
    }
    let event = find(state, event_id).await?;
    cache(state, &event).await;
    Ok(event.available)
}

/// Puts the event's availability in the cache (unless a newer one is there).
pub async fn cache(state: &AppState, event: &event::Model) {
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
    state.known_events.insert(event.id);
    Ok(event)
}
