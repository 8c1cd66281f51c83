//! The `poison` scenario: messages on the command queue that no worker can
//! decide. Some never decode (garbage, an unknown format version, a 1 MB
//! body); others decode but MySQL refuses them for good: a reserve for a
//! user that does not exist (foreign key, error 1452) and one for zero
//! tickets (CHECK, 4025 on MariaDB, 3819 on MySQL), published on the
//! workload's own events so that they land in batches with its commands.
//! Each must end up in `<ns>.commands.dead` (a refused one with its reason
//! in `x-refused-reason`) and leave no row, and the commands around them
//! must still be decided (the checker's `inv5-lost` and `hang`).

use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;
use lapin::{
    BasicProperties,
    options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions},
    types::{AMQPValue, FieldTable},
};
use rand::Rng;
use sea_orm::EntityTrait;
use uuid::Uuid;

use super::{
    broker::{self, queue_length},
    contract::Scenario,
    run::{Run, secs},
};
use crate::{
    check,
    history::{OpKind, Record},
};

/// A user id no test database has.
const UNKNOWN_USER: i64 = 987_654_321;

/// What the scenario put on the command queue.
#[derive(Debug, Default)]
pub(super) struct Poison {
    /// Messages that are not commands.
    undecodable: u64,
    refused: Vec<Refused>,
    /// When the first refused command was published (history time).
    first_refused_ms: Option<f64>,
}

/// A command MySQL must refuse.
#[derive(Debug)]
struct Refused {
    id: Uuid,
    event: i64,
    what: &'static str,
    /// The MySQL/MariaDB error codes that may refuse it.
    codes: &'static [u16],
}

impl Scenario for Poison {
    fn name(&self) -> &'static str {
        "poison"
    }

    fn description(&self) -> &'static str {
        "undecodable messages and commands the database refuses: dead-lettered with their \
         reason, no row, the commands around them still decided"
    }

    fn inject<'a>(&'a mut self, run: &'a mut Run) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            tokio::time::sleep(secs(2.0)).await;
            for _ in 0..(if run.short() { 1 } else { 3 }) {
                self.publish(run).await?;
                tokio::time::sleep(secs(2.0)).await;
            }
            tokio::time::sleep(secs(4.0)).await;
            Ok(())
        })
    }

    fn assess<'a>(
        &'a mut self,
        run: &'a mut Run,
        records: &'a [Record],
    ) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.check(run, records))
    }
}

