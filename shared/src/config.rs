//! Connection settings shared by every binary, read from flags or the
//! environment (12-factor). Each binary flattens these into its own typed
//! configuration struct.

use std::time::Duration;

use clap::Args;

/// Command partitions unless configured: enough for a dozen workers, and
/// divisible by 2, 3, 4 and 6 so that those numbers of workers share them
/// evenly.
pub const DEFAULT_COMMAND_PARTITIONS: u16 = 12;

/// Where the four backing services live and how this deployment names its
/// resources in them. URLs may carry passwords, so `--help` never prints
/// their values from the environment.
#[derive(Args, Debug, Clone)]
pub struct ConnectionArgs {
    /// MySQL/MariaDB URL (`mysql://user:password@host:port/database`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Maximum number of pooled MySQL connections per process.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// RabbitMQ URL (`amqp://user:password@host:port/vhost`).
    #[arg(long, env = "AMQP_URL", hide_env_values = true)]
    pub amqp_url: String,

    /// Comma-separated etcd client endpoints.
    #[arg(long, env = "ETCD_ENDPOINTS", value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,

    /// Base URL of an OpenTelemetry collector (OTLP over HTTP/protobuf,
    /// `/v1/traces` appended), e.g. `http://collector:4318`; empty (the
    /// default) exports no spans. Trace context is propagated either way.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", default_value = "")]
    pub otel_exporter_otlp_endpoint: String,

    /// Redis URL for the availability cache; empty disables the cache.
    #[arg(long, env = "REDIS_URL", default_value = "", hide_env_values = true)]
    pub redis_url: String,

    /// Prefix of every queue, etcd key and Redis key this deployment uses, so
    /// several deployments (or test runs) can share the same servers.
    #[arg(long, env = "TICKETS_NAMESPACE", default_value = "tickets")]
    pub namespace: String,

    /// Longest each command partition queue may grow; beyond it RabbitMQ
    /// refuses publishes and the api sheds load with 503. Must be the same
    /// for every process of a deployment (it is part of the queues'
    /// declaration).
    #[arg(long, env = "COMMAND_QUEUE_MAX_LENGTH", default_value_t = 100_000)]
    pub command_queue_max_length: i64,

    /// Number of command partition queues. Every command of an event goes
    /// to one partition, and each partition is consumed by one worker at a
    /// time; workers share the partitions out between them. Must be the
    /// same for every process of a deployment, and at least the largest
    /// number of workers that should share the load.
    #[arg(long, env = "COMMAND_PARTITIONS", default_value_t = DEFAULT_COMMAND_PARTITIONS,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub command_partitions: u16,

    /// Upper bound on a single call to MySQL, RabbitMQ, etcd or Redis before
    /// the request fails with 503 instead of hanging.
    #[arg(long, env = "BACKEND_TIMEOUT_MS", default_value_t = 2000)]
    pub backend_timeout_ms: u64,
}

impl ConnectionArgs {
    pub fn topology(&self) -> crate::topology::Topology {
        crate::topology::Topology::new(
            &self.namespace,
            self.command_queue_max_length,
            self.command_partitions,
        )
    }

    pub fn backend_timeout(&self) -> Duration {
        Duration::from_millis(self.backend_timeout_ms)
    }
}
