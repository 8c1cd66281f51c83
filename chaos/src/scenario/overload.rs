//! `overload`: measures what the deployment sustains, then offers 20 times
//! that, open loop; the api must shed (503 with `Retry-After`) rather than
//! hang, every process's peak RSS must stay within [`RSS_BUDGET_MB`]
//! (`memory`), and the backlog must drain afterwards.

use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;

use super::{
    broker,
    contract::Scenario,
    run::{Env, Run, secs},
};
use crate::workload;

/// The deployment: one decision per lock and transaction (the slow
/// design), so that 20 times what it sustains is a rate this machine's load
/// generator can really offer; and small bounds on waiting requests and on
/// the queue, so that shedding shows within seconds and the backlog drains
/// within the checker's wait.
const OVERLOAD_ENV: &[(&str, &str)] = &[
    ("BATCH_SIZE", "1"),
    ("LOCK_MAX_HOLD_MS", "0"),
    ("MAX_WAITERS", "300"),
    ("COMMAND_QUEUE_MAX_LENGTH", "2000"),
    ("WORKER_PREFETCH", "16"),
];
/// Requests the overload generator keeps in flight at most. With 4,096, the
/// generator's own connections starved the (debug) api and itself of CPU on
/// two cores and sync reserves took up to 14 s end to end (a full run's
/// `hang` violations); beyond this bound a send is skipped and reported.
const FLOOD_IN_FLIGHT: usize = 1024;
/// Peak RSS above which a process counts as unbounded (the throughput
/// issue's budget).
const RSS_BUDGET_MB: f64 = 150.0;

pub(super) struct Overload;

impl Scenario for Overload {
    fn name(&self) -> &'static str {
        "overload"
    }

    fn description(&self) -> &'static str {
        "20 x the sustained rate of sync reserves: shed with 503, bounded memory, the backlog \
         drains"
    }

    fn prepare<'a>(&'a mut self, env: &'a mut Env) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        env.extend(OVERLOAD_ENV.iter().map(|(k, v)| (*k, (*v).to_owned())));
        Box::pin(async { Ok(()) })
    }

    fn inject<'a>(&'a mut self, run: &'a mut Run) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            tokio::time::sleep(secs(2.0)).await;
            flood(run, secs(if run.short() { 8.0 } else { 30.0 })).await?;
            peak_memory(run);
            drain(run).await?;
            tokio::time::sleep(secs(3.0)).await;
            Ok(())
        })
    }
}

/// Measures what the deployment sustains (64 sync reserves at a time for
/// 3 s), then offers 20 times that, open loop, for `duration`.
async fn flood(run: &mut Run, duration: Duration) -> anyhow::Result<()> {
    let config = run.workload();
    let calibration =
        workload::flood(config.clone(), run.history.clone(), 100_000, secs(3.0), 64).await?;
    let sustainable = (calibration.decided() as f64 / calibration.elapsed.as_secs_f64()).max(1.0);
    let rate = (20.0 * sustainable).round() as u64;
    let start_ms = run.history.now_ms();
    let flood =
        workload::flood(config, run.history.clone(), rate, duration, FLOOD_IN_FLIGHT).await?;
    let offered = flood.sent as f64 / duration.as_secs_f64();
    run.fault(
        "overload",
        format!(
            "{rate}/s of sync reserves (20 x the {sustainable:.0}/s sustained) for {:.0} s",
            duration.as_secs_f64()
        ),
        start_ms,
    );
    run.notes.push(format!(
        "sustained {sustainable:.0} decisions/s; offered {rate}/s for {:.0} s: {} sent \
         ({offered:.0}/s), {} not sent ({FLOOD_IN_FLIGHT} already in flight); answers {:?}",
        duration.as_secs_f64(),
        flood.sent,
        flood.skipped,
        flood.by_status
    ));
    Ok(())
}

/// Every process's peak RSS, each within the budget.
fn peak_memory(run: &mut Run) {
    let mut peaks = Vec::new();
    let apis = run.app.api_pids();
    let (_, workers) = run.app.pids();
    for (kind, pids) in [("api", apis), ("worker", workers)] {
        for pid in pids {
            let Some(mb) = testkit::app::peak_rss_mb(pid) else {
                continue;
            };
            peaks.push(format!("{kind} {pid} {mb:.0} MB"));
            if mb > RSS_BUDGET_MB {
                run.violate(
                    "memory",
                    format!("{kind} {pid}"),
                    format!("peak RSS {mb:.0} MB > {RSS_BUDGET_MB} MB under overload"),
                );
            }
        }
    }
    run.notes.push(format!("peak RSS: {}", peaks.join(", ")));
}

/// The backlog the overload queued is acknowledged work: lets the workers
/// finish it, so that what follows shows the system serving at its normal
/// pace again.
async fn drain(run: &mut Run) -> anyhow::Result<()> {
    let (topology, connection, channel) = broker::connect(&run.app.namespace).await?;
    let drained = Instant::now();
    let deadline = drained + Duration::from_secs(120);
    let mut left = broker::backlog(&channel, &topology).await?;
    while left > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        left = broker::backlog(&channel, &topology).await?;
    }
    connection.close(200, "done".into()).await.ok();
    run.notes.push(format!(
        "backlog drained in {:.1} s ({left} left)",
        drained.elapsed().as_secs_f64()
    ));
    Ok(())
}
