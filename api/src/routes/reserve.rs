//! `POST /events/{id}/reserve`: validate, enqueue, and (by default) wait for
//! the worker's decision.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sea_orm::EntityTrait;
use serde::Deserialize;
use shared::{
    entities::{reservation, user},
    messages::{Command, Outcome, ReservationStatus},
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    catalog,
    extract::{OptionalJson, PathId, QueryParams},
    pending,
    problem::{ApiError, Problem},
    state::AppState,
    views::{Accepted, Decision},
};

/// Seconds a client should wait before retrying while sales are paused.
const PAUSED_RETRY_AFTER: u64 = 30;

/// Namespace of reservation ids derived from idempotency keys.
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_43c2_8a5e_4d0b_9a7e_52c1_d7f0_3b11);

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    /// Tickets to take, all or nothing; 1 to the configured maximum
    /// (default 1).
    #[schema(minimum = 1)]
    pub quantity: Option<i64>,
    /// An existing user, if the reservation is for one.
    pub user_id: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReserveParams {
    /// `false` answers 202 at once instead of waiting for the decision.
    pub wait: Option<bool>,
}

/// What was asked, for comparing with what an idempotency key stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    pub event_id: i64,
    pub quantity: i32,
    pub user_id: Option<i64>,
}

/// Reserves tickets.
///
/// Waits for the decision unless `?wait=false` or `Prefer: respond-async`
/// is given, or the wait outlasts the configured timeout: then `202` with a
/// `Location` to poll. With an `Idempotency-Key`, repeating the same request
/// returns the same reservation and takes the tickets once.
#[utoipa::path(post, path = "/events/{id}/reserve", tag = "reservations",
    params(
        ("id" = i64, Path, description = "Event id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-255 visible ASCII characters"),
        ("Prefer" = Option<String>, Header, description = "`respond-async` to get 202 at once"),
        ReserveParams,
    ),
    request_body(content = Option<ReserveRequest>, description = "Optional; no body means quantity 1"),
    responses(
        (status = 200, description = "Reserved", body = Decision),
        (status = 202, description = "Queued; poll Location", body = Accepted),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive in time", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Rejected: not enough tickets", body = Decision),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "This client is over its rate limit; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reserve(
    State(state): State<AppState>,
    PathId(event_id): PathId<i64>,
    QueryParams(params): QueryParams<ReserveParams>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<ReserveRequest>,
) -> Result<Response, ApiError> {
    let settings = state.settings.current();
    let body = body.unwrap_or_default();
    let quantity = body
        .quantity
        .unwrap_or(1)
        .try_into()
        .ok()
        .filter(|q| (1..=settings.max_quantity).contains(q))
        .ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "quantity must be between 1 and {}",
                settings.max_quantity
            ))
        })?;
    let idempotency_key = idempotency_key(&headers)?;
    let respond_async = params.wait == Some(false) || prefers_async(&headers);
    if settings.is_paused(event_id) {
        return Err(ApiError::unavailable(
            format!("sales for event {event_id} are paused"),
            PAUSED_RETRY_AFTER,
        ));
    }
    catalog::ensure_exists(&state, event_id).await?;
    if let Some(user_id) = body.user_id
        && user::Entity::find_by_id(user_id)
            .one(&state.db)
            .await?
            .is_none()
    {
        return Err(ApiError::Unprocessable(format!(
            "user {user_id} does not exist"
        )));
    }
    let ask = Ask {
        event_id,
        quantity,
        user_id: body.user_id,
    };

    let reservation_id = match &idempotency_key {
        Some(key) => {
            let id = Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, key.as_bytes());
            if let Some(stored) = reservation::Entity::find_by_id(id).one(&state.db).await? {
                check_same_ask(&stored_ask(&stored), &ask)?;
                if stored.status.is_decided() {
                    let remaining = catalog::available(&state, event_id).await?;
                    return Ok(decided(Outcome {
                        reservation_id: stored.id,
                        event_id: stored.event_id,
                        quantity: stored.quantity,
                        user_id: stored.user_id,
                        status: stored.status,
                        remaining_tickets: remaining,
                        message: stored.status.message().to_owned(),
                    }));
                }
            }
            id
        }
        None => Uuid::now_v7(),
    };
    let command = Command::Reserve {
        reservation_id,
        event_id,
        quantity,
        user_id: body.user_id,
    };

    if respond_async {
        pending::publish(&state, &command).await?;
        pending::record(&state, &command).await;
        return Ok(accepted(
            reservation_id,
            ReservationStatus::Pending,
            "Reservation queued",
            true,
        ));
    }
    match pending::publish_and_wait(&state, &command, settings.reserve_wait_timeout).await? {
        Some(outcome) => {
            check_same_ask(&outcome_ask(&outcome), &ask)?;
            Ok(decided(outcome))
        }
        None => {
            pending::record(&state, &command).await;
            Ok(accepted(
                reservation_id,
                ReservationStatus::Pending,
                "Reservation queued; not decided yet",
                false,
            ))
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters".into())
        })?;
    Ok(Some(key.to_owned()))
}

fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::HeaderName::from_static("prefer"))
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
}

fn stored_ask(r: &reservation::Model) -> Ask {
    Ask {
        event_id: r.event_id,
        quantity: r.quantity,
        user_id: r.user_id,
    }
}

fn outcome_ask(o: &Outcome) -> Ask {
    Ask {
        event_id: o.event_id,
        quantity: o.quantity,
        user_id: o.user_id,
    }
}

fn check_same_ask(stored: &Ask, asked: &Ask) -> Result<(), ApiError> {
    if stored == asked {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(
            "this Idempotency-Key was already used with a different request".into(),
        ))
    }
}

/// 200 for a success, 409 (same body) for a rejection.
pub fn decided(outcome: Outcome) -> Response {
    let status = match outcome.status {
        ReservationStatus::Rejected => StatusCode::CONFLICT,
        _ => StatusCode::OK,
    };
    (status, Json(Decision::from(outcome))).into_response()
}

/// 202 with the id to poll.
pub fn accepted(
    reservation_id: Uuid,
    status: ReservationStatus,
    message: &str,
    preference_applied: bool,
) -> Response {
    let mut response = (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/reservations/{reservation_id}"))],
        Json(Accepted {
            reservation_id,
            status,
            message: message.to_owned(),
        }),
    )
        .into_response();
    if preference_applied {
        response.headers_mut().insert(
            header::HeaderName::from_static("preference-applied"),
            HeaderValue::from_static("respond-async"),
        );
    }
    response
}
