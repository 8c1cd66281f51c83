//! The dispatcher's settings, part of the worker's configuration.

use std::time::Duration;

use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct WebhookArgs {
    /// Webhook deliveries this worker sends at once (and claims per round).
    #[arg(long, env = "WEBHOOK_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=512))]
    pub webhook_concurrency: u16,

    /// How long one webhook attempt may take, connection included.
    #[arg(long, env = "WEBHOOK_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=120_000))]
    pub webhook_timeout_ms: u64,

    /// Attempts before a delivery is marked `failed` (until replayed).
    #[arg(long, env = "WEBHOOK_MAX_ATTEMPTS", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub webhook_max_attempts: u32,

    /// Delay before the second attempt; each later one waits twice as long,
    /// plus a random part of up to as much again, never more than
    /// `WEBHOOK_RETRY_MAX_MS`. With the defaults, 12 attempts span 2.5 to
    /// 4 hours.
    #[arg(long, env = "WEBHOOK_RETRY_BASE_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_retry_base_ms: u64,

    /// Longest delay between two attempts.
    #[arg(long, env = "WEBHOOK_RETRY_MAX_MS", default_value_t = 3_600_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_retry_max_ms: u64,

    /// Messages older than this many days are deleted with their
    /// deliveries, unless one is still pending (0: keep them all).
    #[arg(long, env = "WEBHOOK_RETENTION_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..=3650))]
    pub webhook_retention_days: u32,

    /// How often the outbox is read for deliveries due (retries, and those
    /// whose worker stopped before sending them).
    #[arg(long, env = "WEBHOOK_POLL_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(10..))]
    pub webhook_poll_ms: u64,
}

impl WebhookArgs {
    pub fn concurrency(&self) -> usize {
        self.webhook_concurrency.into()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.webhook_timeout_ms)
    }

    pub fn retry_base(&self) -> Duration {
        Duration::from_millis(self.webhook_retry_base_ms)
    }

    pub fn retry_max(&self) -> Duration {
        Duration::from_millis(self.webhook_retry_max_ms)
    }

    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.webhook_poll_ms)
    }
}
