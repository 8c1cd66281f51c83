//! One scenario's run: its deployment (own database and namespace, two api
//! and three worker processes), its events, the history, and what the
//! scenario found besides the checker (notes and violations). The helpers
//! every scenario uses to act on the deployment live here.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;
use testkit::app::{Options, TestApp};

use super::etcd;
use crate::{
    check::{Limits, Violation},
    history::{EventMeta, Fault, HistoryWriter, Meta, Record},
    receiver::Receiver,
    worker_log::WorkerLog,
    workload,
};

/// Environment of every process of a deployment.
pub type Env = BTreeMap<&'static str, String>;

#[derive(Debug, Clone)]
pub struct ScenarioOptions {
    pub short: bool,
    pub dir: PathBuf,
    /// Program and leading arguments that stop/start a server:
    /// `<cmd…> stop|start mysql|rabbitmq|etcd`.
    pub service_cmd: Vec<String>,
    pub seed: u64,
    pub clients: usize,
    pub limits: Limits,
}

/// Lease TTL of the workers, so that a paused worker loses its locks fast.
pub(super) const LEASE_TTL_SECS: u64 = 2;
/// The workers' decision deadline: a worker refuses to start with one that
/// is not shorter than its lease (its default, 2 s, is not).
pub(super) const DECIDE_TIMEOUT_MS: u64 = 1000;
const API_REPLICAS: usize = 2;
pub(super) const WORKERS: usize = 3;
const CAPACITIES: &[i64] = &[60, 300, 3000];
/// API clients (storefronts) the workload acts for, each with a webhook
/// endpoint at the run's receiver.
const CLIENTS: usize = 2;
/// The receiver answers 500 to the first attempt of every 5th new message.
const REFUSE_EVERY: usize = 5;

/// An event sold as a storefront would sell it: three ticket types, two
/// of them sharing a quota smaller than their sum, a per-user limit that
/// the workload's few users reach, and waiting lists once a type sells
/// out; holds offered to the list last `DEFAULT_HOLD_SECONDS` (short, see
/// [`base_env`]) so their tickets come back during the run.
async fn storefront(app: &TestApp) -> EventMeta {
    let (status, event) = app
        .create_event_with(json!({"name": "Storefront", "capacity": 100, "max_per_user": 8}))
        .await;
    assert_eq!(status, 201, "{event}");
    let id = event["id"].as_i64().expect("event id");
    let (status, quota) = app
        .admin_post(
            &format!("/events/{id}/quotas"),
            json!({"name": "floor", "capacity": 60}),
        )
        .await;
    assert_eq!(status, 201, "{quota}");
    let mut ticket_types = Vec::new();
    for (name, capacity, quota_id) in [
        ("standing", 40, quota["id"].as_i64()),
        ("seated", 40, quota["id"].as_i64()),
        ("balcony", 50, None),
    ] {
        let (status, kind) = app
            .admin_post(
                &format!("/events/{id}/ticket-types"),
                json!({"name": name, "capacity": capacity, "quota_id": quota_id}),
            )
            .await;
        assert_eq!(status, 201, "{kind}");
        ticket_types.push(kind["id"].as_i64().expect("type id"));
    }
    let mut users = Vec::new();
    for n in 0..30 {
        users.push(app.create_user(&format!("chaos-{id}-{n}")).await);
    }
    EventMeta {
        id,
        capacity: 100,
        ticket_types,
        users,
    }
}

/// `CLIENTS` API clients, each with a webhook endpoint at `receiver`;
/// their API keys. The endpoints are written to the database as the
/// admin route would (that route is not this tool's to test), with a
/// fresh secret the receiver verifies signatures with.
async fn webhook_clients(app: &TestApp, receiver: &Receiver) -> anyhow::Result<Vec<String>> {
    use sea_orm::{ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set};
    use shared::entities::webhook_endpoint;
    let mut keys = Vec::new();
    for n in 1..=CLIENTS {
        let (status, client) = app
            .admin_post("/admin/clients", json!({"name": format!("chaos-shop-{n}")}))
            .await;
        if status != 201 {
            bail!("POST /admin/clients answered {status}: {client}");
        }
        let (Some(id), Some(key)) = (client["id"].as_i64(), client["api_key"].as_str()) else {
            bail!("POST /admin/clients: no id or api_key in {client}");
        };
        let secret = shared::webhook::new_secret();
        let endpoint = webhook_endpoint::ActiveModel {
            id: NotSet,
            client_id: Set(id),
            // The receiver's slot is the client's id: one endpoint each.
            url: Set(receiver.url(id)),
            description: Set(Some("chaos receiver".into())),
            secret: Set(secret.clone()),
            created_at: Set(chrono::Utc::now()),
            disabled_at: Set(None),
        }
        .insert(&app.db)
        .await?;
        receiver.serve(id, endpoint.id, secret);
        keys.push(key.to_owned());
    }
    Ok(keys)
}

