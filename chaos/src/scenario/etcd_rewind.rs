//! `etcd-rewind`: takes a snapshot of the etcd cluster, moves etcd's
//! revision and the stored tokens well past it, then restores every member
//! from it (etcd's disaster recovery): etcd's revision, and so every new
//! lock's token, goes back below what the event rows stored. The workers must
//! notice (a stored token etcd never issued), move the fencing epoch on
//! (`no-recovery` otherwise) and decide again.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::future::LocalBoxFuture;

use super::{
    answers,
    contract::Scenario,
    database::{self, REVISION_MASK},
    etcd,
    process::signal,
    run::{Run, secs},
};
use crate::history::Record;

pub(super) struct EtcdRewind;

impl Scenario for EtcdRewind {
    fn name(&self) -> &'static str {
        "etcd-rewind"
    }

    fn description(&self) -> &'static str {
        "etcd restored from an older snapshot: the workers move the fencing epoch on and decide \
         again"
    }

    fn inject<'a>(&'a mut self, run: &'a mut Run) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let (rounds, grow) = if run.short() { (1, 4.0) } else { (2, 8.0) };
            tokio::time::sleep(secs(2.0)).await;
            let first = database::fencing_epoch(&run.app.db).await?;
            for round in 1..=rounds {
                rewind(run, round, secs(grow)).await?;
                tokio::time::sleep(secs(4.0)).await;
            }
            let now = database::fencing_epoch(&run.app.db).await?;
            run.notes.push(format!(
                "etcd-rewind: the fencing epoch moved on {} time(s) ({first} → {now})",
                now - first
            ));
            Ok(())
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

/// One round: snapshot, `grow` of workload, restore, and the epoch's move.
async fn rewind(run: &mut Run, round: u32, grow: Duration) -> anyhow::Result<()> {
    let snapshot: i64 = run
        .service("snapshot", "etcd")
        .await?
        .parse()
        .context("the snapshot's revision")?;
    hand_locks_over(run, snapshot).await?;
    tokio::time::sleep(grow).await;
    let before = etcd::revision(&mut run.app.etcd().await).await?;
    let stored = database::max_stored_token(&run.app.db, &run.events).await?;
    let epoch = database::fencing_epoch(&run.app.db).await?;
    let start = run.history.now_ms();
    let restoring = Instant::now();
    run.service("restore", "etcd").await?;
    let down = restoring.elapsed().as_secs_f64();
    let restored = Instant::now();
    let mut client = run.app.etcd().await;
    let after = etcd::revision(&mut client).await?;
    let revived = etcd::lock_keys(&mut client, &run.app.namespace, &run.events).await?;
    let mut moved = None;
    while moved.is_none() && restored.elapsed() < Duration::from_secs(30) {
        let now = database::fencing_epoch(&run.app.db).await?;
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
    let stored_revision = stored & REVISION_MASK;
    // The fault lasts until the workers have caught up with it: the answers
    // while the epoch had not moved are the fault's.
    let what = format!(
        "revision {before} → {after} (snapshot {snapshot}, {down:.1} s without etcd, {revived} \
         lock key(s) of this deployment back from the snapshot), stored tokens up to revision \
         {stored_revision}; {outcome}"
    );
    run.fault(
        "etcd-rewind",
        format!(
            "round {round}: every etcd member restored from a snapshot: {what}; the window ends \
             when the epoch moved"
        ),
        start,
    );
    run.notes.push(format!("etcd-rewind round {round}: {what}"));
    if after >= stored_revision {
        run.violate(
            "etcd-rewind",
            format!("round {round}"),
            format!(
                "etcd's revision after the restore ({after}) is not below the stored tokens \
                 ({stored_revision}): nothing tested"
            ),
        );
    } else if moved.is_none() {
        run.violate(
            "no-recovery",
            format!("round {round}"),
            format!(
                "etcd went back from revision {before} to {after}; the fencing epoch stayed \
                 {epoch} for 30 s"
            ),
        );
    }
    Ok(())
}

/// Revisions the scenario adds on top of the workload's after the snapshot.
const FILLER_WRITES: i64 = 50;

/// Makes sure the event rows store tokens newer than the snapshot, which
/// the workload alone may not do: a worker keeps its partitions' locks, so
/// it takes no new lock for as long as its events stay busy. So: move
/// etcd's revision on, then stop (SIGTERM) a worker holding a lock and
/// start another, so that its locks go to other workers at newer tokens
/// that they store with their next write.
async fn hand_locks_over(run: &mut Run, snapshot: i64) -> anyhow::Result<()> {
    let mut client = run.app.etcd().await;
    let filler = format!("/{}/chaos/filler", run.app.namespace);
    for n in 0..FILLER_WRITES {
        client.put(filler.as_str(), n.to_string(), None).await?;
    }
    let mut holder = None;
    for worker in &run.app.workers {
        let pid = worker.id();
        if run.lock_held_by(&mut client, pid).await?.is_some() {
            holder = Some(pid);
            break;
        }
    }
    if let Some(pid) = holder {
        signal(pid, "TERM").await?;
    }
    run.start_worker();
    // Not met within the time means nothing is tested: the check after the
    // restore says so.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let stored = database::max_stored_token(&run.app.db, &run.events).await?;
        if stored & REVISION_MASK > snapshot + FILLER_WRITES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
