//! Admin authentication: a static bearer token, compared in constant time
//! so response timing reveals nothing about it.

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use crate::{problem::ApiError, state::AppState};

pub fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    let expected = state.admin_token.as_bytes();
    let matches = !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected));
    if matches {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}
