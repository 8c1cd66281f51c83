//! `stop-worker`: a worker armed with `WORKER_PAUSE_AT=after-token:<n>`
//! stops itself holding an event's lock, its fencing token read and its
//! transaction not started. Once its lease has expired, another worker
//! holds the lock with a newer token and has committed on the event, the
//! paused worker gets SIGCONT: its write must be refused by the token
//! (`fencing`), and someone must have taken over (`no-recovery`).

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::future::LocalBoxFuture;
use rand::Rng;

use super::{
    contract::Scenario,
    database, etcd,
    process::{is_stopped, signal, wait_for},
    run::{Run, leases_of, secs},
};
use crate::{
    history::Record,
    worker_log::{WorkerLog, failpoint_pause},
};

#[derive(Default)]
pub(super) struct StopWorker {
    /// Pids of the workers paused.
    stopped: Vec<u32>,
}

impl Scenario for StopWorker {
    fn name(&self) -> &'static str {
        "stop-worker"
    }

    fn description(&self) -> &'static str {
        "a lock holder stops itself, its lease expires, another worker takes over; on SIGCONT \
         its write must be refused by the fencing token"
    }

    fn inject<'a>(&'a mut self, run: &'a mut Run) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            tokio::time::sleep(secs(2.0)).await;
            for _ in 0..(if run.short() { 2 } else { 4 }) {
                self.pause_one(run).await?;
                tokio::time::sleep(secs(2.0)).await;
            }
            tokio::time::sleep(secs(3.0)).await;
            Ok(())
        })
    }

    fn assess<'a>(
        &'a mut self,
        run: &'a mut Run,
        _records: &'a [Record],
    ) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let tally = |logs: Vec<WorkerLog>| -> (usize, usize) {
                logs.iter().fold((0, 0), |(refused, failed), log| {
                    (
                        refused + log.stale_refusals().count(),
                        failed + log.failed_attempts(),
                    )
                })
            };
            let (stale, _) = tally(run.logs_of(None));
            let (stale_paused, failed_paused) = tally(run.logs_of(Some(&self.stopped)));
            run.notes.push(format!(
                "worker logs: {stale} write(s) refused for a stale fencing token \
                 ({stale_paused} by the paused workers); {failed_paused} failed decision \
                 attempt(s) of the paused workers retried"
            ));
            Ok(())
        })
    }
}

impl StopWorker {
    async fn pause_one(&mut self, run: &mut Run) -> anyhow::Result<()> {
        // Early: with commands partitioned by event a worker keeps its
        // events' locks across batches, so it takes few new ones.
        let nth = run.rng.random_range(1..3);
        let armed = format!("after-token:{nth}");
        // One command per batch, so one event per batch: a worker deciding
        // several events at once would stop with another event's
        // transaction open, and that row lock (not the etcd lock) would stall
        // every worker that wants the event until SIGCONT.
        let (pid, log) = run.start_owner_with(&[
            ("WORKER_PAUSE_AT", armed.clone()),
            ("BATCH_SIZE", "1".to_owned()),
        ]);
        self.stopped.push(pid);
        let (event, token) = wait_for(Duration::from_secs(30), || {
            let held = failpoint_pause(&WorkerLog::read(&log), &armed)?;
            is_stopped(pid).then_some(held)
        })
        .await
        .context("the armed worker never paused at after-token")?;
        let start = run.history.now_ms();
        let paused_lease = leases_of(&log)
            .pop()
            .context("the paused worker logged no lease")?;
        let mut client = run.app.etcd().await;
        let mut takeover = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        // SIGCONT only once the paused lease is gone, another worker holds
        // the lock with a newer token and has committed with it.
        while takeover.is_none() && Instant::now() < deadline {
            let holder = etcd::lock_holder(&mut client, &run.app.namespace, event).await?;
            let stored = database::fence_token(&run.app.db, event).await?;
            if let Some((lease, newer)) = holder
                && newer > token
                && stored > token
                && etcd::lease_expired(&mut client, &paused_lease).await?
            {
                takeover = Some(format!(
                    "its lease {paused_lease} expired, lease {lease} took the lock with token \
                     {newer}, the event's stored token is {stored}"
                ));
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let resumed = Utc::now();
        signal(pid, "CONT").await?;
        let held = format!(
            "worker pid {pid} stopped itself at after-token (hit {nth}) holding event {event}'s \
             lock with token {token}"
        );
        let Some(takeover) = takeover else {
            // Resumed anyway (never leave it stopped); the fencing check
            // needs a newer token, so there is nothing to refuse.
            run.fault(
                "sigstop-worker",
                format!("{held}; no takeover within 30 s; then SIGCONT"),
                start,
            );
            run.violate(
                "no-recovery",
                format!("worker {pid}"),
                format!(
                    "while it was stopped holding event {event}'s lock (token {token}), no other \
                     worker took the lock and committed on the event within 30 s"
                ),
            );
            return Ok(());
        };
        let refused = wait_for(Duration::from_secs(20), || {
            refused_since(&WorkerLog::read(&log), event, resumed)
        })
        .await;
        let seen = refused.map_or(String::new(), |stored| {
            format!("; its log: write on event {event} refused, the event's token being {stored}")
        });
        run.fault(
            "sigstop-worker",
            format!("{held}; {takeover}; then SIGCONT{seen}"),
            start,
        );
        if refused.is_none() {
            run.violate(
                "fencing",
                format!("worker {pid}"),
                format!(
                    "after SIGCONT, its write with token {token} on event {event} was not refused"
                ),
            );
        }
        Ok(())
    }
}

/// The token stored on `event` when the paused worker's write on it was
/// refused. It decides one command per batch and was stopped holding
/// `event`'s lock, so the first refusal on `event` logged after SIGCONT is
/// the write with the token it held.
fn refused_since(log: &WorkerLog, event: i64, resumed: DateTime<Utc>) -> Option<i64> {
    log.stale_refusals()
        .find(|r| r.event_id == event && r.at.is_some_and(|at| at >= resumed))
        .map(|r| r.stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refusal_on_the_paused_event_after_the_resume_counts() {
        let log = WorkerLog::parse(concat!(
            r#"{"timestamp":"2026-12-02T07:00:01Z","fields":{"event_id":2,"stored":280}}"#,
            "\n",
            r#"{"timestamp":"2026-12-02T07:00:05Z","fields":{"event_id":3,"stored":300}}"#,
            "\n",
            r#"{"timestamp":"2026-12-02T07:00:06Z","fields":{"event_id":2,"stored":289}}"#,
        ));
        let resumed = "2026-12-02T07:00:04Z".parse().expect("a time");
        assert_eq!(refused_since(&log, 2, resumed), Some(289));
        assert_eq!(refused_since(&log, 4, resumed), None);
    }
}
