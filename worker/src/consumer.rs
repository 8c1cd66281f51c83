//! The consume loop: take a batch of commands, group it by event, decide
//! each group under its lock, then (in this order) refresh the cache,
//! publish the outcomes and ack. Nothing is acked before it is committed, so
//! a crash at any point leads to redelivery, and redelivery to the stored
//! decision.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use backon::BackoffBuilder;
use futures::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, Consumer,
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        BasicRejectOptions,
    },
    types::{AMQPValue, FieldTable, ShortString},
};
use sea_orm::DatabaseConnection;
use shared::{
    cache::AvailabilityCache,
    etcd::event_lock_name,
    messages::{self, Command, Outcome, Reply, ReservationStatus},
    settings::LiveSettings,
    shutdown::reconnect_backoff,
    topology::Topology,
};
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    fence::{self, Epoch},
    lease::Lease,
    lock::{self, HeldLock, LockError},
    permanent,
    store::{self, DecideError, Decided},
};

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker ended our consumer")]
    ConsumerEnded,
    #[error("shutting down")]
    ShuttingDown,
}

#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Decide(#[from] DecideError),
    #[error("the decision did not commit within {0:?}; rolled back")]
    Deadline(Duration),
}

pub struct Worker {
    config: Config,
    db: DatabaseConnection,
    etcd: etcd_client::Client,
    cache: AvailabilityCache,
    settings: LiveSettings,
    lease: Lease,
    epoch: Epoch,
    /// Event locks kept between batches: while one event stays busy, its
    /// next batch needs no etcd round trip. Bounded in time (see `attempt`)
    /// so that other workers waiting for the lock get their turn.
    holds: tokio::sync::Mutex<HashMap<i64, Hold>>,
}

struct Hold {
    lock: HeldLock,
    acquired: Instant,
}

