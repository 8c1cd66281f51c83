//! The worker's configuration, from flags or the environment.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use shared::{config::ConnectionArgs, settings::SettingsArgs};

use crate::webhooks::WebhookArgs;

#[derive(Parser, Debug, Clone)]
#[command(name = "worker", about = "Decide reservation commands from RabbitMQ")]
pub struct Config {
    #[command(flatten)]
    pub connections: ConnectionArgs,

    #[command(flatten)]
    pub settings: SettingsArgs,

    #[command(flatten)]
    pub webhooks: WebhookArgs,

    /// This worker's name among the live workers, which decides the command
    /// partitions it takes; unique per deployment (two workers of one name
    /// would take the same partitions, and one of them would sit idle).
    /// Default: a random one.
    #[arg(long, env = "WORKER_NAME")]
    pub name: Option<String>,

    /// AMQP heartbeat of the worker's broker connection, in seconds. A
    /// worker that stops answering (paused, cut off) keeps its partitions'
    /// single active consumer slot until RabbitMQ drops its connection,
    /// after about two missed heartbeats: this bounds how long its
    /// partitions wait for it before their next owner takes over.
    #[arg(long, env = "WORKER_HEARTBEAT_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub heartbeat_secs: u16,

    /// Unacknowledged commands RabbitMQ may hand this worker at once; bounds
    /// the batch size whatever the live setting says.
    #[arg(long, env = "WORKER_PREFETCH", default_value_t = 512)]
    pub prefetch: u16,

    /// TTL of the etcd lease that backs this worker's locks. A worker that
    /// stops renewing it loses its locks after this long.
    #[arg(long, env = "LOCK_LEASE_TTL_SECS", default_value_t = 5)]
    pub lease_ttl_secs: i64,

    /// How long to wait for an event's lock before giving up and retrying.
    #[arg(long, env = "LOCK_WAIT_TIMEOUT_MS", default_value_t = 10_000)]
    pub lock_wait_timeout_ms: u64,

    /// Keep an event's lock across consecutive batches for up to this long,
    /// then hand it over if another worker waits for it (0 = one lock hold
    /// per batch).
    #[arg(long, env = "LOCK_MAX_HOLD_MS", default_value_t = 100)]
    pub lock_max_hold_ms: u64,

    /// Longest one decision transaction may take before it is rolled back
    /// and the event's lock released (a MySQL that stops answering would
    /// otherwise hold the lock until TCP gives up). Must be well under
    /// the lease TTL.
    #[arg(long, env = "DECIDE_TIMEOUT_MS", default_value_t = 2_000)]
    pub decide_timeout_ms: u64,

    /// Release a kept lock once no command for its event has come for this
    /// long. Another worker wants an event's lock only while its partition
    /// moves (the old owner then releases at once), so this mostly bounds
    /// how long an event gone quiet keeps its lock.
    #[arg(long, env = "LOCK_IDLE_RELEASE_MS", default_value_t = 1000)]
    pub lock_idle_release_ms: u64,

    /// Address of the worker's HTTP port: `/metrics` (Prometheus),
    /// `/healthz` and `/readyz`. Unset (the default): no port, so that
    /// several workers can run on one host without choosing ports.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

impl Config {
    pub fn lock_max_hold(&self) -> Duration {
        Duration::from_millis(self.lock_max_hold_ms)
    }

    pub fn lock_idle_release(&self) -> Duration {
        Duration::from_millis(self.lock_idle_release_ms)
    }

    pub fn decide_timeout(&self) -> Duration {
        Duration::from_millis(self.decide_timeout_ms)
    }

    /// Refuses a decision deadline that would outlive the lock it runs
    /// under.
    pub fn validate(&self) -> anyhow::Result<()> {
        let lease = Duration::from_secs(self.lease_ttl_secs.max(0) as u64);
        anyhow::ensure!(
            self.decide_timeout() < lease,
            "DECIDE_TIMEOUT_MS ({} ms) must be shorter than LOCK_LEASE_TTL_SECS ({} s)",
            self.decide_timeout_ms,
            self.lease_ttl_secs
        );
        Ok(())
    }

    pub fn lock_wait_timeout(&self) -> Duration {
        Duration::from_millis(self.lock_wait_timeout_ms)
    }
}
