//! `crash-points`: workers armed with `WORKER_CRASH_AT=<point>:<n>` abort
//! exactly there (the n-th time the point is reached: commit done, nothing
//! published; or published, nothing acknowledged), each replaced by another
//! armed one. A worker build without the failpoint ignores the variable:
//! then nothing crashes and the scenario says so.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use futures::future::LocalBoxFuture;
use rand::{Rng, rngs::StdRng};

use super::{
    contract::Scenario,
    process::signal,
    run::{Run, WORKERS, secs},
};

const POINTS: &[&str] = &["after-commit", "after-publish"];

pub(super) struct CrashPoints;

impl Scenario for CrashPoints {
    fn name(&self) -> &'static str {
        "crash-points"
    }

    fn description(&self) -> &'static str {
        "workers abort right after the commit or the publish, each replaced: nothing lost or \
         decided twice"
    }

    fn inject<'a>(&'a mut self, run: &'a mut Run) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            tokio::time::sleep(secs(1.0)).await;
            let duration = secs(if run.short() { 10.0 } else { 30.0 });
            crash_for(run, duration).await?;
            tokio::time::sleep(secs(3.0)).await;
            Ok(())
        })
    }
}

/// A random crash point and hit count.
fn armed(rng: &mut StdRng) -> String {
    let point = POINTS[rng.random_range(0..POINTS.len())];
    format!("{point}:{}", rng.random_range(2..8))
}

/// Replaces the workers by armed ones and replaces each one that crashes,
/// for `duration`; then disarms.
async fn crash_for(run: &mut Run, duration: Duration) -> anyhow::Result<()> {
    let mut armed_pids: HashMap<u32, String> = HashMap::new();
    // Arm new workers first, then stop the unarmed ones (SIGTERM).
    let unarmed: Vec<u32> = run.app.workers.iter().map(|w| w.id()).collect();
    for _ in 0..WORKERS {
        let spec = armed(&mut run.rng);
        let (pid, _) = run.start_worker_with(&[("WORKER_CRASH_AT", spec.clone())]);
        armed_pids.insert(pid, spec);
    }
    for pid in unarmed {
        signal(pid, "TERM").await?;
    }
    let deadline = Instant::now() + duration;
    let mut crashes = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for index in 0..run.app.workers.len() {
            let pid = run.app.workers[index].id();
            let Some(spec) = armed_pids.get(&pid).cloned() else {
                continue;
            };
            let Ok(Some(status)) = run.app.workers[index].try_wait() else {
                continue;
            };
            armed_pids.remove(&pid);
            crashes += 1;
            let start = run.history.now_ms();
            let next = armed(&mut run.rng);
            let (replacement, _) = run.start_worker_with(&[("WORKER_CRASH_AT", next.clone())]);
            armed_pids.insert(replacement, next.clone());
            run.fault(
                "crash-point",
                format!(
                    "worker pid {pid} armed with {spec} exited ({status}); replacement pid \
                     {replacement} armed with {next}"
                ),
                start,
            );
        }
    }
    // Disarm: unarmed workers take over, the armed ones stop.
    for _ in 0..WORKERS {
        run.start_worker();
    }
    for pid in armed_pids.keys() {
        signal(*pid, "TERM").await.ok();
    }
    if crashes == 0 {
        run.notes.push(
            "no worker crashed: this worker build has no WORKER_CRASH_AT failpoint \
             (see the proposed diff in RELIABILITY.md); the scenario ran without faults"
                .into(),
        );
    }
    Ok(())
}
