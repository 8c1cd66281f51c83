//! etcd client construction and the key layout of one deployment.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

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
