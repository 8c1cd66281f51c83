//! Deciding one batch of a partition: group it by event, decide each
//! group under the event's lock in one fenced transaction (retrying through
//! outages, one command at a time when the database refuses the group for
//! good), then refresh the cache, announce the new availability to the api
//! replicas, publish the outcomes and ack, in that order. Nothing is acked
//! before it is committed.

use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use lapin::{
    Channel,
    message::Delivery,
    options::{BasicAckOptions, BasicRejectOptions},
};
use shared::{
    messages::{self, Command, Outcome, ReservationStatus},
    reconnect,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    consumer::{SessionError, Worker},
    deliveries,
    expiry::Expiry,
    fence,
    holds::Holds,
    lock::LockError,
    metrics, permanent,
    store::{self, DecideError, Decided},
};

#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Decide(#[from] DecideError),
    #[error("the decision did not commit within {0:?}; rolled back")]
    Deadline(Duration),
}

/// What a batch uses of the partition it came from: the event locks it
/// keeps, and the schedule of its holds.
#[derive(Clone, Copy)]
pub(crate) struct Partition<'a> {
    pub holds: &'a Holds,
    pub expiry: &'a Expiry,
}

impl Worker {
    pub(crate) async fn process(
        &self,
        batch: Vec<Delivery>,
        partition: Partition<'_>,
        replies: &Channel,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let metrics = metrics::get();
        metrics.batch(batch.len());
        let mut groups: Vec<(i64, Vec<(Delivery, Command)>)> = Vec::new();
        // The batch's last command: once every group is settled, one
        // cumulative ack up to it covers the batch (earlier batches are
        // settled, and what was dead-lettered is no longer outstanding).
        let mut last = None;
        for delivery in batch {
            let command = match messages::decode::<Command>(&delivery.data) {
                Ok(command) => command,
                Err(error) => {
                    tracing::warn!(%error, bytes = delivery.data.len(), "dead-lettering a message that is not a command");
                    metrics.dead_lettered_unparseable();
                    self.bounded(
                        "a reject",
                        delivery.acker.reject(BasicRejectOptions { requeue: false }),
                    )
                    .await?;
                    continue;
                }
            };
            last = Some(delivery.acker.clone());
            let event_id = command.event_id();
            match groups.iter_mut().find(|(id, _)| *id == event_id) {
                Some((_, items)) => items.push((delivery, command)),
                None => groups.push((event_id, vec![(delivery, command)])),
            }
        }
        let events: Vec<i64> = groups.iter().map(|(event, _)| *event).collect();
        partition.holds.prepare(&events).await;
        let settled: Result<(), SessionError> =
            futures::future::join_all(groups.into_iter().map(|(event_id, items)| {
                // One span per group: its lines, and each command's
                // "decided" line, share the batch id and the event.
                let span = tracing::info_span!(
                    "batch",
                    batch = %uuid::Uuid::new_v4().simple(),
                    event_id,
                );
                self.settle(event_id, items, partition, replies, shutdown)
                    .instrument(span)
            }))
            .await
            .into_iter()
            .collect();
        settled?;
        if let Some(last) = last {
            let ack = last.ack(BasicAckOptions { multiple: true });
            self.bounded("an ack", ack).await?;
        }
        Ok(())
    }

