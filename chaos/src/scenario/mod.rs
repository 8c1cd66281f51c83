//! Fault scenarios. Each spawns its own deployment (testkit: own database,
//! namespace, two api and three worker processes) against the servers in
//! the environment, runs the workload while injecting one kind of fault,
//! heals it, and checks the history against the database. A scenario is a
//! [`Scenario`] in a file of its own; [`all`] lists them in the order
//! `scripts/chaos` runs them, and [`run`] runs one by name.

mod answers;
mod baseline;
mod blackhole_mysql;
mod blackhole_redis;
mod broker;
mod contract;
mod crash_points;
mod database;
mod etcd;
mod etcd_rewind;
mod kill_worker;
mod overload;
mod partition_etcd;
mod poison;
mod process;
mod recovery;
mod restart;
mod run;
mod stop_worker;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use self::{
    contract::Scenario,
    run::{Env, Run, ScenarioOptions},
};
use crate::{
    check::{self, Summary},
    history, workload,
};

/// Every scenario, in the order `scripts/chaos` runs them.
pub fn all() -> Vec<Box<dyn Scenario>> {
    use restart::{Restart, Server};
    vec![
        Box::new(baseline::Baseline),
        Box::new(kill_worker::KillWorker),
        Box::new(crash_points::CrashPoints),
        Box::new(stop_worker::StopWorker::default()),
        Box::new(partition_etcd::PartitionEtcd::default()),
        Box::new(Restart(Server::Rabbitmq)),
        Box::new(Restart(Server::Mysql)),
        Box::new(Restart(Server::Etcd)),
        Box::new(poison::Poison::default()),
        Box::new(overload::Overload),
        Box::new(blackhole_mysql::BlackholeMysql::default()),
        Box::new(blackhole_redis::BlackholeRedis::default()),
        Box::new(etcd_rewind::EtcdRewind),
    ]
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<Box<dyn Scenario>> {
    all().into_iter().find(|s| s.name() == name)
}

/// One run's outcome: `<dir>/result.json`, a row of the report.
#[derive(Debug, Serialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub short: bool,
    pub seed: u64,
    /// Requests the workload made (the flood of `overload` not counted).
    pub requests: u64,
    pub operations: usize,
    pub faults: usize,
    pub violations: usize,
    pub duration_s: f64,
    pub max_latency_ms: f64,
    pub max_latency_during_faults_ms: f64,
    /// Answers during fault windows, by status.
    pub during_faults: BTreeMap<u16, usize>,
    pub notes: Vec<String>,
    pub history: PathBuf,
    pub summary: Summary,
}

/// Runs the scenario called `name` on a deployment of its own.
pub async fn run(name: &str, options: &ScenarioOptions) -> anyhow::Result<ScenarioResult> {
    let mut scenario = find(name).with_context(|| {
        let known: Vec<&str> = all().iter().map(|s| s.name()).collect();
        format!("unknown scenario {name}; known: {}", known.join(", "))
    })?;
    let started = Instant::now();
    let mut env = run::base_env();
    scenario.prepare(&mut env).await?;
    let mut run = Run::start(name, options, env).await?;

    let stop = CancellationToken::new();
    let load = tokio::spawn(workload::run(
        run.workload(),
        run.history.clone(),
        stop.clone(),
    ));
    let injected = scenario.inject(&mut run).await;
    stop.cancel();
    let made = load.await??;
    run.history.flush();
    injected?;
    eprintln!("chaos: {made} requests made");

    let path = options.dir.join("history.jsonl");
    let records = history::read(&path)?;
    if let Some((note, violation)) = recovery::after_last_fault(&records) {
        run.notes.push(note);
        run.violations.extend(violation);
    }
    scenario.assess(&mut run, &records).await?;
    let mut summary = check::check_database(
        &records,
        &run.app.database_url,
        Duration::from_secs(90),
        options.limits,
        Some(&run.receiver),
    )
    .await?;
    summary.violations.append(&mut run.violations);
    let w = summary.webhooks;
    run.notes.push(format!(
        "webhooks: {} messages for {} reservations, {} deliveries, {} delivered, {} retried \
         ({} first attempts refused on purpose), {} received (and {} written after the \
         check's read)",
        w.messages,
        w.reservations,
        w.deliveries,
        w.delivered,
        w.retried,
        w.refused_on_purpose,
        w.received,
        w.late
    ));
    Ok(ScenarioResult {
        scenario: name.to_owned(),
        short: options.short,
        seed: options.seed,
        requests: made,
        operations: summary.operations,
        faults: summary.faults,
        violations: summary.violations.len(),
        duration_s: started.elapsed().as_secs_f64(),
        max_latency_ms: summary.max_latency_ms,
        max_latency_during_faults_ms: summary.max_latency_during_faults_ms,
        during_faults: recovery::answers_during_faults(&records),
        notes: run.notes,
        history: path,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_lists_every_scenario_once_in_the_order_of_the_suite() {
        let names: Vec<&str> = all().iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "baseline",
                "kill-worker",
                "crash-points",
                "stop-worker",
                "partition-etcd",
                "restart-rabbitmq",
                "restart-mysql",
                "restart-etcd",
                "poison",
                "overload",
                "blackhole-mysql",
                "blackhole-redis",
                "etcd-rewind",
            ]
        );
        for scenario in all() {
            assert!(!scenario.description().is_empty(), "{}", scenario.name());
            assert_eq!(
                find(scenario.name()).map(|s| s.name()),
                Some(scenario.name())
            );
        }
        assert!(find("no-such-fault").is_none());
    }
}
