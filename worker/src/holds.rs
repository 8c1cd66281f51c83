//! The event locks a worker holds, and keeps between batches: while one
//! event stays busy, its next batch needs no etcd round trip. A kept lock
//! is bounded in time so that workers waiting for it get their turn, and is
//! never kept while its worker waits for another lock (two workers keeping
//! each other's event would wait on each other forever).

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

/// One held lock and when its current hold began.
pub struct Hold {
    pub lock: HeldLock,
    acquired: Instant,
}

pub struct Holds {
    etcd: etcd_client::Client,
    lease: Lease,
    namespace: String,
    wait: Duration,
    max_hold: Duration,
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
        backend_timeout: Duration,
    ) -> Self {
        Self {
            etcd,
            lease,
            namespace: namespace.to_owned(),
            wait,
            max_hold,
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
        Ok(Hold {
            lock,
            acquired: Instant::now(),
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
        self.kept.lock().await.insert(event_id, hold);
    }

    /// Releases one lock; if that fails the lock may linger, so the lease
    /// it hangs on is given up and it dies with it.
    pub async fn release(&self, hold: Hold) {
        if !lock::release(&mut self.etcd.clone(), hold.lock).await {
            self.lease.abandon();
        }
    }

    /// Releases every kept lock but `event`'s (all of them for `None`).
    pub async fn release_all_but(&self, event: Option<i64>) {
        let unused: Vec<Hold> = {
            let mut kept = self.kept.lock().await;
            let events: Vec<i64> = kept.keys().copied().filter(|e| Some(*e) != event).collect();
            events.iter().filter_map(|e| kept.remove(e)).collect()
        };
        for hold in unused {
            self.release(hold).await;
        }
    }
}
