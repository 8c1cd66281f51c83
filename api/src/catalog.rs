//! Reads of events and their availability: Redis first when it has the
//! answer, MySQL otherwise (and then the cache is refilled).

use sea_orm::EntityTrait;
use shared::entities::event;

use crate::{problem::ApiError, state::AppState};

/// Tickets left for `event_id`, or 404.
pub async fn available(state: &AppState, event_id: i64) -> Result<i32, ApiError> {
    if let Some(available) = state.cache.available(event_id).await {
        return Ok(available);
    }
    let event = find(state, event_id).await?;
    state
        .cache
        .store(event.id, event.version, event.available)
        .await;
    Ok(event.available)
}

/// The event row, or 404.
pub async fn find(state: &AppState, event_id: i64) -> Result<event::Model, ApiError> {
    event::Entity::find_by_id(event_id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("event {event_id} does not exist")))
}
