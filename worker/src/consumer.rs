//! The consume loop: take a batch of commands, group it by event, decide
//! each group under its lock, then (in this order) refresh the cache,
//! publish the outcomes and ack. Nothing is acked before it is committed, so
//! a crash at any point leads to redelivery, and redelivery to the stored
//! decision.

use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use futures::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, Consumer,
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        BasicRejectOptions,
    },
    types::FieldTable,
};
use sea_orm::DatabaseConnection;
use shared::{
    cache::AvailabilityCache,
    etcd::event_lock_name,
    messages::{self, Command, ReservationStatus},
    settings::LiveSettings,
    shutdown::reconnect_backoff,
    topology::Topology,
};
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    decide::{self, DecideError, Decided},
    lease::Lease,
    lock::{self, LockError},
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
}

pub struct Worker {
    pub config: Config,
    pub db: DatabaseConnection,
    pub etcd: etcd_client::Client,
    pub cache: AvailabilityCache,
    pub settings: LiveSettings,
    pub lease: Lease,
}

impl Worker {
    /// Consumes until `shutdown`, reconnecting to the broker as needed.
    pub async fn run(&self, shutdown: &CancellationToken) {
        let mut delays = reconnect_backoff().build();
        loop {
            let started = Instant::now();
            match self.session(shutdown).await {
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
            let batch = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                batch = next_batch(&mut consumer, size, settings.batch_linger) => batch?,
            };
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
        futures::future::join_all(
            groups
                .into_iter()
                .map(|(event_id, items)| self.settle(event_id, items, replies, shutdown)),
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
        replies: &Channel,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let started = Instant::now();
        let commands: Vec<Command> = items.iter().map(|(_, c)| c.clone()).collect();
        let decided = self
            .decide_until_done(event_id, &commands, shutdown)
            .await?;
        let decided_in = started.elapsed();
        if let Some((available, version)) = decided.availability {
            self.cache.store(event_id, version, available).await;
        }
        for ((delivery, _), outcome) in items.iter().zip(&decided.outcomes) {
            let Some(reply_to) = delivery.properties.reply_to() else {
                continue;
            };
            let properties = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_correlation_id(outcome.reservation_id.to_string().into());
            // Best effort: a lost outcome only makes its client poll.
            if let Err(error) = replies
                .basic_publish(
                    "".into(),
                    reply_to.clone(),
                    BasicPublishOptions::default(),
                    &messages::encode(outcome),
                    properties,
                )
                .await
            {
                tracing::warn!(%error, "could not publish an outcome");
            }
        }
        let replied_in = started.elapsed();
        for (delivery, _) in &items {
            delivery.acker.ack(BasicAckOptions::default()).await?;
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

    /// Retries until the group is committed: the commands stay unacked
    /// meanwhile, so an outage of etcd or MySQL delays them but loses none.
    async fn decide_until_done(
        &self,
        event_id: i64,
        commands: &[Command],
        shutdown: &CancellationToken,
    ) -> Result<Decided, SessionError> {
        let mut delays = reconnect_backoff().build();
        loop {
            match self.attempt(event_id, commands).await {
                Ok(decided) => return Ok(decided),
                Err(error) => tracing::warn!(event_id, %error, "could not decide; retrying"),
            }
            let delay = delays.next().unwrap_or(Duration::from_secs(5));
            tokio::select! {
                _ = shutdown.cancelled() => return Err(SessionError::ShuttingDown),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn attempt(&self, event_id: i64, commands: &[Command]) -> Result<Decided, AttemptError> {
        let started = Instant::now();
        let mut etcd = self.etcd.clone();
        let name = event_lock_name(&self.config.connections.namespace, event_id);
        let held = lock::acquire(
            &mut etcd,
            &name,
            self.lease.current(),
            self.config.lock_wait_timeout(),
        )
        .await?;
        let locked = Instant::now();
        tracing::debug!(
            event_id,
            lock_ms = (locked - started).as_millis() as u64,
            "lock acquired"
        );
        let result = decide::decide(&self.db, event_id, held.token, commands).await;
        let committed = Instant::now();
        lock::release(&mut etcd, held).await;
        tracing::debug!(
            event_id,
            transaction_ms = (committed - locked).as_millis() as u64,
            unlock_ms = committed.elapsed().as_millis() as u64,
            "lock hold"
        );
        Ok(result?)
    }
}

fn count(decided: &Decided, status: ReservationStatus) -> usize {
    decided
        .outcomes
        .iter()
        .filter(|o| o.status == status)
        .count()
}

/// Waits for one command, then gathers more until `size` or `linger`.
async fn next_batch(
    consumer: &mut Consumer,
    size: usize,
    linger: Duration,
) -> Result<Vec<Delivery>, SessionError> {
    let first = consumer.next().await.ok_or(SessionError::ConsumerEnded)??;
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
