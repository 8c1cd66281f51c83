//! What the scenarios read from etcd: who holds an event's lock with which
//! token, whether a lease is gone, the revision.

use anyhow::Context;
use etcd_client::{Client, GetOptions};

use crate::history::EventMeta;

/// The lease (hex) and fencing token (create revision) of the holder of an
/// event's lock: the waiter with the lowest create revision.
pub(super) async fn lock_holder(
    etcd: &mut Client,
    namespace: &str,
    event: i64,
) -> anyhow::Result<Option<(String, i64)>> {
    let prefix = format!("{}/", shared::etcd::event_lock_name(namespace, event));
    let response = etcd
        .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
        .await?;
    Ok(response
        .kvs()
        .iter()
        .min_by_key(|kv| kv.create_revision())
        .and_then(|kv| {
            let key = kv.key_str().ok()?;
            Some((key.rsplit('/').next()?.to_owned(), kv.create_revision()))
        }))
}

/// Lock keys (holders and waiters) on `events`.
pub(super) async fn lock_keys(
    etcd: &mut Client,
    namespace: &str,
    events: &[EventMeta],
) -> anyhow::Result<i64> {
    let mut keys = 0;
    for event in events {
        let prefix = format!("{}/", shared::etcd::event_lock_name(namespace, event.id));
        keys += etcd
            .get(
                prefix,
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await?
            .count();
    }
    Ok(keys)
}

/// Whether etcd has let lease `hex` expire (or never knew it).
pub(super) async fn lease_expired(etcd: &mut Client, hex: &str) -> anyhow::Result<bool> {
    let id = i64::from_str_radix(hex, 16).with_context(|| format!("lease id {hex}"))?;
    Ok(etcd.lease_time_to_live(id, None).await?.ttl() <= 0)
}

/// etcd's current revision (any read carries it).
pub(super) async fn revision(etcd: &mut Client) -> anyhow::Result<i64> {
    Ok(etcd
        .get("\0", None)
        .await?
        .header()
        .map_or(0, |header| header.revision()))
}
