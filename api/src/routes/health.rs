//! Liveness and readiness probes.

use std::collections::BTreeMap;

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use shared::cache::CacheHealth;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `not_ready`.
    pub status: &'static str,
    /// Per dependency: `up`, `down` or (Redis only) `disabled`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<&'static str, &'static str>,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        checks: BTreeMap::new(),
    })
}

/// MySQL, RabbitMQ and etcd are reachable (Redis is reported, not required).
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let timeout = state.backend_timeout;
    let mysql = async {
        tokio::time::timeout(timeout, state.db.ping())
            .await
            .is_ok_and(|r| r.is_ok())
    };
    let etcd = async {
        let mut client = state.etcd.clone();
        tokio::time::timeout(timeout, client.status())
            .await
            .is_ok_and(|r| r.is_ok())
    };
    let (mysql, etcd, redis) = tokio::join!(mysql, etcd, state.cache.health());
    let rabbitmq = state.broker.is_connected();
    let up = |ok: bool| if ok { "up" } else { "down" };
    let checks = BTreeMap::from([
        ("mysql", up(mysql)),
        ("rabbitmq", up(rabbitmq)),
        ("etcd", up(etcd)),
        (
            "redis",
            match redis {
                CacheHealth::Up => "up",
                CacheHealth::Down => "down",
                CacheHealth::Disabled => "disabled",
            },
        ),
    ]);
    let ready = mysql && rabbitmq && etcd;
    let (status, word) = if ready {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    };
    (
        status,
        Json(Health {
            status: word,
            checks,
        }),
    )
}
