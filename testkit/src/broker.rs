//! Direct access to a test deployment's queues, for tests that must put on
//! the command queue what the api never would, and look at what the workers
//! dead-lettered.

use std::time::{Duration, Instant};

use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions},
    types::{AMQPValue, FieldTable},
};
use shared::topology::Topology;

use crate::app::{COMMAND_PARTITIONS, TestApp, env};

/// A dead-lettered message: its body and its `x-death-reason`-style header
/// set by the worker, if any.
#[derive(Debug)]
pub struct DeadLetter {
    pub body: Vec<u8>,
    pub reason: Option<String>,
}

impl TestApp {
    fn topology(&self) -> Topology {
        Topology::new(&self.namespace, 100_000, COMMAND_PARTITIONS)
    }

    async fn broker_channel(&self) -> (Connection, lapin::Channel) {
        let connection = Connection::connect(&env("AMQP_URL"), ConnectionProperties::default())
            .await
            .expect("connect to RabbitMQ");
        let channel = connection.create_channel().await.expect("channel");
        self.topology()
            .declare(&channel)
            .await
            .expect("declare the topology");
        (connection, channel)
    }

    /// Publishes `body` as is on the command queue of `event_id`,
    /// persistent and confirmed.
    pub async fn publish_raw(&self, event_id: i64, body: &[u8]) {
        let (connection, channel) = self.broker_channel().await;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm mode");
        channel
            .basic_publish(
                "".into(),
                self.topology().command_queue(event_id).as_str().into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        connection.close(200, "done".into()).await.ok();
    }

    /// Waits up to `patience` for `count` dead letters and takes them off
    /// the dead-letter queue.
    pub async fn dead_letters(&self, count: usize, patience: Duration) -> Vec<DeadLetter> {
        let (connection, channel) = self.broker_channel().await;
        let queue = self.topology().dead_letters;
        let deadline = Instant::now() + patience;
        let mut found = Vec::new();
        while found.len() < count && Instant::now() < deadline {
            match channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic.get")
            {
                Some(message) => {
                    let headers = message
                        .delivery
                        .properties
                        .headers()
                        .clone()
                        .unwrap_or_else(FieldTable::default);
                    found.push(DeadLetter {
                        body: message.delivery.data.clone(),
                        reason: reason(&headers),
                    });
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        connection.close(200, "done".into()).await.ok();
        found
    }
}

fn reason(headers: &FieldTable) -> Option<String> {
    match headers.inner().get("x-refused-reason")? {
        AMQPValue::LongString(text) => Some(text.to_string()),
        AMQPValue::ShortString(text) => Some(text.to_string()),
        _ => None,
    }
}
