//! The process's Prometheus recorder. Both binaries record through the
//! `metrics` facade (counters and gauges are atomics behind handles, a
//! histogram sample is a lock-free push) and render the text exposition
//! from their own HTTP route, so a scrape costs no extra listener.
//!
//! Histograms are rendered as Prometheus histograms with fixed buckets, not
//! summaries, so that Prometheus can add them up across replicas.

use std::{sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

/// Seconds: from a Redis hit to a lock handed over under load.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counts (commands per batch): powers of two up to the largest prefetch.
const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A gauge not set for this long is dropped from the exposition: gauges
/// sampled by a process for what it currently owns (a partition's queue
/// depth, an event's tickets left) disappear once it no longer owns it.
const GAUGE_IDLE: Duration = Duration::from_secs(30);

/// How often histogram samples are folded into their buckets even when
/// nobody scrapes, so that memory stays bounded without a Prometheus.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on the first call (later calls, e.g.
/// a second in-process api in a test, share it). Must be called within a
/// Tokio runtime the first time: it starts the upkeep task.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), COUNT_BUCKETS))
            .map(|b| b.idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE)))
            .and_then(PrometheusBuilder::install_recorder);
        let handle = match handle {
            Ok(handle) => handle,
            // Another recorder is installed (only a test harness would):
            // metrics then go there, and this handle renders nothing.
            Err(error) => {
                tracing::warn!(%error, "metrics recorder not installed");
                PrometheusBuilder::new().build_recorder().handle()
            }
        };
        let upkeep = handle.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(UPKEEP_EVERY).await;
                upkeep.run_upkeep();
            }
        });
        handle
    })
}

/// The Prometheus text exposition of everything recorded so far, and its
/// content type.
pub fn render() -> (&'static str, String) {
    ("text/plain; version=0.0.4", install().render())
}
