//! Reads of events and their availability: Redis first when it has the
//! answer, MySQL otherwise (and then the cache is refilled).

use std::{
    collections::HashSet,
    sync::{PoisonError, RwLock},
};

use sea_orm::EntityTrait;
use shared::entities::event;

use crate::{problem::ApiError, state::AppState};

/// Ids of events this process has seen exist. Events are never deleted, so
/// once seen, an event's existence needs no further round trip: the reserve
/// path then touches neither Redis nor MySQL before publishing (a burst of
/// requests for a new event would otherwise all miss the cache at once).
#[derive(Default)]
pub struct KnownEvents(RwLock<HashSet<i64>>);

impl KnownEvents {
    fn contains(&self, id: i64) -> bool {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&id)
    }

    fn insert(&self, id: i64) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
    }
}

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
