//! The worker's single etcd lease. Every lock this process takes is attached
//! to it, so if the process dies or stalls its locks expire with the lease.
//! A background task keeps it alive and grants a new one when it is lost.
//!
//! A lease that had trouble is never resumed: a lock this worker failed to
//! delete (etcd unreachable, or the unlock timed out) is still attached to
//! it, and etcd revives leases when it restarts, so renewing that lease
//! would keep the orphaned lock, and every worker waiting on it, forever
//! (found by `scripts/chaos restart-etcd`). The old lease is revoked if etcd
//! answers, or left to expire; the fencing token covers the handover.

use std::{sync::Arc, time::Duration};

use etcd_client::Client;
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct Lease {
    current: watch::Receiver<Option<i64>>,
    abandon: Arc<Notify>,
}

impl Lease {
    /// Starts granting and renewing the lease in the background; on
    /// `shutdown` the lease is revoked, which releases every lock at once.
    pub fn spawn(
        client: Client,
        ttl_secs: i64,
        shutdown: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = watch::channel(None);
        let abandon = Arc::new(Notify::new());
        let task = tokio::spawn(keep_alive(client, ttl_secs, tx, abandon.clone(), shutdown));
        (
            Self {
                current: rx,
                abandon,
            },
            task,
        )
    }

    /// The live lease id, or `None` while there is none (etcd unreachable).
    pub fn current(&self) -> Option<i64> {
        *self.current.borrow()
    }

    /// Follows the lease id as it changes (a new lease after a lost one).
    pub fn changes(&self) -> watch::Receiver<Option<i64>> {
        self.current.clone()
    }

    /// Gives the lease up and takes a new one: called when a lock attached
    /// to it could not be released, so that the lock dies with the lease.
    pub fn abandon(&self) {
        self.abandon.notify_one();
    }
}

async fn keep_alive(
    mut client: Client,
    ttl_secs: i64,
    tx: watch::Sender<Option<i64>>,
    abandon: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let ttl_secs = ttl_secs.max(2);
    let renew_every = Duration::from_millis((ttl_secs as u64 * 1000) / 3);
    let mut lease_id = None;
    loop {
        let step = async {
            let id = match lease_id {
                Some(id) => id,
                None => {
                    let granted =
                        tokio::time::timeout(renew_every, client.lease_grant(ttl_secs, None))
                            .await
                            .map_err(|_| timed_out("lease grant"))??;
                    tracing::info!(
                        lease = format_args!("{:x}", granted.id()),
                        "etcd lease granted"
                    );
                    granted.id()
                }
            };
            let (mut keeper, mut responses) =
                tokio::time::timeout(renew_every, client.lease_keep_alive(id))
                    .await
                    .map_err(|_| timed_out("lease keep-alive"))??;
            loop {
                keeper.keep_alive().await?;
                let alive = tokio::time::timeout(renew_every, responses.message())
                    .await
                    .map_err(|_| timed_out("lease keep-alive answer"))??
                    .is_some_and(|r| r.ttl() > 0);
                if !alive {
                    return Ok::<_, etcd_client::Error>(id);
                }
                lease_id = Some(id);
                tx.send_replace(Some(id));
                tokio::time::sleep(renew_every).await;
            }
        };
        let result = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = abandon.notified() => Err(etcd_client::Error::LeaseKeepAliveError(
                "a lock attached to it could not be released".into(),
            )),
            result = step => result,
        };
        tx.send_replace(None);
        match result {
            Ok(expired) => {
                tracing::warn!(lease = format_args!("{expired:x}"), "etcd lease expired")
            }
            Err(error) => tracing::warn!(%error, "giving up the etcd lease; taking a new one"),
        }
        if let Some(old) = lease_id.take() {
            let _ = tokio::time::timeout(renew_every, client.lease_revoke(old)).await;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    if let Some(id) = lease_id {
        tx.send_replace(None);
        match tokio::time::timeout(Duration::from_secs(2), client.lease_revoke(id)).await {
            Ok(Ok(_)) => tracing::info!("etcd lease revoked"),
            _ => tracing::warn!("could not revoke the etcd lease; it will expire"),
        }
    }
}

fn timed_out(what: &str) -> etcd_client::Error {
    etcd_client::Error::LeaseKeepAliveError(format!("{what} timed out"))
}
