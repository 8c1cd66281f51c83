//! api entry point: configuration, wiring and graceful shutdown. The api is
//! stateless apart from its waiting requests; run as many as needed.

mod auth;
mod broker;
mod catalog;
mod config;
mod extract;
mod pending;
mod problem;
mod ratelimit;
mod requests;
mod routes;
mod server;
mod state;
mod views;
mod waiters;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use clap::Parser;
use shared::{
    cache::AvailabilityCache,
    settings::{LiveSettings, Settings},
    shutdown::{retry_until_ok, terminate_signal},
    topology::Topology,
};
use tokio_util::sync::CancellationToken;

use crate::{
    auth::Keys, broker::Broker, config::Config, ratelimit::ClientLimiter, state::AppState,
    waiters::Waiters,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let config = Config::parse();
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
    let settings = LiveSettings::watch(
        etcd.clone(),
        &connections.namespace,
        Settings::from_args(&config.settings),
        timeout,
    );
    let broker = Broker::new(
        Topology::new(&connections.namespace, connections.command_queue_max_length),
        Waiters::new(config.max_waiters),
        config.publish_timeout(),
    );
    let shutdown = CancellationToken::new();
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

    let state = AppState {
        db: db.clone(),
        cache,
        settings,
        broker,
        known_events: Arc::default(),
        etcd,
        keys: Arc::new(Keys::new(&config.admin_token, config.require_api_key)),
        max_body_bytes: config.max_body_bytes,
        body_read_timeout: Duration::from_millis(config.body_read_timeout_ms),
        reserve_limiter,
        backend_timeout: timeout,
    };
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| format!("binding {}", config.listen_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "api listening");
    server::serve(
        listener,
        routes::router(state),
        config.server_limits(),
        terminate_signal(),
    )
    .await;
    shutdown.cancel();
    let _ = broker_task.await;
    db.close().await?;
    tracing::info!("api stopped");
    Ok(())
}