impl Poison {
    /// One round: garbage, a wrong-version command, a 1 MB body, and two
    /// commands that decode but break a constraint, published straight to
    /// the command queue.
    async fn publish(&mut self, run: &mut Run) -> anyhow::Result<()> {
        let start = run.history.now_ms();
        let (topology, connection, channel) = broker::connect(&run.app.namespace).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut huge = br#"{"v":1,"junk":""#.to_vec();
        huge.extend(std::iter::repeat_n(b'x', 1 << 20));
        huge.extend(br#""}"#);
        let mut messages: Vec<(&str, Vec<u8>)> = vec![
            ("garbage", b"\xff\xfe not json at all \x00".to_vec()),
            (
                "version 2",
                format!(
                    r#"{{"v":2,"type":"reserve","reservation_id":"{}","event_id":1,"quantity":1,"user_id":null}}"#,
                    Uuid::now_v7()
                )
                .into_bytes(),
            ),
            ("1 MB body", huge),
        ];
        self.undecodable += messages.len() as u64;
        let event = run.events[run.rng.random_range(0..run.events.len())].id;
        for (what, quantity, user, codes) in [
            ("unknown user", 1, UNKNOWN_USER.to_string(), &[1452][..]),
            ("quantity 0", 0, "null".to_owned(), &[4025, 3819][..]),
        ] {
            let id = Uuid::now_v7();
            messages.push((
                what,
                format!(
                    r#"{{"v":1,"type":"reserve","reservation_id":"{id}","event_id":{event},"quantity":{quantity},"user_id":{user}}}"#
                )
                .into_bytes(),
            ));
            self.refused.push(Refused {
                id,
                event,
                what,
                codes,
            });
        }
        let mut sent = Vec::new();
        let queue = topology.command_queue(event);
        for (what, payload) in &messages {
            channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    payload,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await?
                .await?;
            sent.push(format!("{what} ({} bytes)", payload.len()));
        }
        self.first_refused_ms.get_or_insert(start);
        connection.close(200, "done".into()).await.ok();
        run.fault(
            "poison-messages",
            format!(
                "published to {}: {}; the last two on event {event}",
                queue,
                sent.join(", ")
            ),
            start,
        );
        Ok(())
    }

    /// Every poison message must be in the dead-letter queue, the refused
    /// commands with the error that refused them and no row; no command of
    /// the workload may be there.
    async fn check(&self, run: &mut Run, records: &[Record]) -> anyhow::Result<()> {
        let expected = self.undecodable + self.refused.len() as u64;
        let (topology, connection, channel) = broker::connect(&run.app.namespace).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while u64::from(queue_length(&channel, &topology.dead_letters).await?) < expected
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Taken off the queue to be read; the run is over.
        let mut without_reason = 0u64;
        let mut reasons: Vec<(Option<Uuid>, String)> = Vec::new();
        while let Some(message) = channel
            .basic_get(
                topology.dead_letters.as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await?
        {
            let headers = message.delivery.properties.headers().clone();
            match headers.as_ref().and_then(refused_reason) {
                Some(reason) => {
                    let id = serde_json::from_slice::<serde_json::Value>(&message.delivery.data)
                        .ok()
                        .and_then(|body| body["reservation_id"].as_str()?.parse().ok());
                    reasons.push((id, reason));
                }
                None => without_reason += 1,
            }
        }
        connection.close(200, "done".into()).await.ok();

        let mut found = Vec::new();
        for refused in &self.refused {
            let reason = reasons
                .iter()
                .find(|(id, _)| *id == Some(refused.id))
                .map(|(_, reason)| reason.clone());
            let stored = shared::entities::reservation::Entity::find_by_id(refused.id)
                .one(&run.app.db)
                .await?
                .is_some();
            let expected_code = reason.as_deref().is_some_and(|reason| {
                refused
                    .codes
                    .iter()
                    .any(|code| reason.contains(&format!("error {code}")))
            });
            let problem = match (&reason, stored) {
                (_, true) => Some("a row was stored".to_owned()),
                (None, false) => Some("not dead-lettered".to_owned()),
                (Some(reason), false) if !expected_code => Some(format!(
                    "dead-lettered for {reason:?}, not error {:?}",
                    refused.codes
                )),
                _ => None,
            };
            if let Some(problem) = problem {
                run.violations.push(check::Violation {
                    rule: "poison",
                    id: refused.id.to_string(),
                    detail: format!("refused command ({}): {problem}", refused.what),
                });
            } else if let Some(reason) = reason {
                found.push(format!("{}: {reason}", refused.what));
            }
        }
        found.sort();
        found.dedup();
        let strays = reasons
            .iter()
            .filter(|(id, _)| !self.refused.iter().any(|r| Some(r.id) == *id))
            .count();
        if strays > 0 {
            run.violations.push(check::Violation {
                rule: "poison",
                id: topology.dead_letters.clone(),
                detail: format!("{strays} command(s) of the workload refused by the database"),
            });
        }
        if without_reason != self.undecodable {
            run.violations.push(check::Violation {
                rule: "poison",
                id: topology.dead_letters.clone(),
                detail: format!(
                    "{} undecodable message(s) published, {without_reason} dead-lettered",
                    self.undecodable
                ),
            });
        }
        let logs = run.logs_of(None);
        let not_commands: usize = logs.iter().map(|l| l.undecodable_dead_lettered()).sum();
        let refused_logged: usize = logs.iter().map(|l| l.refused_dead_lettered()).sum();
        if (not_commands as u64) < self.undecodable {
            run.violations.push(check::Violation {
                rule: "poison",
                id: topology.dead_letters.clone(),
                detail: format!(
                    "{} undecodable message(s) published, {not_commands} dead-lettering(s) logged",
                    self.undecodable
                ),
            });
        }
        run.notes.push(format!(
            "{} undecodable message(s) and {} refused command(s) published; in {}: \
             {without_reason} without a reason, {} with x-refused-reason ({}); worker logs: \
             {not_commands} 'not a command', {refused_logged} 'the database refused'; {}",
            self.undecodable,
            self.refused.len(),
            topology.dead_letters,
            reasons.len(),
            found.join("; "),
            self.decided_after_refused(records),
        ));
        Ok(())
    }

    /// Reserves decided synchronously on the events the refused commands
    /// were published on, after the first of them.
    fn decided_after_refused(&self, records: &[Record]) -> String {
        let Some(since) = self.first_refused_ms else {
            return "no refused command published".to_owned();
        };
        let (_, ops, _) = check::split(records);
        let decided = ops
            .iter()
            .filter(|op| {
                op.op == OpKind::Reserve
                    && matches!(op.status, 200 | 409)
                    && op.start_ms > since
                    && self.refused.iter().any(|r| Some(r.event) == op.event_id)
            })
            .count();
        format!("{decided} reserve(s) decided synchronously on the poisoned events afterwards")
    }
}

fn refused_reason(headers: &FieldTable) -> Option<String> {
    match headers.inner().get("x-refused-reason")? {
        AMQPValue::LongString(text) => Some(text.to_string()),
        AMQPValue::ShortString(text) => Some(text.to_string()),
        _ => None,
    }
}
