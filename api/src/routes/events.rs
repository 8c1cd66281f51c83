//! Event administration and availability reads.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Datelike, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use serde::Deserialize;
use shared::{entities::event, sale_window::SaleWindow};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::Admin,
    catalog, conditional,
    extract::{JsonBody, PathId, QueryParams},
    problem::{ApiError, Problem},
    state::AppState,
    views::{Event, EventPage, Tickets},
};

const MAX_CAPACITY: i32 = 10_000_000;

/// A count of tickets a request sets (a capacity, a limit): 1 to
/// 10,000,000, else a 422 naming `field`.
pub fn ticket_count(raw: i64, field: &str) -> Result<i32, ApiError> {
    i32::try_from(raw)
        .ok()
        .filter(|c| (1..=MAX_CAPACITY).contains(c))
        .ok_or_else(|| {
            ApiError::Unprocessable(format!("{field} must be between 1 and {MAX_CAPACITY}"))
        })
}
const MAX_TEXT: usize = 200;

/// A time MySQL's DATETIME can hold (years 1000 to 9999 only).
fn storable(at: Option<DateTime<Utc>>) -> Result<(), ApiError> {
    if at.is_some_and(|at| !(1000..=9999).contains(&at.year())) {
        return Err(ApiError::Unprocessable(
            "times must be within the years 1000 to 9999".to_owned(),
        ));
    }
    Ok(())
}

/// A sale window as an event or a ticket type is created with: either end
/// optional, both storable, and closing after it opens.
pub fn sale_window(
    opens_at: Option<DateTime<Utc>>,
    closes_at: Option<DateTime<Utc>>,
) -> Result<SaleWindow, ApiError> {
    storable(opens_at)?;
    storable(closes_at)?;
    if let (Some(opens), Some(closes)) = (opens_at, closes_at)
        && closes <= opens
    {
        return Err(ApiError::Unprocessable(
            "sale_closes_at must be after sale_opens_at".to_owned(),
        ));
    }
    Ok(SaleWindow {
        opens_at,
        closes_at,
    })
}

// The times' `pattern`, `^[1-9][0-9]{3}-`, is their rule: MySQL's DATETIME
// holds years 1000 to 9999 only (checked in `create`), which `date-time`
// alone allows.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    /// Number of tickets, 1 to 10,000,000.
    #[schema(minimum = 1, maximum = 10_000_000)]
    #[serde(deserialize_with = "crate::integral::i64")]
    pub capacity: i64,
    #[schema(pattern = "^[1-9][0-9]{3}-")]
    pub starts_at: Option<DateTime<Utc>>,
    #[schema(max_length = 200)]
    pub venue: Option<String>,
    /// Reservations are refused before this time (default: on sale at once).
    #[schema(pattern = "^[1-9][0-9]{3}-")]
    pub sale_opens_at: Option<DateTime<Utc>>,
    /// Reservations are refused from this time on (default: never); after
    /// `sale_opens_at`.
    #[schema(pattern = "^[1-9][0-9]{3}-")]
    pub sale_closes_at: Option<DateTime<Utc>>,
    /// Most tickets one user may hold and have confirmed across all their
    /// reservations (default: no limit). Reservations must then name their
    /// `user_id`.
    #[schema(minimum = 1, maximum = 10_000_000)]
    #[serde(default, deserialize_with = "crate::integral::option_i64")]
    pub max_per_user: Option<i64>,
}

