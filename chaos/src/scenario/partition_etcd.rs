//! `partition-etcd`: a worker whose only way to etcd is a [`Blackhole`]
//! proxy is cut off (no byte moves, nothing closed) while it holds an
//! event's lock, for longer than its lease: the others must take the lock
//! over (`no-takeover`), any late write of the cut-off worker must be
//! refused by the token, and after the heal it must take a new lease and
//! work again.

use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;
use testkit::blackhole::Blackhole;

use super::{
    contract::Scenario,
    etcd,
    process::wait_for,
    run::{LEASE_TTL_SECS, Run, leases_of, secs},
};
use crate::worker_log::WorkerLog;

#[derive(Default)]
pub(super) struct PartitionEtcd {
    /// The proxies, kept until the run ends: the workers behind them still
    /// reach etcd through them.
    proxies: Vec<Blackhole>,
}

impl Scenario for PartitionEtcd {
    fn name(&self) -> &'static str {
        "partition-etcd"
    }

    fn description(&self) -> &'static str {
        "a lock holder is cut off from etcd past its lease: the lock is taken over, its late \
         writes refused, and it recovers after the heal"
    }

    fn inject<'a>(&'a mut self, run: &'a mut Run) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            tokio::time::sleep(secs(2.0)).await;
            for _ in 0..(if run.short() { 1 } else { 3 }) {
                let proxy = cut_one(run, secs((3 * LEASE_TTL_SECS) as f64)).await?;
                self.proxies.push(proxy);
                tokio::time::sleep(secs(3.0)).await;
            }
            tokio::time::sleep(secs(3.0)).await;
            Ok(())
        })
    }
}

/// Starts a worker behind a proxy, waits until it holds a lock, cuts it off
/// for `cut_for`, heals, and looks for its recovery.
async fn cut_one(run: &mut Run, cut_for: Duration) -> anyhow::Result<Blackhole> {
    let members: Vec<String> = testkit::app::env("ETCD_ENDPOINTS")
        .split(',')
        .map(|url| url.trim().trim_start_matches("http://").to_owned())
        .collect();
    let proxy = Blackhole::start(members).await?;
    let (pid, log) =
        run.start_owner_with(&[("ETCD_ENDPOINTS", format!("http://{}", proxy.addr()))]);
    let mut client = run.app.etcd().await;
    // Cut while it holds a lock, and make sure it still held it once cut: a
    // lock handed back just before the cut would test nothing. Its key can
    // only go away by expiry now, which takes longer than the 200 ms looked
    // at (the lease was renewed within a third of its TTL); otherwise heal
    // at once and try again.
    let start = run.history.now_ms();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut held, mut missed, mut cut) = (None, 0, Instant::now());
    while held.is_none() && Instant::now() < deadline {
        let Some((event, lease, token)) = run.lock_held_by(&mut client, pid).await? else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        proxy.cut();
        cut = Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        if etcd::lock_holder(&mut client, &run.app.namespace, event)
            .await?
            .is_some_and(|(holder, _)| holder == lease)
        {
            held = Some((event, lease, token));
        } else {
            proxy.heal();
            missed += 1;
        }
    }
    let grants = leases_of(&log).len();
    let what = match held {
        Some((event, lease, token)) => {
            let mut takeover = None;
            while cut.elapsed() < cut_for {
                if let Some((other, newer)) =
                    etcd::lock_holder(&mut client, &run.app.namespace, event).await?
                    && other != lease
                {
                    takeover = Some(format!(
                        "lease {other} took the lock with token {newer} after {:.1} s",
                        cut.elapsed().as_secs_f64()
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Its lease is gone well before the heal: its event must not
            // wait for it.
            let takeover = takeover.unwrap_or_else(|| {
                run.violate(
                    "no-takeover",
                    format!("worker {pid}"),
                    format!(
                        "nobody took event {event}'s lock over while its holder was cut off \
                         from etcd for {:.1} s",
                        cut_for.as_secs_f64()
                    ),
                );
                "nobody took its lock over while it was cut off".to_owned()
            });
            format!(
                "holder of event {event}'s lock (lease {lease}, token {token}) at the cut \
                 ({missed} earlier cut(s) healed at once: the lock changed hands within 200 ms); \
                 {takeover}"
            )
        }
        None => {
            run.violate(
                "partition-etcd",
                format!("worker {pid}"),
                "the worker to cut off was never seen holding a lock once cut (30 s): nothing \
                 tested",
            );
            "holding no lock once cut (30 s of tries)".to_owned()
        }
    };
    tokio::time::sleep(cut_for.saturating_sub(cut.elapsed())).await;
    proxy.heal();
    let healed = Instant::now();
    run.fault(
        "partition-etcd",
        format!(
            "cut worker pid {pid} off from etcd for {:.1} s (lease TTL {LEASE_TTL_SECS} s), \
             {what}; then healed",
            cut_for.as_secs_f64()
        ),
        start,
    );
    // Recovery: a new lease (the old one expired during the cut), then a
    // lock again.
    let new_lease = wait_for(Duration::from_secs(20), || {
        (leases_of(&log).len() > grants).then_some(())
    })
    .await;
    let mut relocked = None;
    while new_lease.is_some() && relocked.is_none() && healed.elapsed() < secs(20.0) {
        relocked = run.lock_held_by(&mut client, pid).await?;
        if relocked.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let recovery = match (&new_lease, relocked) {
        (None, _) => {
            run.violate(
                "no-recovery",
                format!("worker {pid}"),
                "no new etcd lease within 20 s of the heal",
            );
            "no new lease within 20 s of the heal".to_owned()
        }
        (Some(()), None) => "a new lease after the heal, no lock within 20 s".to_owned(),
        (Some(()), Some((event, _, token))) => format!(
            "a new lease, then event {event}'s lock with token {token} {:.1} s after the heal",
            healed.elapsed().as_secs_f64()
        ),
    };
    let worker_log = WorkerLog::read(&log);
    run.notes.push(format!(
        "partition-etcd: worker {pid} {what}; recovery: {recovery}; its log: {} write(s) \
         refused by the fencing token, {} lease(s) taken after its first",
        worker_log.stale_refusals().count(),
        worker_log.leases().len().saturating_sub(1),
    ));
    Ok(proxy)
}