    /// Decides one event's commands, then reports them.
    async fn settle(
        &self,
        event_id: i64,
        items: Vec<(Delivery, Command)>,
        Partition { holds, expiry }: Partition<'_>,
        replies: &Channel,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let started = Instant::now();
        let started_at = std::time::SystemTime::now();
        let commands: Vec<Command> = items.iter().map(|(_, c)| c.clone()).collect();
        let decided = self
            .decide_until_done(event_id, &commands, true, holds, shutdown)
            .await?;
        let decided_in = started.elapsed();
        let metrics = metrics::get();
        let (refused, outcomes): (Vec<&Outcome>, Vec<&Outcome>) = decided
            .outcomes
            .iter()
            .chain(&decided.offers)
            .partition(|outcome| outcome.refused.is_some());
        metrics.decided(
            event_id,
            decided_in,
            outcomes.into_iter().map(|outcome| outcome.status),
            decided.availability.map(|(available, _)| available),
        );
        metrics.dead_lettered_refused(refused.len());
        if decided.webhooks > 0 {
            self.webhooks.notify_one();
        }
        expiry.observe(&decided.outcomes);
        expiry.observe(&decided.offers);
        if let Some((available, version)) = decided.availability {
            // Before the outcomes, so that a client reading availability
            // right after its answer sees its own reservation. Bounded, and
            // skipped while Redis is failing (the cache's breaker).
            self.cache.store(event_id, version, available).await;
            // Before the outcomes too, and on their channel, which keeps
            // the order: a replica other than the one that answers has
            // normally seen the new count before the client can ask it.
            let availability = messages::Availability {
                event_id,
                version,
                available,
            };
            deliveries::announce(&self.topology, &availability, replies).await;
        }
        deliveries::dead_letter_refused(&self.topology, &items, &decided.outcomes, replies).await;
        crate::failpoint::hit("after-commit");
        deliveries::reply(&items, &decided.outcomes, replies).await;
        crate::failpoint::hit("after-publish");
        let replied_in = started.elapsed();
        crate::traces::record(started_at, &items, &decided.outcomes);
        for ((delivery, _), outcome) in items.iter().zip(&decided.outcomes) {
            tracing::debug!(
                reservation_id = %outcome.reservation_id,
                request_id = messages::request_id(&delivery.properties).unwrap_or_default(),
                trace_id = messages::traceparent(&delivery.properties)
                    .and_then(|t| shared::trace_context::trace_id(&t))
                    .unwrap_or_default(),
                status = outcome.status.as_str(),
                "decided"
            );
        }
        let confirmed = count(&decided, ReservationStatus::Confirmed);
        let rejected = count(&decided, ReservationStatus::Rejected);
        tracing::info!(
            event_id,
            commands = commands.len(),
            confirmed,
            rejected,
            remaining = decided.availability.map(|(a, _)| a),
            decide_ms = decided_in.as_millis() as u64,
            reply_ms = (replied_in - decided_in).as_millis() as u64,
            "batch decided"
        );
        Ok(())
    }

