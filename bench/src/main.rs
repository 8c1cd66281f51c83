//! `bench`: drives the whole pipeline (HTTP → RabbitMQ → worker → etcd lock
//! → MySQL → outcome → HTTP) and compares it, in the same run, with the
//! same pipeline deciding one reservation per lock and transaction, and with
//! the database's own one-transaction-per-reservation ceiling. Every
//! pipeline run ends with an invariant check of the database; a fast run
//! that oversold is a failed run.
//!
//! Needs the servers' URLs in the environment (`scripts/bench` starts a
//! private stack and sets them) and the release `api`/`worker` binaries
//! beside this one.

mod ceiling;
mod counters;
mod load;
mod profile;
mod reference;
mod report;
mod servers;
mod stats;

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::Parser;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use shared::{entities::reservation, messages::ReservationStatus};
use testkit::{
    app::{Options, TestApp, peak_rss_mb},
    invariants,
};

use crate::{
    load::{Load, Op},
    report::Report,
    stats::Row,
};

#[derive(Parser, Debug)]
#[command(about = "Benchmark the reservation pipeline against the database ceiling")]
struct Args {
    /// Seconds each scenario runs.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Concurrent HTTP clients (closed loop) or the in-flight bound (open loop).
    #[arg(long, default_value_t = 256)]
    clients: usize,
    /// Fixed request rate per second (open loop) instead of closed loop.
    #[arg(long)]
    rate: Option<u64>,
    /// Batch size of the "batched" scenarios (the tuned default).
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Only run scenarios whose name contains one of these words.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where report.json and report.md go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Markdown file whose `<!-- bench:begin/end -->` section is replaced.
    #[arg(long)]
    update: Option<PathBuf>,
    /// Short run for CI: 2 s per scenario, 16 clients.
    #[arg(long)]
    smoke: bool,
    /// Profile every CPU with `perf` for this many seconds of each
    /// scenario's load (at most its duration); results go to `--out`.
    #[arg(long)]
    perf_secs: Option<u64>,
}

struct Scenario {
    name: String,
    kind: Kind,
    workers: usize,
    events: usize,
    batch_size: Option<usize>,
    /// A comparison's second run, left out of `--smoke`.
    repeat: bool,
}

enum Kind {
    Pipeline,
    /// The pipeline under [`Op::Checkout`].
    Checkout,
    Ceiling,
    ReadTickets,
    /// [`reference`]: no api or worker, the bench's own bare server.
    Reference,
}

impl Kind {
    /// The HTTP request the load repeats; `None` when there is no HTTP load.
    fn op(&self) -> Option<Op> {
        match self {
            Self::Pipeline => Some(Op::Reserve),
            Self::Checkout => Some(Op::Checkout),
            Self::ReadTickets | Self::Reference => Some(Op::ReadTickets),
            Self::Ceiling => None,
        }
    }
}

const HOT: &str = "pipeline, batched, 1 hot event, 1 worker";
const HOT_3: &str = "pipeline, batched, 1 hot event, 3 workers";
const SPREAD: &str = "pipeline, batched, 16 events, 1 worker";
const SPREAD_3: &str = "pipeline, batched, 16 events, 3 workers";
const CHECKOUT: &str = "checkout: hold, confirm 80% / expire 20%, 1 hot event, 1 worker";
const SINGLE: &str = "pipeline, batch size 1, 1 hot event, 1 worker";
const CEILING: &str = "database ceiling, 1 transaction per reservation";
const READ: &str = "GET /events/{id}/tickets";
const REFERENCE: &str = "GET bare axum + one Redis GET (reference)";
/// Suffix of a comparison's second run.
const AGAIN: &str = " (again)";

/// The scenarios in the order they run. The worker-count comparisons run
/// in A B B A order (1 worker, 3, 3 again, 1 again) and are compared on
/// their means, so that a machine that speeds up or slows down during the
/// run does not favour one side: the difference measured is a few percent.
fn scenarios(batch_size: usize) -> Vec<Scenario> {
    let pipeline = |name: &str, workers, events, batch| Scenario {
        name: name.to_owned(),
        kind: Kind::Pipeline,
        workers,
        events,
        batch_size: Some(batch),
        repeat: name.ends_with(AGAIN),
    };
    let other = |name: &str, kind| Scenario {
        name: name.to_owned(),
        kind,
        workers: 0,
        events: 1,
        batch_size: None,
        repeat: false,
    };
    vec![
        pipeline(HOT, 1, 1, batch_size),
        pipeline(HOT_3, 3, 1, batch_size),
        pipeline(&format!("{HOT_3}{AGAIN}"), 3, 1, batch_size),
        pipeline(&format!("{HOT}{AGAIN}"), 1, 1, batch_size),
        Scenario {
            kind: Kind::Checkout,
            ..pipeline(CHECKOUT, 1, 1, batch_size)
        },
        pipeline(SINGLE, 1, 1, 1),
        other(CEILING, Kind::Ceiling),
        pipeline(SPREAD, 1, 16, batch_size),
        pipeline(SPREAD_3, 3, 16, batch_size),
        pipeline(&format!("{SPREAD_3}{AGAIN}"), 3, 16, batch_size),
        pipeline(&format!("{SPREAD}{AGAIN}"), 1, 16, batch_size),
        other(READ, Kind::ReadTickets),
        other(REFERENCE, Kind::Reference),
    ]
}

