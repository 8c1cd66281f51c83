//! Staying connected: every link to a backing service (the api's and the
//! workers' broker sessions, the settings watch, start-up connections) may
//! find the service down, or lose it later, and must come back by itself
//! with the same backoff. In a compose deployment dependencies may come up
//! after us, or restart under us.

use std::{
    fmt::Display,
    future::Future,
    time::{Duration, Instant},
};

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

/// A session that lasted this long was healthy: the next failure starts
/// the backoff again from its shortest delay.
const HEALTHY_SESSION: Duration = Duration::from_secs(30);

/// The backoff every reconnect loop uses: 100 ms doubling to 5 s, forever.
pub fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
}

/// Calls `connect` until it succeeds, logging each failure.
pub async fn retry_until_ok<T, E, F, Fut>(what: &str, mut connect: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delays = backoff().build();
    loop {
        match connect().await {
            Ok(value) => return value,
            Err(error) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(%error, retry_in = ?delay, "cannot connect to {what}");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Runs `session` until it returns `Ok` (it saw `shutdown`) or `shutdown`
/// is cancelled between sessions: after each `Err` it waits a backoff
/// delay and starts a new one. A session is never cancelled from here; one
/// that holds work it must finish watches `shutdown` itself.
pub async fn keep_up<E, F, Fut>(what: &str, shutdown: &CancellationToken, mut session: F)
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut delays = backoff().build();
    loop {
        let started = Instant::now();
        match session().await {
            Ok(()) => return,
            Err(error) => tracing::warn!(%error, "{what} ended"),
        }
        if started.elapsed() > HEALTHY_SESSION {
            delays = backoff().build();
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}
