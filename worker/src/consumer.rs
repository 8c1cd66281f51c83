//! The consume loop. A broker session consumes the command partitions this
//! worker is assigned (`membership`), one channel and consumer per
//! partition, and follows the assignment as workers join and leave: a
//! partition that moves away finishes its batch, then its channel closes,
//! which hands every command it had prefetched back to the queue for the
//! partition's next consumer. Each partition keeps its own event locks,
//! since its events are its own.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::{StreamExt, stream::FuturesUnordered};
use lapin::{
    Channel, Connection, ConnectionProperties,
    options::{BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions},
    types::FieldTable,
    uri::AMQPUri,
};
use sea_orm::DatabaseConnection;
use shared::{cache::AvailabilityCache, reconnect, settings::LiveSettings, topology::Topology};
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    decision::Partition,
    deliveries,
    expiry::Expiry,
    fence::Epoch,
    holds::Holds,
    http::Readiness,
    lease::Lease,
    membership::{self, Membership},
    metrics,
};

#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker ended our consumer")]
    ConsumerEnded,
    #[error("shutting down")]
    ShuttingDown,
    /// MySQL did not let this worker decide for a while: its commands go
    /// back to the queue, for workers that can, until MySQL answers again.
    #[error("handing commands back: the database has failed for {0:?} ({1})")]
    DatabaseFailing(Duration, String),
    #[error("the database does not answer: {0}")]
    DatabaseDown(String),
    #[error("AMQP_URL: {0}")]
    BrokerUrl(String),
    #[error("the partition assignment stopped")]
    AssignmentEnded,
    /// lapin can leave a call's answer pending for good when the
    /// connection dies at that moment; the session ends instead.
    #[error("the broker did not answer {0} within {1:?}")]
    BrokerSilent(&'static str, Duration),
}

pub struct Worker {
    pub(crate) config: Config,
    pub(crate) db: DatabaseConnection,
    pub(crate) etcd: etcd_client::Client,
    pub(crate) cache: AvailabilityCache,
    pub(crate) settings: LiveSettings,
    pub(crate) epoch: Epoch,
    pub(crate) topology: Topology,
    membership: Membership,
    /// One set of kept locks per partition, indexed by partition.
    holds: Vec<Holds>,
    lease: Lease,
    /// Whether a broker session is connected (for `/readyz`).
    broker_connected: Arc<AtomicBool>,
    /// Wakes the webhook dispatcher when a decision wrote deliveries.
    pub(crate) webhooks: Arc<tokio::sync::Notify>,
}

impl Worker {
    /// Also starts following the worker membership, which decides the
    /// partitions this worker consumes.
    pub fn new(
        config: Config,
        db: DatabaseConnection,
        etcd: etcd_client::Client,
        cache: AvailabilityCache,
        settings: LiveSettings,
        lease: Lease,
        epoch: Epoch,
    ) -> Self {
        let topology = config.connections.topology();
        let membership = membership::spawn(
            etcd.clone(),
            lease.clone(),
            &config.connections.namespace,
            config.name.as_deref(),
            topology.partitions(),
            config.connections.backend_timeout(),
        );
        let holds = (0..topology.partitions())
            .map(|_| {
                Holds::new(
                    etcd.clone(),
                    lease.clone(),
                    &config.connections.namespace,
                    config.lock_wait_timeout(),
                    config.lock_max_hold(),
                    config.lock_idle_release(),
                    config.connections.backend_timeout(),
                )
            })
            .collect();
        Self {
            config,
            db,
            etcd,
            cache,
            settings,
            epoch,
            topology,
            membership,
            holds,
            lease,
            broker_connected: Arc::default(),
            webhooks: Arc::default(),
        }
    }

