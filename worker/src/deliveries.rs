//! What the consume loop does with deliveries apart from deciding them:
//! gathering a batch, telling every api replica the new availability,
//! sending each api replica its outcomes, and dead-lettering the commands
//! the database refused.

use std::time::Duration;

use futures::StreamExt;
use lapin::{
    BasicProperties, Channel, Consumer,
    message::Delivery,
    options::BasicPublishOptions,
    types::{AMQPValue, FieldTable, ShortString},
};
use shared::{
    messages::{self, Availability, Command, Outcome, Reply},
    topology::Topology,
};

/// Sends an event's availability after a commit to every api replica,
/// through the fanout. Best effort: a replica that misses it serves its
/// older count until that ages out (the api's `AVAILABILITY_MAX_STALENESS_MS`).
pub async fn announce(topology: &Topology, availability: &Availability, channel: &Channel) {
    let properties = BasicProperties::default().with_content_type("application/json".into());
    if let Err(error) = channel
        .basic_publish(
            topology.availability_exchange.as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            &messages::encode(availability),
            properties,
        )
        .await
    {
        tracing::warn!(%error, "could not publish availability");
    }
}

/// Sends each api replica the outcomes of the batch's commands that came
/// through it, in one message. Best effort: a lost outcome only makes its
/// client poll.
pub async fn reply(items: &[(Delivery, Command)], outcomes: &[Outcome], channel: &Channel) {
    for (reply_to, outcomes) in by_reply_queue(items, outcomes) {
        let properties = BasicProperties::default().with_content_type("application/json".into());
        if let Err(error) = channel
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
}

/// Puts a copy of each command the database refused for good on the
/// dead-letter queue, with the reason in its `x-refused-reason` header;
/// the original is then acked with the rest of the batch. Best effort:
/// a copy that cannot be published is logged whole.
pub async fn dead_letter_refused(
    topology: &Topology,
    items: &[(Delivery, Command)],
    outcomes: &[Outcome],
    channel: &Channel,
) {
    for ((delivery, command), outcome) in items.iter().zip(outcomes) {
        let Some(reason) = &outcome.refused else {
            continue;
        };
        tracing::error!(
            ?command,
            request_id = messages::request_id(&delivery.properties).unwrap_or_default(),
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

/// The next delivery, or `None` if `idle` passes first.
pub async fn next_or_idle(
    consumer: &mut Consumer,
    idle: Option<Duration>,
) -> Option<Option<lapin::Result<Delivery>>> {
    match idle {
        Some(idle) => tokio::time::timeout(idle, consumer.next()).await.ok(),
        None => Some(consumer.next().await),
    }
}

/// Gathers more commands after `first` until `size` or `linger`.
pub async fn fill_batch(
    first: Delivery,
    consumer: &mut Consumer,
    size: usize,
    linger: Duration,
) -> lapin::Result<Vec<Delivery>> {
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
