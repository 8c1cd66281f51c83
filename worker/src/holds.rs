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
        let lease = self.lease.current();
        let (stale, missing) = {
            let mut kept = self.kept.lock().await;
            let view: Vec<KeptLock> = kept
                .iter()
                .map(|(event, hold)| KeptLock {
                    event: *event,
                    ours: Some(hold.lock.lease) == lease,
                    unused_for: hold.used.elapsed(),
                })
                .collect();
            let Plan { release, take } = plan(&view, events, self.idle_release);
            let stale: Vec<Hold> = release.iter().filter_map(|e| kept.remove(e)).collect();
            (stale, take)
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

/// What [`plan`] needs to know of a kept lock.
#[derive(Clone, Copy, Debug)]
struct KeptLock {
    event: i64,
    /// Whether it hangs on this worker's current lease.
    ours: bool,
    unused_for: Duration,
}

#[derive(Debug, PartialEq)]
struct Plan {
    /// Kept locks to give back first.
    release: Vec<i64>,
    /// Locks to take then, in this (ascending) order.
    take: Vec<i64>,
}

/// The lock-ordering rule, apart from etcd: before a batch of `events`,
/// give back the kept locks that are not ours, unused for `idle_release`,
/// or above the lowest lock still to take; then take the missing ones in
/// ascending id. Whatever stays kept is below every lock to take.
fn plan(kept: &[KeptLock], events: &[i64], idle_release: Duration) -> Plan {
    let mut events = events.to_vec();
    events.sort_unstable();
    events.dedup();
    let held = |event: i64| kept.iter().any(|k| k.event == event && k.ours);
    let lowest_missing = events
        .iter()
        .copied()
        .find(|e| !held(*e))
        .unwrap_or(i64::MAX);
    let mut release: Vec<i64> = kept
        .iter()
        .filter(|k| {
            let unused = events.binary_search(&k.event).is_err();
            !k.ours || k.event > lowest_missing || (unused && k.unused_for >= idle_release)
        })
        .map(|k| k.event)
        .collect();
    release.sort_unstable();
    let take = events
        .into_iter()
        .filter(|e| release.contains(e) || !kept.iter().any(|k| k.event == *e))
        .collect();
    Plan { release, take }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const IDLE: Duration = Duration::from_secs(1);

    fn ours(event: i64) -> KeptLock {
        KeptLock {
            event,
            ours: true,
            unused_for: Duration::ZERO,
        }
    }

    #[test]
    fn a_batch_whose_locks_are_all_kept_takes_and_releases_nothing() {
        let plan = plan(&[ours(3), ours(15)], &[15, 3, 15], IDLE);
        assert_eq!(
            plan,
            Plan {
                release: vec![],
                take: vec![]
            }
        );
    }

    #[test]
    fn a_kept_lock_above_a_missing_one_goes_back_and_is_taken_again_after_it() {
        let plan = plan(&[ours(3), ours(15)], &[15, 9, 3], IDLE);
        assert_eq!(
            plan,
            Plan {
                release: vec![15],
                take: vec![9, 15]
            }
        );
    }

    #[test]
    fn an_unused_kept_lock_stays_until_its_idle_release() {
        let recent = plan(&[ours(3), ours(15)], &[15], IDLE);
        assert_eq!(
            recent,
            Plan {
                release: vec![],
                take: vec![]
            }
        );
        let idle = KeptLock {
            unused_for: IDLE,
            ..ours(3)
        };
        let stale = plan(&[idle, ours(15)], &[15], IDLE);
        assert_eq!(stale.release, [3]);
    }

    #[test]
    fn a_lock_on_an_old_lease_is_given_back_and_taken_anew() {
        let old = KeptLock {
            ours: false,
            ..ours(3)
        };
        assert_eq!(
            plan(&[old], &[3], IDLE),
            Plan {
                release: vec![3],
                take: vec![3]
            }
        );
    }

    proptest! {
        /// Whatever the kept locks and the batch: every lock still kept
        /// while the first one is taken is below it (so a worker waiting
        /// for a lock holds only lower ones), the locks are taken in
        /// ascending order, and the batch ends up with all its locks.
        #[test]
        fn a_worker_waiting_for_a_lock_holds_only_lower_ones(
            kept in proptest::collection::btree_map(0i64..20, (any::<bool>(), 0u64..2_000), 0..6),
            events in proptest::collection::vec(0i64..20, 1..6),
        ) {
            let kept: Vec<KeptLock> = kept
                .into_iter()
                .map(|(event, (ours, ms))| KeptLock { event, ours, unused_for: Duration::from_millis(ms) })
                .collect();
            let Plan { release, take } = plan(&kept, &events, IDLE);
            let still: Vec<i64> = kept.iter().map(|k| k.event).filter(|e| !release.contains(e)).collect();
            if let Some(first) = take.first() {
                prop_assert!(still.iter().all(|e| e < first), "kept {still:?} while taking {take:?}");
            }
            prop_assert!(take.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(kept.iter().filter(|k| !k.ours).all(|k| release.contains(&k.event)));
            for event in &events {
                prop_assert!(still.contains(event) || take.contains(event));
            }
        }
    }
}
