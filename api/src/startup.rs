//! Wiring: from a [`Config`] to a running api. [`App::build`] connects to
//! the servers and starts the background tasks (broker link, limiter
//! upkeep); [`App::router`] is what tests drive in-process; [`App::serve`]
//! is what `main` runs until a signal.

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use axum::Router;
use shared::{
    cache::AvailabilityCache,
    reconnect::retry_until_ok,
    settings::{LiveSettings, Settings},
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    auth::Keys,
    availability::AvailabilityView,
    broker::Broker,
    config::Config,
    live_feed::LiveFeed,
    ratelimit::ClientLimiter,
    routes, server,
    state::{AppState, Resources},
    waiters::Waiters,
};

/// A built api: its state and the tasks that keep it connected.
pub struct App {
    config: Config,
    state: AppState,
    shutdown: CancellationToken,
    broker_task: JoinHandle<()>,
}

impl App {
    /// Connects to MySQL and etcd (retrying until they answer) and starts
    /// the broker link; requests are refused with 503 until it connects.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // First: handles taken before it is installed would record nothing.
        shared::prometheus::install();
        let client_header = config.client_header()?;
        let connections = &config.connections;
        let timeout = connections.backend_timeout();
        let db = retry_until_ok("MySQL", || shared::db::connect(connections)).await;
        let etcd = retry_until_ok("etcd", || {
            shared::etcd::connect(&connections.etcd_endpoints, timeout)
        })
        .await;
        let cache = AvailabilityCache::new(&connections.redis_url, &connections.namespace, timeout)
            .context("REDIS_URL")?;
        let settings_defaults = Settings::from_args(&config.settings);
        let settings = LiveSettings::watch(
            etcd.clone(),
            &connections.namespace,
            settings_defaults.clone(),
            timeout,
        );
        let availability = Arc::new(AvailabilityView::new(config.availability_max_staleness()));
        let waiters = Waiters::new(config.max_waiters);
        let live = Arc::new(LiveFeed::new(
            config.live_max_streams,
            config.live_stream_max_lifetime(),
        ));
        let broker = Broker::new(
            connections.topology(),
            waiters.clone(),
            availability.clone(),
            live.clone(),
            config.publish_timeout(),
        );
        let shutdown = CancellationToken::new();
        tokio::spawn(crate::metrics::sample(waiters, shutdown.clone()));
        let broker_task = tokio::spawn(
            broker
                .clone()
                .run(connections.amqp_url.clone(), shutdown.clone()),
        );
        let reserve_limiter = ClientLimiter::new(
            config.reserve_rate_limit_per_sec,
            config.reserve_rate_limit_burst,
            client_header,
        )
        .map(Arc::new);
        if let Some(limiter) = &reserve_limiter {
            tokio::spawn(limiter.clone().forget_quiet_clients(shutdown.clone()));
        }
        let state = AppState::new(Resources {
            db,
            cache,
            availability,
            settings,
            settings_defaults,
            settings_prefix: shared::etcd::config_prefix(&connections.namespace),
            live,
            broker,
            known_events: Arc::default(),
            known_users: Arc::default(),
            etcd,
            keys: Arc::new(Keys::new(&config.admin_token, config.require_api_key)),
            max_body_bytes: config.max_body_bytes,
            body_read_timeout: Duration::from_millis(config.body_read_timeout_ms),
            reserve_limiter,
            backend_timeout: timeout,
        });
        Ok(Self {
            config,
            state,
            shutdown,
            broker_task,
        })
    }

    /// The whole HTTP api, for `serve` or for `tower::ServiceExt::oneshot`.
    pub fn router(&self) -> Router {
        routes::router(self.state.clone())
    }

    /// Whether the broker link is up (requests are refused until it is).
    pub fn is_connected(&self) -> bool {
        self.state.broker.is_connected()
    }

    /// Serves on the configured address until `signal`, then drains open
    /// requests, stops the background tasks and closes the pool.
    pub async fn serve(self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(self.config.listen_addr)
            .await
            .with_context(|| format!("binding {}", self.config.listen_addr))?;
        tracing::info!(addr = %listener.local_addr()?, "api listening");
        // Live streams never finish by themselves: they end as shutdown
        // begins, so the drain only waits for real requests.
        let live = self.state.live.clone();
        let signal = async move {
            signal.await;
            live.close();
        };
        server::serve(listener, self.router(), self.config.server_limits(), signal).await;
        self.stop().await
    }

    /// Stops the background tasks and closes the pool.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.state.live.close();
        self.shutdown.cancel();
        let _ = self.broker_task.await;
        self.state.db.close_by_ref().await?;
        Ok(())
    }
}
