//! `blackhole-mysql`: one more worker whose only path to MySQL is a
//! [`Blackhole`], cut (nothing closed, no byte moves) for longer than both
//! its decision deadline and its lease, preferably while it holds an
//! event's lock. Its lease lives on (etcd is reachable), so nothing but the
//! deadline can free the locks it takes: each hold must end within the
//! lease TTL, as if the worker had died (`blackhole-mysql`).

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::future::LocalBoxFuture;
use testkit::blackhole::Blackhole;

use super::{
    answers,
    contract::Scenario,
    database, etcd,
    process::wait_for,
    run::{DECIDE_TIMEOUT_MS, LEASE_TTL_SECS, Run, leases_of, secs},
};
use crate::{history::Record, worker_log::WorkerLog};

#[derive(Default)]
pub(super) struct BlackholeMysql {
    /// The proxy, kept until the run ends: the worker behind it still
    /// reaches MySQL through it.
    proxy: Option<Blackhole>,
}

impl Scenario for BlackholeMysql {
    fn name(&self) -> &'static str {
        "blackhole-mysql"
    }

    fn description(&self) -> &'static str {
        "a worker's MySQL stops answering mid-decision: its event locks are freed within the \
         lease, the others go on"
    }

    fn inject<'a>(&'a mut self, run: &'a mut Run) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let (proxy, routed) = Blackhole::in_front_of(&run.app.database_url).await?;
            let proxy = self.proxy.insert(proxy);
            cut_rounds(run, proxy, routed).await
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

/// The lock holds the cut-off worker of `blackhole-mysql` was seen with
/// while its MySQL was cut.
#[derive(Debug, Default)]
struct Holds {
    /// (event, token) → first and last seen, seconds after the cut.
    seen: HashMap<(i64, i64), (f64, f64)>,
    /// Holds still seen at the end of the cut (their length so far counts
    /// in `seen`).
    at_heal: HashSet<(i64, i64)>,
    polls: usize,
    /// Oldest transaction seen open on the deployment's database, seconds
    /// (whole: MySQL's `trx_started` has no fraction).
    oldest_transaction_s: Option<i64>,
}

impl Holds {
    /// The longest hold after the cut: (seconds, event).
    fn longest(&self) -> Option<(f64, i64)> {
        self.seen
            .iter()
            .map(|((event, _), (first, last))| (last - first, *event))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }

    /// The hold already there at the cut, and how long after the cut it
    /// was last seen.
    fn at_cut(&self) -> Option<(i64, f64)> {
        self.seen
            .iter()
            .find(|(_, (first, _))| *first == 0.0)
            .map(|((event, _), (_, last))| (*event, *last))
    }
}

/// Starts the worker behind `proxy` (its database URL `routed`), then cuts
/// its path to MySQL in rounds.
async fn cut_rounds(run: &mut Run, proxy: &Blackhole, routed: String) -> anyhow::Result<()> {
    let (rounds, cut_for) = if run.short() { (1, 6.0) } else { (3, 8.0) };
    let (pid, log) = run.start_owner_with(&[("DATABASE_URL", routed)]);
    wait_for(Duration::from_secs(20), || {
        (!leases_of(&log).is_empty()).then_some(())
    })
    .await
    .context("the worker behind the MySQL proxy took no lease within 20 s")?;
    tokio::time::sleep(secs(2.0)).await;
    let mut client = run.app.etcd().await;
    let mut summary = Vec::new();
    for round in 1..=rounds {
        // Mid-decision if it can be: while it holds a lock.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut holding = None;
        while holding.is_none() && Instant::now() < deadline {
            holding = run.lock_held_by(&mut client, pid).await?;
            if holding.is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let start = run.history.now_ms();
        proxy.cut();
        let holds = watch_holds(run, &mut client, &log, secs(cut_for)).await?;
        proxy.heal();
        let at_cut = match (holding, holds.at_cut()) {
            (None, _) => "holding no lock at the cut (10 s of tries)".to_owned(),
            (Some((event, ..)), Some((_, last))) => {
                format!("holding event {event}'s lock at the cut, released {last:.2} s after it")
            }
            (Some((event, ..)), None) => {
                format!("holding event {event}'s lock just before the cut, gone at the first look")
            }
        };
        let (longest, event) = holds.longest().unwrap_or((0.0, 0));
        let oldest = holds
            .oldest_transaction_s
            .map_or("unknown".to_owned(), |s| format!("{s} s"));
        let detail = format!(
            "round {round}: cut worker pid {pid}'s path to MySQL for {cut_for:.0} s \
             (DECIDE_TIMEOUT_MS {DECIDE_TIMEOUT_MS}, lease TTL {LEASE_TTL_SECS} s), {at_cut}; \
             {} lock hold(s) of it seen during the cut, longest {longest:.2} s (event {event}), \
             {} still held at the heal; {} looks (every {:.0} ms); oldest transaction open on \
             the database during the cut: {oldest}; then healed",
            holds.seen.len(),
            holds.at_heal.len(),
            holds.polls,
            cut_for * 1000.0 / holds.polls.max(1) as f64,
        );
        run.fault("blackhole-mysql", detail.clone(), start);
        summary.push(format!("{longest:.2} s"));
        // A hold still there at the heal may have begun just before it: only
        // its length counts.
        if longest > LEASE_TTL_SECS as f64 {
            run.violate(
                "blackhole-mysql",
                format!("worker {pid}"),
                format!(
                    "kept an event's lock longer than the {LEASE_TTL_SECS} s lease with its \
                     MySQL cut: {detail}"
                ),
            );
        }
        tokio::time::sleep(secs(4.0)).await;
    }
    let worker_log = WorkerLog::read(&log);
    run.notes.push(format!(
        "blackhole-mysql: longest lock hold of the cut worker after each cut: {}; its log: \
         {} failed decision attempt(s) retried, {} lease(s) taken after its first",
        summary.join(", "),
        worker_log.failed_attempts(),
        worker_log.leases().len().saturating_sub(1),
    ));
    Ok(())
}

/// Looks at every event's lock holder for `cut_for`: which holds belong to
/// the worker that logs to `log`, from when to when.
async fn watch_holds(
    run: &Run,
    client: &mut etcd_client::Client,
    log: &Path,
    cut_for: Duration,
) -> anyhow::Result<Holds> {
    let cut = Instant::now();
    let mut holds = Holds::default();
    let mut last_transaction_look = None::<Instant>;
    while cut.elapsed() < cut_for {
        let leases: HashSet<String> = leases_of(log).into_iter().collect();
        let now = cut.elapsed().as_secs_f64();
        let first_look = holds.polls == 0;
        holds.at_heal.clear();
        for event in &run.events {
            let Some((lease, token)) =
                etcd::lock_holder(client, &run.app.namespace, event.id).await?
            else {
                continue;
            };
            if !leases.contains(&lease) {
                continue;
            }
            // A hold there at the first look began before the cut: it is
            // timed from the cut.
            let since = if first_look { 0.0 } else { now };
            let entry = holds.seen.entry((event.id, token)).or_insert((since, now));
            entry.1 = now;
            holds.at_heal.insert((event.id, token));
        }
        holds.polls += 1;
        if last_transaction_look.is_none_or(|t| t.elapsed() > Duration::from_millis(250)) {
            last_transaction_look = Some(Instant::now());
            if let Some(age) = database::oldest_transaction_s(&run.app.db).await {
                holds.oldest_transaction_s = holds.oldest_transaction_s.max(Some(age));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(holds)
}
