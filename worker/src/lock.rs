//! Per-event etcd locks and their fencing tokens.
//!
//! The lock only keeps workers from wasting work on the same hot row; it does
//! not by itself prevent overselling (a stalled holder's lease can expire
//! while it still believes it holds the lock). What does is the token: the
//! lock key's `create_revision`, which etcd makes strictly increasing, and
//! which the event row refuses to go back on (see `decide`).

use std::time::Duration;

use etcd_client::{Client, GetOptions, LockOptions};

/// How long a lock's clean-up (an unlock, a withdrawal from the queue) may
/// wait for etcd before the lease is left to take the key with it.
const ETCD_CALL_BOUND: Duration = Duration::from_secs(2);

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
    /// The place in the lock's queue (maybe the lock) could not be
    /// withdrawn after the error: it stays until the lease dies.
    #[error("{0}; withdrawing from the lock's queue failed too: {1}")]
    Orphaned(Box<LockError>, String),
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
    // etcd queues us under `<name>/<lease hex>`. A call that timed out or
    // failed (a lost answer, a leader that went away) may have left that
    // place in line, or even the granted lock, on a lease this worker keeps
    // alive: withdraw it, or every other worker would wait on it for good.
    let place = format!("{name}/{lease:x}");
    let key = match tokio::time::timeout(wait, client.lock(name, Some(options))).await {
        Ok(Ok(response)) => response.key().to_vec(),
        Ok(Err(error)) => return Err(withdraw(client, place, error.into()).await),
        Err(_) => return Err(withdraw(client, place, LockError::Timeout(name.to_owned())).await),
    };
    let token = match tokio::time::timeout(wait, client.get(key.clone(), None)).await {
        Ok(Ok(response)) => response.kvs().first().map(|kv| kv.create_revision()),
        Ok(Err(error)) => return Err(withdraw(client, place, error.into()).await),
        Err(_) => return Err(withdraw(client, place, LockError::Timeout(name.to_owned())).await),
    };
    let token = token.ok_or_else(|| LockError::Lost(name.to_owned()))?;
    Ok(HeldLock { key, lease, token })
}

/// Deletes this worker's place in a lock's queue after `error`. Bounded: an
/// etcd that does not answer must not hold the worker here; the error then
/// says that the place may stay, and the caller gives up the lease so that
/// it dies with it.
async fn withdraw(client: &mut Client, place: String, error: LockError) -> LockError {
    match tokio::time::timeout(ETCD_CALL_BOUND, client.delete(place, None)).await {
        Ok(Ok(_)) => error,
        Ok(Err(withdrawal)) => LockError::Orphaned(Box::new(error), withdrawal.to_string()),
        Err(_) => LockError::Orphaned(Box::new(error), "timed out".to_owned()),
    }
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
    match tokio::time::timeout(ETCD_CALL_BOUND, client.unlock(lock.key)).await {
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
