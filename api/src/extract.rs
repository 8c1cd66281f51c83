//! Extractors that turn every malformed request into a problem document:
//! axum's own rejections answer in plain text.

use axum::{
    body::{Body, Bytes},
    extract::{FromRequest, FromRequestParts, Path, Query, Request},
    http::{header, request::Parts},
};
use std::str::FromStr;

use futures::StreamExt;
use serde::de::DeserializeOwned;

/// The header of the request id.
pub const REQUEST_ID: &str = "x-request-id";

use crate::{
    auth::{Admin, Caller},
    problem::ApiError,
    state::AppState,
};

/// An optional JSON body. No body (zero bytes) is `None` whatever the
/// content type, so a bare `curl -X POST` works; a body must be JSON, so
/// one of only whitespace is malformed, as the OpenAPI document says. The
/// JSON `null` is `None` too: it is JSON's "nothing", and the document
/// (utoipa's `Option<T>` body) allows it.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
        let timeout = state.body_read_timeout;
        let bytes = tokio::time::timeout(
            timeout,
            read_body(request.into_body(), state.max_body_bytes),
        )
        .await
        .map_err(|_| ApiError::RequestTimeout(timeout.as_millis() as u64))??;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        json::<Option<T>>(&bytes).map(Self)
    }
}

/// A required JSON body: neither absent nor `null`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match OptionalJson::<T>::from_request(request, state).await? {
            OptionalJson(Some(value)) => Ok(Self(value)),
            OptionalJson(None) => Err(ApiError::BadRequest("a JSON body is required".into())),
        }
    }
}

/// How much of an oversized body is still read (and thrown away) before
/// answering 413. Closing a connection with unread request bytes makes the
/// kernel send a reset, which can destroy the 413 before the client reads
/// it; draining a bounded amount lets ordinary clients see the answer.
const DRAIN_LIMIT: usize = 1024 * 1024;

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("unreadable body: {e}")))?;
        seen += chunk.len();
        if seen > limit + DRAIN_LIMIT {
            break;
        }
        if seen <= limit {
            buffer.extend_from_slice(&chunk);
        }
    }
    if seen > limit {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    Ok(Bytes::from(buffer))
}

fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => ApiError::Unprocessable(error.to_string()),
        _ => ApiError::BadRequest(format!("malformed JSON: {error}")),
    })
}

/// An id in the path (`/events/{id}`, `/reservations/{id}`), parsed as `T`.
pub struct PathId<T>(pub T);

impl<S: Send + Sync, T: FromStr> FromRequestParts<S> for PathId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        raw.parse()
            .map(Self)
            .map_err(|_| ApiError::BadRequest(format!("{raw:?} is not a valid id")))
    }
}

/// Query parameters, with a problem document on failure.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// Resolved once per request: the rate limiter resolves it first and
/// leaves it in the request's extensions for the handler.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(*caller);
        }
        let caller = state.keys.identify(&state.db, &parts.headers).await?;
        parts.extensions.insert(caller);
        Ok(caller)
    }
}

/// The admin token, or why not: without `ADMIN_TOKEN` every admin
/// endpoint answers 403 saying how to set it, whatever the request carries.
impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !state.keys.admin_enabled() {
            return Err(ApiError::AdminDisabled);
        }
        match Caller::from_request_parts(parts, state).await {
            Ok(Caller::Admin) => Ok(Self),
            Ok(_) | Err(ApiError::Unauthorized(_)) => Err(ApiError::Unauthorized(
                "this endpoint needs the admin token: `Authorization: Bearer <ADMIN_TOKEN>`".into(),
            )),
            Err(other) => Err(other),
        }
    }
}

/// The id of this HTTP request (`x-request-id`: the client's, or the one
/// the api gave it), passed on with the commands it publishes so that the
/// workers' log lines name it.
pub struct RequestId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ))
    }
}