/// Large enough that no scenario sells out.
const CAPACITY: i64 = 10_000_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.duration_secs = 2;
        args.clients = 16;
    }
    let duration = Duration::from_secs(args.duration_secs);
    let mut rows = Vec::new();
    for scenario in scenarios(args.batch_size) {
        let wanted = args.only.is_empty() || args.only.iter().any(|w| scenario.name.contains(w));
        if !wanted || (args.smoke && scenario.repeat) {
            continue;
        }
        let row = run(&scenario, &args, duration).await?;
        println!(
            "{:<52} {:>9.0} ok/s  p50 {:>7.1} ms  p99 {:>7.1} ms  errors {}  violations {}",
            row.scenario, row.ops_per_sec, row.p50_ms, row.p99_ms, row.errors, row.violations
        );
        rows.push(row);
    }
    let rate = |name: &str| {
        rows.iter()
            .find(|r| r.scenario == name)
            .map(|r| r.ops_per_sec)
    };
    let mut ratios = Vec::new();
    if let (Some(hot), Some(ceiling)) = (rate(HOT), rate(CEILING)) {
        ratios.push((
            "batched pipeline / database ceiling".to_owned(),
            hot / ceiling,
        ));
    }
    if let (Some(hot), Some(single)) = (rate(HOT), rate(SINGLE)) {
        ratios.push((
            "batched pipeline / batch-size-1 pipeline".to_owned(),
            hot / single,
        ));
    }
    // Mean of a comparison's runs (the second one when it ran).
    let mean = |name: &str| {
        let runs: Vec<f64> = [rate(name), rate(&format!("{name}{AGAIN}"))]
            .into_iter()
            .flatten()
            .collect();
        (!runs.is_empty()).then(|| runs.iter().sum::<f64>() / runs.len() as f64)
    };
    for (what, one, three) in [("1 hot event", HOT, HOT_3), ("16 events", SPREAD, SPREAD_3)] {
        if let (Some(one), Some(three)) = (mean(one), mean(three)) {
            ratios.push((
                format!("3 workers / 1 worker, {what} (mean of the A B B A runs)"),
                three / one,
            ));
        }
    }
    if let (Some(hot), Some(checkout)) = (mean(HOT), rate(CHECKOUT)) {
        ratios.push((
            "checkout (hold + confirm) / plain reserve, 1 hot event".to_owned(),
            checkout / hot,
        ));
    }
    if let (Some(read), Some(reference)) = (rate(READ), rate(REFERENCE)) {
        ratios.push((
            "GET tickets / bare axum + Redis".to_owned(),
            read / reference,
        ));
    }
    let report = Report {
        generated_at: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        command: std::env::var("BENCH_COMMAND")
            .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" ")),
        machine: machine(),
        clients: args.clients,
        duration_secs: args.duration_secs,
        rows,
        ratios,
    };
    println!("\n{}", report.markdown());
    report.write(&args.out).context("writing the report")?;
    if let Some(path) = &args.update {
        report
            .splice_into(path)
            .context("updating the benchmark page")?;
    }
    let violations: u64 = report.rows.iter().map(|r| r.violations).sum();
    if violations > 0 {
        bail!("{violations} invariant violation(s): the run failed");
    }
    Ok(())
}

