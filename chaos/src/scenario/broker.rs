//! The scenarios' own way into RabbitMQ: this deployment's queue names
//! (through [`Topology`]) and the length of a queue.

use lapin::{
    Channel, Connection, ConnectionProperties, options::QueueDeclareOptions, types::FieldTable,
};
use shared::topology::Topology;

/// This deployment's queue names, and a broker connection with one channel
/// (close the connection when done).
pub(super) async fn connect(namespace: &str) -> anyhow::Result<(Topology, Connection, Channel)> {
    // The length bound only matters when declaring; only names are used.
    let topology = Topology::new(namespace, 100_000, testkit::app::COMMAND_PARTITIONS);
    let connection = Connection::connect(
        &testkit::app::env("AMQP_URL"),
        ConnectionProperties::default(),
    )
    .await?;
    let channel = connection.create_channel().await?;
    Ok((topology, connection, channel))
}

/// Commands ready in every partition of the command queue.
pub(super) async fn backlog(channel: &Channel, topology: &Topology) -> anyhow::Result<u32> {
    let mut total = 0;
    for queue in topology.command_queues() {
        total += queue_length(channel, &queue).await?;
    }
    Ok(total)
}

/// Messages ready in `queue` (not counting those delivered and unacked).
pub(super) async fn queue_length(channel: &Channel, queue: &str) -> anyhow::Result<u32> {
    Ok(channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?
        .message_count())
}
