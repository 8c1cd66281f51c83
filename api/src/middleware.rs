//! Middleware of the reserve route: who is asking, and whether they are
//! over their budget, settled before anything is read or queued.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequestParts, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{auth::Caller, problem::ApiError, state::AppState};

/// Middleware: identifies the caller (401 for a bad key) and answers 429
/// to one over its budget. The caller stays in the request for the handler.
/// The TCP peer (set by the server loop) decides whether a proxy's client
/// address header is believed.
pub async fn limit_reserve(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(limiter) = state.reserve_limiter.clone() else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let caller = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let verdict = limiter
        .key(caller, peer, &parts.headers)
        .map_or(Ok(()), |key| limiter.check(key));
    match verdict {
        Ok(()) => next.run(Request::from_parts(parts, body)).await,
        Err(wait) => ApiError::TooManyRequests {
            retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
        }
        .into_response(),
    }
}