/// The environment every process of a scenario's deployment starts with,
/// before the scenario's own (`Scenario::prepare`).
pub(super) fn base_env() -> Env {
    Env::from([
        ("LOCK_LEASE_TTL_SECS", LEASE_TTL_SECS.to_string()),
        ("DECIDE_TIMEOUT_MS", DECIDE_TIMEOUT_MS.to_string()),
        ("DEFAULT_HOLD_SECONDS", "3".to_owned()),
        // Webhook retries within the run's settling time, not hours: the
        // checker waits for every delivery to end.
        ("WEBHOOK_RETRY_BASE_MS", "200".to_owned()),
        ("WEBHOOK_RETRY_MAX_MS", "2000".to_owned()),
        ("WEBHOOK_POLL_MS", "200".to_owned()),
    ])
}

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

pub struct Run {
    pub(super) app: TestApp,
    /// Base URLs of the api replicas.
    pub(super) apis: Vec<String>,
    pub(super) history: Arc<HistoryWriter>,
    pub(super) options: ScenarioOptions,
    pub(super) rng: StdRng,
    /// (pid, log file) of every worker started.
    pub(super) worker_logs: Vec<(u32, PathBuf)>,
    /// The `WORKER_NAME` of every worker started, in the order of
    /// `app.workers`: the member names the partitions are shared among.
    worker_names: Vec<String>,
    pub(super) events: Vec<EventMeta>,
    /// The API keys of the clients the workload acts for.
    keys: Vec<String>,
    /// Where the clients' webhooks go.
    pub(super) receiver: Receiver,
    pub(super) notes: Vec<String>,
    /// What the scenario found wrong, on top of the checker's findings.
    pub(super) violations: Vec<Violation>,
}

