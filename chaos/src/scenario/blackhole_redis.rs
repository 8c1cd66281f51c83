//! `blackhole-redis`: every api's and worker's path to Redis goes through a
//! [`Blackhole`], cut (nothing closed, no byte moves) while the workload
//! runs, then healed. Redis is a cache: the answers must come as before,
//! from MySQL, and `/readyz` says what it sees.

use std::time::Instant;

use anyhow::Context;
use futures::future::LocalBoxFuture;
use testkit::blackhole::Blackhole;

use super::{
    answers,
    contract::Scenario,
    run::{Env, Run, secs},
};
use crate::history::Record;

#[derive(Default)]
pub(super) struct BlackholeRedis {
    /// The proxy every process of the deployment reaches Redis through.
    proxy: Option<Blackhole>,
}

impl Scenario for BlackholeRedis {
    fn name(&self) -> &'static str {
        "blackhole-redis"
    }

    fn description(&self) -> &'static str {
        "Redis stops answering for every process: the answers come from MySQL as before"
    }

    fn prepare<'a>(&'a mut self, env: &'a mut Env) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let (proxy, routed) = Blackhole::in_front_of(&testkit::app::env("REDIS_URL")).await?;
            env.insert("REDIS_URL", routed);
            self.proxy = Some(proxy);
            Ok(())
        })
    }

    fn inject<'a>(&'a mut self, run: &'a mut Run) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let proxy = self
                .proxy
                .as_ref()
                .context("blackhole-redis runs with its Redis proxy")?;
            cut_rounds(run, proxy).await
        })
    }

    fn assess<'a>(
        &'a mut self,
        run: &'a mut Run,
        records: &'a [Record],
    ) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        run.notes.extend(answers::notes(records));
        Box::pin(async { Ok(()) })
    }
}

async fn cut_rounds(run: &mut Run, proxy: &Blackhole) -> anyhow::Result<()> {
    let (rounds, cut_for, between) = if run.short() {
        (1, 6.0, 4.0)
    } else {
        (3, 10.0, 5.0)
    };
    tokio::time::sleep(secs(3.0)).await;
    for round in 1..=rounds {
        let before = redis_readiness(run).await;
        let start = run.history.now_ms();
        proxy.cut();
        tokio::time::sleep(secs(1.0)).await;
        let during = redis_readiness(run).await;
        tokio::time::sleep(secs(cut_for - 1.0)).await;
        proxy.heal();
        run.fault(
            "blackhole-redis",
            format!(
                "round {round}: cut every process's path to Redis for {cut_for:.0} s, then \
                 healed; /readyz before: {before}; 1 s into the cut: {during}"
            ),
            start,
        );
        tokio::time::sleep(secs(between)).await;
    }
    Ok(())
}

/// What the first api's `/readyz` says about Redis, and how fast.
async fn redis_readiness(run: &Run) -> String {
    let started = Instant::now();
    let answer = async {
        let response = run.app.http.get(run.app.url("/readyz")).send().await?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await?;
        anyhow::Ok(format!("{status} redis {}", body["checks"]["redis"]))
    }
    .await;
    let took = started.elapsed().as_millis();
    match answer {
        Ok(text) => format!("{text} in {took} ms"),
        Err(error) => format!("no answer ({error}) in {took} ms"),
    }
}
