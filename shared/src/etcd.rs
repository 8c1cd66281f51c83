//! etcd client construction and the key layout of one deployment.

use std::{collections::BTreeMap, time::Duration};

use etcd_client::{Client, ConnectOptions, EventType, GetOptions, WatchOptions, WatchStream};

/// Connects lazily-tolerant: the client itself reconnects, so this only
/// fails on malformed endpoints or when no endpoint answers in time.
pub async fn connect(
    endpoints: &[String],
    timeout: Duration,
) -> Result<Client, etcd_client::Error> {
    let options = ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_keep_alive(Duration::from_secs(5), timeout)
        .with_keep_alive_while_idle(true);
    Client::connect(endpoints, Some(options)).await
}

/// Prefix under which live settings are stored, e.g. `/tickets/config/`.
pub fn config_prefix(namespace: &str) -> String {
    format!("/{namespace}/config/")
}

/// Name of the per-event lock, e.g. `/tickets/locks/event/1`.
pub fn event_lock_name(namespace: &str, event_id: i64) -> String {
    format!("/{namespace}/locks/event/{event_id}")
}

/// Prefix under which each live worker keeps a key on its lease, e.g.
/// `/tickets/workers/`: the member list that command partitions are
/// shared out by.
pub fn workers_prefix(namespace: &str) -> String {
    format!("/{namespace}/workers/")
}

/// The keys under a prefix (without it) and their values, kept current by a
/// watch that starts right after the snapshot it was read from, so no
/// change falls between the two. Live settings and the worker membership
/// follow their prefixes with it.
pub struct PrefixView {
    pub entries: BTreeMap<String, String>,
    prefix: String,
    stream: WatchStream,
}

impl PrefixView {
    /// Reads the prefix (within `timeout`) and starts watching it.
    pub async fn open(
        client: &mut Client,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, etcd_client::Error> {
        let response = tokio::time::timeout(
            timeout,
            client.get(prefix, Some(GetOptions::new().with_prefix())),
        )
        .await
        .map_err(|_| etcd_client::Error::WatchError(format!("reading {prefix} timed out")))??;
        let mut entries = BTreeMap::new();
        for kv in response.kvs() {
            if let (Ok(key), Ok(value)) = (kv.key_str(), kv.value_str()) {
                entries.insert(key.trim_start_matches(prefix).to_owned(), value.to_owned());
            }
        }
        let revision = response.header().map_or(0, |h| h.revision());
        let stream = client
            .watch(
                prefix,
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await?;
        Ok(Self {
            entries,
            prefix: prefix.to_owned(),
            stream,
        })
    }

    /// Waits for the next batch of changes and applies it to `entries`;
    /// `false` when the watch ended. Cancel-safe: nothing is applied
    /// before a message has arrived whole.
    pub async fn changed(&mut self) -> Result<bool, etcd_client::Error> {
        let Some(message) = self.stream.message().await? else {
            return Ok(false);
        };
        if message.canceled() {
            return Err(etcd_client::Error::WatchError(
                message.cancel_reason().to_owned(),
            ));
        }
        for event in message.events() {
            let Some(kv) = event.kv() else { continue };
            let Ok(key) = kv.key_str() else { continue };
            let key = key.trim_start_matches(&self.prefix).to_owned();
            match event.event_type() {
                EventType::Put => {
                    self.entries
                        .insert(key, kv.value_str().unwrap_or_default().to_owned());
                }
                EventType::Delete => {
                    self.entries.remove(&key);
                }
            }
        }
        Ok(true)
    }
}
