//! The one place errors become HTTP answers: RFC 9457 problem documents for
//! every refused request. Internal causes are logged, never sent. Each kind
//! of refusal has its own `type`, a page this api serves under
//! `/problems/` (the `problems` routes), so clients can branch on
//! it.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sea_orm::{DbErr, RuntimeErr, sqlx};
use serde::Serialize;
use utoipa::ToSchema;

use shared::sale_window::OffSale;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error(
        "admin endpoints are disabled: start the api with ADMIN_TOKEN set to a secret \
         (e.g. `openssl rand -hex 32`) and send it as `Authorization: Bearer <ADMIN_TOKEN>`"
    )]
    AdminDisabled,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the request body did not arrive within {0} ms")]
    RequestTimeout(u64),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    #[error("{0}")]
    Unprocessable(String),
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    /// A worker found the command impossible to store (the database refused
    /// it for good); it was dead-lettered, nothing was reserved.
    #[error("the reservation could not be stored: {0}")]
    Refused(String),
    /// A dependency is down, the service is shedding load or sales are
    /// paused; nothing was decided.
    #[error("{detail}")]
    Unavailable {
        reason: Unavailability,
        detail: String,
        retry_after: u64,
    },
    /// The event's sale has not opened yet, or has closed; nothing was
    /// queued.
    #[error("{}", not_on_sale(.0))]
    NotOnSale(OffSale),
    /// The client is over its reserve budget; nothing was read or queued.
    #[error("too many reservation requests from this client; retry in {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a request was answered 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailability {
    /// MySQL, RabbitMQ or etcd is unreachable.
    Dependency,
    /// The command queue or the waiting requests are at their bound.
    Overloaded,
    /// An operator paused sales (live setting).
    SalesPaused,
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// The problem type: a page under `/problems/` that describes it.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    pub detail: String,
}

/// Every problem type: slug, title, and when it happens. Served as pages
/// by `GET /problems/{slug}`.
pub const TYPES: &[(&str, &str, &str)] = &[
    (
        "malformed-request",
        "Malformed request",
        "The request could not be read: invalid JSON, an unknown field, a bad path or query parameter, or a malformed header. Fix the request; retrying it unchanged will fail again.",
    ),
    (
        "validation",
        "Invalid request",
        "The request was read but a value breaks a rule (a quantity out of range, an unknown user, a name too long). The detail says which.",
    ),
    (
        "unauthorized",
        "Unauthorized",
        "The `Authorization` header is missing (when `REQUIRE_API_KEY` is on), malformed, or names an unknown or revoked API key, or the endpoint needs the admin token.",
    ),
    (
        "admin-disabled",
        "Admin endpoints disabled",
        "The api was started without `ADMIN_TOKEN`, so no one can use the admin endpoints. Set `ADMIN_TOKEN` to a long random secret and restart the api.",
    ),
    (
        "not-found",
        "Not found",
        "No such route, event, user, client or reservation. A reservation made by another client is reported as not found too, and so are live streams when a server has them turned off (`LIVE_MAX_STREAMS=0`).",
    ),
    (
        "method-not-allowed",
        "Method not allowed",
        "The route exists but not with this HTTP method.",
    ),
    (
        "conflict",
        "Conflict",
        "The request does not fit the current state: cancelling a reservation that is still pending or was rejected, or creating a user whose email is taken.",
    ),
    (
        "request-timeout",
        "Request timeout",
        "The request body did not arrive within `BODY_READ_TIMEOUT_MS`.",
    ),
    (
        "payload-too-large",
        "Payload too large",
        "The request body is larger than `MAX_BODY_BYTES`.",
    ),
    (
        "unsupported-media-type",
        "Unsupported media type",
        "A request body must be JSON (`Content-Type: application/json`).",
    ),
    (
        "idempotency-key-reused",
        "Idempotency-Key reused",
        "This client already used this `Idempotency-Key` for a different request (another event, quantity or user). Nothing was queued. Use a new key for a new request.",
    ),
    (
        "command-refused",
        "Command refused",
        "A worker could not store the reservation because the database refused it for good; the command was dead-lettered and nothing was reserved.",
    ),
    (
        "sale-not-open",
        "Sale not open yet",
        "The sale of the event, or of the ticket type asked for, opens later: the detail gives the opening time (RFC 3339) and `Retry-After` the seconds until then. Nothing was queued.",
    ),
    (
        "sale-closed",
        "Sale closed",
        "The sale of the event, or of the ticket type asked for, has closed: the detail gives the closing time. Nothing was queued. A replayed `Idempotency-Key` still gets the state of what it asked while the sale was open.",
    ),
    (
        "rate-limited",
        "Too many requests",
        "This client (API key, or address behind a trusted proxy) is over its reserve budget. Nothing was queued. Retry after `Retry-After` seconds.",
    ),
    (
        "sales-paused",
        "Sales paused",
        "An operator paused sales for this event (or all events). Nothing was queued. Retry after `Retry-After` seconds.",
    ),
    (
        "overloaded",
        "Overloaded",
        "The command queue, the number of waiting requests or of open live streams (`LIVE_MAX_STREAMS`) is at its bound, or the server is shutting down. Nothing was queued. Retry after `Retry-After` seconds.",
    ),
    (
        "unavailable",
        "Service unavailable",
        "A dependency (MySQL, RabbitMQ, etcd) is unreachable. Nothing was decided. Retry after `Retry-After` seconds.",
    ),
    (
        "internal",
        "Internal error",
        "A bug. The cause is in the api's log; the answer says nothing more.",
    ),
];

