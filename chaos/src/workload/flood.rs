//! The overload scenario's generator: an open loop of sync reserves at a
//! fixed rate, whatever the answers.

use std::{sync::Arc, time::Duration};

use rand::{SeedableRng, rngs::StdRng, seq::IndexedRandom};
use tokio_util::sync::CancellationToken;

use super::{Config, Request, Shared, reserve_body};
use crate::history::{HistoryWriter, OpKind};

/// What a flood sent and got back.
#[derive(Debug, Default)]
pub struct Flood {
    pub sent: u64,
    /// Ticks skipped because `in_flight` requests were already outstanding.
    pub skipped: u64,
    pub by_status: std::collections::BTreeMap<u16, u64>,
    /// Until the last answer came back.
    pub elapsed: Duration,
}

impl Flood {
    pub fn decided(&self) -> u64 {
        [200, 409]
            .iter()
            .filter_map(|s| self.by_status.get(s))
            .sum()
    }
}

/// Sync reserves of one ticket, spread over the events and api replicas,
/// sent at `rate` per second for `duration` whatever the answers (an open
/// loop: a slow server faces the same offered load), each recorded in the
/// history like any other request. At most `in_flight` are outstanding;
/// beyond that a send is skipped and counted, so the generator's own memory
/// stays bounded and the report says how much load was really offered.
pub async fn flood(
    config: Config,
    history: Arc<HistoryWriter>,
    rate: u64,
    duration: Duration,
    in_flight: usize,
) -> anyhow::Result<Flood> {
    let shared = Shared::new(config, history, CancellationToken::new())?;
    let permits = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let (answers, mut statuses) = tokio::sync::mpsc::unbounded_channel();
    let mut report = Flood::default();
    let started = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(5));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n: u64 = 0;
    while started.elapsed() < duration {
        ticks.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while n < due {
            n += 1;
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                report.skipped += 1;
                continue;
            };
            report.sent += 1;
            let (shared, answers) = (shared.clone(), answers.clone());
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(shared.config.seed ^ n);
                let client = shared.config.clients + (n % 64) as usize;
                if let Some(event) = shared.config.events.choose(&mut rng) {
                    let mut request = Request::new(
                        OpKind::Reserve,
                        reqwest::Method::POST,
                        format!("/events/{}/reserve", event.id),
                    );
                    request.event_id = Some(event.id);
                    request.quantity = Some(1);
                    request.body = Some(reserve_body(event, 1, &mut rng));
                    let op = shared.send(client, &mut rng, request).await;
                    answers.send(op.status).ok();
                }
                drop(permit);
            });
        }
    }
    drop(answers);
    while let Some(status) = statuses.recv().await {
        *report.by_status.entry(status).or_default() += 1;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
