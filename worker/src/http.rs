//! The worker's small HTTP port (`METRICS_ADDR`): `/metrics` for
//! Prometheus, `/healthz` (the process answers) and `/readyz` (it can
//! decide: connected to RabbitMQ, holding an etcd lease, and a member of
//! the workers, which it is only while MySQL answers). Served on the
//! worker's own runtime thread: a scrape is rare and cheap.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Json, Router,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;

use crate::lease::Lease;

/// What `/readyz` reads of the worker.
#[derive(Clone)]
pub struct Readiness {
    pub(crate) broker: Arc<AtomicBool>,
    pub(crate) lease: Lease,
    pub(crate) member: watch::Receiver<bool>,
}

impl Readiness {
    /// Each check by name, and whether it passes.
    fn checks(&self) -> [(&'static str, bool); 3] {
        [
            ("rabbitmq", self.broker.load(Ordering::Relaxed)),
            ("etcd_lease", self.lease.current().is_some()),
            ("mysql", *self.member.borrow()),
        ]
    }
}

/// Binds the port; the worker does so at start, so that a taken port
/// stops it before it connects to anything or is given partitions.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "worker metrics and probes listening");
    Ok(listener)
}

/// Serves the bound port until `shutdown`.
pub fn spawn(listener: TcpListener, readiness: Readiness, shutdown: CancellationToken) {
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(move || readyz(readiness.clone())));
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "the worker's HTTP port stopped");
        }
    });
}

async fn metrics() -> impl IntoResponse {
    let (content_type, body) = shared::prometheus::render();
    ([(header::CONTENT_TYPE, content_type)], body)
}

async fn readyz(readiness: Readiness) -> (StatusCode, Json<Value>) {
    let checks = readiness.checks();
    let ready = checks.iter().all(|(_, up)| *up);
    let checks: serde_json::Map<String, Value> = checks
        .iter()
        .map(|(name, up)| ((*name).to_owned(), json!(if *up { "up" } else { "down" })))
        .collect();
    let (status, word) = if ready {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    };
    (status, Json(json!({"status": word, "checks": checks})))
}
