//! The webhook dispatcher: every worker runs one. It claims due
//! deliveries from the outbox (`claims`), sends each signed (Standard
//! Webhooks), and records how it went: delivered on a 2xx, otherwise due
//! again after an exponential, jittered delay, and `failed` after the last
//! attempt, until an admin replays it. A receiver may get a message more
//! than once (a worker killed after sending, before recording); it keeps
//! its `webhook-id` and deduplicates.
//!
//! It wakes when this worker's own decisions wrote deliveries, and polls
//! for the others (retries due, other workers' messages whose worker died).

pub mod claims;
mod config;

use std::{sync::Arc, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::{StreamExt, stream};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use sea_orm::DatabaseConnection;
use shared::webhook;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use self::claims::{Attempt, Claimed};
pub use self::config::WebhookArgs;
use crate::metrics;

/// How often old messages are swept (and once at start).
const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// Messages deleted per statement of a sweep: short transactions.
const SWEEP_BATCH: u64 = 500;
/// Statements per sweep: a large backlog is worked off over several
/// sweeps, never holding up deliveries for long.
const SWEEP_ROUNDS: usize = 20;

/// Extra time a claim lasts beyond the attempt's own timeout: the
/// dispatcher records the attempt within it.
const CLAIM_MARGIN: Duration = Duration::from_secs(5);

pub struct Dispatcher {
    db: DatabaseConnection,
    http: reqwest::Client,
    args: WebhookArgs,
    wake: Arc<Notify>,
}

impl Dispatcher {
    pub fn new(
        db: DatabaseConnection,
        args: WebhookArgs,
        wake: Arc<Notify>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(args.timeout())
            // A receiver answers for itself: a redirect is a failed
            // attempt, never a delivery to somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tickets-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            db,
            http,
            args,
            wake,
        })
    }

    /// Dispatches until `shutdown`; whatever is under way when it comes (a
    /// claim, a sweep, an attempt) is given up: a MySQL that stops
    /// answering must not hold up the worker's exit, and a claimed
    /// delivery is sent again when its claim runs out.
    pub async fn run(self, shutdown: CancellationToken) {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            () = self.dispatch() => {}
        }
    }

    async fn dispatch(&self) {
        let hold = self.args.timeout() + CLAIM_MARGIN;
        let mut next_sweep = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_sweep {
                self.sweep().await;
                next_sweep = tokio::time::Instant::now() + SWEEP_EVERY;
            }
            let claimed = match claims::claim(&self.db, self.args.concurrency(), hold).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "could not claim webhook deliveries");
                    Vec::new()
                }
            };
            let full = claimed.len() == self.args.concurrency();
            stream::iter(claimed)
                .map(|claimed| self.attempt(claimed))
                .buffer_unordered(self.args.concurrency())
                .collect::<Vec<()>>()
                .await;
            if full {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.args.poll()) => {}
            }
        }
    }

    /// Deletes the messages past `WEBHOOK_RETENTION_DAYS`, a batch at a
    /// time.
    async fn sweep(&self) {
        let days = self.args.webhook_retention_days;
        if days == 0 {
            return;
        }
        let mut swept = 0;
        for _ in 0..SWEEP_ROUNDS {
            match claims::sweep(&self.db, days, SWEEP_BATCH).await {
                Ok(0) => break,
                Ok(n) => swept += n,
                Err(error) => {
                    tracing::warn!(%error, "could not sweep old webhook messages");
                    break;
                }
            }
        }
        if swept > 0 {
            tracing::info!(swept, days, "old webhook messages deleted");
        }
    }

    /// Sends one delivery and records the result.
    async fn attempt(&self, claimed: Claimed) {
        let attempt = if claimed.endpoint.disabled_at.is_some() {
            Attempt::Failed {
                status: None,
                error: "the endpoint was removed".into(),
            }
        } else {
            self.send(&claimed).await
        };
        let retry_in = match attempt {
            Attempt::Delivered(_) => None,
            _ if claimed.endpoint.disabled_at.is_some() => None,
            _ => self.retry_in(claimed.attempts + 1),
        };
        metrics::get().webhook_attempt(&attempt, retry_in.is_none());
        tracing::info!(
            message_id = %claimed.message.id,
            endpoint_id = claimed.endpoint.id,
            attempt = claimed.attempts + 1,
            outcome = ?attempt,
            retry_in_ms = retry_in.map(|d| d.as_millis() as u64),
            "webhook attempt"
        );
        if let Err(error) = claims::record(&self.db, &claimed, &attempt, retry_in).await {
            // The claim runs out and the delivery is sent again.
            tracing::warn!(%error, message_id = %claimed.message.id, "could not record a webhook attempt");
        }
    }

    async fn send(&self, claimed: &Claimed) -> Attempt {
        let id = webhook::header_id(claimed.message.id);
        let timestamp = chrono::Utc::now().timestamp();
        let body = claimed.message.payload.clone().into_bytes();
        let signature = match webhook::sign(&claimed.endpoint.secret, &id, timestamp, &body) {
            Ok(signature) => signature,
            Err(error) => {
                return Attempt::Failed {
                    status: None,
                    error: error.to_string(),
                };
            }
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in [
            ("webhook-id", id),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        let sent = self
            .http
            .post(&claimed.endpoint.url)
            .headers(headers)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                Attempt::Delivered(response.status().as_u16())
            }
            Ok(response) => Attempt::Failed {
                status: Some(response.status().as_u16()),
                error: format!("the endpoint answered {}", response.status()),
            },
            Err(error) => Attempt::Failed {
                status: None,
                error: error_chain(&error),
            },
        }
    }

    /// The delay after `made` attempts failed, or `None` once
    /// `WEBHOOK_MAX_ATTEMPTS` are spent.
    fn retry_in(&self, made: i32) -> Option<Duration> {
        if made >= self.args.webhook_max_attempts as i32 {
            return None;
        }
        ExponentialBuilder::default()
            .with_min_delay(self.args.retry_base())
            .with_max_delay(self.args.retry_max())
            .with_jitter()
            .without_max_times()
            .build()
            .nth(made.max(1) as usize - 1)
            // backon adds its jitter after its own cap.
            .map(|delay| delay.min(self.args.retry_max()))
    }
}

/// An error and its causes on one line (reqwest's own message says only
/// "error sending request").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
