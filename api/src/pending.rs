//! Getting a command to the workers and, when asked, its outcome back.
//! Shared by reserve and cancel.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ActiveValue::Set, EntityTrait};
use shared::{
    entities::reservation,
    messages::{Command, Outcome, ReservationStatus},
};

use crate::{broker::PublishError, problem::ApiError, state::AppState};

/// Seconds to suggest in `Retry-After` when the broker is unavailable.
const RETRY_AFTER: u64 = 1;

/// Publishes `command`; `Ok` means the broker stored it durably.
pub async fn publish(state: &AppState, command: &Command) -> Result<(), ApiError> {
    state.broker.publish(command).await.map_err(|error| {
        tracing::warn!(%error, reservation_id = %command.reservation_id(), "publish failed");
        match error {
            PublishError::Refused => ApiError::unavailable(
                "Too many reservations are queued; retry shortly.",
                RETRY_AFTER,
            ),
            // The command may have been stored after all: say which id to poll.
            PublishError::Unconfirmed => ApiError::Unavailable {
                detail: "The message broker did not confirm in time; the reservation may \
                         still be decided, poll it or retry with the same Idempotency-Key."
                    .into(),
                retry_after: RETRY_AFTER,
                reservation_id: Some(command.reservation_id()),
            },
            PublishError::NotConnected | PublishError::Broker(_) => ApiError::unavailable(
                "The message broker is unavailable; retry shortly.",
                RETRY_AFTER,
            ),
        }
    })
}

/// Publishes `command` and waits up to `wait` for its outcome; `None` when
/// the wait ran out (the command is queued and will still be decided).
pub async fn publish_and_wait(
    state: &AppState,
    command: &Command,
    wait: Duration,
) -> Result<Option<Outcome>, ApiError> {
    // Registered before publishing, or a fast worker's outcome could arrive
    // before anyone listens for it.
    let mut waiter = state
        .broker
        .waiters
        .register(command.reservation_id())
        .map_err(|full| ApiError::unavailable(full.to_string(), RETRY_AFTER))?;
    publish(state, command).await?;
    Ok(tokio::time::timeout(wait, waiter.outcome())
        .await
        .ok()
        .flatten())
}

/// Makes a queued reservation pollable before its id is handed out: inserts
/// a `pending` row unless the worker already wrote the decision. A failure
/// is logged, not returned: the command is safely queued and its decision
/// will create the row.
pub async fn record(state: &AppState, command: &Command) {
    let Command::Reserve {
        reservation_id,
        event_id,
        quantity,
        user_id,
    } = *command
    else {
        return;
    };
    let now = Utc::now();
    let row = reservation::ActiveModel {
        id: Set(reservation_id),
        event_id: Set(event_id),
        user_id: Set(user_id),
        quantity: Set(quantity),
        status: Set(ReservationStatus::Pending),
        fence_token: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        decided_at: Set(None),
    };
    let result = reservation::Entity::insert(row)
        .on_conflict_do_nothing_on([reservation::Column::Id])
        .exec_without_returning(&state.db)
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, %reservation_id, "could not record a pending reservation");
    }
}