impl Run {
    /// Spawns the deployment with `env`, its events, and the history.
    pub(super) async fn start(
        name: &str,
        options: &ScenarioOptions,
        env: Env,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&options.dir)?;
        let mut app = TestApp::spawn_with(Options { workers: 0, env }).await;
        let mut apis = vec![app.base.clone()];
        for n in 1..API_REPLICAS {
            let log = options.dir.join(format!("api-{}.log", n + 1));
            apis.push(app.add_api(Some(&log)).await);
        }
        let mut events = Vec::new();
        for &capacity in CAPACITIES {
            events.push(EventMeta::plain(app.create_event(capacity).await, capacity));
        }
        events.push(storefront(&app).await);
        // Before any worker starts: every reservation of a client is owed
        // its webhooks from its first decision.
        let receiver = Receiver::start(REFUSE_EVERY).await?;
        let keys = webhook_clients(&app, &receiver).await?;
        let history = HistoryWriter::create(
            &options.dir.join("history.jsonl"),
            Meta {
                started_at: chrono::Utc::now(),
                apis: apis.clone(),
                events: events.clone(),
                scenario: Some(name.to_owned()),
            },
        )?;
        let mut run = Self {
            app,
            apis,
            history: Arc::new(history),
            options: options.clone(),
            rng: StdRng::seed_from_u64(options.seed),
            worker_logs: Vec::new(),
            worker_names: Vec::new(),
            events,
            keys,
            receiver,
            notes: Vec::new(),
            violations: Vec::new(),
        };
        for _ in 0..WORKERS {
            run.start_worker();
        }
        Ok(run)
    }

    /// The randomized workload against this deployment.
    pub(super) fn workload(&self) -> workload::Config {
        workload::Config {
            apis: self.apis.clone(),
            events: self.events.clone(),
            clients: self.options.clients,
            max_ops: None,
            seed: self.options.seed,
            request_timeout: Duration::from_secs(30),
            keys: self.keys.clone(),
        }
    }

    pub(super) fn short(&self) -> bool {
        self.options.short
    }

    /// Records a fault from `start_ms` until now in the history.
    pub(super) fn fault(&self, fault: &str, detail: String, start_ms: f64) {
        eprintln!("chaos: fault {fault}: {detail}");
        self.history.write(&Record::Fault(Fault {
            fault: fault.to_owned(),
            detail,
            start_ms,
            end_ms: self.history.now_ms(),
        }));
    }

    pub(super) fn violate(
        &mut self,
        rule: &'static str,
        id: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.violations.push(Violation::new(rule, id, detail));
    }

    /// Starts a worker logging JSON to its own file (lease grants included,
    /// so that a lock holder can be mapped to its pid).
    pub(super) fn start_worker(&mut self) -> (u32, PathBuf) {
        self.start_worker_with(&[])
    }

    /// Like `start_worker`, with more environment on top, e.g. a failpoint
    /// (`("WORKER_CRASH_AT", "after-commit:3")`, see worker/src/failpoint.rs).
    pub(super) fn start_worker_with(&mut self, extra: &[(&'static str, String)]) -> (u32, PathBuf) {
        let name = format!("chaos-worker-{}", self.app.workers.len() + 1);
        self.spawn_worker(name, extra)
    }

    /// Like `start_worker_with`, for a worker that must decide on the
    /// busiest event (the largest): commands are partitioned by event and
    /// a worker decides only its share, so a scenario that needs its
    /// worker to hold a lock must not leave it with a partition no event
    /// maps to. Its name is chosen so that the partition rule, run over
    /// the live workers plus it, gives it the busiest event's partition.
    pub(super) fn start_owner_with(&mut self, extra: &[(&'static str, String)]) -> (u32, PathBuf) {
        let topology = shared::topology::Topology::new(
            &self.app.namespace,
            0,
            testkit::app::COMMAND_PARTITIONS,
        );
        let busiest = self.events.iter().max_by_key(|event| event.capacity);
        let partition = busiest.map(|event| topology.partition_of(event.id));
        let mut members: Vec<String> = (0..self.app.workers.len())
            .filter(|&i| matches!(self.app.workers[i].try_wait(), Ok(None)))
            .map(|i| self.worker_names[i].clone())
            .collect();
        let base = format!("chaos-worker-{}", self.app.workers.len() + 1);
        let name = (0..)
            .map(|attempt| format!("{base}-{attempt}"))
            .find(|name| {
                members.push(name.clone());
                let owns = partition.is_none_or(|partition| {
                    worker::assignment::partitions_of(topology.partitions(), &members, name)
                        .contains(&partition)
                });
                members.pop();
                owns
            })
            .unwrap_or(base);
        self.spawn_worker(name, extra)
    }

    fn spawn_worker(&mut self, name: String, extra: &[(&'static str, String)]) -> (u32, PathBuf) {
        let log = self
            .options
            .dir
            .join(format!("worker-{}.log", self.app.workers.len() + 1));
        let mut env = vec![
            ("LOG_FORMAT", "json".to_owned()),
            (
                "RUST_LOG",
                "warn,worker::lease=info,worker::membership=info,worker::consumer=info".to_owned(),
            ),
            ("WORKER_NAME", name.clone()),
        ];
        env.extend_from_slice(extra);
        let pid = self.app.add_worker_with(&env, Some(&log));
        self.worker_names.push(name);
        self.worker_logs.push((pid, log.clone()));
        (pid, log)
    }

    /// A worker still running (not yet killed), by index, at random.
    pub(super) fn live_worker(&mut self) -> Option<usize> {
        let live: Vec<usize> = (0..self.app.workers.len())
            .filter(|&i| matches!(self.app.workers[i].try_wait(), Ok(None)))
            .collect();
        if live.is_empty() {
            None
        } else {
            Some(live[self.rng.random_range(0..live.len())])
        }
    }

    /// Runs `<service_cmd> <action> <server>`; returns what it printed.
    pub(super) async fn service(&self, action: &str, server: &str) -> anyhow::Result<String> {
        let (program, args) = self
            .options
            .service_cmd
            .split_first()
            .context("no --service-cmd: cannot stop or start servers")?;
        let output = tokio::process::Command::new(program)
            .args(args)
            .args([action, server])
            .output()
            .await
            .with_context(|| format!("run {program}"))?;
        if !output.status.success() {
            bail!(
                "{action} {server} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// An event lock that worker `pid` holds: (event, lease, token).
    pub(super) async fn lock_held_by(
        &self,
        client: &mut etcd_client::Client,
        pid: u32,
    ) -> anyhow::Result<Option<(i64, String, i64)>> {
        let leases = self.worker_leases();
        for event in &self.events {
            if let Some((lease, token)) =
                etcd::lock_holder(client, &self.app.namespace, event.id).await?
                && leases.get(&lease) == Some(&pid)
            {
                return Ok(Some((event.id, lease, token)));
            }
        }
        Ok(None)
    }

    /// Lease (hex) → pid, from the worker logs (each worker's latest lease).
    fn worker_leases(&self) -> HashMap<String, u32> {
        self.worker_logs
            .iter()
            .filter_map(|(pid, log)| Some((WorkerLog::read(log).leases().pop()?, *pid)))
            .collect()
    }

    /// The logs of the workers `pids` (all of them for `None`).
    pub(super) fn logs_of(&self, pids: Option<&[u32]>) -> Vec<WorkerLog> {
        self.worker_logs
            .iter()
            .filter(|(pid, _)| pids.is_none_or(|pids| pids.contains(pid)))
            .map(|(_, log)| WorkerLog::read(log))
            .collect()
    }
}

/// The leases a worker's log names, in the order it took them.
pub(super) fn leases_of(log: &Path) -> Vec<String> {
    WorkerLog::read(log).leases()
}
