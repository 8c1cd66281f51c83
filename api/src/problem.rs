//! The one place errors become HTTP answers: RFC 9457 problem documents for
//! every refused request. Internal causes are logged, never sent.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sea_orm::{DbErr, RuntimeErr, sqlx};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid admin token")]
    Unauthorized,
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
    /// A dependency is down or the service is shedding load; nothing was
    /// decided. `reservation_id` is set when a command may nevertheless have
    /// been queued (its fate can be polled).
    #[error("{detail}")]
    Unavailable {
        detail: String,
        retry_after: u64,
        reservation_id: Option<Uuid>,
    },
    /// The client is over its reserve budget; nothing was read or queued.
    #[error("too many reservation requests from this client; retry in {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference identifying the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    pub detail: String,
    /// Present when a command may have been queued despite the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<Uuid>,
}

impl ApiError {
    pub fn unavailable(detail: impl Into<String>, retry_after: u64) -> Self {
        Self::Unavailable {
            detail: detail.into(),
            retry_after,
            reservation_id: None,
        }
    }

    fn status_and_slug(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request-timeout"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
            }
            Self::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-request"),
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            Self::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
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
        let reservation_id = match &self {
            Self::Unavailable { reservation_id, .. } => *reservation_id,
            _ => None,
        };
        let problem = Problem {
            kind: format!("https://tickets.example/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            reservation_id,
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
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
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
            Self::unavailable("The database is unavailable; retry shortly.", 1)
        } else {
            Self::Internal(error.to_string())
        }
    }
}
