//! Fault scenarios. Each spawns its own deployment (testkit: own database,
//! namespace, two api and three worker processes) against the servers in
//! the environment, runs the workload while injecting one kind of fault,
//! heals it, and checks the history against the database.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use lapin::{
    Channel, Connection, ConnectionProperties, options::QueueDeclareOptions, types::FieldTable,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use shared::topology::Topology;
use testkit::{
    app::{Options, TestApp},
    blackhole::Blackhole,
};
use tokio_util::sync::CancellationToken;

use crate::{
    check::{self, Limits, Summary, Violation},
    history::{self, EventMeta, Fault, HistoryWriter, Meta, OpKind, Record},
    workload,
};

mod answers;
mod dependencies;
mod poison;

/// Every scenario, in the order `scripts/chaos` runs them.
pub const ALL: &[&str] = &[
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
];

/// The overload scenario's deployment: one decision per lock and
/// transaction (the slow design), so that 20 times what it sustains is a
/// rate this machine's load generator can really offer; and small bounds on
/// waiting requests and on the queue, so that shedding shows within seconds
/// and the backlog drains within the checker's wait.
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
/// Peak RSS above which a process of the overload scenario counts as
/// unbounded (the throughput issue's budget).
const RSS_BUDGET_MB: f64 = 150.0;

/// Lease TTL of the workers, so that a paused worker loses its locks fast.
const LEASE_TTL_SECS: u64 = 2;
/// The workers' decision deadline: a worker refuses to start with one that
/// is not shorter than its lease (its default, 2 s, is not).
const DECIDE_TIMEOUT_MS: u64 = 1000;
const API_REPLICAS: usize = 2;
const WORKERS: usize = 3;
const CAPACITIES: &[i64] = &[60, 300, 3000];

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

#[derive(Debug, Serialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub short: bool,
    pub seed: u64,
    pub operations: usize,
    pub faults: usize,
    pub violations: usize,
    pub duration_s: f64,
    pub max_latency_ms: f64,
    pub max_latency_during_faults_ms: f64,
    /// Answers during fault windows, by status.
    pub during_faults: std::collections::BTreeMap<u16, usize>,
    pub notes: Vec<String>,
    pub history: PathBuf,
    pub summary: Summary,
}

struct Run<'a> {
    app: TestApp,
    /// Base URLs of the api replicas.
    apis: Vec<String>,
    history: Arc<HistoryWriter>,
    options: &'a ScenarioOptions,
    rng: StdRng,
    /// (pid, log file) of every worker started.
    worker_logs: Vec<(u32, PathBuf)>,
    events: Vec<EventMeta>,
    /// Pids of the workers paused by `stop-worker`.
    stopped: Vec<u32>,
    notes: Vec<String>,
    extra: Vec<Violation>,
    /// What `poison` published.
    poison: poison::Published,
    /// Proxies of `partition-etcd` and `blackhole-mysql`, kept until the run
    /// ends.
    proxies: Vec<Blackhole>,
    /// The proxy every process of `blackhole-redis` reaches Redis through.
    redis_proxy: Option<Blackhole>,
}

