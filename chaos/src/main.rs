//! `chaos`: workload, checker and fault scenarios (see RELIABILITY.md).
//!
//! ```text
//! chaos workload --api http://127.0.0.1:8000 --event 1 --duration-secs 20 --out history.jsonl
//! chaos check --history history.jsonl --database-url mysql://…/tickets
//! chaos scenario kill-worker --short --dir .chaos/runs/kill-worker --service-cmd "scripts/chaos service"
//! chaos report .chaos/runs/*/result.json
//! ```

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use chaos::{
    check::{self, Limits},
    history::{self, EventMeta, HistoryWriter, Meta},
    report, scenario, workload,
};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(about = "History checker and fault-injection scenarios for the ticket system")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the randomized workload against running api replicas and record
    /// the history.
    Workload {
        /// Base URL of an api replica (repeat for several).
        #[arg(long = "api", required = true)]
        apis: Vec<String>,
        /// Event id to reserve on (repeat for several).
        #[arg(long = "event", required = true)]
        events: Vec<i64>,
        #[arg(long, default_value_t = 20)]
        duration_secs: u64,
        /// Stop after this many requests.
        #[arg(long)]
        max_ops: Option<u64>,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, default_value = "history.jsonl")]
        out: PathBuf,
    },
    /// Check a history against the database; exits 1 on any violation.
    Check {
        #[arg(long)]
        history: PathBuf,
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// How long to wait for acknowledged commands to reach a final state.
        #[arg(long, default_value_t = 60)]
        wait_secs: u64,
        /// A request slower than this counts as a hang.
        #[arg(long, default_value_t = 10_000)]
        max_latency_ms: u64,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run one fault scenario on its own deployment; writes one JSON result
    /// line to `<dir>/result.json` (and stdout); exits 1 on any violation.
    Scenario {
        /// A scenario name (`chaos list` prints them).
        name: String,
        /// A brief run (CI).
        #[arg(long)]
        short: bool,
        /// Where the history and the process logs go.
        #[arg(long)]
        dir: PathBuf,
        /// Command that stops/starts a server: `<cmd…> stop|start <server>`.
        #[arg(long, env = "CHAOS_SERVICE_CMD", default_value = "")]
        service_cmd: String,
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 10_000)]
        max_latency_ms: u64,
    },
    /// List the scenarios, one name a line.
    List {
        /// Each with what it injects and what must hold.
        #[arg(long)]
        describe: bool,
    },
    /// Print the suite's report (a Markdown table and the violations) from
    /// the scenarios' `result.json` files.
    Report {
        #[arg(required = true)]
        results: Vec<PathBuf>,
    },
}

fn seed(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Cmd::List { describe } => {
            for scenario in scenario::all() {
                if describe {
                    println!("{}\t{}", scenario.name(), scenario.description());
                } else {
                    println!("{}", scenario.name());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Report { results } => {
            let entries: Vec<report::Entry> = results.iter().map(|p| report::read(p)).collect();
            print!("{}", report::render(&entries));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Workload {
            apis,
            events,
            duration_secs,
            max_ops,
            clients,
            seed: given,
            out,
        } => {
            let http = reqwest::Client::new();
            let mut metas = Vec::new();
            for id in events {
                let event: serde_json::Value = http
                    .get(format!("{}/events/{id}", apis[0]))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let capacity = event["capacity"]
                    .as_i64()
                    .with_context(|| format!("event {id} has no capacity: {event}"))?;
                metas.push(EventMeta::plain(id, capacity));
            }
            let history = Arc::new(HistoryWriter::create(
                &out,
                Meta {
                    started_at: chrono::Utc::now(),
                    apis: apis.clone(),
                    events: metas.clone(),
                    scenario: None,
                },
            )?);
            let stop = CancellationToken::new();
            let timer = tokio::spawn({
                let stop = stop.clone();
                async move {
                    tokio::time::sleep(Duration::from_secs(duration_secs)).await;
                    stop.cancel();
                }
            });
            let made = workload::run(
                workload::Config {
                    apis,
                    events: metas,
                    clients,
                    max_ops,
                    seed: seed(given),
                    request_timeout: Duration::from_secs(30),
                    keys: Vec::new(),
                },
                history,
                stop,
            )
            .await?;
            timer.abort();
            eprintln!("{made} requests recorded in {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Check {
            history: path,
            database_url,
            wait_secs,
            max_latency_ms,
            json,
        } => {
            let records = history::read(&path)?;
            let summary = check::check_database(
                &records,
                &database_url,
                Duration::from_secs(wait_secs),
                Limits {
                    max_latency_ms: max_latency_ms as f64,
                },
                // No receiver here: what the deliveries say is checked,
                // not what reached their endpoints.
                None,
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", summary.render());
            }
            Ok(if summary.violations.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Scenario {
            name,
            short,
            dir,
            service_cmd,
            seed: given,
            clients,
            max_latency_ms,
        } => {
            let options = scenario::ScenarioOptions {
                short,
                dir,
                service_cmd: service_cmd.split_whitespace().map(str::to_owned).collect(),
                seed: seed(given),
                clients,
                limits: Limits {
                    max_latency_ms: max_latency_ms as f64,
                },
            };
            let result = scenario::run(&name, &options).await?;
            eprint!("{}", result.summary.render());
            for note in &result.notes {
                eprintln!("note: {note}");
            }
            // Also written to a file: the first api replica's output shares
            // this process's stdout.
            let line = serde_json::to_string(&result)?;
            std::fs::write(options.dir.join("result.json"), format!("{line}\n"))?;
            println!("{line}");
            Ok(if result.violations == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
