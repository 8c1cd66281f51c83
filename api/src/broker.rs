//! The api's link to RabbitMQ: publishes commands with publisher confirms
//! and consumes this replica's private reply queue, handing each outcome to
//! the requests waiting for it, and its private availability queue, feeding
//! the workers' announcements to the in-memory view and to the live page's
//! streams. A supervisor task reconnects after broker failures; meanwhile
//! publishing fails fast (the caller answers 503) and the view's counts age
//! out.
//!
//! A command whose publish was sent but never confirmed may or may not be
//! stored; its client is answered 202, so it must reach a decision. Such
//! commands are kept and published again (every second, and at once after
//! a reconnect) until the broker confirms one copy: the workers decide a
//! reservation id once, so a duplicate only returns the stored decision.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use futures::StreamExt;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties,
    options::{
        BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
    },
    types::FieldTable,
};
use shared::{
    messages::{self, Availability, Command, Origin, Reply},
    reconnect,
    topology::Topology,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{availability::AvailabilityView, live_feed::LiveFeed, waiters::Waiters};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("not connected to the broker")]
    NotConnected,
    /// The broker may or may not have stored the command.
    #[error("the broker did not confirm in time")]
    Unconfirmed,
    #[error("the broker refused the command (queue full)")]
    Refused,
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    #[error("the broker ended the reply consumer")]
    RepliesEnded,
    #[error("the broker ended the availability consumer")]
    AvailabilityEnded,
}

/// Commands kept for publishing again at most; past it an unconfirmed
/// command is only logged (its client still polls a pending id).
const RESEND_CAPACITY: usize = 100_000;

/// How often kept commands are published again while connected (the
/// first tick is at once, right after a reconnect).
const RESEND_EVERY: Duration = Duration::from_secs(1);

/// Kept commands published again per pass.
const RESEND_BATCH: usize = 512;

/// A command whose publish was not confirmed, and the request it came from.
struct Unconfirmed {
    command: Command,
    origin: Origin,
}

pub struct Broker {
    channel: RwLock<Option<Channel>>,
    /// A channel for reading queue depths only: a passive declare that
    /// fails closes its channel, which must never be the publisher's.
    monitor: RwLock<Option<Channel>>,
    resend: Mutex<VecDeque<Unconfirmed>>,
    pub waiters: Arc<Waiters>,
    view: Arc<AvailabilityView>,
    live: Arc<LiveFeed>,
    topology: Topology,
    reply_queue: String,
    availability_queue: String,
    publish_timeout: Duration,
}

impl Broker {
    pub fn new(
        topology: Topology,
        waiters: Arc<Waiters>,
        view: Arc<AvailabilityView>,
        live: Arc<LiveFeed>,
        publish_timeout: Duration,
    ) -> Arc<Self> {
        let replica = Uuid::new_v4();
        Arc::new(Self {
            channel: RwLock::new(None),
            monitor: RwLock::new(None),
            resend: Mutex::default(),
            waiters,
            view,
            live,
            reply_queue: topology.reply_queue(replica),
            availability_queue: topology.availability_queue(replica),
            topology,
            publish_timeout,
        })
    }

    pub fn is_connected(&self) -> bool {
        self.current_channel()
            .is_some_and(|channel| channel.status().connected())
    }

