//! Polling and cancelling reservations.

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
    extract::PathId,
    pending,
    problem::{ApiError, Problem},
    routes::reserve::accepted,
    state::AppState,
    views::{Accepted, Reservation},
};

async fn find(state: &AppState, id: Uuid) -> Result<reservation::Model, ApiError> {
    reservation::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("reservation {id} does not exist")))
}

/// A reservation's current state; `pending` until a worker decides it.
#[utoipa::path(get, path = "/reservations/{id}", tag = "reservations",
    params(("id" = Uuid, Path, description = "Reservation id")),
    responses(
        (status = 200, body = Reservation),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    PathId(id): PathId<Uuid>,
) -> Result<Json<Reservation>, ApiError> {
    Ok(Json(find(&state, id).await?.into()))
}

/// Cancels a confirmed reservation; its tickets go back. Repeating it is
/// harmless.
#[utoipa::path(delete, path = "/reservations/{id}", tag = "reservations",
    params(("id" = Uuid, Path, description = "Reservation id")),
    responses(
        (status = 200, description = "Cancelled", body = Reservation),
        (status = 202, description = "Cancellation queued", body = Accepted),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not cancellable (pending or rejected)", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    PathId(id): PathId<Uuid>,
) -> Result<Response, ApiError> {
    let stored = find(&state, id).await?;
    match stored.status {
        ReservationStatus::Cancelled => return Ok(Json(Reservation::from(stored)).into_response()),
        ReservationStatus::Pending => {
            return Err(ApiError::Conflict(
                "the reservation is not decided yet; cancel it once it is confirmed".into(),
            ));
        }
        ReservationStatus::Rejected => {
            return Err(ApiError::Conflict(
                "a rejected reservation holds no tickets to cancel".into(),
            ));
        }
        ReservationStatus::Confirmed => {}
    }
    let command = Command::Cancel {
        reservation_id: id,
        event_id: stored.event_id,
    };
    let wait = state.settings.current().reserve_wait_timeout;
    match pending::publish_and_wait(&state, &command, wait).await? {
        Some(outcome) if outcome.status == ReservationStatus::Cancelled => {
            Ok(Json(Reservation::from(find(&state, id).await?)).into_response())
        }
        Some(outcome) => Err(ApiError::Conflict(outcome.message)),
        None => Ok(accepted(
            id,
            ReservationStatus::Confirmed,
            "Cancellation queued; not applied yet",
            false,
        )),
    }
}
