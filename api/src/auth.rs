//! Who is asking: the admin (the `ADMIN_TOKEN`), a client (an API key an
//! admin created), or anonymous. Every bearer value is compared by its
//! SHA-256, so comparisons take the same time whatever the value's length
//! or content, and the database only ever sees digests.

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock},
    time::{Duration, Instant},
};

use axum::http::{HeaderMap, header};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};
use shared::entities::client;
use subtle::ConstantTimeEq;

use crate::problem::ApiError;

/// The owner id of anonymous requests (no row in `clients`).
pub const ANONYMOUS: i64 = 0;

/// How long a verified key is trusted without asking MySQL again: a key
/// revoked on another replica is refused at most this much later.
const KEY_CACHE_TTL: Duration = Duration::from_secs(2);

/// Verified keys kept at most; beyond it the cache starts afresh.
const KEY_CACHE_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    Client(i64),
    Admin,
}

impl Caller {
    /// The owner recorded on what this caller creates. The admin acting on
    /// the public api acts as anonymous.
    pub fn owner(self) -> i64 {
        match self {
            Self::Client(id) => id,
            Self::Anonymous | Self::Admin => ANONYMOUS,
        }
    }

    /// Whether this caller may see or change what `owner` owns.
    pub fn may_access(self, owner: i64) -> bool {
        self == Self::Admin || self.owner() == owner
    }
}

pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The admin token and the verified client keys.
pub struct Keys {
    admin: Option<[u8; 32]>,
    require_api_key: bool,
    verified: RwLock<HashMap<[u8; 32], (i64, Instant)>>,
}

impl Keys {
    pub fn new(admin_token: &str, require_api_key: bool) -> Self {
        Self {
            admin: (!admin_token.is_empty()).then(|| digest(admin_token)),
            require_api_key,
            verified: RwLock::default(),
        }
    }

    pub fn admin_enabled(&self) -> bool {
        self.admin.is_some()
    }

    /// Forgets a key at once on this replica (after revocation).
    pub fn forget(&self, client_id: i64) {
        self.verified
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, (id, _)| *id != client_id);
    }

    pub async fn identify(
        &self,
        db: &DatabaseConnection,
        headers: &HeaderMap,
    ) -> Result<Caller, ApiError> {
        let Some(presented) = bearer(headers)? else {
            return if self.require_api_key {
                Err(ApiError::Unauthorized(
                    "an API key is required: send `Authorization: Bearer <api_key>`".into(),
                ))
            } else {
                Ok(Caller::Anonymous)
            };
        };
        let hash = digest(presented);
        if self
            .admin
            .is_some_and(|admin| bool::from(admin.ct_eq(&hash)))
        {
            return Ok(Caller::Admin);
        }
        if let Some(id) = self.cached(&hash) {
            return Ok(Caller::Client(id));
        }
        let found = client::Entity::find()
            .filter(client::Column::KeyHash.eq(hash.to_vec()))
            .filter(client::Column::RevokedAt.is_null())
            .one(db)
            .await?;
        let Some(found) = found else {
            return Err(ApiError::Unauthorized("unknown or revoked API key".into()));
        };
        let mut verified = self
            .verified
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= KEY_CACHE_MAX {
            verified.clear();
        }
        verified.insert(hash, (found.id, Instant::now()));
        Ok(Caller::Client(found.id))
    }

    fn cached(&self, hash: &[u8; 32]) -> Option<i64> {
        let verified = self.verified.read().unwrap_or_else(PoisonError::into_inner);
        let (id, at) = verified.get(hash)?;
        (at.elapsed() < KEY_CACHE_TTL).then_some(*id)
    }
}

/// The bearer value, if an `Authorization` header is present. One header,
/// scheme `Bearer` (any case), a non-empty token: anything else is refused
/// rather than silently treated as anonymous.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let malformed = || ApiError::Unauthorized("send `Authorization: Bearer <api_key>`".into());
    if values.next().is_some() {
        return Err(malformed());
    }
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(Some(token))
}

/// Proof that the request carries the admin token: the extractor of every
/// admin endpoint (see `extract`).
pub struct Admin;

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::AUTHORIZATION, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn bearer_accepts_one_well_formed_header_only() {
        assert_eq!(bearer(&headers(&[])).unwrap(), None);
        assert_eq!(bearer(&headers(&["Bearer abc"])).unwrap(), Some("abc"));
        assert_eq!(bearer(&headers(&["bearer  abc "])).unwrap(), Some("abc"));
        for bad in [
            &["Basic abc"][..],
            &["Bearer "],
            &["abc"],
            &["Bearer a", "Bearer b"],
        ] {
            assert!(bearer(&headers(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn owners_see_their_own_and_the_admin_sees_all() {
        assert!(Caller::Client(7).may_access(7));
        assert!(!Caller::Client(7).may_access(8));
        assert!(!Caller::Client(7).may_access(ANONYMOUS));
        assert!(!Caller::Anonymous.may_access(7));
        assert!(Caller::Anonymous.may_access(ANONYMOUS));
        assert!(Caller::Admin.may_access(7));
    }
}