    /// Retries until the group is committed: the commands stay unacked
    /// meanwhile, so an outage of etcd or MySQL delays them but loses none.
    /// When MySQL has failed this worker for longer than twice the decision
    /// deadline, the session ends instead and every command it holds goes
    /// back to the queue (another worker may reach MySQL).
    /// A group the database refuses for good (a constraint, not an outage)
    /// is decided again one command at a time, so that only the commands
    /// at fault are refused.
    async fn decide_until_done(
        &self,
        event_id: i64,
        commands: &[Command],
        keep: bool,
        holds: &Holds,
        shutdown: &CancellationToken,
    ) -> Result<Decided, SessionError> {
        let mut delays = reconnect::backoff().build();
        let hand_back_after = self.config.decide_timeout() * 2;
        let mut failing_since: Option<Instant> = None;
        loop {
            match self.attempt(event_id, commands, keep, holds).await {
                Ok(decided) => return Ok(decided),
                Err(AttemptError::Decide(DecideError::Db(error)))
                    if permanent::reason(&error).is_some() =>
                {
                    let reason = permanent::reason(&error).unwrap_or_default();
                    return match commands {
                        [command] => Ok(Decided {
                            outcomes: vec![permanent::refused(command, &reason)],
                            ..Decided::default()
                        }),
                        _ => {
                            self.decide_one_by_one(event_id, commands, holds, shutdown)
                                .await
                        }
                    };
                }
                Err(AttemptError::Decide(DecideError::StaleFence { stored, .. })) => {
                    metrics::get().fencing_rejected();
                    let mut etcd = self.etcd.clone();
                    if let Err(error) = self.epoch.reconcile(&self.db, &mut etcd, stored).await {
                        tracing::warn!(%error, "could not check the fencing epoch");
                    }
                    tracing::warn!(
                        event_id,
                        stored,
                        "write refused by a newer fencing token; retrying"
                    );
                }
                Err(
                    error @ (AttemptError::Deadline(_) | AttemptError::Decide(DecideError::Db(_))),
                ) => {
                    let failing = failing_since.get_or_insert_with(Instant::now).elapsed();
                    if failing > hand_back_after {
                        return Err(SessionError::DatabaseFailing(failing, error.to_string()));
                    }
                    tracing::warn!(event_id, %error, "could not decide; retrying");
                }
                Err(error) => tracing::warn!(event_id, %error, "could not decide; retrying"),
            }
            let delay = delays.next().unwrap_or(Duration::from_secs(5));
            tokio::select! {
                _ = shutdown.cancelled() => return Err(SessionError::ShuttingDown),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn decide_one_by_one(
        &self,
        event_id: i64,
        commands: &[Command],
        holds: &Holds,
        shutdown: &CancellationToken,
    ) -> Result<Decided, SessionError> {
        let mut all = Decided {
            outcomes: Vec::with_capacity(commands.len()),
            ..Decided::default()
        };
        for command in commands {
            let one = Box::pin(self.decide_until_done(
                event_id,
                std::slice::from_ref(command),
                false,
                holds,
                shutdown,
            ))
            .await?;
            all.outcomes.extend(one.outcomes);
            all.offers.extend(one.offers);
            all.webhooks += one.webhooks;
            all.availability = one.availability.or(all.availability);
        }
        Ok(all)
    }

    /// One try: the event's lock (kept from the previous batch when still
    /// ours), then the fenced transaction within its deadline.
    async fn attempt(
        &self,
        event_id: i64,
        commands: &[Command],
        keep: bool,
        holds: &Holds,
    ) -> Result<Decided, AttemptError> {
        let hold = holds.take(event_id).await?;
        crate::failpoint::pause(
            "after-token",
            format_args!("event {event_id}, token {}", hold.lock.token),
        );
        let token = fence::token(self.epoch.current(), hold.lock.token);
        let deadline = self.config.decide_timeout();
        // Dropping the transaction on the deadline rolls it back (the
        // connection is discarded), so the lock can go to another worker.
        let result = match tokio::time::timeout(
            deadline,
            store::decide(
                &self.db,
                event_id,
                token,
                commands,
                self.settings.current().default_hold_seconds(),
            ),
        )
        .await
        {
            Ok(result) => result.map_err(AttemptError::from),
            Err(_) => Err(AttemptError::Deadline(deadline)),
        };
        // Keep the lock for the event's next batch, unless the write failed
        // (a stale token means it is no longer ours).
        if keep && result.is_ok() {
            holds.keep(event_id, hold).await;
        } else {
            holds.release(hold).await;
        }
        result
    }
}

impl Worker {
    /// A broker call of the consume loop, bounded by the backend timeout.
    /// Found by `scripts/chaos restart-rabbitmq`: a worker whose
    /// connection was reset while it acked a batch waited on that ack for
    /// good, and its partition's commands with it (51 `inv5-lost`).
    /// Ending the session instead reconnects, and the broker redelivers
    /// what was not acked (deciding again is harmless).
    async fn bounded<T>(
        &self,
        what: &'static str,
        call: impl std::future::Future<Output = lapin::Result<T>>,
    ) -> Result<T, SessionError> {
        let limit = self.config.connections.backend_timeout();
        match tokio::time::timeout(limit, call).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(SessionError::BrokerSilent(what, limit)),
        }
    }
}

fn count(decided: &Decided, status: ReservationStatus) -> usize {
    decided
        .outcomes
        .iter()
        .filter(|o| o.status == status)
        .count()
}
