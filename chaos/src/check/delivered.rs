//! The outbox's deliveries against what the receiver got
//! (`inv-outbox-delivered`): at the end every delivery is `delivered`
//! (none `failed`, none still `pending`), every message has a delivery to
//! each endpoint its client had when it was written, and the receiver
//! accepted exactly the messages delivered to it (none missing: lost;
//! none the outbox does not hold: invented), each signed with its
//! endpoint's secret and with the body stored, byte for byte.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use shared::entities::webhook_delivery::DeliveryStatus;
use uuid::Uuid;

use super::model::{DbState, Summary, Violation};

const RULE: &str = "inv-outbox-delivered";

/// Clock difference tolerated between an endpoint's `created_at` (the
/// database's clock) and a message's (sometimes the worker's): a message
/// written this close after an endpoint appeared may or may not owe it.
const CLOCK_SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// Examples named in an aggregate violation.
const EXAMPLES: usize = 5;

/// What a receiver got: the webhook requests that reached it.
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// The endpoints whose URL is the receiver's: only their deliveries
    /// are compared with it.
    pub endpoints: BTreeSet<i64>,
    /// By message id and endpoint.
    pub messages: BTreeMap<(Uuid, i64), Receipt>,
    /// Requests that were not a validly signed webhook, each described.
    pub invalid: Vec<String>,
    /// First attempts answered 500 on purpose, so that retries happen.
    pub refused_on_purpose: usize,
}

/// The attempts of one message at one endpoint.
#[derive(Debug, Clone, Default)]
pub struct Receipt {
    /// Every distinct body received.
    pub bodies: Vec<Vec<u8>>,
    pub attempts: usize,
    /// Attempts answered 2xx.
    pub accepted: usize,
}

/// The database's half: every delivery ended delivered, and each message
/// has the deliveries its client's endpoints were owed.
pub(super) fn check(db: &DbState, summary: &mut Summary) -> Vec<Violation> {
    let outbox = &db.outbox;
    let counts = &mut summary.webhooks;
    counts.endpoints = outbox.endpoints.len();
    counts.messages = outbox.messages.len();
    counts.deliveries = outbox.deliveries.len();
    counts.delivered = outbox
        .deliveries
        .iter()
        .filter(|d| d.status == DeliveryStatus::Delivered)
        .count();
    counts.retried = outbox.deliveries.iter().filter(|d| d.attempts > 1).count();

    let mut violations = Vec::new();
    let pending: Vec<_> = outbox
        .deliveries
        .iter()
        .filter(|d| d.status == DeliveryStatus::Pending)
        .collect();
    if !pending.is_empty() {
        let examples: Vec<String> = pending
            .iter()
            .take(EXAMPLES)
            .map(|d| {
                format!(
                    "{} to endpoint {} after {} attempt(s) ({})",
                    d.message_id,
                    d.endpoint_id,
                    d.attempts,
                    d.last_error.as_deref().unwrap_or("never sent")
                )
            })
            .collect();
        violations.push(Violation::new(
            RULE,
            "-",
            format!(
                "{} of {} deliveries still pending at the deadline ({} never attempted), e.g. {}",
                pending.len(),
                outbox.deliveries.len(),
                pending.iter().filter(|d| d.attempts == 0).count(),
                examples.join("; ")
            ),
        ));
    }
    for d in &outbox.deliveries {
        if d.status == DeliveryStatus::Failed {
            violations.push(Violation::new(
                RULE,
                d.message_id.to_string(),
                format!(
                    "failed at endpoint {} after {} attempt(s): {}",
                    d.endpoint_id,
                    d.attempts,
                    d.last_error.as_deref().unwrap_or("no error recorded")
                ),
            ));
        }
    }

    let mut delivered_to: HashMap<Uuid, BTreeSet<i64>> = HashMap::new();
    for d in &outbox.deliveries {
        delivered_to
            .entry(d.message_id)
            .or_default()
            .insert(d.endpoint_id);
    }
    let mut messages: Vec<_> = outbox.messages.iter().collect();
    messages.sort_by_key(|(id, _)| **id);
    for (id, message) in messages {
        let to = delivered_to.remove(id).unwrap_or_default();
        for e in &outbox.endpoints {
            let owed = e.client_id == message.client_id
                && e.created_at + CLOCK_SLACK <= message.created_at
                && e.disabled_at.is_none_or(|at| at > message.created_at);
            let foreign = e.client_id != message.client_id;
            let detail = if owed && !to.contains(&e.id) {
                "no delivery to its client's endpoint"
            } else if foreign && to.contains(&e.id) {
                "a delivery to another client's endpoint"
            } else {
                continue;
            };
            violations.push(Violation::new(
                RULE,
                id.to_string(),
                format!("{detail} {} ({})", e.id, message.event_type),
            ));
        }
    }
    violations
}

/// The receiver's half: it accepted every message delivered to it, and
/// got no other, each signed and with the stored body. `late` holds the
/// payloads of messages committed after the database was read (the
/// receiver is read after it): received, they are neither invented nor
/// judged lost.
pub fn check_received(
    db: &DbState,
    received: &Received,
    late: &HashMap<Uuid, String>,
    summary: &mut Summary,
) -> Vec<Violation> {
    let counts = &mut summary.webhooks;
    for ((id, _), receipt) in &received.messages {
        if receipt.accepted == 0 {
            continue;
        }
        if late.contains_key(id) {
            counts.late += 1;
        } else {
            counts.received += 1;
        }
        if receipt.accepted > 1 {
            counts.redelivered += 1;
        }
    }
    counts.refused_on_purpose = received.refused_on_purpose;

    let mut violations: Vec<Violation> = received
        .invalid
        .iter()
        .map(|what| Violation::new(RULE, "-", format!("the receiver refused {what}")))
        .collect();
    let owed: BTreeSet<(Uuid, i64)> = db
        .outbox
        .deliveries
        .iter()
        .map(|d| (d.message_id, d.endpoint_id))
        .collect();
    for ((id, endpoint), receipt) in &received.messages {
        let payload = match db.outbox.messages.get(id) {
            Some(message) if owed.contains(&(*id, *endpoint)) => &message.payload,
            Some(message) => {
                violations.push(Violation::new(
                    RULE,
                    id.to_string(),
                    format!(
                        "received at endpoint {endpoint}, which the outbox owes no {}",
                        message.event_type
                    ),
                ));
                continue;
            }
            None => match late.get(id) {
                Some(payload) => payload,
                None => {
                    violations.push(Violation::new(
                        RULE,
                        id.to_string(),
                        format!(
                            "received at endpoint {endpoint} ({} attempt(s)) but not in the outbox: invented",
                            receipt.attempts
                        ),
                    ));
                    continue;
                }
            },
        };
        for body in &receipt.bodies {
            if body != payload.as_bytes() {
                violations.push(Violation::new(
                    RULE,
                    id.to_string(),
                    format!(
                        "received at endpoint {endpoint} with a body other than the stored payload: {}",
                        String::from_utf8_lossy(body)
                    ),
                ));
            }
        }
    }
    for d in &db.outbox.deliveries {
        let accepted = received
            .messages
            .get(&(d.message_id, d.endpoint_id))
            .is_some_and(|r| r.accepted > 0);
        if d.status == DeliveryStatus::Delivered
            && received.endpoints.contains(&d.endpoint_id)
            && !accepted
        {
            violations.push(Violation::new(
                RULE,
                d.message_id.to_string(),
                format!(
                    "marked delivered to endpoint {}, but the receiver never accepted it: lost",
                    d.endpoint_id
                ),
            ));
        }
    }
    violations
}
