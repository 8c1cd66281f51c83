//! Waiting lists: a client asks to queue for tickets that are sold out;
//! the worker that decides the event offers tickets that come back to the
//! queue in order, as holds (the reservation with the entry's id), before
//! anyone else can buy them. An entry is visible to the client that joined
//! (and the admin) only, like a reservation.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use shared::{
    domain::{EventId, Quantity, ReservationId},
    entities::{reservation, waiting_entry},
    messages::Command,
};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::Caller,
    catalog::{self, Children},
    extract::{OptionalJson, PathId, RequestId},
    pending,
    problem::{ApiError, Problem},
    routes::{reserve, ticket_types},
    state::AppState,
    views::Reservation,
};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// Tickets wanted, all or nothing; 1 to the configured maximum
    /// (default 1).
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "crate::integral::option_i64")]
    pub quantity: Option<i64>,
    /// The ticket type, for an event that sells types.
    #[serde(default, deserialize_with = "crate::integral::option_i64")]
    pub ticket_type: Option<i64>,
    /// An existing user, if the entry is for one; required by an event
    /// with `max_per_user`. An offer that would take this user past the
    /// limit is not made: the entry keeps its place, and those behind it
    /// are served meanwhile.
    #[serde(default, deserialize_with = "crate::integral::option_i64")]
    pub user_id: Option<i64>,
}

/// `waiting` until tickets are offered; then `offered`, with the hold in
/// `reservation` (confirm it with `POST /reservations/{id}/confirm` before
/// it expires).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    Waiting,
    Offered,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaitingEntry {
    pub id: Uuid,
    pub event_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_type_id: Option<i64>,
    pub quantity: i32,
    pub status: EntryStatus,
    /// 1 for the next to be offered; absent once offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// The hold offered (same id as the entry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation: Option<Reservation>,
}

/// Joins the waiting list of a sold-out event (or ticket type).
#[utoipa::path(post, path = "/events/{id}/waiting-list", tag = "waiting_list",
    params(("id" = i64, Path, description = "Event id")),
    request_body(content = Option<JoinRequest>, description = "Optional; no body means one ticket"),
    security((), ("api_key" = [])),
    responses(
        (status = 201, description = "Queued; follow Location", body = WaitingEntry),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Tickets are available: reserve them instead", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn join(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    PathId(event): PathId<EventId>,
    OptionalJson(body): OptionalJson<JoinRequest>,
) -> Result<Response, ApiError> {
    let body = body.unwrap_or_default();
    let settings = state.settings.current();
    let quantity = Quantity::parse(body.quantity.unwrap_or(1), settings.max_quantity)
        .map_err(ApiError::Unprocessable)?
        .get();
    let terms = catalog::terms(&state, event.0).await?;
    reserve::check_user(&state, event.0, &terms, body.user_id).await?;
    if let Some(max) = terms.max_per_user.filter(|max| quantity > *max) {
        return Err(ApiError::Unprocessable(format!(
            "event {event} limits tickets to {max} per user: no offer of {quantity} could be made"
        )));
    }
    ticket_types::check_choice(&state, event.0, terms.typed, body.ticket_type).await?;
    let left = match body.ticket_type {
        None => catalog::available(&state, event.0).await?,
        Some(kind) => ticket_types::left(&state, event.0, kind).await?,
    };
    if left >= quantity {
        return Err(ApiError::Conflict(format!(
            "{left} tickets are available: reserve them instead"
        )));
    }
    let id = ReservationId::random().0;
    // The entry and the event's count of waiting entries change together:
    // a worker that sees the count reads the queue.
    let txn = state.db.begin().await?;
    catalog::count_child(&txn, event.0, Children::WaitingEntries).await?;
    waiting_entry::Entity::insert(waiting_entry::ActiveModel {
        id: Set(id),
        event_id: Set(event.0),
        ticket_type_id: Set(body.ticket_type),
        client_id: Set(caller.owner()),
        user_id: Set(body.user_id),
        quantity: Set(quantity),
        created_at: Set(Utc::now()),
        ..Default::default()
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    // Tickets may have come back since the check: have the worker look.
    // Best effort: the event's next decision looks anyway.
    let offer = Command::Offer {
        reservation_id: id,
        event_id: event.0,
    };
    if let Err(error) = pending::publish(&state, &offer, request_id.as_deref()).await {
        tracing::warn!(?error, entry = %id, "could not ask for an offer; the next decision makes it");
    }
    let entry = find(&state, caller, id).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/waiting-list/{id}"))],
        Json(entry),
    )
        .into_response())
}

