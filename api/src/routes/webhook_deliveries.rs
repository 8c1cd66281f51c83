//! What became of webhook messages: the deliveries listed and filtered
//! (for an operator watching a receiver that fails), one message with its
//! payload, and replay (after a receiver is fixed, `failed` deliveries go
//! back to `pending` and the dispatchers send them again).
//!
//! Deliveries are paged by keyset on (message time, message id, endpoint),
//! oldest first, like `GET /admin/reservations`.

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveEnum, ConnectionTrait, FromQueryResult, Statement, Value};
use serde::{Deserialize, Serialize};
use shared::entities::webhook_delivery::DeliveryStatus;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    auth::Admin,
    extract::{JsonBody, PathId, QueryParams},
    problem::{ApiError, Problem},
    state::AppState,
};

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 500;

const SELECT: &str = "SELECT d.message_id, d.endpoint_id, m.client_id, m.reservation_id, \
    m.event_type, d.status, d.attempts, \
    CASE WHEN d.status = 'pending' THEN d.next_attempt_at END AS next_attempt_at, \
    d.last_attempt_at, d.last_status, \
    d.last_error, d.delivered_at, m.created_at \
    FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id";

/// One message owed to one endpoint, and how its attempts went.
#[derive(Debug, Serialize, ToSchema, FromQueryResult)]
pub struct Delivery {
    pub message_id: Uuid,
    pub endpoint_id: i64,
    pub client_id: i64,
    pub reservation_id: Uuid,
    /// `reservation.held`, `reservation.confirmed`, …
    pub event_type: String,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i32,
    /// While `pending`: when the next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status the endpoint last answered, if it answered.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the change it tells was committed.
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub endpoint_id: Option<i64>,
    pub client_id: Option<i64>,
    pub status: Option<DeliveryStatus>,
    pub reservation_id: Option<Uuid>,
    /// The cursor: the previous page's `next_after`.
    #[param(pattern = r"^[0-9]{1,16}\.[0-9a-f]{32}\.[0-9]{1,18}$")]
    pub after: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// One page of deliveries, oldest message first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub deliveries: Vec<Delivery>,
    /// Pass as `after` for the next page (also in the `Link` header);
    /// absent on the last page.
    pub next_after: Option<String>,
}

/// Where a page ends: the last delivery's message time, message and
/// endpoint, as `<microseconds>.<message id>.<endpoint id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    micros: i64,
    message: Uuid,
    endpoint: i64,
}

impl Cursor {
    fn of(delivery: &Delivery) -> Self {
        Self {
            micros: delivery.created_at.timestamp_micros(),
            message: delivery.message_id,
            endpoint: delivery.endpoint_id,
        }
    }

    /// Reads what [`Cursor`]'s `Display` wrote; anything else the
    /// document's pattern for `after` allows reads too.
    fn parse(raw: &str) -> Option<Self> {
        let mut parts = raw.split('.');
        let cursor = Self {
            micros: parts.next()?.parse().ok()?,
            message: parts.next()?.parse().ok()?,
            endpoint: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(cursor)
    }

    fn time(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.micros)
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}.{}",
            self.micros,
            self.message.simple(),
            self.endpoint
        )
    }
}

/// Lists webhook deliveries (admin), filtered, one page at a time.
#[utoipa::path(get, path = "/admin/webhook-deliveries", tag = "admin",
    params(Filter),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = DeliveryPage,
            headers(("Link" = String, description = "`</admin/webhook-deliveries?…&after=…>; rel=\"next\"` (RFC 8288) unless this is the last page"))),
        (status = 400, description = "A malformed filter or cursor, or a limit out of range", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    _admin: Admin,
    QueryParams(filter): QueryParams<Filter>,
) -> Result<Response, ApiError> {
    let limit = super::paging::limit(filter.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let after = filter
        .after
        .as_deref()
        .map(|raw| {
            Cursor::parse(raw)
                .filter(|c| c.time().is_some())
                .ok_or_else(|| ApiError::BadRequest("after is not a cursor this api gave".into()))
        })
        .transpose()?;
    let mut conditions = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(id) = filter.endpoint_id {
        conditions.push("d.endpoint_id = ?");
        values.push(id.into());
    }
    if let Some(id) = filter.client_id {
        conditions.push("m.client_id = ?");
        values.push(id.into());
    }
    if let Some(status) = filter.status {
        conditions.push("d.status = ?");
        values.push(status.into());
    }
    if let Some(id) = filter.reservation_id {
        conditions.push("m.reservation_id = ?");
        values.push(id.as_bytes().to_vec().into());
    }
    if let Some(cursor) = after {
        conditions.push(
            "(m.created_at > ? OR (m.created_at = ? AND (d.message_id > ? \
             OR (d.message_id = ? AND d.endpoint_id > ?))))",
        );
        let time = cursor.time().map(|t| t.naive_utc());
        let message = cursor.message.as_bytes().to_vec();
        values.extend([
            time.into(),
            time.into(),
            message.clone().into(),
            message.into(),
            cursor.endpoint.into(),
        ]);
    }
    let mut sql = SELECT.to_owned();
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY m.created_at, d.message_id, d.endpoint_id LIMIT ?");
    // One more than a page tells whether another page follows.
    values.push((limit + 1).into());
    let mut rows = Delivery::find_by_statement(Statement::from_sql_and_values(
        state.db.get_database_backend(),
        sql,
        values,
    ))
    .all(&state.db)
    .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let next = more.then(|| rows.last().map(Cursor::of)).flatten();
    let mut response = Json(DeliveryPage {
        deliveries: rows,
        next_after: next.map(|c| c.to_string()),
    })
    .into_response();
    if let Some(cursor) = next {
        let query = filter.next_query(limit, cursor);
        super::paging::link_next(&mut response, "/admin/webhook-deliveries", &query);
    }
    Ok(response)
}

impl Filter {
    /// The query string of the page after `cursor`, with the same filters.
    fn next_query(&self, limit: u64, cursor: Cursor) -> String {
        let mut pairs = Vec::new();
        if let Some(id) = self.endpoint_id {
            pairs.push(format!("endpoint_id={id}"));
        }
        if let Some(id) = self.client_id {
            pairs.push(format!("client_id={id}"));
        }
        if let Some(status) = self.status {
            pairs.push(format!("status={}", status.to_value()));
        }
        if let Some(id) = self.reservation_id {
            pairs.push(format!("reservation_id={id}"));
        }
        pairs.push(format!("limit={limit}"));
        pairs.push(format!("after={cursor}"));
        pairs.join("&")
    }
}

/// A message of the outbox, with the body its deliveries send.
#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    pub id: Uuid,
    pub client_id: i64,
    pub reservation_id: Uuid,
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    /// The JSON body sent (`type`, `timestamp`, `data`).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub deliveries: Vec<Delivery>,
}

