//! The api's record of the reservation requests it accepted
//! (`reservation_requests`): the claim of an idempotency key, and what makes
//! an id answered with 202 pollable before a worker decides it. The api is
//! this table's only writer; the workers write `reservations`.

use chrono::Utc;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, SqlErr};
use shared::{
    domain::{IdempotencyKey, ReservationId},
    entities::reservation_request,
    messages::Outcome,
};
use uuid::Uuid;

use crate::{problem::ApiError, state::AppState};

/// What a request asked, for comparing with what a key first asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    pub event_id: i64,
    pub ticket_type_id: Option<i64>,
    pub quantity: i32,
    pub user_id: Option<i64>,
    /// Set for a hold: a hold and a plain reserve are different requests.
    pub hold_seconds: Option<i32>,
}

impl From<&Outcome> for Ask {
    fn from(o: &Outcome) -> Self {
        Self {
            event_id: o.event_id,
            ticket_type_id: o.ticket_type_id,
            quantity: o.quantity,
            user_id: o.user_id,
            hold_seconds: o.hold_seconds,
        }
    }
}

impl From<&reservation_request::Model> for Ask {
    fn from(r: &reservation_request::Model) -> Self {
        Self {
            event_id: r.event_id,
            ticket_type_id: r.ticket_type_id,
            quantity: r.quantity,
            user_id: r.user_id,
            hold_seconds: r.hold_seconds,
        }
    }
}

/// The result of claiming an idempotency key.
pub enum Claim {
    /// The key is new: it now names `id`.
    New(Uuid),
    /// The key was claimed before, by the same request: its reservation.
    Replay(Uuid),
}

fn row(id: Uuid, owner: i64, key: Option<&str>, ask: Ask) -> reservation_request::ActiveModel {
    reservation_request::ActiveModel {
        id: Set(id),
        client_id: Set(owner),
        idempotency_key: Set(key.map(str::to_owned)),
        event_id: Set(ask.event_id),
        ticket_type_id: Set(ask.ticket_type_id),
        quantity: Set(ask.quantity),
        user_id: Set(ask.user_id),
        hold_seconds: Set(ask.hold_seconds),
        created_at: Set(Utc::now()),
    }
}

/// Claims `key` for `owner`'s request `ask`. The unique key
/// `(client_id, idempotency_key)` decides between two requests that claim
/// the same key at once: the loser reads the winner's row, and a different
/// request there is refused (422) before anything is queued.
pub async fn claim(
    state: &AppState,
    owner: i64,
    key: &IdempotencyKey,
    ask: Ask,
) -> Result<Claim, ApiError> {
    let id = ReservationId::random().0;
    let inserted = reservation_request::Entity::insert(row(id, owner, Some(key.as_str()), ask))
        .exec_without_returning(&state.db)
        .await;
    match inserted {
        Ok(_) => return Ok(Claim::New(id)),
        Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {}
        Err(error) => return Err(error.into()),
    }
    match claimed(state, owner, key, ask).await? {
        Some(id) => Ok(Claim::Replay(id)),
        None => Err(ApiError::Internal(format!(
            "key {:?} is taken but has no request",
            key.as_str()
        ))),
    }
}

/// The reservation `owner`'s `key` already names, if it does and for the
/// same request; the same key for another request is refused (422).
pub async fn claimed(
    state: &AppState,
    owner: i64,
    key: &IdempotencyKey,
    ask: Ask,
) -> Result<Option<Uuid>, ApiError> {
    let first = reservation_request::Entity::find()
        .filter(reservation_request::Column::ClientId.eq(owner))
        .filter(reservation_request::Column::IdempotencyKey.eq(key.as_str()))
        .one(&state.db)
        .await?;
    match first {
        None => Ok(None),
        Some(first) if Ask::from(&first) == ask => Ok(Some(first.id)),
        Some(_) => Err(ApiError::IdempotencyKeyReused),
    }
}

/// Makes an unkeyed reservation that was answered 202 pollable before it is
/// decided. A failure is logged, not returned: the command is queued and its
/// decision will make the id pollable.
pub async fn record(state: &AppState, id: Uuid, owner: i64, ask: Ask) {
    let result = reservation_request::Entity::insert(row(id, owner, None, ask))
        .on_conflict_do_nothing_on([reservation_request::Column::Id])
        .exec_without_returning(&state.db)
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, reservation_id = %id, "could not record a queued reservation");
    }
}

pub async fn find(
    state: &AppState,
    id: Uuid,
) -> Result<Option<reservation_request::Model>, ApiError> {
    Ok(reservation_request::Entity::find_by_id(id)
        .one(&state.db)
        .await?)
}
