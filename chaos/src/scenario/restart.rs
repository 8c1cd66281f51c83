//! `restart-rabbitmq`, `restart-mysql`, `restart-etcd`: a server of the
//! stack is stopped (SIGTERM; for etcd the member leading at that moment of
//! the three), left down, and started again, through `--service-cmd`. The
//! system must resume by itself, without losing or doubling anything.

use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;

use super::{
    contract::Scenario,
    run::{Run, secs},
};

#[derive(Debug, Clone, Copy)]
pub(super) enum Server {
    Rabbitmq,
    Mysql,
    Etcd,
}

impl Server {
    /// The name `--service-cmd` knows it by.
    fn service(self) -> &'static str {
        match self {
            Self::Rabbitmq => "rabbitmq",
            Self::Mysql => "mysql",
            Self::Etcd => "etcd",
        }
    }
}

pub(super) struct Restart(pub(super) Server);

impl Scenario for Restart {
    fn name(&self) -> &'static str {
        match self.0 {
            Server::Rabbitmq => "restart-rabbitmq",
            Server::Mysql => "restart-mysql",
            Server::Etcd => "restart-etcd",
        }
    }

    fn description(&self) -> &'static str {
        match self.0 {
            Server::Rabbitmq => "stop RabbitMQ, start it again: the system resumes by itself",
            Server::Mysql => "stop MariaDB, start it again: the system resumes by itself",
            Server::Etcd => {
                "stop the leading etcd member, start it again: a new leader, the system goes on"
            }
        }
    }

    fn inject<'a>(&'a mut self, run: &'a mut Run) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let short = run.short();
            tokio::time::sleep(secs(3.0)).await;
            for _ in 0..(if short { 1 } else { 2 }) {
                restart(run, self.0.service(), secs(if short { 3.0 } else { 6.0 })).await?;
                tokio::time::sleep(secs(if short { 8.0 } else { 12.0 })).await;
            }
            Ok(())
        })
    }
}

async fn restart(run: &mut Run, server: &str, outage: Duration) -> anyhow::Result<()> {
    let start = run.history.now_ms();
    let t = Instant::now();
    // For etcd, the member leading at that moment (the stack is a
    // three-member cluster).
    let stopped = match run.service("stop", server).await? {
        member if !member.is_empty() => member,
        _ => server.to_owned(),
    };
    let stopped_in = t.elapsed();
    let mut detail = String::new();
    if server == "etcd" {
        let elected = new_etcd_leader(run, &stopped, outage).await;
        detail = format!(", leader {stopped} stopped, {elected}");
        run.notes
            .push(format!("restart-etcd: {}", detail.trim_start_matches(", ")));
    }
    tokio::time::sleep(outage.saturating_sub(t.elapsed())).await;
    let t = Instant::now();
    run.service("start", server).await?;
    let started_in = t.elapsed();
    run.fault(
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
async fn new_etcd_leader(run: &Run, stopped: &str, within: Duration) -> String {
    let t = Instant::now();
    while t.elapsed() < within {
        if let Ok(leader) = run.service("leader", "etcd").await
            && !leader.is_empty()
            && leader != stopped
        {
            return format!("{leader} elected within {:.1} s", t.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    format!("no new leader within {:.1} s", within.as_secs_f64())
}