/// Tickets still available (served from Redis when it has them).
/// Conditional: send the last `ETag` as `If-None-Match` to get `304`
/// while the count has not changed.
#[utoipa::path(get, path = "/events/{id}/tickets", tag = "events",
    params(("id" = i64, Path, description = "Event id"), ("If-None-Match" = Option<String>, Header, description = "An `ETag` this read answered before: `304` while the answer is the same")),
    responses(
        (status = 200, body = Tickets, headers(("ETag" = String, description = "A digest of the body"), ("Cache-Control" = String, description = "`no-cache`: revalidate every time")),
            example = json!({"tickets": 100})),
        (status = 304, description = "Not modified: `If-None-Match` names the current `ETag`", headers(("ETag" = String, description = "A digest of the body"), ("Cache-Control" = String, description = "`no-cache`: revalidate every time"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn tickets(
    State(state): State<AppState>,
    PathId(event_id): PathId<i64>,
    request: HeaderMap,
) -> Result<Response, ApiError> {
    let tickets = catalog::available(&state, event_id).await?;
    let ticket_types = if catalog::terms(&state, event_id).await?.typed {
        Some(super::ticket_types::of_event(&state, event_id).await?)
    } else {
        None
    };
    conditional::respond(
        &request,
        &Tickets {
            tickets,
            ticket_types,
        },
    )
}

/// Creates an event (admin).
#[utoipa::path(post, path = "/events", tag = "events",
    request_body = NewEvent,
    security(("admin_token" = [])),
    responses(
        (status = 201, body = Event),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints disabled (no ADMIN_TOKEN)", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(new): JsonBody<NewEvent>,
) -> Result<Response, ApiError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > MAX_TEXT {
        return Err(ApiError::Unprocessable(format!(
            "name must be 1 to {MAX_TEXT} characters"
        )));
    }
    let venue = new
        .venue
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    if venue.is_some_and(|v| v.chars().count() > MAX_TEXT) {
        return Err(ApiError::Unprocessable(format!(
            "venue must be at most {MAX_TEXT} characters"
        )));
    }
    let capacity = ticket_count(new.capacity, "capacity")?;
    let max_per_user = new
        .max_per_user
        .map(|max| ticket_count(max, "max_per_user"))
        .transpose()?;
    storable(new.starts_at)?;
    sale_window(new.sale_opens_at, new.sale_closes_at)?;
    let now = Utc::now();
    let inserted = event::Entity::insert(event::ActiveModel {
        name: Set(name.to_owned()),
        venue: Set(venue.map(str::to_owned)),
        starts_at: Set(new.starts_at),
        sale_opens_at: Set(new.sale_opens_at),
        sale_closes_at: Set(new.sale_closes_at),
        capacity: Set(capacity),
        max_per_user: Set(max_per_user),
        available: Set(capacity),
        fence_token: Set(0),
        version: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(&state.db)
    .await?;
    let event = catalog::find(&state, inserted.last_insert_id).await?;
    // Warm the cache so the first burst of reads finds it.
    catalog::cache(&state, &event).await;
    let location = format!("/events/{}", event.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(Event::from(event)),
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only events with an id greater than this (the previous page's
    /// `next_after`).
    pub after: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// Lists events by id, one page at a time. Conditional, like
/// `GET /events/{id}`.
#[utoipa::path(get, path = "/events", tag = "events",
    params(ListParams, ("If-None-Match" = Option<String>, Header, description = "An `ETag` this read answered before: `304` while the answer is the same")),
    responses(
        (status = 200, body = EventPage, headers(("ETag" = String, description = "A digest of the body"), ("Cache-Control" = String, description = "`no-cache`: revalidate every time"))),
        (status = 304, description = "Not modified: `If-None-Match` names the current `ETag`", headers(("ETag" = String, description = "A digest of the body"), ("Cache-Control" = String, description = "`no-cache`: revalidate every time"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<ListParams>,
    request: HeaderMap,
) -> Result<Response, ApiError> {
    let limit = super::paging::limit(params.limit, 20, 100)?;
    let rows = event::Entity::find()
        .filter(event::Column::Id.gt(params.after.unwrap_or(0)))
        .order_by_asc(event::Column::Id)
        .limit(limit + 1)
        .all(&state.db)
        .await?;
    let more = rows.len() as u64 > limit;
    let events: Vec<Event> = rows
        .into_iter()
        .take(limit as usize)
        .map(Event::from)
        .collect();
    let next_after = if more {
        events.last().map(|e| e.id)
    } else {
        None
    };
    conditional::respond(&request, &EventPage { events, next_after })
}

/// A change to an event; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventChange {
    /// New capacity: never below what is held or sold (409 otherwise).
    #[schema(minimum = 1, maximum = 10_000_000)]
    #[serde(default, deserialize_with = "crate::integral::option_i64")]
    pub capacity: Option<i64>,
    /// `true` closes the sale now (`sale_closes_at` becomes now): new
    /// reservations are refused, holds can still be confirmed.
    pub closed: Option<bool>,
}

/// Changes an event's capacity or closes its sale (admin).
#[utoipa::path(patch, path = "/events/{id}", tag = "events",
    params(("id" = i64, Path, description = "Event id")),
    request_body = EventChange,
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Event),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The new capacity is below what is held or sold", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    _admin: Admin,
    PathId(event_id): PathId<i64>,
    JsonBody(change): JsonBody<EventChange>,
) -> Result<Json<Event>, ApiError> {
    let capacity = change
        .capacity
        .map(|raw| ticket_count(raw, "capacity"))
        .transpose()?;
    catalog::find(&state, event_id).await?;
    let backend = state.db.get_database_backend();
    if let Some(capacity) = capacity {
        // One statement, like a worker's decision under the row lock: it
        // waits for a deciding transaction, moves `available` by the
        // capacity's change only if what is held or sold still fits, and
        // bumps the version so caches take the new count.
        let moved = state
            .db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                "UPDATE events SET available = available + (? - capacity), capacity = ?, \
                 version = version + 1 WHERE id = ? AND available + (? - capacity) >= 0",
                [
                    capacity.into(),
                    capacity.into(),
                    event_id.into(),
                    capacity.into(),
                ],
            ))
            .await?;
        if moved.rows_affected() == 0 {
            return Err(ApiError::Conflict(format!(
                "event {event_id} has more than {capacity} tickets held or sold"
            )));
        }
    }
    if change.closed == Some(true) {
        return close_sale(&state, event_id).await.map(Json);
    }
    let event = catalog::find(&state, event_id).await?;
    catalog::cache(&state, &event).await;
    Ok(Json(event.into()))
}

/// Closes the sale now: the one writer of a closing, behind
/// `PATCH /events/{id}` (`"closed": true`) and `POST /events/{id}/close`.
async fn close_sale(state: &AppState, event_id: i64) -> Result<Event, ApiError> {
    // Closed from now on: an opening still to come goes too (the window
    // must close after it opens). A sale closed earlier keeps its time.
    state
        .db
        .execute_raw(Statement::from_sql_and_values(
            state.db.get_database_backend(),
            "UPDATE events SET \
             sale_opens_at = IF(sale_opens_at > UTC_TIMESTAMP(6), NULL, sale_opens_at), \
             sale_closes_at = LEAST(COALESCE(sale_closes_at, UTC_TIMESTAMP(6)), UTC_TIMESTAMP(6)) \
             WHERE id = ?",
            [event_id.into()],
        ))
        .await?;
    let event = catalog::find(state, event_id).await?;
    catalog::cache(state, &event).await;
    Ok(event.into())
}

/// Closes an event's sale now (admin): new reservations and waiting-list
/// entries are refused (`sale-closed`); holds can still be confirmed.
/// Closing a closed sale changes nothing. The same as `PATCH /events/{id}`
/// with `{"closed": true}`.
#[utoipa::path(post, path = "/events/{id}/close", tag = "events",
    params(("id" = i64, Path, description = "Event id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The event, its `sale_closes_at` now or earlier", body = Event,
            example = json!({"id": 42, "name": "Concert", "venue": null, "starts_at": null,
                "sale_opens_at": null, "sale_closes_at": "2026-12-07T10:00:00Z", "capacity": 100,
                "remaining_tickets": 37, "created_at": "2026-12-01T09:00:00Z"})),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints disabled (no ADMIN_TOKEN)", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn close(
    State(state): State<AppState>,
    _admin: Admin,
    PathId(event_id): PathId<i64>,
) -> Result<Json<Event>, ApiError> {
    catalog::find(&state, event_id).await?;
    close_sale(&state, event_id).await.map(Json)
}

/// One event, with its capacity and remaining tickets. Conditional: send
/// the last `ETag` as `If-None-Match` to get `304` while it has not
/// changed.
#[utoipa::path(get, path = "/events/{id}", tag = "events",
    params(("id" = i64, Path, description = "Event id"), ("If-None-Match" = Option<String>, Header, description = "An `ETag` this read answered before: `304` while the answer is the same")),
    responses(
        (status = 200, body = Event, headers(("ETag" = String, description = "A digest of the body"), ("Cache-Control" = String, description = "`no-cache`: revalidate every time"))),
        (status = 304, description = "Not modified: `If-None-Match` names the current `ETag`", headers(("ETag" = String, description = "A digest of the body"), ("Cache-Control" = String, description = "`no-cache`: revalidate every time"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    PathId(event_id): PathId<i64>,
    request: HeaderMap,
) -> Result<Response, ApiError> {
    let event: Event = catalog::find(&state, event_id).await?.into();
    conditional::respond(&request, &event)
}
