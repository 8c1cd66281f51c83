//! The event locks a worker holds, and keeps between batches: while an
//! event stays busy, its next batch needs no etcd round trip, whether the
//! batch carries that event alone or several. A kept lock is bounded in
//! time so that workers waiting for it get their turn. Locks are taken in
//! ascending event id, and a kept lock is never held while its worker waits
//! for a lower one: a worker waiting for a lock holds only lower ones, so
//! no two workers can wait on each other.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use shared::etcd::event_lock_name;
use tokio::sync::Mutex;

use crate::{
    lease::Lease,
    lock::{self, HeldLock, LockError},
};

/// One held lock, when its current hold began and when a batch last used
/// it.
pub struct Hold {
    pub lock: HeldLock,
    acquired: Instant,
    used: Instant,
}

pub struct Holds {
    etcd: etcd_client::Client,
    lease: Lease,
    namespace: String,
    wait: Duration,
    max_hold: Duration,
    idle_release: Duration,
    backend_timeout: Duration,
    kept: Mutex<HashMap<i64, Hold>>,
}

impl Holds {
    pub fn new(
        etcd: etcd_client::Client,
        lease: Lease,
        namespace: &str,
        wait: Duration,
        max_hold: Duration,
        idle_release: Duration,
        backend_timeout: Duration,
    ) -> Self {
        Self {
            etcd,
            lease,
            namespace: namespace.to_owned(),
            wait,
            max_hold,
            idle_release,
            backend_timeout,
            kept: Mutex::default(),
        }
    }

    pub async fn is_empty(&self) -> bool {
        self.kept.lock().await.is_empty()
    }

    /// The lock of `event_id`: the kept one when it still hangs on this
    /// worker's current lease, else a new one (waiting up to the lock wait).
    pub async fn take(&self, event_id: i64) -> Result<Hold, LockError> {
        let lease = self.lease.current();
        let kept = self.kept.lock().await.remove(&event_id);
        match kept {
            Some(hold) if Some(hold.lock.lease) == lease => return Ok(hold),
            Some(stale) => self.release(stale).await,
            None => {}
        }
        let started = Instant::now();
        let name = event_lock_name(&self.namespace, event_id);
        // A lock on a lease that is gone is worth nothing, and waiting for
        // it would keep this worker's partitions from the workers that can
        // decide (a worker cut off from etcd loses its lease first): give
        // up as soon as the lease changes. A place left in the lock's queue
        // dies with that lease.
        let mut leases = self.lease.changes();
        let mut etcd = self.etcd.clone();
        let acquired = tokio::select! {
            acquired = lock::acquire(&mut etcd, &name, lease, self.wait) => acquired,
            _ = leases.wait_for(|current| *current != lease) => return Err(LockError::NoLease),
        };
        let lock = match acquired {
            Ok(lock) => lock,
            Err(error @ LockError::Orphaned(..)) => {
                self.lease.abandon();
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        let waited = started.elapsed();
        crate::metrics::get().lock_acquired(waited);
        tracing::debug!(
            event_id,
            lock_ms = waited.as_millis() as u64,
            "lock acquired"
        );
        let now = Instant::now();
        Ok(Hold {
            lock,
            acquired: now,
            used: now,
        })
    }

    /// Keeps `hold` for the event's next batch, unless it has been held
    /// for its maximum and another worker waits for it. With nobody
    /// waiting, handing it over would only cost two raft writes (an unlock
    /// and a lock) for nothing, so a new hold starts. A maximum hold of
    /// zero means one hold per batch, always released.
    pub async fn keep(&self, event_id: i64, mut hold: Hold) {
        if hold.acquired.elapsed() >= self.max_hold {
            let name = event_lock_name(&self.namespace, event_id);
            if self.max_hold.is_zero() {
                self.release(hold).await;
                return;
            }
            if lock::others_waiting(&mut self.etcd.clone(), &name, self.backend_timeout).await {
                crate::metrics::get().lock_handed_over();
                self.release(hold).await;
                return;
            }
            hold.acquired = Instant::now();
        }
        hold.used = Instant::now();
        self.kept.lock().await.insert(event_id, hold);
    }

    /// Releases one lock; if that fails the lock may linger, so the lease
    /// it hangs on is given up and it dies with it.
    pub async fn release(&self, hold: Hold) {
        if !lock::release(&mut self.etcd.clone(), hold.lock).await {
            self.lease.abandon();
        }
    }

    /// Releases every kept lock.
    pub async fn release_all(&self) {
        let all: Vec<Hold> = self
            .kept
            .lock()
            .await
            .drain()
            .map(|(_, hold)| hold)
            .collect();
        for hold in all {
            self.release(hold).await;
        }
    }

    /// Gets the locks of a batch's `events` ready, in ascending id, before
    /// its groups are decided. A kept lock the batch does not use goes back
    /// once unused for the idle release; one above the lowest lock
    /// still to take goes back first (holding it while waiting could close
    /// a cycle with a worker that holds the lower one). Best effort: a lock
    /// that cannot be had now is left to the group's own attempt, which
    /// waits and retries for it.
    pub async fn prepare(&self, events: &[i64]) {
        let mut events = events.to_vec();
        events.sort_unstable();
        let lease = self.lease.current();
        let (stale, missing) = {
            let mut kept = self.kept.lock().await;
            let ours = |hold: &Hold| Some(hold.lock.lease) == lease;
            let lowest_missing = events
                .iter()
                .copied()
                .find(|e| !kept.get(e).is_some_and(ours))
                .unwrap_or(i64::MAX);
            let go: Vec<i64> = kept
                .iter()
                .filter(|(event, hold)| {
                    let unused = events.binary_search(event).is_err();
                    (unused && hold.used.elapsed() >= self.idle_release)
                        || **event > lowest_missing
                        || !ours(hold)
                })
                .map(|(event, _)| *event)
                .collect();
            let stale: Vec<Hold> = go.iter().filter_map(|e| kept.remove(e)).collect();
            let missing: Vec<i64> = events
                .iter()
                .copied()
                .filter(|e| !kept.contains_key(e))
                .collect();
            (stale, missing)
        };
        for hold in stale {
            self.release(hold).await;
        }
        for event_id in missing {
            match self.take(event_id).await {
                Ok(hold) => {
                    self.kept.lock().await.insert(event_id, hold);
                }
                Err(error) => {
                    tracing::debug!(event_id, %error, "could not take a batch's lock ahead");
                    return;
                }
            }
        }
    }
}