fn not_on_sale(off_sale: &OffSale) -> String {
    let (what, at) = match off_sale {
        OffSale::NotYet(opens_at) => ("opens", opens_at),
        OffSale::Closed(closes_at) => ("closed", closes_at),
    };
    format!(
        "the sale {what} at {}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// The `type` of problems with `slug`.
pub fn type_uri(slug: &str) -> String {
    format!("/problems/{slug}")
}

impl ApiError {
    pub fn unavailable(
        reason: Unavailability,
        detail: impl Into<String>,
        retry_after: u64,
    ) -> Self {
        Self::Unavailable {
            reason,
            detail: detail.into(),
            retry_after,
        }
    }

    fn status_and_slug(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "malformed-request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::AdminDisabled => (StatusCode::FORBIDDEN, "admin-disabled"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request-timeout"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
            }
            Self::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
            Self::IdempotencyKeyReused => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused")
            }
            Self::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "command-refused"),
            Self::NotOnSale(OffSale::NotYet(_)) => (StatusCode::FORBIDDEN, "sale-not-open"),
            Self::NotOnSale(OffSale::Closed(_)) => (StatusCode::FORBIDDEN, "sale-closed"),
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            Self::Unavailable { reason, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                match reason {
                    Unavailability::Dependency => "unavailable",
                    Unavailability::Overloaded => "overloaded",
                    Unavailability::SalesPaused => "sales-paused",
                },
            ),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug) = self.status_and_slug();
        let detail = match &self {
            Self::Internal(cause) => {
                tracing::error!(cause, "internal error");
                "An internal error occurred.".to_owned()
            }
            other => other.to_string(),
        };
        let title = TYPES
            .iter()
            .find(|(s, ..)| *s == slug)
            .map_or("Error", |(_, title, _)| title);
        let problem = Problem {
            kind: type_uri(slug),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
        };
        let mut response = (status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            Self::Unavailable { retry_after, .. } | Self::TooManyRequests { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::NotOnSale(OffSale::NotYet(opens_at)) => {
                let wait = (*opens_at - chrono::Utc::now()).num_milliseconds();
                let secs = u64::try_from(wait.div_euclid(1000) + 1).unwrap_or(1);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            _ => {}
        }
        response
    }
}

impl From<DbErr> for ApiError {
    /// Connection trouble is the database being unavailable (503); anything
    /// else is a bug (opaque 500, cause logged).
    fn from(error: DbErr) -> Self {
        let unavailable = match &error {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
                matches!(
                    **e,
                    sqlx::Error::Io(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::Protocol(_)
                        | sqlx::Error::WorkerCrashed
                )
            }
            _ => false,
        };
        if unavailable {
            tracing::warn!(%error, "database unavailable");
            Self::unavailable(
                Unavailability::Dependency,
                "The database is unavailable; retry shortly.",
                1,
            )
        } else {
            Self::Internal(error.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_a_documented_type() {
        let samples = [
            ApiError::BadRequest(String::new()),
            ApiError::Unauthorized(String::new()),
            ApiError::AdminDisabled,
            ApiError::NotFound(String::new()),
            ApiError::MethodNotAllowed(String::new()),
            ApiError::Conflict(String::new()),
            ApiError::RequestTimeout(1),
            ApiError::PayloadTooLarge(1),
            ApiError::UnsupportedMediaType,
            ApiError::Unprocessable(String::new()),
            ApiError::IdempotencyKeyReused,
            ApiError::Refused(String::new()),
            ApiError::TooManyRequests { retry_after: 1 },
            ApiError::NotOnSale(OffSale::NotYet(chrono::Utc::now())),
            ApiError::NotOnSale(OffSale::Closed(chrono::Utc::now())),
            ApiError::unavailable(Unavailability::Dependency, "", 1),
            ApiError::unavailable(Unavailability::Overloaded, "", 1),
            ApiError::unavailable(Unavailability::SalesPaused, "", 1),
            ApiError::Internal(String::new()),
        ];
        let mut slugs: Vec<&str> = samples.iter().map(|e| e.status_and_slug().1).collect();
        for slug in &slugs {
            assert!(
                TYPES.iter().any(|(s, ..)| s == slug),
                "{slug} is undocumented"
            );
        }
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), samples.len(), "one type per kind of refusal");
    }
}