/// One webhook message: what it says, and its deliveries.
#[utoipa::path(get, path = "/admin/webhook-messages/{id}", tag = "admin",
    params(("id" = Uuid, Path, description = "Message id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Message),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_message(
    State(state): State<AppState>,
    _admin: Admin,
    PathId(id): PathId<Uuid>,
) -> Result<Json<Message>, ApiError> {
    use sea_orm::EntityTrait;
    use shared::entities::webhook_message;
    let found = webhook_message::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("webhook message {id} does not exist")))?;
    let deliveries = Delivery::find_by_statement(Statement::from_sql_and_values(
        state.db.get_database_backend(),
        format!("{SELECT} WHERE d.message_id = ? ORDER BY d.endpoint_id"),
        [id.as_bytes().to_vec().into()],
    ))
    .all(&state.db)
    .await?;
    Ok(Json(Message {
        id: found.id,
        client_id: found.client_id,
        reservation_id: found.reservation_id,
        event_type: found.event_type,
        created_at: found.created_at,
        payload: serde_json::from_str(&found.payload).unwrap_or(serde_json::Value::Null),
        deliveries,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// Replay this endpoint's deliveries.
    pub endpoint_id: Option<i64>,
    /// Replay this message's deliveries.
    pub message_id: Option<Uuid>,
    /// Which deliveries: `failed` (the default), or `delivered` to send
    /// them again.
    pub status: Option<DeliveryStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    /// Deliveries put back to `pending`, due now.
    pub replayed: u64,
}

/// Sends deliveries again: those of an endpoint and/or a message (of
/// every endpoint and message when neither is named), in the state asked
/// (`failed` by default), go back to `pending` with their attempts reset,
/// due now. Deliveries to a removed endpoint are not replayed.
#[utoipa::path(post, path = "/admin/webhook-deliveries/replay", tag = "admin",
    request_body = Replay,
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Replayed),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn replay_deliveries(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(replay): JsonBody<Replay>,
) -> Result<Json<Replayed>, ApiError> {
    let mut sql = "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, \
        next_attempt_at = UTC_TIMESTAMP(6), last_error = NULL \
        WHERE status = ? AND endpoint_id IN \
        (SELECT id FROM webhook_endpoints WHERE disabled_at IS NULL)"
        .to_owned();
    let mut values: Vec<Value> = vec![replay.status.unwrap_or(DeliveryStatus::Failed).into()];
    if let Some(id) = replay.endpoint_id {
        sql.push_str(" AND endpoint_id = ?");
        values.push(id.into());
    }
    if let Some(id) = replay.message_id {
        sql.push_str(" AND message_id = ?");
        values.push(id.as_bytes().to_vec().into());
    }
    let done = state
        .db
        .execute_raw(Statement::from_sql_and_values(
            state.db.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    Ok(Json(Replayed {
        replayed: done.rows_affected(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_written() {
        let cursor = Cursor {
            micros: 1_796_000_000_123_456,
            message: Uuid::from_u128(42),
            endpoint: 7,
        };
        assert_eq!(Cursor::parse(&cursor.to_string()), Some(cursor));
        for bad in [
            "",
            "1.2",
            "x.00000000000000000000000000000000.1",
            "1.nope.1",
            "1.00000000000000000000000000000000.1.9",
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }
}