    fn current_channel(&self) -> Option<Channel> {
        self.channel
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set_channel(&self, channel: Option<Channel>) {
        *self
            .channel
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = channel;
    }

    fn set_monitor(&self, channel: Option<Channel>) {
        *self
            .monitor
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = channel;
    }

    /// The partition that carries `event_id`'s commands, and how many
    /// commands wait in it (the other events hashed to it included); `None`
    /// while the broker cannot say within the publish timeout.
    pub async fn queued(&self, event_id: i64) -> Option<(u16, u32)> {
        let channel = self
            .monitor
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()?;
        let partition = self.topology.partition_of(event_id);
        let declare = channel.queue_declare(
            self.topology.partition_queue(partition).as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        );
        let queue = tokio::time::timeout(self.publish_timeout, declare)
            .await
            .ok()?
            .ok()?;
        Some((partition, queue.message_count()))
    }

    /// Publishes a persistent command and waits for the broker's confirm, so
    /// `Ok` means the command is stored in the durable queue.
    /// `request_id` travels in the `x-request-id` header, and the current
    /// span's trace context (the request's) in `traceparent`, so that the
    /// worker's log lines and spans about the command name the HTTP
    /// request.
    /// `Unconfirmed` means it may be stored: it is kept and sent again
    /// until a copy is confirmed.
    pub async fn publish(
        &self,
        command: &Command,
        request_id: Option<&str>,
    ) -> Result<(), PublishError> {
        let origin = Origin {
            request_id: request_id.map(str::to_owned),
            traceparent: shared::trace_context::current(),
        };
        let result = self.publish_once(command, &origin).await;
        if let Err(PublishError::Unconfirmed) = result {
            self.keep_for_resend(Unconfirmed {
                command: command.clone(),
                origin,
            });
        }
        result
    }

    fn keep_for_resend(&self, unconfirmed: Unconfirmed) {
        let mut resend = self.resend.lock().unwrap_or_else(|p| p.into_inner());
        if resend.len() < RESEND_CAPACITY {
            resend.push_back(unconfirmed);
        } else {
            tracing::error!(
                reservation_id = %unconfirmed.command.reservation_id(),
                "too many unconfirmed commands to send again; this one may stay pending"
            );
        }
    }

    /// Publishes up to `RESEND_BATCH` kept commands again, at once (so a
    /// pass takes one publish timeout at most); those still not confirmed
    /// stay for the next pass.
    async fn resend_unconfirmed(&self) {
        let kept: Vec<Unconfirmed> = {
            let mut resend = self.resend.lock().unwrap_or_else(|p| p.into_inner());
            let count = resend.len().min(RESEND_BATCH);
            resend.drain(..count).collect()
        };
        if kept.is_empty() {
            return;
        }
        let results = futures::future::join_all(
            kept.iter()
                .map(|unconfirmed| self.publish_once(&unconfirmed.command, &unconfirmed.origin)),
        )
        .await;
        let (mut sent, total) = (0, kept.len());
        for (unconfirmed, result) in kept.into_iter().zip(results) {
            match result {
                Ok(()) => sent += 1,
                Err(_) => self.keep_for_resend(unconfirmed),
            }
        }
        tracing::info!(sent, of = total, "unconfirmed commands sent again");
    }

    async fn publish_once(&self, command: &Command, origin: &Origin) -> Result<(), PublishError> {
        let channel = self.current_channel().ok_or(PublishError::NotConnected)?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_reply_to(self.reply_queue.as_str().into())
            .with_correlation_id(command.reservation_id().to_string().into())
            .with_headers(messages::request_headers(origin));
        let payload = messages::encode(command);
        let queue = self.topology.command_queue(command.event_id());
        let confirm = async {
            let sent = channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &payload,
                    properties,
                )
                .await
                .map_err(PublishError::from)?;
            // Sent: from here on a failure leaves the command maybe stored.
            sent.await.map_err(|_| PublishError::Unconfirmed)
        };
        match tokio::time::timeout(self.publish_timeout, confirm).await {
            Err(_) => Err(PublishError::Unconfirmed),
            Ok(Err(error)) => Err(error),
            Ok(Ok(Confirmation::Ack(None))) => Ok(()),
            // Returned as unroutable: the queue does not exist (yet).
            Ok(Ok(Confirmation::Ack(Some(_)))) => Err(PublishError::NotConnected),
            Ok(Ok(Confirmation::Nack(_))) => Err(PublishError::Refused),
            Ok(Ok(Confirmation::NotRequested)) => Err(PublishError::Unconfirmed),
        }
    }

