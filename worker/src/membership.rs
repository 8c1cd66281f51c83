//! This worker's place among the live workers, and so which command
//! partitions it consumes. Each worker keeps a key under the workers prefix
//! on its etcd lease (so a worker that dies or stalls drops out when its
//! lease expires), watches the prefix, and recomputes its share with the
//! pure rule of `assignment` whenever the member list changes.
//!
//! A worker is a member only while it can decide: one that cannot reach
//! MySQL leaves, so that its partitions go to workers that can, and comes
//! back when MySQL answers again.
//!
//! Membership only spreads the load: two workers that briefly both think
//! they own a partition are kept apart by the queue's single active
//! consumer, and any decision by the event's lock and fencing token.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use backon::BackoffBuilder;
use etcd_client::{Client, PutOptions};
use shared::etcd::PrefixView;
use tokio::sync::watch;

use crate::{assignment, lease::Lease};

/// This worker's side of the membership.
pub struct Membership {
    /// The partitions this worker should consume (none until etcd
    /// answers, and none while it is not available).
    pub assignment: watch::Receiver<BTreeSet<u16>>,
    available: watch::Sender<bool>,
}

impl Membership {
    /// Follows whether this worker is a member (it can decide).
    pub fn availability(&self) -> watch::Receiver<bool> {
        self.available.subscribe()
    }

    /// Joins the workers (`true`) or leaves them (`false`) for as long as
    /// this worker can (or cannot) decide.
    pub fn set_available(&self, available: bool) {
        self.available.send_if_modified(|current| {
            let changed = *current != available;
            *current = available;
            changed
        });
    }
}

/// Starts following the member list in the background, as a member once
/// `set_available(true)` is called.
pub fn spawn(
    client: Client,
    lease: Lease,
    namespace: &str,
    name: Option<&str>,
    partitions: u16,
    timeout: Duration,
) -> Membership {
    let (tx, rx) = watch::channel(BTreeSet::new());
    let (available, availability) = watch::channel(false);
    let me = name.map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    tracing::info!(name = %me, "joining the workers");
    let member = Member {
        prefix: shared::etcd::workers_prefix(namespace),
        me,
        partitions,
        timeout,
    };
    tokio::spawn(member.follow(client, lease, availability, tx));
    Membership {
        assignment: rx,
        available,
    }
}

struct Member {
    prefix: String,
    me: String,
    partitions: u16,
    timeout: Duration,
}

impl Member {
    async fn follow(
        self,
        mut client: Client,
        lease: Lease,
        mut availability: watch::Receiver<bool>,
        tx: watch::Sender<BTreeSet<u16>>,
    ) {
        let backoff = shared::reconnect::backoff();
        let mut delays = backoff.build();
        loop {
            let result = if *availability.borrow_and_update() {
                self.serve(&mut client, &lease, &mut availability, &tx)
                    .await
            } else {
                self.stay_out(&mut client, &mut availability, &tx).await
            };
            if tx.is_closed() {
                return;
            }
            match result {
                // The lease or the availability changed, or the watch
                // ended: start over at once.
                Ok(()) => delays = backoff.build(),
                Err(error) => {
                    tracing::warn!(%error, "worker membership failed; retrying");
                    tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
                }
            }
        }
    }

    /// Not a member: no partitions, and this worker's key is deleted (else
    /// it would stay until the lease expires, since the lease lives on),
    /// until the worker is available again.
    async fn stay_out(
        &self,
        client: &mut Client,
        availability: &mut watch::Receiver<bool>,
        tx: &watch::Sender<BTreeSet<u16>>,
    ) -> Result<(), etcd_client::Error> {
        withdraw(tx, "cannot decide");
        let key = format!("{}{}", self.prefix, self.me);
        self.bounded(client.delete(key, None)).await?;
        let _ = availability.changed().await;
        Ok(())
    }

    /// Registers on the current lease and follows the member list until
    /// the lease changes (then registers again) or etcd fails.
    async fn serve(
        &self,
        client: &mut Client,
        lease: &Lease,
        availability: &mut watch::Receiver<bool>,
        tx: &watch::Sender<BTreeSet<u16>>,
    ) -> Result<(), etcd_client::Error> {
        let mut leases = lease.changes();
        let Some(lease_id) = *leases.borrow_and_update() else {
            // Without a lease no lock can be taken, so a partition kept now
            // would only hold its commands back from the workers that can
            // (its single active consumer stays here, whatever the others
            // compute once this worker's key has expired).
            withdraw(tx, "no etcd lease");
            tokio::select! {
                _ = leases.changed() => {}
                _ = availability.changed() => {}
            }
            return Ok(());
        };
        let key = format!("{}{}", self.prefix, self.me);
        self.bounded(client.put(key, "", Some(PutOptions::new().with_lease(lease_id))))
            .await?;
        let mut members = PrefixView::open(client, &self.prefix, self.timeout).await?;
        self.publish(tx, &members.entries);
        loop {
            tokio::select! {
                _ = availability.changed() => return Ok(()),
                changed = leases.changed() => {
                    if changed.is_err() || *leases.borrow() != Some(lease_id) {
                        return Ok(());
                    }
                }
                changed = members.changed() => {
                    if !changed? {
                        return Ok(());
                    }
                    self.publish(tx, &members.entries);
                }
            }
        }
    }

    fn publish(&self, tx: &watch::Sender<BTreeSet<u16>>, members: &BTreeMap<String, String>) {
        let members: Vec<String> = members.keys().cloned().collect();
        let mine = assignment::partitions_of(self.partitions, &members, &self.me);
        tx.send_if_modified(|current| {
            if *current == mine {
                return false;
            }
            let list: Vec<String> = mine.iter().map(u16::to_string).collect();
            tracing::info!(
                workers = members.len(),
                partitions = list.join(","),
                "command partitions assigned"
            );
            *current = mine;
            true
        });
    }

    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, etcd_client::Error> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| etcd_client::Error::WatchError("etcd did not answer in time".into()))?
    }
}

/// Gives up every partition, so that the queues hand their commands to the
/// next consumers.
fn withdraw(tx: &watch::Sender<BTreeSet<u16>>, reason: &'static str) {
    tx.send_if_modified(|current| {
        let had = !current.is_empty();
        if had {
            tracing::info!(
                workers = 0,
                partitions = "",
                reason,
                "command partitions assigned"
            );
        }
        current.clear();
        had
    });
}
