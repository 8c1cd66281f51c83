//! `POST /events/{id}/reserve`: validate, enqueue, and (by default) wait for
//! the worker's decision.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use sea_orm::EntityTrait;
use serde::Deserialize;
use shared::domain::{EventId, HoldSeconds, IdempotencyKey, Quantity, ReservationId};
use shared::{
    entities::{reservation, user},
    messages::{Command, Outcome, ReservationStatus},
};
use tracing::Span;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    auth::Caller,
    catalog,
    extract::{OptionalJson, PathId, QueryParams, RequestId},
    known_events::Terms,
    pending::{self, Waited},
    problem::{ApiError, Problem, Unavailability},
    requests::{self, Ask, Claim},
    routes::ticket_types,
    state::AppState,
    views::{Accepted, Decision, Status},
};

/// Seconds a client should wait before retrying while sales are paused.
const PAUSED_RETRY_AFTER: u64 = 30;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    /// Tickets to take, all or nothing; 1 to the configured maximum
    /// (default 1).
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "crate::integral::option_i64")]
    pub quantity: Option<i64>,
    /// An existing user, if the reservation is for one; required by an
    /// event with `max_per_user`, whose limit counts this user's held and
    /// confirmed tickets (a reservation over it is rejected, 409).
    #[serde(default, deserialize_with = "crate::integral::option_i64")]
    pub user_id: Option<i64>,
    /// `true` holds the tickets (`status: "held"`) until they are
    /// confirmed (`POST /reservations/{id}/confirm`), released
    /// (`DELETE /reservations/{id}`) or the hold expires (`expires_at`),
    /// instead of confirming at once.
    pub hold: Option<bool>,
    /// The ticket type to take from (`GET /events/{id}/ticket-types`);
    /// required when the event sells types, refused (422) when it does not.
    #[serde(default, deserialize_with = "crate::integral::option_i64")]
    pub ticket_type: Option<i64>,
    /// How long the hold lasts, with `"hold": true` only: 1 to the live
    /// maximum (900 by default); the live default (600) when absent.
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "crate::integral::option_i64")]
    pub hold_seconds: Option<i64>,
}

/// The hold a request asks for, if any, in seconds.
fn hold_seconds(
    body: &ReserveRequest,
    settings: &shared::settings::Settings,
) -> Result<Option<i32>, ApiError> {
    match (body.hold, body.hold_seconds) {
        (Some(true), None) => Ok(Some(settings.default_hold_seconds())),
        (Some(true), Some(raw)) => HoldSeconds::parse(raw, settings.max_hold_seconds)
            .map(|s| Some(s.get()))
            .map_err(ApiError::Unprocessable),
        (_, None) => Ok(None),
        (_, Some(_)) => Err(ApiError::Unprocessable(
            "hold_seconds needs \"hold\": true".into(),
        )),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReserveParams {
    /// `false` answers 202 at once instead of waiting for the decision.
    pub wait: Option<bool>,
}

/// Reserves tickets.
///
/// Waits for the decision unless `?wait=false` or `Prefer: respond-async`
/// is given, or the wait outlasts the configured timeout: then `202` with a
/// `Location` to poll. With an `Idempotency-Key` (scoped to the caller),
/// repeating the same request returns the same reservation and takes the
/// tickets once; the same key with a different request is refused with 422.
#[utoipa::path(post, path = "/events/{id}/reserve", tag = "reservations",
    params(
        ("id" = i64, Path, description = "Event id"),
        // The rule of `IdempotencyKey::parse`: HTTP already drops the
        // whitespace around a header value, so what arrives is the key.
        ("Idempotency-Key" = Option<String>, Header, nullable = false,
            min_length = 1, max_length = 255, pattern = "^[!-~]+$",
            description = "1-255 visible ASCII characters; scoped to the caller"),
        ("Prefer" = Option<String>, Header, nullable = false, description = "`respond-async` to get 202 at once"),
        ReserveParams,
    ),
    request_body(content = Option<ReserveRequest>, description = "Optional; no body means quantity 1"),
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Reserved (`confirmed`), or held until `expires_at` (`held`)", body = Decision),
        (status = 202, description = "Queued; poll Location", body = Accepted),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The event's sale has not opened (`sale-not-open`, with Retry-After) or has closed (`sale-closed`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive in time", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Rejected (not enough tickets), or the key's reservation was cancelled, released or expired since", body = Decision),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "This client is over its rate limit; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(name = "reserve", skip_all, fields(event_id, reservation_id))]
pub async fn reserve(
    State(state): State<AppState>,
    caller: Caller,
    RequestId(request_id): RequestId,
    PathId(event): PathId<EventId>,
    QueryParams(params): QueryParams<ReserveParams>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<ReserveRequest>,
) -> Result<Response, ApiError> {
    let span = Span::current();
    span.record("event_id", event.0);
    let settings = state.settings.current();
    let body = body.unwrap_or_default();
    let quantity = Quantity::parse(body.quantity.unwrap_or(1), settings.max_quantity)
        .map_err(ApiError::Unprocessable)?;
    let hold_seconds = hold_seconds(&body, &settings)?;
    let key = idempotency_key(&headers)?;
    let respond_async = params.wait == Some(false) || prefers_async(&headers);
    if settings.is_paused(event.0) {
        return Err(ApiError::unavailable(
            Unavailability::SalesPaused,
            format!("sales for event {event} are paused"),
            PAUSED_RETRY_AFTER,
        ));
    }
    let terms = catalog::terms(&state, event.0).await?;
    let type_window =
        ticket_types::check_choice(&state, event.0, terms.typed, body.ticket_type).await?;
    check_user(&state, event.0, &terms, body.user_id).await?;
    let ask = Ask {
        event_id: event.0,
        ticket_type_id: body.ticket_type,
        quantity: quantity.get(),
        user_id: body.user_id,
        hold_seconds,
    };
    let owner = caller.owner();
    // Outside the sale window (the event's, or the type's inside it) only a
    // replayed key goes on (to the state of what it asked while the sale
    // was open); nothing new is recorded.
    let now = Utc::now();
    if let Err(off_sale) = terms.window.check(now).and(type_window.check(now)) {
        let replay = match &key {
            Some(key) => requests::claimed(&state, owner, key, ask).await?,
            None => None,
        };
        if replay.is_none() {
            return Err(ApiError::NotOnSale(off_sale));
        }
    }

    // A keyed request is recorded before it is queued (the claim); an
    // unkeyed one only when it is answered before its decision.
    let (reservation_id, recorded) = match &key {
        Some(key) => match requests::claim(&state, owner, key, ask).await? {
            Claim::New(id) => (id, true),
            Claim::Replay(id) => match replay(&state, id).await? {
                Some(stored) => return Ok(stored),
                // Not decided yet (or its first publish failed): queue it
                // again; the workers decide an id once.
                None => (id, true),
            },
        },
        None => (ReservationId::random().0, false),
    };
    span.record("reservation_id", tracing::field::display(reservation_id));
    let command = Command::Reserve {
        reservation_id,
        event_id: event.0,
        quantity: quantity.get(),
        user_id: body.user_id,
        client_id: owner,
        hold_seconds,
        ticket_type_id: body.ticket_type,
    };
    // Answered before its decision: pollable from now on.
    let queued = async |message: &'static str, preference_applied: bool| {
        if !recorded {
            requests::record(&state, reservation_id, owner, ask).await;
        }
        accepted(
            reservation_id,
            ReservationStatus::Pending,
            message,
            preference_applied,
        )
    };

    if respond_async {
        pending::publish(&state, &command, request_id.as_deref()).await?;
        return Ok(queued("Reservation queued", true).await);
    }
    let wait = settings.reserve_wait_timeout;
    match pending::publish_and_wait(&state, &command, request_id.as_deref(), wait).await? {
        // The worker found the id holding another request.
        Waited::Decided(outcome) if Ask::from(&outcome) != ask => {
            Err(ApiError::IdempotencyKeyReused)
        }
        Waited::Decided(outcome) => Ok(decided(outcome)),
        Waited::NotYet => Ok(queued("Reservation queued; not decided yet", false).await),
    }
}

