//! What the keyset-paged listings share: the page size a request may ask
//! for, and the `Link: rel="next"` header (RFC 8288) of a page that has a
//! next one.

use axum::{
    http::{HeaderValue, header},
    response::Response,
};

use crate::problem::ApiError;

/// The page size of `raw` (`default` when absent), refused unless it is 1
/// to `max`.
pub fn limit(raw: Option<i64>, default: u64, max: u64) -> Result<u64, ApiError> {
    raw.map_or(Some(default), |raw| u64::try_from(raw).ok())
        .filter(|limit| (1..=max).contains(limit))
        .ok_or_else(|| ApiError::BadRequest(format!("limit must be between 1 and {max}")))
}

/// Points `response` at the next page: `path?query`.
pub fn link_next(response: &mut Response, path: &str, query: &str) {
    // Callers build the query from digits, ids and state names: always a
    // valid header value.
    if let Ok(value) = HeaderValue::from_str(&format!("<{path}?{query}>; rel=\"next\"")) {
        response.headers_mut().insert(header::LINK, value);
    }
}

#[cfg(test)]
mod tests {
    use super::limit;

    #[test]
    fn a_limit_is_its_default_or_within_its_bounds() {
        assert_eq!(limit(None, 50, 500).ok(), Some(50));
        assert_eq!(limit(Some(500), 50, 500).ok(), Some(500));
        for bad in [0, -1, 501] {
            assert!(limit(Some(bad), 50, 500).is_err(), "{bad}");
        }
    }
}