    /// Keeps a connection up until `shutdown`.
    pub async fn run(self: Arc<Self>, amqp_url: String, shutdown: CancellationToken) {
        reconnect::keep_up("broker connection", &shutdown, || async {
            let result = tokio::select! {
                () = shutdown.cancelled() => Ok(()),
                result = self.session(&amqp_url) => result,
            };
            self.set_channel(None);
            self.set_monitor(None);
            result
        })
        .await;
        if let Some(channel) = self.current_channel() {
            let _ = channel.close(200, "api stopping".into()).await;
        }
        self.set_channel(None);
    }

    /// One connection's life; it only ends with an error.
    async fn session(&self, amqp_url: &str) -> Result<(), SessionError> {
        let connection = Connection::connect(
            amqp_url,
            ConnectionProperties::default().with_connection_name("api".into()),
        )
        .await?;
        let publisher = connection.create_channel().await?;
        self.topology.declare(&publisher).await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let replies = connection.create_channel().await?;
        replies
            .queue_declare(
                self.reply_queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let mut consumer = replies
            .basic_consume(
                self.reply_queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        // Bound before the replica reports ready, so that it misses no
        // announcement of an event it has read meanwhile.
        let mut announcements = match self.view.is_enabled() || self.live.is_enabled() {
            true => Some(self.consume_availability(&replies).await?),
            false => None,
        };
        self.set_monitor(Some(connection.create_channel().await?));
        self.set_channel(Some(publisher));
        tracing::info!(reply_queue = %self.reply_queue, "connected to the broker");
        // Resending runs beside the replies, never in their way: a pass can
        // take a publish timeout, and waiting requests need their outcomes.
        // Announcements go first when both have arrived: a worker sends an
        // event's new count before its outcomes.
        tokio::select! {
            biased;
            result = self.relay_availability(announcements.as_mut()) => result,
            result = self.relay_replies(&mut consumer) => result,
            never = self.resend_while_connected() => match never {},
        }
    }

    /// Declares this replica's availability queue on `channel`, bound to
    /// the fanout, and consumes it.
    async fn consume_availability(&self, channel: &Channel) -> lapin::Result<lapin::Consumer> {
        self.topology
            .declare_availability_queue(channel, &self.availability_queue)
            .await?;
        channel
            .basic_consume(
                self.availability_queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
    }

    /// Feeds each announcement to the view and the live streams; only ends
    /// with an error, never when both are off (no consumer).
    async fn relay_availability(
        &self,
        consumer: Option<&mut lapin::Consumer>,
    ) -> Result<(), SessionError> {
        let Some(consumer) = consumer else {
            return std::future::pending().await;
        };
        while let Some(delivery) = consumer.next().await {
            let delivery = delivery?;
            match messages::decode::<Availability>(&delivery.data) {
                Ok(availability) => {
                    self.view.announce(&availability);
                    self.live.announce(&availability);
                }
                Err(error) => tracing::warn!(%error, "ignoring an unreadable announcement"),
            }
        }
        Err(SessionError::AvailabilityEnded)
    }

    /// Hands each outcome to the requests waiting for it; only ends with
    /// an error.
    async fn relay_replies(&self, consumer: &mut lapin::Consumer) -> Result<(), SessionError> {
        while let Some(delivery) = consumer.next().await {
            let delivery = delivery?;
            match messages::decode::<Reply>(&delivery.data) {
                Ok(reply) => {
                    let mut expired = None;
                    for outcome in reply.into_outcomes() {
                        // Before its client can read again here: the count
                        // it learns must not be older than what the view
                        // serves next, whatever order the announcement and
                        // this reply came in.
                        if expired != Some(outcome.event_id) {
                            self.view.expire(outcome.event_id);
                            expired = Some(outcome.event_id);
                        }
                        self.waiters.resolve(&outcome);
                    }
                }
                Err(error) => tracing::warn!(%error, "ignoring an unreadable reply"),
            }
        }
        Err(SessionError::RepliesEnded)
    }

    async fn resend_while_connected(&self) -> std::convert::Infallible {
        let mut tick = tokio::time::interval(RESEND_EVERY);
        loop {
            tick.tick().await;
            self.resend_unconfirmed().await;
        }
    }
}
