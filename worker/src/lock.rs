//! Per-event etcd locks and their fencing tokens.
//!
//! The lock only keeps workers from wasting work on the same hot row; it does
//! not by itself prevent overselling (a stalled holder's lease can expire
//! while it still believes it holds the lock). What does is the token: the
//! lock key's `create_revision`, which etcd makes strictly increasing, and
//! which the event row refuses to go back on (see `decide`).

use std::time::Duration;

use etcd_client::{Client, GetOptions, LockOptions};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("no etcd lease (etcd unreachable?)")]
    NoLease,
    #[error("timed out waiting for lock {0}")]
    Timeout(String),
    #[error("lock {0} vanished right after it was granted (lease expired)")]
    Lost(String),
    #[error(transparent)]
    Etcd(#[from] etcd_client::Error),
}

/// A held lock. Release it with [`release`]; if the process dies instead,
/// the lock expires with the worker's lease.
#[derive(Debug)]
pub struct HeldLock {
    key: Vec<u8>,
    /// The lease the lock is attached to; it dies with it.
    pub lease: i64,
    /// The fencing token of this hold.
    pub token: i64,
}

pub async fn acquire(
    client: &mut Client,
    name: &str,
    lease: Option<i64>,
    wait: Duration,
) -> Result<HeldLock, LockError> {
    let lease = lease.ok_or(LockError::NoLease)?;
    let options = LockOptions::new().with_lease(lease);
    let key = match tokio::time::timeout(wait, client.lock(name, Some(options))).await {
        Ok(response) => response?.key().to_vec(),
        Err(_) => {
            // etcd queued us under `<name>/<lease hex>`; withdraw so that our
            // abandoned place in line does not block the next holder.
            let waiting = format!("{name}/{lease:x}");
            if let Err(error) = client.delete(waiting, None).await {
                tracing::warn!(%error, name, "could not withdraw from the lock queue");
            }
            return Err(LockError::Timeout(name.to_owned()));
        }
    };
    let token = tokio::time::timeout(wait, client.get(key.clone(), None))
        .await
        .map_err(|_| LockError::Timeout(name.to_owned()))??
        .kvs()
        .first()
        .map(|kv| kv.create_revision())
        .ok_or_else(|| LockError::Lost(name.to_owned()))?;
    Ok(HeldLock { key, lease, token })
}

/// Whether another lease is queued for lock `name`. Any doubt (an etcd
/// error or timeout) counts as yes, so the caller hands the lock over.
pub async fn others_waiting(client: &mut Client, name: &str, wait: Duration) -> bool {
    let options = GetOptions::new().with_prefix().with_count_only();
    match tokio::time::timeout(wait, client.get(format!("{name}/"), Some(options))).await {
        Ok(Ok(response)) => response.count() > 1,
        Ok(Err(error)) => {
            tracing::debug!(%error, name, "could not look for other lock waiters");
            true
        }
        Err(_) => true,
    }
}

/// Releases a lock. `false` means the lock may still exist: the caller must
/// then give up the lease (`Lease::abandon`) so that the lock dies with it.
pub async fn release(client: &mut Client, lock: HeldLock) -> bool {
    match tokio::time::timeout(Duration::from_secs(2), client.unlock(lock.key)).await {
        Ok(Ok(_)) => true,
        Ok(Err(error)) => {
            tracing::warn!(%error, "unlock failed; abandoning the lease");
            false
        }
        Err(_) => {
            tracing::warn!("unlock timed out; abandoning the lease");
            false
        }
    }
}
