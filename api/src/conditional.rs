//! Conditional reads (RFC 9110 §13): the event and availability reads carry
//! an `ETag` and `Cache-Control: no-cache`, and answer `304 Not Modified`
//! to an `If-None-Match` that names the current tag. During a sale pollers
//! ask for the same count many times a second; a 304 spares them the body
//! and tells them at once that nothing changed.
//!
//! The tag is a digest of the body itself, so it changes exactly when the
//! answer does (a reservation, a capacity change), whichever replica,
//! cache or database the answer came from, and needs no version column.
//! `no-cache` lets a cache store the answer but makes it ask again every
//! time: a count must not be served from a cache after a reservation.

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::problem::ApiError;

/// What every conditional read says to caches: store it, but revalidate.
pub const CACHE_CONTROL: &str = "no-cache";

/// `200` with `body`, its `ETag` and `Cache-Control`; or `304` with the
/// same headers and no body when the request's `If-None-Match` names it.
pub fn respond<T: Serialize>(request: &HeaderMap, body: &T) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.to_string()))?;
    let tag = entity_tag(&bytes);
    let matched = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| none_match_names(value, &tag));
    let mut response = if matched {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            axum::body::Bytes::from(bytes),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    // A quoted hex digest is always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    Ok(response)
}

/// A strong tag: the first 128 bits of the body's SHA-256, quoted.
fn entity_tag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether an `If-None-Match` value (`*` or a list of tags) names `tag`,
/// by weak comparison as RFC 9110 §13.1.2 asks: `W/"x"` names `"x"`.
fn none_match_names(value: &str, tag: &str) -> bool {
    value.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == tag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        let tag = entity_tag(b"{\"tickets\":3}");
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34);
        assert!(none_match_names(&tag, &tag));
        assert!(none_match_names(&format!("W/{tag}"), &tag));
        assert!(none_match_names(&format!("\"other\", {tag}"), &tag));
        assert!(none_match_names("*", &tag));
        assert!(!none_match_names("\"other\"", &tag));
        assert!(!none_match_names(&tag[1..], &tag));
        assert_ne!(tag, entity_tag(b"{\"tickets\":2}"));
    }

    #[test]
    fn a_matching_request_gets_304_with_the_same_tag() {
        let body = serde_json::json!({"tickets": 3});
        let first = respond(&HeaderMap::new(), &body).unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        let tag = first.headers()[header::ETAG].clone();
        assert_eq!(first.headers()[header::CACHE_CONTROL], CACHE_CONTROL);
        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, tag.clone());
        let second = respond(&request, &body).unwrap();
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(second.headers()[header::ETAG], tag);
    }
}