    /// What the worker's `/readyz` reports.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            broker: self.broker_connected.clone(),
            lease: self.lease.clone(),
            member: self.membership.availability(),
        }
    }

    /// What wakes the webhook dispatcher: this worker's decisions that
    /// wrote deliveries to the outbox.
    pub fn webhook_signal(&self) -> Arc<tokio::sync::Notify> {
        self.webhooks.clone()
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Consumes until `shutdown`, reconnecting to the broker as needed.
    pub async fn run(&self, shutdown: &CancellationToken) {
        reconnect::keep_up("broker session", shutdown, || async {
            let result = self.session(shutdown).await;
            if matches!(
                result,
                Err(SessionError::DatabaseDown(_) | SessionError::DatabaseFailing(..))
            ) {
                // Its partitions go to workers that can decide, until this
                // one reaches MySQL again.
                self.membership.set_available(false);
            }
            // Whatever ended the session, no batch is in progress: hand the
            // kept locks back rather than make other workers wait them out.
            for holds in &self.holds {
                holds.release_all().await;
            }
            match result {
                Ok(()) | Err(SessionError::ShuttingDown) => Ok(()),
                Err(error) => Err(error),
            }
        })
        .await;
    }

    async fn session(&self, shutdown: &CancellationToken) -> Result<(), SessionError> {
        // No commands are taken while this worker cannot reach MySQL: they
        // would only wait in its prefetch while other workers could decide
        // them.
        let timeout = self.config.connections.backend_timeout();
        match tokio::time::timeout(timeout, self.db.ping()).await {
            Ok(Ok(())) => self.membership.set_available(true),
            Ok(Err(error)) => return Err(SessionError::DatabaseDown(error.to_string())),
            Err(_) => {
                return Err(SessionError::DatabaseDown(format!(
                    "no answer in {timeout:?}"
                )));
            }
        }
        let mut uri: AMQPUri = self
            .config
            .connections
            .amqp_url
            .parse()
            .map_err(SessionError::BrokerUrl)?;
        uri.query.heartbeat = Some(self.config.heartbeat_secs);
        let connection = Connection::connect_uri(
            uri,
            ConnectionProperties::default().with_connection_name("worker".into()),
        )
        .await?;
        self.broker_connected.store(true, Ordering::Relaxed);
        // The sampler never ends by itself: it stops with the session.
        let result = tokio::select! {
            result = self.consume_assigned(&connection, shutdown) => result,
            () = metrics::sample(&connection, &self.topology, self.membership.assignment.clone()) => Ok(()),
        };
        self.broker_connected.store(false, Ordering::Relaxed);
        // Closing hands every unacknowledged command back to the queue (as
        // does a connection that died, which may never answer the close).
        let closing = connection.close(200, "worker stopping".into());
        match tokio::time::timeout(timeout, closing).await {
            Ok(Err(error)) => tracing::debug!(%error, "closing the broker connection"),
            Err(_) => tracing::debug!("the broker did not answer the close"),
            Ok(Ok(())) => {}
        }
        result
    }

    /// Consumes the assigned partitions, starting and stopping partitions
    /// as the assignment changes. One partition failing ends the session:
    /// the others finish their batch first.
    async fn consume_assigned(
        &self,
        connection: &Connection,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let setup = connection.create_channel().await?;
        self.topology.declare(&setup).await?;
        let replies = &connection.create_channel().await?;
        let mut assignment = self.membership.assignment.clone();
        // The partitions being consumed, each with the generation of its
        // consumer: a partition that moves away and back before its old
        // consumer has finished runs a second one, and only the newest
        // counts as running.
        let mut running: HashMap<u16, (u64, CancellationToken)> = HashMap::new();
        let mut generation = 0u64;
        let mut partitions = FuturesUnordered::new();
        let mut failure = None;
        loop {
            if failure.is_none() && !shutdown.is_cancelled() {
                let wanted = assignment.borrow_and_update().clone();
                running.retain(|partition, (_, stop)| {
                    let keep = wanted.contains(partition);
                    if !keep {
                        stop.cancel();
                    }
                    keep
                });
                for partition in wanted {
                    if running.contains_key(&partition) {
                        continue;
                    }
                    generation += 1;
                    let stop = shutdown.child_token();
                    running.insert(partition, (generation, stop.clone()));
                    partitions.push(async move {
                        let result = self
                            .consume_partition(connection, partition, replies, &stop)
                            .await;
                        (partition, generation, stop.is_cancelled(), result)
                    });
                }
            }
            tokio::select! {
                ended = partitions.next(), if !partitions.is_empty() => {
                    let Some((partition, generation, stopped, result)) = ended else { continue };
                    if running.get(&partition).is_some_and(|(current, _)| *current == generation) {
                        running.remove(&partition);
                    }
                    match result {
                        Ok(()) | Err(SessionError::ShuttingDown) if stopped => {}
                        Ok(()) => failure = failure.or(Some(SessionError::ConsumerEnded)),
                        Err(error) => failure = failure.or(Some(error)),
                    }
                    if failure.is_some() {
                        running.values().for_each(|(_, stop)| stop.cancel());
                    }
                }
                changed = assignment.changed(), if failure.is_none() && !shutdown.is_cancelled() => {
                    if changed.is_err() {
                        failure = Some(SessionError::AssignmentEnded);
                        running.values().for_each(|(_, stop)| stop.cancel());
                    }
                }
                () = shutdown.cancelled(), if !shutdown.is_cancelled() => {}
            }
            if partitions.is_empty() && (failure.is_some() || shutdown.is_cancelled()) {
                return failure.map_or(Ok(()), Err);
            }
        }
    }

    /// Consumes one partition until `stop`, then closes its channel so that
    /// what it had prefetched goes back to the queue. Meanwhile it sends
    /// the partition's holds their expiry as they come due.
    async fn consume_partition(
        &self,
        connection: &Connection,
        partition: u16,
        replies: &Channel,
        stop: &CancellationToken,
    ) -> Result<(), SessionError> {
        let queue = self.topology.partition_queue(partition);
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                format!("worker-{}", uuid::Uuid::new_v4()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(%queue, prefetch = self.config.prefetch, "consuming a command partition");
        let holds = &self.holds[usize::from(partition)];
        let expiry = Expiry::default();
        let expiries = connection.create_channel().await?;
        expiries
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        // The sender never ends by itself: it stops when consuming does.
        let result = tokio::select! {
            result = self.consume(&mut consumer, holds, &expiry, replies, stop) => result,
            () = expiry.run(&self.db, &self.topology, partition, &expiries) => Ok(()),
        };
        if let Err(error) = expiries.close(200, "partition moved".into()).await {
            tracing::debug!(%error, %queue, "closing a partition's expiry channel");
        }
        holds.release_all().await;
        if let Err(error) = channel.close(200, "partition moved".into()).await {
            tracing::debug!(%error, %queue, "closing a partition's channel");
        }
        tracing::info!(%queue, "stopped consuming a command partition");
        result
    }

    async fn consume(
        &self,
        consumer: &mut lapin::Consumer,
        holds: &Holds,
        expiry: &Expiry,
        replies: &Channel,
        stop: &CancellationToken,
    ) -> Result<(), SessionError> {
        loop {
            let settings = self.settings.current();
            let size = settings
                .batch_size
                .min(usize::from(self.config.prefetch.max(1)));
            let idle_release = if holds.is_empty().await {
                None
            } else {
                Some(self.config.lock_idle_release())
            };
            // Waiting for a first command is cancel-safe; gathering the rest
            // of a batch is bounded by the linger and never cancelled, so no
            // received delivery is ever dropped unanswered.
            let first = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                first = deliveries::next_or_idle(consumer, idle_release) => first,
            };
            let Some(first) = first else {
                holds.release_all().await;
                continue;
            };
            let first = first.ok_or(SessionError::ConsumerEnded)??;
            let batch =
                deliveries::fill_batch(first, consumer, size, settings.batch_linger).await?;
            self.process(batch, Partition { holds, expiry }, replies, stop)
                .await?;
        }
    }
}