/// A waiting-list entry: its position, or the hold it was offered.
#[utoipa::path(get, path = "/waiting-list/{id}", tag = "waiting_list",
    params(("id" = Uuid, Path, description = "Entry id")),
    security((), ("api_key" = []), ("admin_token" = [])),
    responses(
        (status = 200, body = WaitingEntry),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entry, or another client's", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<Uuid>,
) -> Result<Json<WaitingEntry>, ApiError> {
    Ok(Json(find(&state, caller, id).await?))
}

/// Leaves the waiting list, while no tickets have been offered yet.
#[utoipa::path(delete, path = "/waiting-list/{id}", tag = "waiting_list",
    params(("id" = Uuid, Path, description = "Entry id")),
    security((), ("api_key" = []), ("admin_token" = [])),
    responses(
        (status = 204, description = "Left the list"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entry, or another client's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already offered: release the hold instead (DELETE /reservations/{id})", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn leave(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<Uuid>,
) -> Result<StatusCode, ApiError> {
    let entry = find(&state, caller, id).await?;
    let offered = || {
        ApiError::Conflict(format!(
            "tickets were offered to this entry: release the hold (DELETE /reservations/{id})"
        ))
    };
    if !matches!(entry.status, EntryStatus::Waiting) {
        return Err(offered());
    }
    // The worker locks the entries it offers, so this waits for it; the
    // entry goes only if it is still unoffered, and the count with it.
    let txn = state.db.begin().await?;
    let gone = waiting_entry::Entity::delete_many()
        .filter(waiting_entry::Column::Id.eq(id))
        .filter(waiting_entry::Column::OfferedAt.is_null())
        .exec(&txn)
        .await?;
    if gone.rows_affected != 1 {
        return Err(offered());
    }
    txn.execute_raw(Statement::from_sql_and_values(
        txn.get_database_backend(),
        "UPDATE events SET waiting = waiting - 1 WHERE id = ?",
        [entry.event_id.into()],
    ))
    .await?;
    txn.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn find(state: &AppState, caller: Caller, id: Uuid) -> Result<WaitingEntry, ApiError> {
    use waiting_entry::Column as C;
    let entry = waiting_entry::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .filter(|e| caller.may_access(e.client_id))
        .ok_or_else(|| ApiError::NotFound(format!("waiting-list entry {id} does not exist")))?;
    let (status, position, reservation) = match entry.offered_at {
        None => {
            let ahead = waiting_entry::Entity::find()
                .filter(C::EventId.eq(entry.event_id))
                .filter(match entry.ticket_type_id {
                    Some(kind) => C::TicketTypeId.eq(kind),
                    None => C::TicketTypeId.is_null(),
                })
                .filter(C::OfferedAt.is_null())
                .filter(C::Seq.lt(entry.seq))
                .count(&state.db)
                .await?;
            (EntryStatus::Waiting, Some(ahead + 1), None)
        }
        Some(_) => {
            let hold = reservation::Entity::find_by_id(id).one(&state.db).await?;
            (EntryStatus::Offered, None, hold.map(Reservation::from))
        }
    };
    Ok(WaitingEntry {
        id,
        event_id: entry.event_id,
        ticket_type_id: entry.ticket_type_id,
        quantity: entry.quantity,
        status,
        position,
        reservation,
    })
}