async fn run(scenario: &Scenario, args: &Args, duration: Duration) -> anyhow::Result<Row> {
    if matches!(scenario.kind, Kind::Reference) {
        return run_reference(scenario, args, duration).await;
    }
    let mut env = std::collections::BTreeMap::from([
        ("RESERVE_WAIT_TIMEOUT_MS", "30000".to_owned()),
        ("DATABASE_MAX_CONNECTIONS", "32".to_owned()),
        // The production default, not the test suite's smaller number.
        (
            "COMMAND_PARTITIONS",
            shared::config::DEFAULT_COMMAND_PARTITIONS.to_string(),
        ),
    ]);
    if let Some(batch) = scenario.batch_size {
        env.insert("BATCH_SIZE", batch.to_string());
        env.insert("WORKER_PREFETCH", (batch * 2).clamp(8, 1024).to_string());
        if batch == 1 {
            // The lock-per-reservation design: no lock kept across batches.
            env.insert("LOCK_MAX_HOLD_MS", "0".to_owned());
        }
    }
    let app = TestApp::spawn_with(Options {
        workers: scenario.workers,
        env,
    })
    .await;
    let mut events = Vec::new();
    for _ in 0..scenario.events {
        events.push(app.create_event(CAPACITY).await);
    }
    let before = counters::Counters::read(&app).await?;
    let recording = args
        .perf_secs
        .map(|secs| profile::start(&args.out, &scenario.name, secs.min(args.duration_secs)))
        .transpose()?;
    let mut row = match scenario.kind.op() {
        None => {
            // The workers' own sessions.
            let db = shared::db::connect_read_committed_url(
                &app.database_url,
                args.clients.min(64) as u32,
                Duration::from_secs(10),
            )
            .await?;
            ceiling::run(
                &db,
                events[0],
                args.clients.min(64),
                duration,
                &scenario.name,
            )
            .await
        }
        Some(op) => {
            Load {
                base: app.base.clone(),
                events: events.clone(),
                op,
                clients: args.clients,
                duration,
                rate: args.rate,
            }
            .run(&scenario.name)
            .await
        }
    };
    if let Some(recording) = recording {
        let shares = recording.finish()?;
        let top: Vec<String> = shares
            .iter()
            .take(8)
            .map(|(process, percent)| format!("{process} {percent:.1}%"))
            .collect();
        println!("  CPU by process: {}", top.join(", "));
    }
    let (api, workers) = app.pids();
    if !matches!(scenario.kind, Kind::Ceiling) {
        row.api_peak_rss_mb = peak_rss_mb(api);
    }
    row.worker_peak_rss_mb = workers
        .iter()
        .filter_map(|&pid| peak_rss_mb(pid))
        .reduce(f64::max);
    if matches!(scenario.kind, Kind::Pipeline | Kind::Checkout) {
        let checkout = matches!(scenario.kind, Kind::Checkout);
        row.violations = verify(&app, &events, row.operations, checkout).await;
        let after = counters::Counters::read(&app).await?;
        row.cost = Some(after.cost_since(&before, row.operations));
    }
    Ok(row)
}

/// The bare server of [`reference`], loaded like the tickets read: same
/// generator, clients and duration.
async fn run_reference(
    scenario: &Scenario,
    args: &Args,
    duration: Duration,
) -> anyhow::Result<Row> {
    let server = reference::Reference::start(&testkit::app::env("REDIS_URL")).await?;
    let row = Load {
        base: server.base.clone(),
        events: vec![reference::EVENT],
        op: Op::ReadTickets,
        clients: args.clients,
        duration,
        rate: args.rate,
    }
    .run(&scenario.name)
    .await;
    server.stop();
    Ok(row)
}

/// Invariants of every event, and the database agreeing with the answers:
/// as many confirmed one-ticket reservations as 200s, none left pending.
/// Invariants 1 and 2 on every event, every command decided, and as many
/// tickets taken as 200s answered; for a checkout run, every hold ended
/// (confirmed or expired) instead, since a fifth are left to expire.
async fn verify(app: &TestApp, events: &[i64], answered_ok: u64, checkout: bool) -> u64 {
    let mut violations = 0;
    let mut confirmed = 0;
    for &event in events {
        let snapshot = invariants::snapshot(&app.db, event).await;
        for violation in snapshot.violations() {
            eprintln!("event {event}: {violation}");
            violations += 1;
        }
        confirmed += snapshot.taken_quantity() as u64;
    }
    // Requests that timed out (202) are still decided: give them a bound.
    let pending = count_within(app, ReservationStatus::Pending, Duration::from_secs(60)).await;
    if checkout {
        let bound = Duration::from_secs(load::CHECKOUT_HOLD_SECONDS + 15);
        let held = count_within(app, ReservationStatus::Held, bound).await;
        if held != 0 || pending != 0 {
            eprintln!("{held} holds still held {bound:?} after the run, {pending} pending");
            violations += 1;
        }
        return violations;
    }
    // Requests that erred (e.g. timed out) may still have been decided,
    // so the database may hold more confirmations than 200s, never fewer.
    if confirmed < answered_ok || pending != 0 {
        eprintln!("{answered_ok} answered 200 but {confirmed} confirmed, {pending} pending");
        violations += 1;
    }
    violations
}

/// How many reservations are in `status` once none is, or `within` has
/// passed.
async fn count_within(app: &TestApp, status: ReservationStatus, within: Duration) -> u64 {
    let deadline = std::time::Instant::now() + within;
    loop {
        let count = reservation::Entity::find()
            .filter(reservation::Column::Status.eq(status))
            .count(&app.db)
            .await
            .unwrap_or(u64::MAX);
        if count == 0 || std::time::Instant::now() > deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cpus} × {model}, {memory_gib:.0} GiB RAM, all services on the same machine")
}