/// The user a reservation (or a waiting-list entry) names: one that
/// exists, and one there must be when the event limits tickets per user.
pub async fn check_user(
    state: &AppState,
    event_id: i64,
    terms: &Terms,
    user_id: Option<i64>,
) -> Result<(), ApiError> {
    let user_id = match (terms.max_per_user, user_id) {
        (Some(max), None) => {
            return Err(ApiError::Unprocessable(format!(
                "event {event_id} limits tickets to {max} per user: name the user (user_id)"
            )));
        }
        (_, None) => return Ok(()),
        (_, Some(user_id)) => user_id,
    };
    if state.known_users.contains(user_id) {
        return Ok(());
    }
    match user::Entity::find_by_id(user_id).one(&state.db).await? {
        Some(_) => {
            state.known_users.insert(user_id);
            Ok(())
        }
        None => Err(ApiError::Unprocessable(format!(
            "user {user_id} does not exist"
        ))),
    }
}

/// The answer to a replayed key whose reservation is decided: its state as
/// stored now. `None` while it is not decided.
pub async fn replay(state: &AppState, id: Uuid) -> Result<Option<Response>, ApiError> {
    let Some(stored) = reservation::Entity::find_by_id(id).one(&state.db).await? else {
        return Ok(None);
    };
    let remaining = catalog::available(state, stored.event_id).await?;
    Ok(Some(decided(stored_outcome(stored, remaining))))
}

/// The `Idempotency-Key` header: absent, or exactly one valid value.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(
            "send one Idempotency-Key header, not several".into(),
        ));
    }
    let raw = value
        .to_str()
        .map_err(|_| ApiError::BadRequest("Idempotency-Key must be visible ASCII".into()))?;
    IdempotencyKey::parse(raw)
        .map(Some)
        .map_err(ApiError::BadRequest)
}

fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::HeaderName::from_static("prefer"))
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
}

/// A stored reservation as the answer to a replayed key.
fn stored_outcome(stored: reservation::Model, remaining: i32) -> Outcome {
    Outcome {
        reservation_id: stored.id,
        event_id: stored.event_id,
        ticket_type_id: stored.ticket_type_id,
        quantity: stored.quantity,
        user_id: stored.user_id,
        status: stored.status,
        remaining_tickets: remaining,
        hold_seconds: stored.hold_seconds,
        expires_at: stored.expires_at,
        message: stored.status.message().to_owned(),
        refused: None,
    }
}

/// 200 for a confirmed or held reservation; 409 (same body) for any other
/// decided state: rejected, or cancelled, released or expired since.
pub fn decided(outcome: Outcome) -> Response {
    let status = match outcome.status {
        ReservationStatus::Confirmed | ReservationStatus::Held => StatusCode::OK,
        _ => StatusCode::CONFLICT,
    };
    (status, Json(Decision::from(outcome))).into_response()
}

/// 202 with the id to poll.
pub fn accepted(
    reservation_id: Uuid,
    status: impl Into<Status>,
    message: &str,
    preference_applied: bool,
) -> Response {
    let mut response = (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/reservations/{reservation_id}"))],
        Json(Accepted {
            reservation_id,
            status: status.into(),
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
