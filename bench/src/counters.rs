//! Work counted during a scenario by the kernel and by the servers
//! themselves: CPU time of the api, the workers and each server process,
//! etcd writes (lock takes and releases, mostly) and MySQL commits. Divided by the confirmed
//! reservations they are what one reservation costs, which does not depend
//! on how busy this machine was: the figures a capacity plan scales from,
//! and that show why a run scales (or would, across machines).

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use testkit::app::TestApp;

use crate::{servers, stats::Cost};

/// Linux reports process CPU time in USER_HZ ticks, 100 per second.
const TICKS_PER_SEC: f64 = 100.0;

/// The counters at one instant.
pub struct Counters {
    api_cpu_secs: f64,
    worker_cpu_secs: f64,
    /// Per server of `servers::SERVERS`, in that order (0 when its
    /// process cannot be seen).
    server_cpu_secs: [f64; 4],
    etcd_revision: i64,
    mysql_commits: u64,
}

impl Counters {
    pub async fn read(app: &TestApp) -> anyhow::Result<Self> {
        let mut etcd = app.etcd().await;
        let etcd_revision = etcd
            .get("/", None)
            .await
            .context("etcd revision")?
            .header()
            .map_or(0, |h| h.revision());
        let (api, workers) = app.pids();
        Ok(Self {
            api_cpu_secs: cpu_secs(api),
            worker_cpu_secs: workers.into_iter().map(cpu_secs).sum(),
            server_cpu_secs: servers::SERVERS.map(|(_, var)| {
                std::env::var(var)
                    .ok()
                    .and_then(|url| servers::listener_of(&url))
                    .map_or(0.0, cpu_secs)
            }),
            etcd_revision,
            mysql_commits: commits(&app.db).await?,
        })
    }

    /// What each of `confirmed` reservations cost since `before`.
    pub fn cost_since(&self, before: &Self, confirmed: u64) -> Cost {
        let confirmed = confirmed.max(1) as f64;
        Cost {
            api_cpu_us: (self.api_cpu_secs - before.api_cpu_secs) * 1e6 / confirmed,
            worker_cpu_us: (self.worker_cpu_secs - before.worker_cpu_secs) * 1e6 / confirmed,
            server_cpu_us: std::array::from_fn(|i| {
                (self.server_cpu_secs[i] - before.server_cpu_secs[i]) * 1e6 / confirmed
            }),
            etcd_writes_per_1k: (self.etcd_revision - before.etcd_revision) as f64 * 1000.0
                / confirmed,
            mysql_commits_per_1k: self.mysql_commits.saturating_sub(before.mysql_commits) as f64
                * 1000.0
                / confirmed,
        }
    }
}

/// User + system CPU seconds of a live process (0 when it is gone).
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14 and stime 15.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / TICKS_PER_SEC,
        _ => 0.0,
    }
}

/// Transactions committed by every client of the server (`Com_commit`).
async fn commits(db: &DatabaseConnection) -> anyhow::Result<u64> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::MySql,
            "SHOW GLOBAL STATUS LIKE 'Com_commit'",
        ))
        .await?
        .context("no Com_commit status")?;
    let value: String = row.try_get_by_index(1)?;
    Ok(value.parse()?)
}
