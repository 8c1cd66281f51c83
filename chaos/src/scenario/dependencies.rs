//! Faults of the services the workers depend on that go beyond a restart:
//! a worker whose MySQL stops answering without closing anything
//! (`blackhole-mysql`), a deployment whose Redis does the same
//! (`blackhole-redis`), and etcd going back in time as a restore from an
//! older snapshot makes it (`etcd-rewind`).

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use anyhow::Context;
use sea_orm::{ConnectionTrait, Statement};
use testkit::blackhole::Blackhole;

use super::{
    DECIDE_TIMEOUT_MS, LEASE_TTL_SECS, Run, leases_granted, lock_holder, secs, start_worker_with,
    wait_for,
};
use crate::check::Violation;

/// A fencing token is `epoch << 40 | revision` (worker/src/fence.rs).
const REVISION_MASK: i64 = (1 << 40) - 1;

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

impl Run<'_> {
    /// Starts one more worker whose only path to MySQL is a [`Blackhole`],
    /// and cuts that path (nothing closed, no byte moves) for longer than
    /// both its decision deadline and its lease, preferably while it holds
    /// an event's lock. Its lease lives on (etcd is reachable), so nothing
    /// but the deadline can free the locks it takes: each hold must end
    /// within the lease TTL, as if the worker had died.
    pub(super) async fn blackhole_mysql(&mut self) -> anyhow::Result<()> {
        let (rounds, cut_for) = if self.short() { (1, 6.0) } else { (3, 8.0) };
        let (proxy, routed) = Blackhole::in_front_of(&self.app.database_url).await?;
        let (pid, log) = start_worker_with(
            &mut self.app,
            &self.options.dir,
            &[("DATABASE_URL", routed)],
        );
        self.worker_logs.push((pid, log.clone()));
        wait_for(Duration::from_secs(20), || {
            (!leases_granted(&log).is_empty()).then_some(())
        })
        .await
        .context("the worker behind the MySQL proxy took no lease within 20 s")?;
        tokio::time::sleep(secs(2.0)).await;
        let mut etcd = self.app.etcd().await;
        let mut summary = Vec::new();
        for round in 1..=rounds {
            // Mid-decision if it can be: while it holds a lock.
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut holding = None;
            while holding.is_none() && Instant::now() < deadline {
                holding = self.lock_held_by(&mut etcd, pid).await?;
                if holding.is_none() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let start = self.history.now_ms();
            proxy.cut();
            let holds = self.watch_holds(&mut etcd, &log, secs(cut_for)).await?;
            proxy.heal();
            let at_cut = match (holding, holds.at_cut()) {
                (None, _) => "holding no lock at the cut (10 s of tries)".to_owned(),
                (Some((event, ..)), Some((_, last))) => {
                    format!(
                        "holding event {event}'s lock at the cut, released {last:.2} s after it"
                    )
                }
                (Some((event, ..)), None) => {
                    format!(
                        "holding event {event}'s lock just before the cut, gone at the first look"
                    )
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
            self.fault("blackhole-mysql", detail.clone(), start);
            summary.push(format!("{longest:.2} s"));
            // A hold still there at the heal may have begun just before it:
            // only its length counts.
            if longest > LEASE_TTL_SECS as f64 {
                self.extra.push(Violation {
                    rule: "blackhole-mysql",
                    id: format!("worker {pid}"),
                    detail: format!(
                        "kept an event's lock longer than the {LEASE_TTL_SECS} s lease with its \
                         MySQL cut: {detail}"
                    ),
                });
            }
            tokio::time::sleep(secs(4.0)).await;
        }
        self.proxies.push(proxy);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        self.notes.push(format!(
            "blackhole-mysql: longest lock hold of the cut worker after each cut: {}; its log: \
             {} decision(s) past the deadline, {} lease(s) given up",
            summary.join(", "),
            text.matches("did not commit within").count(),
            text.matches("giving up the etcd lease").count(),
        ));
        Ok(())
    }

    /// Looks at every event's lock holder for `cut_for`: which holds belong
    /// to the worker that logs to `log`, from when to when.
    async fn watch_holds(
        &self,
        etcd: &mut etcd_client::Client,
        log: &std::path::Path,
        cut_for: Duration,
    ) -> anyhow::Result<Holds> {
        let cut = Instant::now();
        let mut holds = Holds::default();
        let mut last_transaction_look = None::<Instant>;
        while cut.elapsed() < cut_for {
            let leases: HashSet<String> = leases_granted(log).into_iter().collect();
            let now = cut.elapsed().as_secs_f64();
            let first_look = holds.polls == 0;
            holds.at_heal.clear();
            for event in &self.events {
                let Some((lease, token)) = lock_holder(etcd, &self.app.namespace, event.id).await?
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
                if let Some(age) = self.oldest_transaction_s().await {
                    holds.oldest_transaction_s = holds.oldest_transaction_s.max(Some(age));
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(holds)
    }

    /// Age in whole seconds of the oldest transaction open on this
    /// deployment's database; `None` if the server will not say.
    async fn oldest_transaction_s(&self) -> Option<i64> {
        let db = &self.app.db;
        db.query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COALESCE(MAX(TIMESTAMPDIFF(SECOND, t.trx_started, NOW())), 0) AS age \
             FROM information_schema.innodb_trx t \
             JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id \
             WHERE p.db = DATABASE()",
        ))
        .await
        .ok()??
        .try_get::<i64>("", "age")
        .ok()
    }

    /// Cuts every api's and worker's path to Redis (the deployment was
    /// started through the proxy) while the workload runs, then heals it.
    /// Redis is a cache: the answers must come as before, from MySQL.
    pub(super) async fn blackhole_redis(&mut self) -> anyhow::Result<()> {
        let (rounds, cut_for, between) = if self.short() {
            (1, 6.0, 4.0)
        } else {
            (3, 10.0, 5.0)
        };
        let proxy = self
            .redis_proxy
            .as_ref()
            .context("blackhole-redis runs with its Redis proxy")?;
        tokio::time::sleep(secs(3.0)).await;
        for round in 1..=rounds {
            let before = self.redis_readiness().await;
            let start = self.history.now_ms();
            proxy.cut();
            tokio::time::sleep(secs(1.0)).await;
            let during = self.redis_readiness().await;
            tokio::time::sleep(secs(cut_for - 1.0)).await;
            proxy.heal();
            self.fault(
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
    async fn redis_readiness(&self) -> String {
        let started = Instant::now();
        let answer = async {
            let response = self.app.http.get(self.app.url("/readyz")).send().await?;
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

    /// Takes a snapshot of the etcd cluster, lets the workload move etcd's
    /// revision well past it, then restores every member from it: etcd's
    /// revision, and so every new lock's token, goes back below what the
    /// event rows stored. The workers must notice (a stored token etcd never
    /// issued), move the fencing epoch on and decide again.
    pub(super) async fn etcd_rewind(&mut self) -> anyhow::Result<()> {
        let (rounds, grow) = if self.short() { (1, 4.0) } else { (2, 8.0) };
        tokio::time::sleep(secs(2.0)).await;
        for round in 1..=rounds {
            let snapshot: i64 = self
                .service("snapshot", "etcd")
                .await?
                .parse()
                .context("the snapshot's revision")?;
            tokio::time::sleep(secs(grow)).await;
            let before = etcd_revision(&mut self.app.etcd().await).await?;
            let stored = self.max_stored_token().await?;
            let epoch = self.fencing_epoch().await?;
            let start = self.history.now_ms();
            let restoring = Instant::now();
            self.service("restore", "etcd").await?;
            let down = restoring.elapsed().as_secs_f64();
            let restored = Instant::now();
            let mut etcd = self.app.etcd().await;
            let after = etcd_revision(&mut etcd).await?;
            let revived = self.lock_keys(&mut etcd).await?;
            let mut moved = None;
            while moved.is_none() && restored.elapsed() < Duration::from_secs(30) {
                let now = self.fencing_epoch().await?;
                if now > epoch {
                    moved = Some(now);
                } else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            let outcome = match moved {
                Some(now) => format!(
                    "fencing epoch {epoch} → {now} {:.1} s after etcd was back",
                    restored.elapsed().as_secs_f64()
                ),
                None => format!("fencing epoch still {epoch} 30 s after etcd was back"),
            };
            // The fault lasts until the workers have caught up with it: the
            // answers while the epoch had not moved are the fault's.
            let what = format!(
                "revision {before} → {after} (snapshot {snapshot}, {down:.1} s without etcd, \
                 {revived} lock key(s) of this deployment back from the snapshot), stored tokens \
                 up to revision {}; {outcome}",
                stored & REVISION_MASK
            );
            self.fault(
                "etcd-rewind",
                format!(
                    "round {round}: every etcd member restored from a snapshot: {what}; the \
                     window ends when the epoch moved"
                ),
                start,
            );
            self.notes
                .push(format!("etcd-rewind round {round}: {what}"));
            if after >= stored & REVISION_MASK {
                self.extra.push(Violation {
                    rule: "etcd-rewind",
                    id: format!("round {round}"),
                    detail: format!(
                        "etcd's revision after the restore ({after}) is not below the stored \
                         tokens ({}): nothing tested",
                        stored & REVISION_MASK
                    ),
                });
            } else if moved.is_none() {
                self.extra.push(Violation {
                    rule: "no-recovery",
                    id: format!("round {round}"),
                    detail: format!(
                        "etcd went back from revision {before} to {after}; the fencing epoch \
                         stayed {epoch} for 30 s"
                    ),
                });
            }
            tokio::time::sleep(secs(4.0)).await;
        }
        let moved_on: usize = self
            .worker_logs
            .iter()
            .map(|(_, log)| {
                std::fs::read_to_string(log)
                    .unwrap_or_default()
                    .matches("fencing epoch moved on")
                    .count()
            })
            .sum();
        self.notes.push(format!(
            "etcd-rewind: {moved_on} 'fencing epoch moved on' in the worker logs; epoch now {}",
            self.fencing_epoch().await?
        ));
        Ok(())
    }

    /// Lock keys (holders and waiters) on this scenario's events.
    async fn lock_keys(&self, etcd: &mut etcd_client::Client) -> anyhow::Result<i64> {
        let mut keys = 0;
        for event in &self.events {
            let prefix = format!(
                "{}/",
                shared::etcd::event_lock_name(&self.app.namespace, event.id)
            );
            keys += etcd
                .get(
                    prefix,
                    Some(
                        etcd_client::GetOptions::new()
                            .with_prefix()
                            .with_count_only(),
                    ),
                )
                .await?
                .count();
        }
        Ok(keys)
    }

    async fn fencing_epoch(&self) -> anyhow::Result<i64> {
        self.query_i64("SELECT epoch AS n FROM fencing_epoch WHERE id = 1")
            .await
    }

    /// The highest fencing token stored on this scenario's events.
    async fn max_stored_token(&self) -> anyhow::Result<i64> {
        let ids: Vec<String> = self.events.iter().map(|e| e.id.to_string()).collect();
        self.query_i64(&format!(
            "SELECT MAX(fence_token) AS n FROM events WHERE id IN ({})",
            ids.join(",")
        ))
        .await
    }

    async fn query_i64(&self, sql: &str) -> anyhow::Result<i64> {
        let db = &self.app.db;
        db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
            .await?
            .with_context(|| format!("no row: {sql}"))?
            .try_get::<i64>("", "n")
            .with_context(|| sql.to_owned())
    }
}

/// etcd's current revision (any read carries it).
async fn etcd_revision(etcd: &mut etcd_client::Client) -> anyhow::Result<i64> {
    Ok(etcd
        .get("\0", None)
        .await?
        .header()
        .map_or(0, |header| header.revision()))
}
