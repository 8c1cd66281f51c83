//! Polling and cancelling reservations. A reservation is visible only to
//! the client that made it (and to the admin): to anyone else it does not
//! exist (404, never 403, so ids reveal nothing).

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use sea_orm::EntityTrait;
use shared::{
    entities::reservation,
    messages::{Command, ReservationStatus},
};
use uuid::Uuid;

use crate::{
    auth::Caller,
    extract::{PathId, RequestId},
    pending::{self, Waited},
    problem::{ApiError, Problem},
    requests,
    routes::reserve::{accepted, decided, replay},
    state::AppState,
    views::{Accepted, Decision, Reservation, Status},
};

/// The reservation as `caller` may see it: decided (`reservations`), or
/// accepted and not decided yet (`reservation_requests`).
async fn find(state: &AppState, caller: Caller, id: Uuid) -> Result<Reservation, ApiError> {
    let not_found = || ApiError::NotFound(format!("reservation {id} does not exist"));
    if let Some(row) = reservation::Entity::find_by_id(id).one(&state.db).await? {
        return if caller.may_access(row.client_id) {
            Ok(row.into())
        } else {
            Err(not_found())
        };
    }
    match requests::find(state, id).await? {
        Some(request) if caller.may_access(request.client_id) => Ok(request.into()),
        _ => Err(not_found()),
    }
}

/// A reservation's current state; `pending` until a worker decides it.
#[utoipa::path(get, path = "/reservations/{id}", tag = "reservations",
    params(("id" = Uuid, Path, description = "Reservation id")),
    security((), ("api_key" = []), ("admin_token" = [])),
    responses(
        (status = 200, body = Reservation),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such reservation, or another client's", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<Uuid>,
) -> Result<Json<Reservation>, ApiError> {
    Ok(Json(find(&state, caller, id).await?))
}

/// Confirms a held reservation: its tickets are the client's for good.
/// Repeating it is harmless. A hold whose `expires_at` has passed cannot be
/// confirmed: it expires instead, and the answer (409) says so.
#[utoipa::path(post, path = "/reservations/{id}/confirm", tag = "reservations",
    params(("id" = Uuid, Path, description = "Reservation id")),
    security((), ("api_key" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "Confirmed", body = Decision),
        (status = 202, description = "Confirmation queued; poll Location", body = Accepted),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such reservation, or another client's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not confirmable: the hold expired or was released, or the reservation was rejected or cancelled (body: the reservation); or it is not decided yet (problem)", body = Decision),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(name = "confirm", skip_all, fields(reservation_id = %id))]
pub async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    PathId(id): PathId<Uuid>,
) -> Result<Response, ApiError> {
    let stored = find(&state, caller, id).await?;
    match stored.status {
        Status::Held => {}
        Status::Pending => {
            return Err(ApiError::Conflict(
                "the reservation is not decided yet; confirm it once it is held".into(),
            ));
        }
        // Confirmed already (a repeat), or over: the stored state.
        _ => return replay(&state, id).await?.ok_or_else(|| gone(id)),
    }
    let command = Command::Confirm {
        reservation_id: id,
        event_id: stored.event_id,
        client_id: stored.client_id,
    };
    let wait = state.settings.current().reserve_wait_timeout;
    let queued = || {
        accepted(
            id,
            ReservationStatus::Held,
            "Confirmation queued; not applied yet",
            false,
        )
    };
    match pending::publish_and_wait(&state, &command, request_id.as_deref(), wait).await? {
        // Still held: the outcome of another command for this id (a
        // redelivered reserve) ended the wait, not this one's.
        Waited::Decided(outcome) if outcome.status == ReservationStatus::Held => {
            match moved_on(&state, caller, id, |s| s == Status::Held).await? {
                Some(_) => replay(&state, id).await?.ok_or_else(|| gone(id)),
                None => Ok(queued()),
            }
        }
        Waited::Decided(outcome) => Ok(decided(outcome)),
        Waited::NotYet => Ok(queued()),
    }
}

/// Cancels a confirmed reservation, or releases a held one: its tickets go
/// back. Repeating it is harmless.
#[utoipa::path(delete, path = "/reservations/{id}", tag = "reservations",
    params(("id" = Uuid, Path, description = "Reservation id")),
    security((), ("api_key" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "Cancelled (`cancelled`), released (`released`), or the hold had expired (`expired`)", body = Reservation),
        (status = 202, description = "Cancellation queued", body = Accepted),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such reservation, or another client's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not cancellable (pending or rejected)", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(name = "cancel", skip_all, fields(reservation_id = %id))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    PathId(id): PathId<Uuid>,
) -> Result<Response, ApiError> {
    let stored = find(&state, caller, id).await?;
    match stored.status {
        Status::Cancelled | Status::Released | Status::Expired => {
            return Ok(Json(stored).into_response());
        }
        Status::Pending => {
            return Err(ApiError::Conflict(
                "the reservation is not decided yet; cancel it once it is confirmed".into(),
            ));
        }
        Status::Rejected => {
            return Err(ApiError::Conflict(
                "a rejected reservation holds no tickets to cancel".into(),
            ));
        }
        Status::Confirmed | Status::Held => {}
    }
    let command = Command::Cancel {
        reservation_id: id,
        event_id: stored.event_id,
        client_id: stored.client_id,
    };
    let wait = state.settings.current().reserve_wait_timeout;
    let was = stored.status;
    let queued = || accepted(id, was, "Cancellation queued; not applied yet", false);
    match pending::publish_and_wait(&state, &command, request_id.as_deref(), wait).await? {
        Waited::Decided(outcome) if !outcome.status.takes_tickets() => {
            Ok(Json(find(&state, caller, id).await?).into_response())
        }
        // Still taking tickets: the outcome of another command for this id
        // (a redelivered reserve or confirm) ended the wait.
        Waited::Decided(_) => {
            let taking = |s| matches!(s, Status::Held | Status::Confirmed);
            match moved_on(&state, caller, id, taking).await? {
                Some(now) => Ok(Json(now).into_response()),
                None => Ok(queued()),
            }
        }
        Waited::NotYet => Ok(queued()),
    }
}

/// The reservation as stored, once it is no longer in a state `waiting`
/// for the command that was published (`None` while it still is). Asked
/// when another command's outcome for the same id ended the wait.
async fn moved_on(
    state: &AppState,
    caller: Caller,
    id: Uuid,
    waiting: impl Fn(Status) -> bool,
) -> Result<Option<Reservation>, ApiError> {
    let now = find(state, caller, id).await?;
    Ok((!waiting(now.status)).then_some(now))
}

fn gone(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("reservation {id} does not exist"))
}