pub async fn run(name: &str, options: &ScenarioOptions) -> anyhow::Result<ScenarioResult> {
    if !ALL.contains(&name) {
        bail!("unknown scenario {name}; known: {}", ALL.join(", "));
    }
    let started = Instant::now();
    std::fs::create_dir_all(&options.dir)?;
    let mut env = std::collections::BTreeMap::from([
        ("LOCK_LEASE_TTL_SECS", LEASE_TTL_SECS.to_string()),
        ("DECIDE_TIMEOUT_MS", DECIDE_TIMEOUT_MS.to_string()),
    ]);
    if name == "overload" {
        env.extend(OVERLOAD_ENV.iter().map(|(k, v)| (*k, (*v).to_owned())));
    }
    let redis_proxy = if name == "blackhole-redis" {
        let (proxy, routed) = Blackhole::in_front_of(&testkit::app::env("REDIS_URL")).await?;
        env.insert("REDIS_URL", routed);
        Some(proxy)
    } else {
        None
    };
    let mut app = TestApp::spawn_with(Options { workers: 0, env }).await;
    let mut apis = vec![app.base.clone()];
    for n in 1..API_REPLICAS {
        let log = options.dir.join(format!("api-{}.log", n + 1));
        apis.push(app.add_api(Some(&log)).await);
    }
    let mut worker_logs = Vec::new();
    for _ in 0..WORKERS {
        worker_logs.push(start_worker(&mut app, &options.dir));
    }
    let mut events = Vec::new();
    for &capacity in CAPACITIES {
        events.push(EventMeta {
            id: app.create_event(capacity).await,
            capacity,
        });
    }
    let history = HistoryWriter::create(
        &options.dir.join("history.jsonl"),
        Meta {
            started_at: chrono::Utc::now(),
            apis: apis.clone(),
            events: events.clone(),
            scenario: Some(name.to_owned()),
        },
    )?;
    let mut run = Run {
        app,
        apis: apis.clone(),
        history: Arc::new(history),
        options,
        rng: StdRng::seed_from_u64(options.seed),
        worker_logs,
        events: events.clone(),
        stopped: Vec::new(),
        notes: Vec::new(),
        extra: Vec::new(),
        poison: poison::Published::default(),
        proxies: Vec::new(),
        redis_proxy,
    };

    let stop = CancellationToken::new();
    let load = tokio::spawn(workload::run(
        workload::Config {
            apis,
            events,
            clients: options.clients,
            max_ops: None,
            seed: options.seed,
            request_timeout: Duration::from_secs(30),
        },
        run.history.clone(),
        stop.clone(),
    ));
    let injected = run.inject(name).await;
    stop.cancel();
    let made = load.await??;
    run.history.flush();
    injected?;
    tracing_note(&mut run.notes, format!("{made} requests made"));

    if name == "stop-worker" {
        let (mut stale, mut stale_paused, mut vanished) = (0, 0, 0);
        for (pid, log) in &run.worker_logs {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let refused = log.matches(STALE_REFUSAL).count();
            stale += refused;
            if run.stopped.contains(pid) {
                stale_paused += refused;
                vanished += log.matches("vanished right after it was granted").count();
            }
        }
        run.notes.push(format!(
            "worker logs: {stale} write(s) refused for a stale fencing token \
             ({stale_paused} by the paused workers); {vanished} lock(s) found lost \
             by the paused workers on waking (lease expired before the token was read)"
        ));
    }

    let path = options.dir.join("history.jsonl");
    let records = history::read(&path)?;
    run.check_recovery(&records);
    if name == "poison" {
        run.check_poison(&records).await?;
    }
    if matches!(name, "blackhole-mysql" | "blackhole-redis" | "etcd-rewind") {
        run.notes.extend(answers::notes(&records));
    }
    let mut summary = check::check_database(
        &records,
        &run.app.database_url,
        Duration::from_secs(90),
        options.limits,
    )
    .await?;
    summary.violations.append(&mut run.extra);

    let (_, ops, faults) = check::split(&records);
    let mut during_faults = std::collections::BTreeMap::new();
    for op in &ops {
        if faults
            .iter()
            .any(|f| op.start_ms <= f.end_ms && op.end_ms >= f.start_ms)
        {
            *during_faults.entry(op.status).or_insert(0) += 1;
        }
    }
    Ok(ScenarioResult {
        scenario: name.to_owned(),
        short: options.short,
        seed: options.seed,
        operations: summary.operations,
        faults: summary.faults,
        violations: summary.violations.len(),
        duration_s: started.elapsed().as_secs_f64(),
        max_latency_ms: summary.max_latency_ms,
        max_latency_during_faults_ms: summary.max_latency_during_faults_ms,
        during_faults,
        notes: run.notes,
        history: path,
        summary,
    })
}

