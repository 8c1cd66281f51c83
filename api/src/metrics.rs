//! The api's Prometheus metrics: every HTTP request by route template and
//! status, and the `/metrics` route that renders them with everything
//! else this process records (waiting requests, availability reads by
//! source, commands handed to the broker, Redis calls).
//!
//! Label values are bounded: a route is the matched template
//! (`/events/{id}/reserve`), never the raw path, and a request that
//! matched no route is `unmatched`; a method outside the standard ones is
//! `other`.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request},
    http::{Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tokio_util::sync::CancellationToken;

use crate::waiters::Waiters;

/// How often gauges that change rarely are set again, so that they stay
/// in the exposition.
const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Middleware: counts the request and records how long its answer took.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let response = next.run(request).await;
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("tickets_http_requests_total", &labels).increment(1);
    metrics::histogram!("tickets_http_request_duration_seconds", &labels).record(started.elapsed());
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `GET /metrics`: the Prometheus text exposition. Left out of the OpenAPI
/// document, which describes the reservation API (README, "Metrics").
pub async fn render() -> impl IntoResponse {
    let (content_type, body) = shared::prometheus::render();
    ([(header::CONTENT_TYPE, content_type)], body)
}

/// Where `GET /events/{id}/tickets` found its count: `memory` (this
/// replica's view), `redis` or `mysql`; their ratio is the cache hit ratio.
pub fn availability_read(source: &'static str) {
    metrics::counter!("tickets_availability_reads_total", "source" => source).increment(1);
}

/// What became of a command handed to the broker: `queued`,
/// `unconfirmed`, `refused` (queue full) or `unavailable`.
pub fn published(result: &'static str) {
    metrics::counter!("tickets_commands_published_total", "result" => result).increment(1);
}

/// Keeps the waiting-requests gauge in the exposition until `shutdown`.
pub async fn sample(waiters: Arc<Waiters>, shutdown: CancellationToken) {
    loop {
        waiters.report();
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
    }
}
