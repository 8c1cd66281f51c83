//! Process lifecycle helpers: waiting for SIGTERM/Ctrl-C, and retrying a
//! start-up connection until the service behind it answers (in a compose
//! deployment dependencies may come up after us, or restart under us).

use std::{future::Future, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder};

/// Resolves on SIGTERM (what `docker stop` sends) or Ctrl-C.
pub async fn terminate_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}

/// The backoff every reconnect loop uses: 100 ms doubling to 5 s, forever.
pub fn reconnect_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
}

/// Calls `connect` until it succeeds, logging each failure.
pub async fn retry_until_ok<T, E, F, Fut>(what: &str, mut connect: F) -> T
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delays = reconnect_backoff().build();
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
