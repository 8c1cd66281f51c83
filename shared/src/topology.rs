//! RabbitMQ names and declarations. Both binaries declare the same topology
//! (declarations are idempotent), so either may start first.
//!
//! Commands are partitioned by event: every command of an event goes to
//! the same one of `partitions` quorum queues, and each partition queue has
//! a single active consumer. So one worker at a time sees an event's
//! commands: it keeps the event's lock across batches and decides whole
//! batches of it, instead of passing the lock around with other workers
//! that each sit on part of the event's queue.
//!
//! After each commit the worker also tells every api replica the event's
//! new availability, through a fanout exchange into one small private
//! queue per replica, so that replicas answer availability reads from
//! memory (see the api's `availability` module).

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};

/// Availability messages one api replica's queue holds at most. A replica
/// that reads keeps it near empty; one that is stuck only needs the newest
/// message of each event, which dropping the oldest keeps.
pub const AVAILABILITY_QUEUE_MAX_LENGTH: i64 = 10_000;

/// Queue and exchange names of one deployment namespace.
#[derive(Debug, Clone)]
pub struct Topology {
    pub dead_letter_exchange: String,
    pub dead_letters: String,
    /// Fanout exchange of [`crate::messages::Availability`] messages.
    pub availability_exchange: String,
    namespace: String,
    max_length: i64,
    partitions: u16,
}

impl Topology {
    /// `max_length` bounds each partition queue; `partitions` (at least 1)
    /// must be the same for every process of a deployment.
    pub fn new(namespace: &str, max_length: i64, partitions: u16) -> Self {
        Self {
            dead_letter_exchange: format!("{namespace}.dead"),
            dead_letters: format!("{namespace}.commands.dead"),
            availability_exchange: format!("{namespace}.availability"),
            namespace: namespace.to_owned(),
            max_length,
            partitions: partitions.max(1),
        }
    }

    pub fn partitions(&self) -> u16 {
        self.partitions
    }

    /// The partition that carries every command of `event_id`.
    pub fn partition_of(&self, event_id: i64) -> u16 {
        // Event ids are dense and assigned in order, so a plain modulo
        // spreads consecutive events over every partition.
        event_id.rem_euclid(i64::from(self.partitions)) as u16
    }

    /// Name of one partition's command queue.
    pub fn partition_queue(&self, partition: u16) -> String {
        format!("{}.commands.{partition}", self.namespace)
    }

    /// Name of the command queue of `event_id`.
    pub fn command_queue(&self, event_id: i64) -> String {
        self.partition_queue(self.partition_of(event_id))
    }

    /// Every partition's command queue, in partition order.
    pub fn command_queues(&self) -> Vec<String> {
        (0..self.partitions)
            .map(|p| self.partition_queue(p))
            .collect()
    }

    /// Name of the private queue on which one api replica receives outcomes.
    pub fn reply_queue(&self, replica: uuid::Uuid) -> String {
        format!("{}.replies.{replica}", self.namespace)
    }

    /// Name of the private queue on which one api replica receives the
    /// availability fanout.
    pub fn availability_queue(&self, replica: uuid::Uuid) -> String {
        format!("{}.availability.{replica}", self.namespace)
    }

    /// Declares one api replica's availability queue and binds it to the
    /// fanout. It lives as long as the replica's connection (exclusive,
    /// auto-delete, not durable: the messages are hints, lost with a
    /// broker restart at no cost), and holds at most
    /// [`AVAILABILITY_QUEUE_MAX_LENGTH`] messages, dropping the oldest, so
    /// a replica that stops reading costs the broker bounded memory and,
    /// when it reads again, sees the newest counts first.
    pub async fn declare_availability_queue(
        &self,
        channel: &Channel,
        queue: &str,
    ) -> lapin::Result<()> {
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(AVAILABILITY_QUEUE_MAX_LENGTH),
        );
        arguments.insert("x-overflow".into(), long_string("drop-head"));
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                arguments,
            )
            .await?;
        channel
            .queue_bind(
                queue.into(),
                self.availability_exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
    }

    /// Declares the durable command queues (quorum: replicated and
    /// fsync'ed before publisher confirms; single active consumer) and
    /// their dead-letter queue, and the availability fanout.
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        channel
            .exchange_declare(
                self.availability_exchange.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.dead_letter_exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                self.dead_letters.as_str().into(),
                QueueDeclareOptions::durable(),
                quorum_arguments(),
            )
            .await?;
        channel
            .queue_bind(
                self.dead_letters.as_str().into(),
                self.dead_letter_exchange.as_str().into(),
                self.dead_letters.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        for queue in self.command_queues() {
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions::durable(),
                    self.command_queue_arguments(),
                )
                .await?;
        }
        Ok(())
    }

    fn command_queue_arguments(&self) -> FieldTable {
        let mut arguments = quorum_arguments();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            long_string(&self.dead_letter_exchange),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            long_string(&self.dead_letters),
        );
        arguments.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(self.max_length),
        );
        arguments.insert("x-overflow".into(), long_string("reject-publish"));
        arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        arguments
    }
}

fn quorum_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), long_string("quorum"));
    arguments
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_always_maps_to_the_same_partition_and_every_partition_is_used() {
        let topology = Topology::new("t", 10, 4);
        assert_eq!(topology.partition_of(6), topology.partition_of(6));
        let used: std::collections::BTreeSet<u16> =
            (1..=8).map(|e| topology.partition_of(e)).collect();
        assert_eq!(used.len(), 4);
        assert_eq!(topology.command_queue(5), "t.commands.1");
        assert!(topology.partition_of(-3) < 4);
    }

    #[test]
    fn zero_partitions_means_one() {
        let topology = Topology::new("t", 10, 0);
        assert_eq!(topology.command_queues(), vec!["t.commands.0".to_owned()]);
    }
}
