//! What one scenario measured, and the latency histogram it came from.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies in microseconds, 1 µs to 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid")
}

pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.clamp(1, 60_000_000));
}

/// Successes and failures counted by concurrent tasks.
#[derive(Default)]
pub struct Tally {
    ok: AtomicU64,
    errors: AtomicU64,
}

impl Tally {
    pub fn count(&self, ok: bool) {
        let counter = if ok { &self.ok } else { &self.errors };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The scenario's row, from this tally and the tasks' histograms.
    pub fn row(&self, scenario: &str, elapsed: Duration, histograms: Vec<Histogram<u64>>) -> Row {
        let mut merged = histogram();
        for h in histograms {
            merged.add(h).expect("histograms share bounds");
        }
        Row::new(
            scenario,
            self.ok.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            elapsed,
            &merged,
        )
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    pub scenario: String,
    /// Successful operations per second (confirmed reservations, or reads).
    pub ops_per_sec: f64,
    pub operations: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Invariant violations found in the database after the run.
    pub violations: u64,
    pub api_peak_rss_mb: Option<f64>,
    pub worker_peak_rss_mb: Option<f64>,
    /// What one confirmed reservation cost (pipeline rows).
    pub cost: Option<Cost>,
}

/// Per confirmed reservation: CPU of the api, of every worker and of each
/// server (`servers::SERVERS` order), and per 1,000 of them: etcd writes
/// and MySQL commits.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cost {
    pub api_cpu_us: f64,
    pub worker_cpu_us: f64,
    pub server_cpu_us: [f64; 4],
    pub etcd_writes_per_1k: f64,
    pub mysql_commits_per_1k: f64,
}

impl Row {
    pub fn new(
        scenario: &str,
        ok: u64,
        errors: u64,
        elapsed: Duration,
        h: &Histogram<u64>,
    ) -> Self {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Self {
            scenario: scenario.to_owned(),
            ops_per_sec: ok as f64 / elapsed.as_secs_f64(),
            operations: ok,
            errors,
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: h.max() as f64 / 1000.0,
            ..Self::default()
        }
    }
}
