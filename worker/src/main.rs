//! Worker entry point: wiring and shutdown. Any number of workers may run;
//! they share the command partitions out between them.

use anyhow::Context;
use clap::Parser;
use shared::{
    cache::AvailabilityCache,
    reconnect::retry_until_ok,
    settings::{LiveSettings, Settings},
    shutdown::terminate_signal,
};
use tokio_util::sync::CancellationToken;
use worker::{config::Config, consumer::Worker, fence::Epoch, lease::Lease};

// One thread: a worker waits on MySQL, etcd and RabbitMQ far more than it
// computes, and on one thread its many small wake-ups (a delivery, a
// query's answer) cost no cross-thread hand-off. Measured with
// `scripts/bench --only "16 events"`: worker CPU per confirmed
// reservation 35-40 µs against 48-53 µs on the multi-threaded runtime.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let telemetry = shared::telemetry::init(
        "worker",
        Some(&config.connections.otel_exporter_otlp_endpoint),
    )?;
    config.validate()?;
    // First: handles taken before it is installed would record nothing.
    shared::prometheus::install();
    // Before anything else: a taken port stops the worker at once.
    let http = match config.metrics_addr {
        Some(addr) => Some(
            worker::http::bind(addr)
                .await
                .with_context(|| format!("METRICS_ADDR {addr}"))?,
        ),
        None => None,
    };
    let connections = &config.connections;
    let timeout = connections.backend_timeout();

    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            terminate_signal().await;
            shutdown.cancel();
        }
    });

    let db = retry_until_ok("MySQL", || shared::db::connect_read_committed(connections)).await;
    let etcd = retry_until_ok("etcd", || {
        shared::etcd::connect(&connections.etcd_endpoints, timeout)
    })
    .await;
    let cache = AvailabilityCache::new(&connections.redis_url, &connections.namespace, timeout)?;
    let settings = LiveSettings::watch(
        etcd.clone(),
        &connections.namespace,
        Settings::from_args(&config.settings),
        timeout,
    );
    let epoch = retry_until_ok("the fencing epoch", || Epoch::load(&db)).await;
    let (lease, lease_task) = Lease::spawn(etcd.clone(), config.lease_ttl_secs, shutdown.clone());

    let worker = Worker::new(config.clone(), db, etcd, cache, settings, lease, epoch);
    let dispatcher = worker::webhooks::Dispatcher::new(
        worker.db().clone(),
        config.webhooks.clone(),
        worker.webhook_signal(),
    )?;
    let dispatching = tokio::spawn(dispatcher.run(shutdown.clone()));
    if let Some(listener) = http {
        worker::http::spawn(listener, worker.readiness(), shutdown.clone());
    }
    tracing::info!("worker started");
    worker.run(&shutdown).await;
    shutdown.cancel();
    let _ = dispatching.await;
    // Revoking the lease releases this worker's locks at once instead of
    // after the TTL.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), lease_task).await;
    worker.db().clone().close().await?;
    tracing::info!("worker stopped");
    telemetry.shutdown();
    Ok(())
}
