//! Getting a command to the workers and, when asked, its outcome back.
//! Shared by reserve, confirm and cancel.

use std::time::Duration;

use shared::messages::{Command, Outcome};

use crate::{
    broker::PublishError,
    metrics,
    problem::{ApiError, Unavailability},
    state::AppState,
};

/// Seconds to suggest in `Retry-After` when the broker is unavailable.
const RETRY_AFTER: u64 = 1;

/// What became of a command handed to the broker.
pub enum Sent {
    /// Stored durably by the broker.
    Queued,
    /// The broker did not confirm in time: the command may be queued and
    /// decided, so its id is the client's to poll (202), not a reason to
    /// retry blind (503).
    Unconfirmed,
}

/// What a client that waits for a decision gets.
pub enum Waited {
    Decided(Outcome),
    /// Queued (or maybe queued), not decided within the wait.
    NotYet,
}

/// Publishes `command` for the HTTP request `request_id`.
pub async fn publish(
    state: &AppState,
    command: &Command,
    request_id: Option<&str>,
) -> Result<Sent, ApiError> {
    let result = state.broker.publish(command, request_id).await;
    metrics::published(match &result {
        Ok(()) => "queued",
        Err(PublishError::Unconfirmed) => "unconfirmed",
        Err(PublishError::Refused) => "refused",
        Err(_) => "unavailable",
    });
    match result {
        Ok(()) => Ok(Sent::Queued),
        Err(PublishError::Unconfirmed) => {
            tracing::warn!(reservation_id = %command.reservation_id(), "publish not confirmed in time");
            Ok(Sent::Unconfirmed)
        }
        Err(error) => {
            tracing::warn!(%error, reservation_id = %command.reservation_id(), "publish failed");
            Err(match error {
                PublishError::Refused => ApiError::unavailable(
                    Unavailability::Overloaded,
                    "Too many reservations are queued; retry shortly.",
                    RETRY_AFTER,
                ),
                _ => ApiError::unavailable(
                    Unavailability::Dependency,
                    "The message broker is unavailable; retry shortly.",
                    RETRY_AFTER,
                ),
            })
        }
    }
}

/// Publishes `command` and waits up to `wait` for its outcome. An outcome
/// the database refused for good (nothing stored) is that refusal, for
/// every command alike.
pub async fn publish_and_wait(
    state: &AppState,
    command: &Command,
    request_id: Option<&str>,
    wait: Duration,
) -> Result<Waited, ApiError> {
    // Registered before publishing, or a fast worker's outcome could arrive
    // before anyone listens for it.
    let mut waiter = state
        .broker
        .waiters
        .register(command.reservation_id())
        .map_err(|full| {
            ApiError::unavailable(Unavailability::Overloaded, full.to_string(), RETRY_AFTER)
        })?;
    if let Sent::Unconfirmed = publish(state, command, request_id).await? {
        return Ok(Waited::NotYet);
    }
    match tokio::time::timeout(wait, waiter.outcome()).await {
        Ok(Some(Outcome {
            refused: Some(reason),
            ..
        })) => Err(ApiError::Refused(reason)),
        Ok(Some(outcome)) => Ok(Waited::Decided(outcome)),
        _ => Ok(Waited::NotYet),
    }
}
