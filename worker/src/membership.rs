//! This worker's place among the live workers, and so which command
//! partitions it consumes. Each worker keeps a key under the workers prefix
//! on its etcd lease (so a worker that dies or stalls drops out when its
//! lease expires), watches the prefix, and recomputes its share with the
//! pure rule of `assignment` whenever the member list changes.
//!
//! Membership only spreads the load: two workers that briefly both think
//! they own a partition are kept apart by the queue's single active
//! consumer, and any decision by the event's lock and fencing token.

use std::{collections::BTreeSet, time::Duration};

use backon::BackoffBuilder;
use etcd_client::{Client, EventType, GetOptions, PutOptions, WatchOptions};
use tokio::sync::watch;

use crate::{assignment, lease::Lease};

/// Starts following the member list in the background; the receiver holds
/// the partitions this worker should consume (none until etcd answers).
pub fn spawn(
    client: Client,
    lease: Lease,
    namespace: &str,
    partitions: u16,
    timeout: Duration,
) -> watch::Receiver<BTreeSet<u16>> {
    let (tx, rx) = watch::channel(BTreeSet::new());
    let member = Member {
        prefix: shared::etcd::workers_prefix(namespace),
        me: uuid::Uuid::new_v4().simple().to_string(),
        partitions,
        timeout,
    };
    tokio::spawn(member.follow(client, lease, tx));
    rx
}

struct Member {
    prefix: String,
    me: String,
    partitions: u16,
    timeout: Duration,
}

impl Member {
    async fn follow(self, mut client: Client, lease: Lease, tx: watch::Sender<BTreeSet<u16>>) {
        let backoff = shared::reconnect::backoff();
        let mut delays = backoff.build();
        loop {
            match self.serve(&mut client, &lease, &tx).await {
                Ok(()) => delays = backoff.build(),
                Err(error) => tracing::warn!(%error, "worker membership failed; retrying"),
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
        }
    }

    /// Registers on the current lease and follows the member list until
    /// the lease changes (then registers again) or etcd fails.
    async fn serve(
        &self,
        client: &mut Client,
        lease: &Lease,
        tx: &watch::Sender<BTreeSet<u16>>,
    ) -> Result<(), etcd_client::Error> {
        let mut leases = lease.changes();
        let Some(lease_id) = *leases.borrow_and_update() else {
            let _ = leases.changed().await;
            return Ok(());
        };
        let key = format!("{}{}", self.prefix, self.me);
        self.bounded(client.put(key, "", Some(PutOptions::new().with_lease(lease_id))))
            .await?;
        let listed = self
            .bounded(client.get(
                self.prefix.as_str(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            ))
            .await?;
        let mut members = BTreeSet::new();
        for kv in listed.kvs() {
            if let Ok(key) = kv.key_str() {
                members.insert(key.trim_start_matches(&self.prefix).to_owned());
            }
        }
        self.publish(tx, &members);
        let revision = listed.header().map_or(0, |h| h.revision());
        let mut stream = client
            .watch(
                self.prefix.as_str(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await?;
        loop {
            tokio::select! {
                changed = leases.changed() => {
                    if changed.is_err() || *leases.borrow() != Some(lease_id) {
                        return Ok(());
                    }
                }
                message = stream.message() => {
                    let Some(message) = message? else { return Ok(()) };
                    if message.canceled() {
                        return Err(etcd_client::Error::WatchError(
                            message.cancel_reason().to_owned(),
                        ));
                    }
                    for event in message.events() {
                        let Some(name) = event
                            .kv()
                            .and_then(|kv| kv.key_str().ok())
                            .map(|key| key.trim_start_matches(&self.prefix).to_owned())
                        else {
                            continue;
                        };
                        match event.event_type() {
                            EventType::Put => members.insert(name),
                            EventType::Delete => members.remove(&name),
                        };
                    }
                    self.publish(tx, &members);
                }
            }
        }
    }

    fn publish(&self, tx: &watch::Sender<BTreeSet<u16>>, members: &BTreeSet<String>) {
        let members: Vec<String> = members.iter().cloned().collect();
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