fn tracing_note(notes: &mut Vec<String>, note: String) {
    eprintln!("chaos: {note}");
    notes.push(note);
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

impl Run<'_> {
    fn short(&self) -> bool {
        self.options.short
    }

    fn fault(&self, fault: &str, detail: String, start_ms: f64) {
        eprintln!("chaos: fault {fault}: {detail}");
        self.history.write(&Record::Fault(Fault {
            fault: fault.to_owned(),
            detail,
            start_ms,
            end_ms: self.history.now_ms(),
        }));
    }

    async fn inject(&mut self, name: &str) -> anyhow::Result<()> {
        let short = self.short();
        match name {
            "baseline" => tokio::time::sleep(secs(if short { 8.0 } else { 30.0 })).await,
            "kill-worker" => {
                tokio::time::sleep(secs(2.0)).await;
                for _ in 0..(if short { 3 } else { 8 }) {
                    let wait = self.rng.random_range(1.0..4.0);
                    tokio::time::sleep(secs(wait)).await;
                    self.kill_worker()?;
                }
                tokio::time::sleep(secs(3.0)).await;
            }
            "crash-points" => {
                tokio::time::sleep(secs(1.0)).await;
                self.crash_points(secs(if short { 10.0 } else { 30.0 }))
                    .await?;
                tokio::time::sleep(secs(3.0)).await;
            }
            "stop-worker" => {
                tokio::time::sleep(secs(2.0)).await;
                for _ in 0..(if short { 2 } else { 4 }) {
                    self.stop_worker().await?;
                    tokio::time::sleep(secs(2.0)).await;
                }
                tokio::time::sleep(secs(3.0)).await;
            }
            "partition-etcd" => {
                tokio::time::sleep(secs(2.0)).await;
                for _ in 0..(if short { 1 } else { 3 }) {
                    self.partition_etcd(secs((3 * LEASE_TTL_SECS) as f64))
                        .await?;
                    tokio::time::sleep(secs(3.0)).await;
                }
                tokio::time::sleep(secs(3.0)).await;
            }
            "restart-rabbitmq" | "restart-mysql" | "restart-etcd" => {
                let server = name.trim_start_matches("restart-");
                tokio::time::sleep(secs(3.0)).await;
                for _ in 0..(if short { 1 } else { 2 }) {
                    self.restart(server, secs(if short { 3.0 } else { 6.0 }))
                        .await?;
                    tokio::time::sleep(secs(if short { 8.0 } else { 12.0 })).await;
                }
            }
            "poison" => {
                tokio::time::sleep(secs(2.0)).await;
                for _ in 0..(if short { 1 } else { 3 }) {
                    self.poison().await?;
                    tokio::time::sleep(secs(2.0)).await;
                }
                tokio::time::sleep(secs(4.0)).await;
            }
            "overload" => {
                tokio::time::sleep(secs(2.0)).await;
                self.overload(secs(if short { 8.0 } else { 30.0 })).await?;
                tokio::time::sleep(secs(3.0)).await;
            }
            "blackhole-mysql" => self.blackhole_mysql().await?,
            "blackhole-redis" => self.blackhole_redis().await?,
            "etcd-rewind" => self.etcd_rewind().await?,
            other => bail!("unknown scenario {other}"),
        }
        Ok(())
    }

    /// Measures what the deployment sustains (64 sync reserves at a time for
    /// 3 s), then offers 20 times that, open loop, for `duration`; reports
    /// the answers and every process's peak RSS, which must stay within
    /// [`RSS_BUDGET_MB`].
    async fn overload(&mut self, duration: Duration) -> anyhow::Result<()> {
        let config = workload::Config {
            apis: self.apis.clone(),
            events: self.events.clone(),
            clients: self.options.clients,
            max_ops: None,
            seed: self.options.seed,
            request_timeout: Duration::from_secs(30),
        };
        let calibration =
            workload::flood(config.clone(), self.history.clone(), 100_000, secs(3.0), 64).await?;
        let sustainable =
            (calibration.decided() as f64 / calibration.elapsed.as_secs_f64()).max(1.0);
        let rate = (20.0 * sustainable).round() as u64;
        let start_ms = self.history.now_ms();
        let flood = workload::flood(
            config,
            self.history.clone(),
            rate,
            duration,
            FLOOD_IN_FLIGHT,
        )
        .await?;
        let offered = flood.sent as f64 / duration.as_secs_f64();
        self.fault(
            "overload",
            format!(
                "{rate}/s of sync reserves (20 x the {sustainable:.0}/s sustained) for {:.0} s",
                duration.as_secs_f64()
            ),
            start_ms,
        );
        self.notes.push(format!(
            "sustained {sustainable:.0} decisions/s; offered {rate}/s for {:.0} s: {} sent \
             ({offered:.0}/s), {} not sent ({FLOOD_IN_FLIGHT} already in flight); answers {:?}",
            duration.as_secs_f64(),
            flood.sent,
            flood.skipped,
            flood.by_status
        ));
        let mut peaks = Vec::new();
        let apis = self.app.api_pids();
        let (_, workers) = self.app.pids();
        for (kind, pids) in [("api", apis), ("worker", workers)] {
            for pid in pids {
                let Some(mb) = testkit::app::peak_rss_mb(pid) else {
                    continue;
                };
                peaks.push(format!("{kind} {pid} {mb:.0} MB"));
                if mb > RSS_BUDGET_MB {
                    self.extra.push(Violation {
                        rule: "memory",
                        id: format!("{kind} {pid}"),
                        detail: format!("peak RSS {mb:.0} MB > {RSS_BUDGET_MB} MB under overload"),
                    });
                }
            }
        }
        self.notes.push(format!("peak RSS: {}", peaks.join(", ")));

        // The backlog the overload queued is acknowledged work: let the
        // workers finish it, so that what follows shows the system serving
        // at its normal pace again.
        let (topology, connection, channel) = self.broker().await?;
        let drained = Instant::now();
        let deadline = drained + Duration::from_secs(120);
        let mut left = backlog(&channel, &topology).await?;
        while left > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            left = backlog(&channel, &topology).await?;
        }
        connection.close(200, "done".into()).await.ok();
        self.notes.push(format!(
            "backlog drained in {:.1} s ({left} left)",
            drained.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// A worker still running (not yet killed), by index.
    fn live_worker(&mut self) -> Option<usize> {
        let live: Vec<usize> = (0..self.app.workers.len())
            .filter(|&i| matches!(self.app.workers[i].try_wait(), Ok(None)))
            .collect();
        if live.is_empty() {
            None
        } else {
            Some(live[self.rng.random_range(0..live.len())])
        }
    }

    fn kill_worker(&mut self) -> anyhow::Result<()> {
        let index = self.live_worker().context("no live worker")?;
        let start = self.history.now_ms();
        let worker = &mut self.app.workers[index];
        let pid = worker.id();
        worker.kill().context("SIGKILL")?;
        worker.wait().ok();
        let (replacement, log) = start_worker(&mut self.app, &self.options.dir);
        self.worker_logs.push((replacement, log));
        self.fault(
            "sigkill-worker",
            format!("SIGKILL worker pid {pid}; replacement pid {replacement}"),
            start,
        );
        Ok(())
    }

    /// Replaces the workers by workers armed with a crash point
    /// (`WORKER_CRASH_AT=<point>:<n>`: abort the n-th time the point is
    /// reached; needs the failpoint of RELIABILITY.md in the worker) and
    /// replaces each one that crashes, for `duration`. A worker build
    /// without the failpoint ignores the variable: then nothing crashes and
    /// the scenario says so.
    async fn crash_points(&mut self, duration: Duration) -> anyhow::Result<()> {
        const POINTS: &[&str] = &["after-commit", "after-publish"];
        let armed = |rng: &mut StdRng| {
            let point = POINTS[rng.random_range(0..POINTS.len())];
            format!("{point}:{}", rng.random_range(2..8))
        };
        let mut armed_pids: HashMap<u32, String> = HashMap::new();
        // Arm new workers first, then stop the unarmed ones (SIGTERM).
        let unarmed: Vec<u32> = self.app.workers.iter().map(|w| w.id()).collect();
        for _ in 0..WORKERS {
            let spec = armed(&mut self.rng);
            let (pid, log) = start_worker_with(
                &mut self.app,
                &self.options.dir,
                &[("WORKER_CRASH_AT", spec.clone())],
            );
            self.worker_logs.push((pid, log));
            armed_pids.insert(pid, spec);
        }
        for pid in unarmed {
            signal(pid, "TERM").await?;
        }
        let deadline = Instant::now() + duration;
        let mut crashes = 0;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            for index in 0..self.app.workers.len() {
                let pid = self.app.workers[index].id();
                let Some(spec) = armed_pids.get(&pid).cloned() else {
                    continue;
                };
                let Ok(Some(status)) = self.app.workers[index].try_wait() else {
                    continue;
                };
                armed_pids.remove(&pid);
                crashes += 1;
                let start = self.history.now_ms();
                let next = armed(&mut self.rng);
                let (replacement, log) = start_worker_with(
                    &mut self.app,
                    &self.options.dir,
                    &[("WORKER_CRASH_AT", next.clone())],
                );
                self.worker_logs.push((replacement, log));
                armed_pids.insert(replacement, next.clone());
                self.fault(
                    "crash-point",
                    format!(
                        "worker pid {pid} armed with {spec} exited ({status}); replacement pid {replacement} armed with {next}"
                    ),
                    start,
                );
            }
        }
        // Disarm: unarmed workers take over, the armed ones stop.
        for _ in 0..WORKERS {
            let (pid, log) = start_worker(&mut self.app, &self.options.dir);
            self.worker_logs.push((pid, log));
        }
        for pid in armed_pids.keys() {
            signal(*pid, "TERM").await.ok();
        }
        if crashes == 0 {
            self.notes.push(
                "no worker crashed: this worker build has no WORKER_CRASH_AT failpoint \
                 (see the proposed diff in RELIABILITY.md); the scenario ran without faults"
                    .into(),
            );
        }
        Ok(())
    }

    /// Starts a worker armed with `WORKER_PAUSE_AT=after-token:<n>`: it
    /// stops itself holding an event's lock, its fencing token read and its
    /// transaction not started. Once its lease has expired, another worker
    /// holds the lock with a newer token and has committed on the event, the
    /// paused worker gets SIGCONT: its write must be refused by the token.
    async fn stop_worker(&mut self) -> anyhow::Result<()> {
        let nth = self.rng.random_range(3..10);
        // One command per batch, so one event per batch: a worker deciding
        // several events at once would stop with another event's
        // transaction open, and that row lock (not the etcd lock) would stall
        // every worker that wants the event until SIGCONT.
        let (pid, log) = start_worker_with(
            &mut self.app,
            &self.options.dir,
            &[
                ("WORKER_PAUSE_AT", format!("after-token:{nth}")),
                ("BATCH_SIZE", "1".to_owned()),
            ],
        );
        self.worker_logs.push((pid, log.clone()));
        self.stopped.push(pid);
        let paused = wait_for(Duration::from_secs(30), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let line = text
                .lines()
                .find(|l| l.contains("pausing at after-token"))?;
            is_stopped(pid).then(|| parse_pause(line))?
        })
        .await
        .context("the armed worker never paused at after-token")?;
        let (event, token) = paused;
        let start = self.history.now_ms();
        let paused_lease = leases_granted(&log)
            .pop()
            .context("the paused worker logged no lease")?;
        let mut etcd = self.app.etcd().await;
        let mut takeover = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        // SIGCONT only once the paused lease is gone, another worker holds
        // the lock with a newer token and has committed with it.
        while takeover.is_none() && Instant::now() < deadline {
            let holder = lock_holder(&mut etcd, &self.app.namespace, event).await?;
            let stored = fence_token(&self.app.db, event).await?;
            if let Some((lease, newer)) = holder
                && newer > token
                && stored > token
                && lease_expired(&mut etcd, &paused_lease).await?
            {
                takeover = Some(format!(
                    "its lease {paused_lease} expired, lease {lease} took the lock with token \
                     {newer}, the event's stored token is {stored}"
                ));
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        signal(pid, "CONT").await?;
        let Some(takeover) = takeover else {
            // Resumed anyway (never leave it stopped); the fencing check
            // needs a newer token, so there is nothing to refuse.
            self.fault(
                "sigstop-worker",
                format!(
                    "worker pid {pid} stopped itself at after-token (hit {nth}) holding event \
                     {event}'s lock with token {token}; no takeover within 30 s; then SIGCONT"
                ),
                start,
            );
            self.extra.push(Violation {
                rule: "no-recovery",
                id: format!("worker {pid}"),
                detail: format!(
                    "while it was stopped holding event {event}'s lock (token {token}), no other \
                     worker took the lock and committed on the event within 30 s"
                ),
            });
            return Ok(());
        };
        let refused = wait_for(Duration::from_secs(20), || {
            refused_after_pause(&std::fs::read_to_string(&log).unwrap_or_default(), event)
        })
        .await;
        let seen = refused.map_or(String::new(), |stored| {
            format!("; its log: write on event {event} refused, the event's token being {stored}")
        });
        self.fault(
            "sigstop-worker",
            format!(
                "worker pid {pid} stopped itself at after-token (hit {nth}) holding event \
                 {event}'s lock with token {token}; {takeover}; then SIGCONT{seen}"
            ),
            start,
        );
        if refused.is_none() {
            self.extra.push(Violation {
                rule: "fencing",
                id: format!("worker {pid}"),
                detail: format!(
                    "after SIGCONT, its write with token {token} on event {event} was not refused"
                ),
            });
        }
        Ok(())
    }

    /// Starts a worker whose only way to etcd is a [`Blackhole`] proxy,
    /// waits until it holds an event's lock, then cuts it off from etcd for
    /// `cut_for` (longer than its lease): the others must take the lock over,
    /// any late write of the cut-off worker must be refused by the token, and
    /// after the heal it must take a new lease and work again.
    async fn partition_etcd(&mut self, cut_for: Duration) -> anyhow::Result<()> {
        let members: Vec<String> = testkit::app::env("ETCD_ENDPOINTS")
            .split(',')
            .map(|url| url.trim().trim_start_matches("http://").to_owned())
            .collect();
        let proxy = Blackhole::start(members).await?;
        let (pid, log) = start_worker_with(
            &mut self.app,
            &self.options.dir,
            &[("ETCD_ENDPOINTS", format!("http://{}", proxy.addr()))],
        );
        self.worker_logs.push((pid, log.clone()));
        let mut etcd = self.app.etcd().await;
        // Cut while it holds a lock, and make sure it still held it once
        // cut: a lock handed back just before the cut would test nothing.
        // Its key can only go away by expiry now, which takes longer than
        // the 200 ms looked at (the lease was renewed within a third of its
        // TTL); otherwise heal at once and try again.
        let start = self.history.now_ms();
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut held, mut missed, mut cut) = (None, 0, Instant::now());
        while held.is_none() && Instant::now() < deadline {
            let Some((event, lease, token)) = self.lock_held_by(&mut etcd, pid).await? else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            proxy.cut();
            cut = Instant::now();
            tokio::time::sleep(Duration::from_millis(200)).await;
            if lock_holder(&mut etcd, &self.app.namespace, event)
                .await?
                .is_some_and(|(holder, _)| holder == lease)
            {
                held = Some((event, lease, token));
            } else {
                proxy.heal();
                missed += 1;
            }
        }
        let grants = leases_granted(&log).len();
        let what = match held {
            Some((event, lease, token)) => {
                let mut takeover = "nobody took its lock over while it was cut off".to_owned();
                while cut.elapsed() < cut_for {
                    if let Some((other, newer)) =
                        lock_holder(&mut etcd, &self.app.namespace, event).await?
                        && other != lease
                    {
                        takeover = format!(
                            "lease {other} took the lock with token {newer} after {:.1} s",
                            cut.elapsed().as_secs_f64()
                        );
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                format!(
                    "holder of event {event}'s lock (lease {lease}, token {token}) at the cut \
                     ({missed} earlier cut(s) healed at once: the lock changed hands within \
                     200 ms); {takeover}"
                )
            }
            None => {
                self.extra.push(Violation {
                    rule: "partition-etcd",
                    id: format!("worker {pid}"),
                    detail: "the worker to cut off was never seen holding a lock once cut \
                             (30 s): nothing tested"
                        .into(),
                });
                "holding no lock once cut (30 s of tries)".to_owned()
            }
        };
        tokio::time::sleep(cut_for.saturating_sub(cut.elapsed())).await;
        proxy.heal();
        let healed = Instant::now();
        self.proxies.push(proxy);
        self.fault(
            "partition-etcd",
            format!(
                "cut worker pid {pid} off from etcd for {:.1} s (lease TTL {LEASE_TTL_SECS} s), \
                 {what}; then healed",
                cut_for.as_secs_f64()
            ),
            start,
        );
        // Recovery: a new lease (the old one expired during the cut), then
        // a lock again.
        let new_lease = wait_for(Duration::from_secs(20), || {
            (leases_granted(&log).len() > grants).then_some(())
        })
        .await;
        let mut relocked = None;
        while new_lease.is_some() && relocked.is_none() && healed.elapsed() < secs(20.0) {
            relocked = self.lock_held_by(&mut etcd, pid).await?;
            if relocked.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let recovery = match (&new_lease, relocked) {
            (None, _) => {
                self.extra.push(Violation {
                    rule: "no-recovery",
                    id: format!("worker {pid}"),
                    detail: "no new etcd lease within 20 s of the heal".into(),
                });
                "no new lease within 20 s of the heal".to_owned()
            }
            (Some(()), None) => "a new lease after the heal, no lock within 20 s".to_owned(),
            (Some(()), Some((event, _, token))) => format!(
                "a new lease, then event {event}'s lock with token {token} {:.1} s after the heal",
                healed.elapsed().as_secs_f64()
            ),
        };
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        self.notes.push(format!(
            "partition-etcd: worker {pid} {what}; recovery: {recovery}; its log: {} write(s) \
             refused by the fencing token, {} lease(s) given up, {} failed unlock(s)",
            text.matches(STALE_REFUSAL).count(),
            text.matches("giving up the etcd lease").count(),
            text.matches("unlock failed").count() + text.matches("unlock timed out").count(),
        ));
        Ok(())
    }

    /// An event lock that worker `pid` holds: (event, lease, token).
    async fn lock_held_by(
        &self,
        etcd: &mut etcd_client::Client,
        pid: u32,
    ) -> anyhow::Result<Option<(i64, String, i64)>> {
        let leases = self.worker_leases();
        for event in &self.events {
            if let Some((lease, token)) = lock_holder(etcd, &self.app.namespace, event.id).await?
                && leases.get(&lease) == Some(&pid)
            {
                return Ok(Some((event.id, lease, token)));
            }
        }
        Ok(None)
    }

    /// Lease (hex) → pid, from the worker logs (each worker's latest grant).
    fn worker_leases(&self) -> HashMap<String, u32> {
        self.worker_logs
            .iter()
            .filter_map(|(pid, log)| Some((leases_granted(log).pop()?, *pid)))
            .collect()
    }

    /// Runs `<service_cmd> <action> <server>`; returns what it printed.
    async fn service(&self, action: &str, server: &str) -> anyhow::Result<String> {
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

    async fn restart(&mut self, server: &str, outage: Duration) -> anyhow::Result<()> {
        let start = self.history.now_ms();
        let t = Instant::now();
        // For etcd, the member leading at that moment (the stack is a
        // three-member cluster).
        let stopped = match self.service("stop", server).await? {
            member if !member.is_empty() => member,
            _ => server.to_owned(),
        };
        let stopped_in = t.elapsed();
        let mut detail = String::new();
        if server == "etcd" {
            let elected = self.new_etcd_leader(&stopped, outage).await;
            detail = format!(", leader {stopped} stopped, {elected}");
            self.notes
                .push(format!("restart-etcd: {}", detail.trim_start_matches(", ")));
        }
        tokio::time::sleep(outage.saturating_sub(t.elapsed())).await;
        let t = Instant::now();
        self.service("start", server).await?;
        let started_in = t.elapsed();
        self.fault(
            &format!("restart-{server}"),
            format!(
                "stopped {stopped} (took {:.1} s), down {:.1} s, started it again (took {:.1} s){detail}",
                stopped_in.as_secs_f64(),
                outage.as_secs_f64(),
                started_in.as_secs_f64()
            ),
            start,
        );
        Ok(())
    }

    /// Which member the two left elected in place of `stopped`, and how fast.
    async fn new_etcd_leader(&self, stopped: &str, within: Duration) -> String {
        let t = Instant::now();
        while t.elapsed() < within {
            if let Ok(leader) = self.service("leader", "etcd").await
                && !leader.is_empty()
                && leader != stopped
            {
                return format!("{leader} elected within {:.1} s", t.elapsed().as_secs_f64());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        format!("no new leader within {:.1} s", within.as_secs_f64())
    }

    /// This deployment's queue names, and a broker connection with one
    /// channel (close the connection when done).
    async fn broker(&self) -> anyhow::Result<(Topology, Connection, Channel)> {
        // The length bound only matters when declaring; only names are used.
        let topology = Topology::new(
            &self.app.namespace,
            100_000,
            testkit::app::COMMAND_PARTITIONS,
        );
        let connection = Connection::connect(
            &testkit::app::env("AMQP_URL"),
            ConnectionProperties::default(),
        )
        .await?;
        let channel = connection.create_channel().await?;
        Ok((topology, connection, channel))
    }

    /// After the last fault, reservations must be decided again (the
    /// system resumed by itself).
    fn check_recovery(&mut self, records: &[Record]) {
        let (_, ops, faults) = check::split(records);
        let Some(healed) = faults.iter().map(|f| f.end_ms).reduce(f64::max) else {
            return;
        };
        let after = ops
            .iter()
            .filter(|op| {
                op.op == OpKind::Reserve && op.start_ms > healed && matches!(op.status, 200 | 409)
            })
            .count();
        let confirmed_after = ops
            .iter()
            .filter(|op| op.op == OpKind::Reserve && op.start_ms > healed && op.status == 200)
            .count();
        self.notes.push(format!(
            "after the last fault healed: {after} reserve(s) decided synchronously, {confirmed_after} confirmed"
        ));
        if after == 0 {
            self.extra.push(Violation {
                rule: "no-recovery",
                id: "-".into(),
                detail: format!(
                    "no reservation was decided after the last fault healed at {healed:.0} ms"
                ),
            });
        }
    }
}

/// Messages ready in `queue` (not counting those delivered and unacked).
/// Commands waiting in every partition of the command queue.
async fn backlog(channel: &Channel, topology: &Topology) -> anyhow::Result<u32> {
    let mut total = 0;
    for queue in topology.command_queues() {
        total += queue_length(channel, &queue).await?;
    }
    Ok(total)
}

async fn queue_length(channel: &Channel, queue: &str) -> anyhow::Result<u32> {
    Ok(channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?
        .message_count())
}

/// Starts a worker logging JSON to its own file (lease grants included, so
/// that a lock holder can be mapped to its pid).
fn start_worker(app: &mut TestApp, dir: &std::path::Path) -> (u32, PathBuf) {
    start_worker_with(app, dir, &[])
}

/// Like `start_worker`, with more environment on top, e.g. a failpoint
/// (`("WORKER_CRASH_AT", "after-commit:3")`, see worker/src/failpoint.rs).
fn start_worker_with(
    app: &mut TestApp,
    dir: &std::path::Path,
    extra: &[(&'static str, String)],
) -> (u32, PathBuf) {
    let log = dir.join(format!("worker-{}.log", app.workers.len() + 1));
    let mut env = vec![
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "warn,worker::lease=info".to_owned()),
    ];
    env.extend_from_slice(extra);
    let pid = app.add_worker_with(&env, Some(&log));
    (pid, log)
}

/// The leases (hex) a worker logged as granted ("etcd lease granted"), in
/// order.
fn leases_granted(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("etcd lease granted"))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["fields"]["lease"].as_str().map(str::to_owned))
        .collect()
}

/// Whether etcd has let lease `hex` expire (or never knew it).
async fn lease_expired(etcd: &mut etcd_client::Client, hex: &str) -> anyhow::Result<bool> {
    let id = i64::from_str_radix(hex, 16).with_context(|| format!("lease id {hex}"))?;
    Ok(etcd.lease_time_to_live(id, None).await?.ttl() <= 0)
}

/// Polls `probe` every 50 ms until it yields or `within` passes.
async fn wait_for<T>(within: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether process `pid` is stopped (state `T` in /proc).
fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| rest.starts_with('T'))
        })
        .unwrap_or(false)
}

/// What a worker logs when an event row refused its write for a stale
/// fencing token (worker/src/consumer.rs), with fields `event_id` and
/// `stored` but not the token it presented.
const STALE_REFUSAL: &str = "write refused by a newer fencing token";

/// The token stored on `event` when a paused worker's write on it was
/// refused. The worker decides one command per batch and was stopped
/// holding `event`'s lock, so the first refusal on `event` after its pause
/// line is the write with the token it held.
fn refused_after_pause(log: &str, event: i64) -> Option<i64> {
    log.lines()
        .skip_while(|line| !line.contains("pausing at after-token"))
        .filter(|line| line.contains(STALE_REFUSAL))
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["fields"]["event_id"].as_i64() == Some(event))
        .map(|line| line["fields"]["stored"].as_i64().unwrap_or_default())
}

/// `(event, token)` from the failpoint's "pausing at after-token (event E,
/// token T)" line.
fn parse_pause(line: &str) -> Option<(i64, i64)> {
    let (_, held) = line.split_once("(event ")?;
    let (event, rest) = held.split_once(", token ")?;
    let token = rest.trim_end().trim_end_matches(')');
    Some((event.parse().ok()?, token.parse().ok()?))
}

/// The fencing token stored on the event row.
async fn fence_token(db: &sea_orm::DatabaseConnection, event: i64) -> anyhow::Result<i64> {
    use sea_orm::EntityTrait;
    Ok(shared::entities::event::Entity::find_by_id(event)
        .one(db)
        .await?
        .map(|row| row.fence_token)
        .unwrap_or_default())
}

/// The lease (hex) and fencing token (create revision) of the holder of an
/// event's lock: the waiter with the lowest create revision.
async fn lock_holder(
    etcd: &mut etcd_client::Client,
    namespace: &str,
    event: i64,
) -> anyhow::Result<Option<(String, i64)>> {
    let prefix = format!("{}/", shared::etcd::event_lock_name(namespace, event));
    let response = etcd
        .get(
            prefix.as_str(),
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await?;
    Ok(response
        .kvs()
        .iter()
        .min_by_key(|kv| kv.create_revision())
        .and_then(|kv| {
            let key = kv.key_str().ok()?;
            Some((key.rsplit('/').next()?.to_owned(), kv.create_revision()))
        }))
}

async fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .await?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed");
    }
    Ok(())
}
