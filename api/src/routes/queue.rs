//! `GET /admin/events/{id}/queue`: how many commands wait to be decided
//! in the partition that carries an event's commands, for an operator
//! watching a sale (`ticketctl watch`). Read from RabbitMQ when asked.

use axum::{Json, extract::State};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::Admin,
    extract::PathId,
    problem::{ApiError, Problem, Unavailability},
    state::AppState,
};

/// The command queue an event's commands wait in.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queue {
    pub event_id: i64,
    /// The partition the event's commands are routed to.
    pub partition: u16,
    /// Commands ready in that partition, waiting for its worker: the
    /// event's and those of the other events routed to it.
    pub queued: u32,
}

/// The depth of the command queue an event's commands wait in (admin).
#[utoipa::path(get, path = "/admin/events/{id}/queue", tag = "admin",
    params(("id" = i64, Path, description = "Event id (need not exist: the partition is computed from it)")),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Queue, example = json!({"event_id": 1, "partition": 3, "queued": 120})),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker cannot say now", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn queue(
    State(state): State<AppState>,
    _admin: Admin,
    PathId(event_id): PathId<i64>,
) -> Result<Json<Queue>, ApiError> {
    let (partition, queued) = state.broker.queued(event_id).await.ok_or_else(|| {
        ApiError::unavailable(
            Unavailability::Dependency,
            "The message broker is unavailable; retry shortly.",
            1,
        )
    })?;
    Ok(Json(Queue {
        event_id,
        partition,
        queued,
    }))
}
