//! RabbitMQ names and declarations. Both binaries declare the same topology
//! (declarations are idempotent), so either may start first.

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};

/// Queue and exchange names of one deployment namespace.
#[derive(Debug, Clone)]
pub struct Topology {
    pub commands: String,
    pub dead_letter_exchange: String,
    pub dead_letters: String,
    namespace: String,
    max_length: i64,
}

impl Topology {
    pub fn new(namespace: &str, max_length: i64) -> Self {
        Self {
            commands: format!("{namespace}.commands"),
            dead_letter_exchange: format!("{namespace}.dead"),
            dead_letters: format!("{namespace}.commands.dead"),
            namespace: namespace.to_owned(),
            max_length,
        }
    }

    /// Name of the private queue on which one api replica receives outcomes.
    pub fn reply_queue(&self, replica: uuid::Uuid) -> String {
        format!("{}.replies.{replica}", self.namespace)
    }

    /// Declares the durable command queue (quorum: replicated and
    /// fsync'ed before publisher confirms) and its dead-letter queue.
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
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
        channel
            .queue_declare(
                self.commands.as_str().into(),
                QueueDeclareOptions::durable(),
                arguments,
            )
            .await?;
        Ok(())
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
