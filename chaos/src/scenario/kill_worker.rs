//! `kill-worker`: SIGKILL a random live worker every 1–4 s and start a
//! replacement each time; what it had taken and not acknowledged must be
//! decided by the others, exactly once.

use anyhow::Context;
use futures::future::LocalBoxFuture;
use rand::Rng;

use super::{
    contract::Scenario,
    run::{Run, secs},
};

pub(super) struct KillWorker;

impl Scenario for KillWorker {
    fn name(&self) -> &'static str {
        "kill-worker"
    }

    fn description(&self) -> &'static str {
        "SIGKILL a random worker every 1-4 s, start a replacement: nothing lost or decided twice"
    }

    fn inject<'a>(&'a mut self, run: &'a mut Run) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            tokio::time::sleep(secs(2.0)).await;
            for _ in 0..(if run.short() { 3 } else { 8 }) {
                let wait = run.rng.random_range(1.0..4.0);
                tokio::time::sleep(secs(wait)).await;
                kill_one(run)?;
            }
            tokio::time::sleep(secs(3.0)).await;
            Ok(())
        })
    }
}

fn kill_one(run: &mut Run) -> anyhow::Result<()> {
    let index = run.live_worker().context("no live worker")?;
    let start = run.history.now_ms();
    let worker = &mut run.app.workers[index];
    let pid = worker.id();
    worker.kill().context("SIGKILL")?;
    worker.wait().ok();
    let (replacement, _) = run.start_worker();
    run.fault(
        "sigkill-worker",
        format!("SIGKILL worker pid {pid}; replacement pid {replacement}"),
        start,
    );
    Ok(())
}