impl Worker {
    pub fn new(
        config: Config,
        db: DatabaseConnection,
        etcd: etcd_client::Client,
        cache: AvailabilityCache,
        settings: LiveSettings,
        lease: Lease,
        epoch: Epoch,
    ) -> Self {
        Self {
            config,
            db,
            etcd,
            cache,
            settings,
            lease,
            epoch,
            holds: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Releases one lock; if that fails the lock may linger, so the lease it
    /// hangs on is given up and it dies with it.
    async fn release(&self, etcd: &mut etcd_client::Client, lock: HeldLock) {
        if !lock::release(etcd, lock).await {
            self.lease.abandon();
        }
    }

    /// Releases every kept lock (idle, or stopping).
    async fn release_holds(&self) {
        self.release_holds_except(None).await;
    }

    /// Releases every kept lock but `event`'s.
    async fn release_holds_except(&self, event: Option<i64>) {
        let holds: Vec<Hold> = {
            let mut holds = self.holds.lock().await;
            let unused: Vec<i64> = holds
                .keys()
                .copied()
                .filter(|e| Some(*e) != event)
                .collect();
            unused.iter().filter_map(|e| holds.remove(e)).collect()
        };
        let mut etcd = self.etcd.clone();
        for hold in holds {
            self.release(&mut etcd, hold.lock).await;
        }
    }

    /// Consumes until `shutdown`, reconnecting to the broker as needed.
    pub async fn run(&self, shutdown: &CancellationToken) {
        let mut delays = reconnect_backoff().build();
        loop {
            let started = Instant::now();
            let result = self.session(shutdown).await;
            // Whatever ended the session, no batch is in progress: hand the
            // kept locks back rather than make other workers wait them out.
            self.release_holds().await;
            match result {
                Ok(()) | Err(SessionError::ShuttingDown) => return,
                Err(error) => tracing::warn!(%error, "broker session ended"),
            }
            if started.elapsed() > Duration::from_secs(30) {
                delays = reconnect_backoff().build();
            }
            let delay = delays.next().unwrap_or(Duration::from_secs(5));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn session(&self, shutdown: &CancellationToken) -> Result<(), SessionError> {
        let connection = Connection::connect(
            &self.config.connections.amqp_url,
            ConnectionProperties::default().with_connection_name("worker".into()),
        )
        .await?;
        let result = self.consume(&connection, shutdown).await;
        // Closing hands every unacknowledged command back to the queue.
        if let Err(error) = connection.close(200, "worker stopping".into()).await {
            tracing::debug!(%error, "closing the broker connection");
        }
        result
    }

    async fn consume(
        &self,
        connection: &Connection,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let topology = Topology::new(
            &self.config.connections.namespace,
            self.config.connections.command_queue_max_length,
        );
        let channel = connection.create_channel().await?;
        topology.declare(&channel).await?;
        channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        let replies = connection.create_channel().await?;
        let mut consumer = channel
            .basic_consume(
                topology.commands.as_str().into(),
                format!("worker-{}", uuid::Uuid::new_v4()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = %topology.commands, prefetch = self.config.prefetch, "consuming commands");
        loop {
            let settings = self.settings.current();
            let size = settings
                .batch_size
                .min(usize::from(self.config.prefetch.max(1)));
            let idle_release = if self.holds.lock().await.is_empty() {
                None
            } else {
                Some(self.config.lock_idle_release())
            };
            // Waiting for a first command is cancel-safe; gathering the rest
            // of a batch is bounded by the linger and never cancelled, so no
            // received delivery is ever dropped unanswered.
            let first = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                first = next_or_idle(&mut consumer, idle_release) => first,
            };
            let Some(first) = first else {
                self.release_holds().await;
                continue;
            };
            let first = first.ok_or(SessionError::ConsumerEnded)??;
            let batch = fill_batch(first, &mut consumer, size, settings.batch_linger).await?;
            self.process(batch, &replies, shutdown).await?;
        }
    }

    async fn process(
        &self,
        batch: Vec<Delivery>,
        replies: &Channel,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let mut groups: Vec<(i64, Vec<(Delivery, Command)>)> = Vec::new();
        for delivery in batch {
            let command = match messages::decode::<Command>(&delivery.data) {
                Ok(command) => command,
                Err(error) => {
                    tracing::warn!(%error, bytes = delivery.data.len(), "dead-lettering a message that is not a command");
                    delivery
                        .acker
                        .reject(BasicRejectOptions { requeue: false })
                        .await?;
                    continue;
                }
            };
            let event_id = command.event_id();
            match groups.iter_mut().find(|(id, _)| *id == event_id) {
                Some((_, items)) => items.push((delivery, command)),
                None => groups.push((event_id, vec![(delivery, command)])),
            }
        }
        // A kept lock must never be held while this worker waits for another
        // one, or two workers keeping each other's event could wait on each
        // other forever. So locks are only kept across single-event batches,
        // and every kept lock this batch does not use goes back first.
        let keep = groups.len() == 1;
        self.release_holds_except(groups.first().map(|(event, _)| *event).filter(|_| keep))
            .await;
        futures::future::join_all(
            groups
                .into_iter()
                .map(|(event_id, items)| self.settle(event_id, items, keep, replies, shutdown)),
        )
        .await
        .into_iter()
        .collect()
    }

    /// Decides one event's commands, then reports and acknowledges them.
    async fn settle(
        &self,
        event_id: i64,
        items: Vec<(Delivery, Command)>,
        keep: bool,
        replies: &Channel,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let started = Instant::now();
        let commands: Vec<Command> = items.iter().map(|(_, c)| c.clone()).collect();
        let decided = self
            .decide_until_done(event_id, &commands, keep, shutdown)
            .await?;
        let decided_in = started.elapsed();
        if let Some((available, version)) = decided.availability {
            // Before the outcomes, so that a client reading availability
            // right after its answer sees its own reservation. Bounded, and
            // skipped while Redis is failing (the cache's breaker).
            self.cache.store(event_id, version, available).await;
        }
        self.dead_letter_refused(&items, &decided.outcomes, replies)
            .await;
        crate::failpoint::hit("after-commit");
        for (reply_to, outcomes) in by_reply_queue(&items, &decided.outcomes) {
            let properties =
                BasicProperties::default().with_content_type("application/json".into());
            // Best effort: a lost outcome only makes its client poll.
            if let Err(error) = replies
                .basic_publish(
                    "".into(),
                    reply_to,
                    BasicPublishOptions::default(),
                    &messages::encode(&Reply::Batch { outcomes }),
                    properties,
                )
                .await
            {
                tracing::warn!(%error, "could not publish outcomes");
            }
        }
        crate::failpoint::hit("after-publish");
        let replied_in = started.elapsed();
        if keep {
            // The whole batch is this group, and every earlier batch is
            // settled: one cumulative ack up to the last tag covers it.
            if let Some((last, _)) = items.last() {
                last.acker.ack(BasicAckOptions { multiple: true }).await?;
            }
        } else {
            for (delivery, _) in &items {
                delivery.acker.ack(BasicAckOptions::default()).await?;
            }
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
            ack_ms = (started.elapsed() - replied_in).as_millis() as u64,
            "batch decided"
        );
        Ok(())
    }

    /// Puts a copy of each command the database refused for good on the
    /// dead-letter queue, with the reason in its `x-refused-reason` header;
    /// the original is then acked with the rest of the batch. Best effort:
    /// a copy that cannot be published is logged whole.
    async fn dead_letter_refused(
        &self,
        items: &[(Delivery, Command)],
        outcomes: &[Outcome],
        channel: &Channel,
    ) {
        let topology = Topology::new(
            &self.config.connections.namespace,
            self.config.connections.command_queue_max_length,
        );
        for ((delivery, command), outcome) in items.iter().zip(outcomes) {
            let Some(reason) = &outcome.refused else {
                continue;
            };
            tracing::error!(
                ?command,
                reason,
                "dead-lettering a command the database refused"
            );
            let mut headers = FieldTable::default();
            headers.insert(
                "x-refused-reason".into(),
                AMQPValue::LongString(reason.as_str().into()),
            );
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(headers);
            if let Err(error) = channel
                .basic_publish(
                    topology.dead_letter_exchange.as_str().into(),
                    topology.dead_letters.as_str().into(),
                    BasicPublishOptions::default(),
                    &delivery.data,
                    properties,
                )
                .await
            {
                tracing::error!(%error, ?command, "could not dead-letter a refused command");
            }
        }
    }

    /// Retries until the group is committed: the commands stay unacked
    /// meanwhile, so an outage of etcd or MySQL delays them but loses none.
    /// A group the database refuses for good (a constraint, not an outage)
    /// is decided again one command at a time, so that only the commands
    /// at fault are refused.
    async fn decide_until_done(
        &self,
        event_id: i64,
        commands: &[Command],
        keep: bool,
        shutdown: &CancellationToken,
    ) -> Result<Decided, SessionError> {
        let mut delays = reconnect_backoff().build();
        loop {
            match self.attempt(event_id, commands, keep).await {
                Ok(decided) => return Ok(decided),
                Err(AttemptError::Decide(DecideError::Db(error)))
                    if permanent::reason(&error).is_some() =>
                {
                    let reason = permanent::reason(&error).unwrap_or_default();
                    return match commands {
                        [command] => Ok(Decided {
                            outcomes: vec![permanent::refused(command, &reason)],
                            availability: None,
                        }),
                        _ => self.decide_one_by_one(event_id, commands, shutdown).await,
                    };
                }
                Err(AttemptError::Decide(DecideError::StaleFence { stored, .. })) => {
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
        shutdown: &CancellationToken,
    ) -> Result<Decided, SessionError> {
        let mut all = Decided {
            outcomes: Vec::with_capacity(commands.len()),
            availability: None,
        };
        for command in commands {
            let one = Box::pin(self.decide_until_done(
                event_id,
                std::slice::from_ref(command),
                false,
                shutdown,
            ))
            .await?;
            all.outcomes.extend(one.outcomes);
            all.availability = one.availability.or(all.availability);
        }
        Ok(all)
    }

    /// One try: the event's lock (kept from the previous batch when still
    /// ours), then the fenced transaction.
    async fn attempt(
        &self,
        event_id: i64,
        commands: &[Command],
        keep: bool,
    ) -> Result<Decided, AttemptError> {
        let started = Instant::now();
        let mut etcd = self.etcd.clone();
        let lease = self.lease.current();
        let kept = self.holds.lock().await.remove(&event_id);
        let hold = match kept {
            Some(hold) if Some(hold.lock.lease) == lease => hold,
            stale => {
                if let Some(stale) = stale {
                    self.release(&mut etcd, stale.lock).await;
                }
                let name = event_lock_name(&self.config.connections.namespace, event_id);
                let lock =
                    lock::acquire(&mut etcd, &name, lease, self.config.lock_wait_timeout()).await?;
                tracing::debug!(
                    event_id,
                    lock_ms = started.elapsed().as_millis() as u64,
                    "lock acquired"
                );
                Hold {
                    lock,
                    acquired: Instant::now(),
                }
            }
        };
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
            store::decide(&self.db, event_id, token, commands),
        )
        .await
        {
            Ok(result) => result.map_err(AttemptError::from),
            Err(_) => Err(AttemptError::Deadline(deadline)),
        };
        // Keep the lock for the event's next batch, unless the write failed
        // (a stale token means it is no longer ours) or it has been held for
        // long enough that a waiting worker deserves its turn.
        if keep && result.is_ok() {
            let hold = self.renew_unless_awaited(&mut etcd, event_id, hold).await;
            if let Some(hold) = hold {
                self.holds.lock().await.insert(event_id, hold);
            }
        } else {
            self.release(&mut etcd, hold.lock).await;
        }
        result
    }

    /// A kept lock past its maximum hold goes to the next worker in line; if
    /// there is none, handing it over would only cost two raft writes (an
    /// unlock and a lock) for nothing, so this worker starts a new hold. A
    /// maximum hold of zero means one hold per batch, always released.
    async fn renew_unless_awaited(
        &self,
        etcd: &mut etcd_client::Client,
        event_id: i64,
        mut hold: Hold,
    ) -> Option<Hold> {
        let max_hold = self.config.lock_max_hold();
        if hold.acquired.elapsed() < max_hold {
            return Some(hold);
        }
        if max_hold.is_zero() {
            self.release(etcd, hold.lock).await;
            return None;
        }
        let name = event_lock_name(&self.config.connections.namespace, event_id);
        if lock::others_waiting(etcd, &name, self.config.connections.backend_timeout()).await {
            self.release(etcd, hold.lock).await;
            return None;
        }
        hold.acquired = Instant::now();
        Some(hold)
    }
}

/// The outcomes to send, grouped by the reply queue of the api replica
/// each command came through; commands without one are not waited for.
fn by_reply_queue(
    items: &[(Delivery, Command)],
    outcomes: &[Outcome],
) -> Vec<(ShortString, Vec<Outcome>)> {
    let mut groups: Vec<(ShortString, Vec<Outcome>)> = Vec::new();
    for ((delivery, _), outcome) in items.iter().zip(outcomes) {
        let Some(reply_to) = delivery.properties.reply_to() else {
            continue;
        };
        match groups.iter_mut().find(|(queue, _)| queue == reply_to) {
            Some((_, group)) => group.push(outcome.clone()),
            None => groups.push((reply_to.clone(), vec![outcome.clone()])),
        }
    }
    groups
}

fn count(decided: &Decided, status: ReservationStatus) -> usize {
    decided
        .outcomes
        .iter()
        .filter(|o| o.status == status)
        .count()
}

/// The next delivery, or `None` if `idle` passes first.
async fn next_or_idle(
    consumer: &mut Consumer,
    idle: Option<Duration>,
) -> Option<Option<lapin::Result<Delivery>>> {
    match idle {
        Some(idle) => tokio::time::timeout(idle, consumer.next()).await.ok(),
        None => Some(consumer.next().await),
    }
}

/// Gathers more commands after `first` until `size` or `linger`.
async fn fill_batch(
    first: Delivery,
    consumer: &mut Consumer,
    size: usize,
    linger: Duration,
) -> Result<Vec<Delivery>, SessionError> {
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + linger;
    while batch.len() < size {
        match tokio::time::timeout_at(deadline, consumer.next()).await {
            Ok(Some(delivery)) => batch.push(delivery?),
            Ok(None) | Err(_) => break,
        }
    }
    Ok(batch)
}
