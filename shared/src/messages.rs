//! What travels through RabbitMQ: commands from the api to the workers,
//! outcomes back, and each decided event's new availability to every api
//! replica. Every message carries a format version so a worker can
//! dead-letter what it does not understand instead of guessing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::domain::ReservationStatus;

/// The only command format this build understands.
pub const FORMAT_VERSION: u8 = 1;

/// A request for a worker to decide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    Reserve {
        reservation_id: Uuid,
        event_id: i64,
        quantity: i32,
        user_id: Option<i64>,
        /// The client making it; 0 (anonymous) in commands from before
        /// clients existed.
        #[serde(default)]
        client_id: i64,
        /// Set for a hold: the tickets are kept this long, then return
        /// unless confirmed. Absent: confirmed at once, as before holds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hold_seconds: Option<i32>,
        /// The ticket type to take from, for an event that sells types.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket_type_id: Option<i64>,
    },
    /// Turns a live hold into a confirmed reservation.
    Confirm {
        reservation_id: Uuid,
        event_id: i64,
        /// The reservation's owner, checked again by the worker.
        client_id: i64,
    },
    /// Offers tickets left to the event's waiting list; published by the
    /// api when a client joins it (tickets may have come back meanwhile).
    /// Its outcome describes the entry's hold once offered, `pending` until.
    Offer { reservation_id: Uuid, event_id: i64 },
    /// Ends a hold whose time has come; published by the worker that owns
    /// the event's partition, never by the api.
    Expire { reservation_id: Uuid, event_id: i64 },
    /// Cancels a confirmed reservation, or releases a held one.
    Cancel {
        reservation_id: Uuid,
        event_id: i64,
        /// The reservation's owner, checked again by the worker.
        #[serde(default)]
        client_id: i64,
    },
}

impl Command {
    pub fn reservation_id(&self) -> Uuid {
        match self {
            Self::Reserve { reservation_id, .. }
            | Self::Confirm { reservation_id, .. }
            | Self::Offer { reservation_id, .. }
            | Self::Expire { reservation_id, .. }
            | Self::Cancel { reservation_id, .. } => *reservation_id,
        }
    }

    pub fn event_id(&self) -> i64 {
        match self {
            Self::Reserve { event_id, .. }
            | Self::Confirm { event_id, .. }
            | Self::Offer { event_id, .. }
            | Self::Expire { event_id, .. }
            | Self::Cancel { event_id, .. } => *event_id,
        }
    }
}

/// The AMQP header that carries the id of the HTTP request a command came
/// from (the api's `x-request-id`), for the logs.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Where a command comes from: the HTTP request's id, and the W3C trace
/// context of the api's span for it (`trace_context`).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub request_id: Option<String>,
    pub traceparent: Option<String>,
}

/// The headers of a command published from `origin`.
pub fn request_headers(origin: &Origin) -> lapin::types::FieldTable {
    let mut headers = lapin::types::FieldTable::default();
    let values = [
        (REQUEST_ID_HEADER, &origin.request_id),
        (crate::trace_context::TRACEPARENT, &origin.traceparent),
    ];
    for (name, value) in values {
        if let Some(value) = value {
            headers.insert(
                name.into(),
                lapin::types::AMQPValue::LongString(value.as_str().into()),
            );
        }
    }
    headers
}

/// The HTTP request id a delivered command carries, if any.
pub fn request_id(properties: &lapin::BasicProperties) -> Option<String> {
    header(properties, REQUEST_ID_HEADER)
}

/// The `traceparent` a delivered command carries, if any.
pub fn traceparent(properties: &lapin::BasicProperties) -> Option<String> {
    header(properties, crate::trace_context::TRACEPARENT)
}

fn header(properties: &lapin::BasicProperties, name: &str) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(name)? {
        lapin::types::AMQPValue::LongString(value) => Some(value.to_string()),
        _ => None,
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope<T> {
    v: u8,
    #[serde(flatten)]
    body: T,
}

/// Why a message body could not be turned into a command.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unparseable message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("unsupported message version {0}")]
    UnknownVersion(u8),
}

pub fn encode<T: Serialize>(body: &T) -> Vec<u8> {
    serde_json::to_vec(&Envelope {
        v: FORMAT_VERSION,
        body,
    })
    .expect("commands and outcomes are plain data and always serialize")
}

pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, DecodeError> {
    #[derive(Deserialize)]
    struct Version {
        v: u8,
    }
    let Version { v } = serde_json::from_slice(bytes)?;
    if v != FORMAT_VERSION {
        return Err(DecodeError::UnknownVersion(v));
    }
    let envelope: Envelope<T> = serde_json::from_slice(bytes)?;
    Ok(envelope.body)
}

/// A worker's decision about one command, sent back to the api replica that
/// is waiting for it. It describes the reservation as stored after the
/// decision, which for a redelivered command is the earlier decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub reservation_id: Uuid,
    pub event_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_type_id: Option<i64>,
    pub quantity: i32,
    pub user_id: Option<i64>,
    pub status: ReservationStatus,
    pub remaining_tickets: i32,
    /// For a hold: how long it was asked to last, and when it ends (on the
    /// database's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// A short human-readable explanation of the decision.
    pub message: String,
    /// Set when the database refused the command for good: nothing was
    /// stored and the command was dead-lettered; says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// What a worker sends to an api replica's reply queue: the outcomes of
/// the batch's commands that came through that replica, in one message
/// (one message per outcome made RabbitMQ the busiest process of a hot
/// sale). `One` is how workers before batching replied; replicas still
/// read it so that workers and api can be upgraded in any order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    Batch { outcomes: Vec<Outcome> },
    One(Outcome),
}

impl Reply {
    pub fn into_outcomes(self) -> Vec<Outcome> {
        match self {
            Self::Batch { outcomes } => outcomes,
            Self::One(outcome) => vec![outcome],
        }
    }
}

/// An event's availability right after a worker committed a batch of it,
/// sent to every api replica (the availability fanout) so that each can
/// answer availability reads from memory. `version` is the event row's
/// version: a replica keeps only the newest it has seen, so copies that
/// arrive late or out of order change nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    pub event_id: i64,
    pub version: i64,
    pub available: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_round_trips_with_version() {
        let command = Command::Reserve {
            reservation_id: Uuid::nil(),
            event_id: 7,
            quantity: 2,
            user_id: Some(3),
            client_id: 4,
            hold_seconds: None,
            ticket_type_id: None,
        };
        let bytes = encode(&command);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.contains(r#""v":1"#), "{text}");
        assert!(text.contains(r#""type":"reserve""#), "{text}");
        assert_eq!(decode::<Command>(&bytes).unwrap(), command);
    }

    #[test]
    fn replies_carry_a_batch_and_single_outcomes_still_read() {
        let outcome = Outcome {
            reservation_id: Uuid::nil(),
            event_id: 7,
            ticket_type_id: None,
            quantity: 2,
            user_id: None,
            status: ReservationStatus::Confirmed,
            remaining_tickets: 5,
            hold_seconds: None,
            expires_at: None,
            message: ReservationStatus::Confirmed.message().to_owned(),
            refused: None,
        };
        let batch = Reply::Batch {
            outcomes: vec![outcome.clone(), outcome.clone()],
        };
        assert_eq!(decode::<Reply>(&encode(&batch)).unwrap(), batch);
        let single = decode::<Reply>(&encode(&outcome)).unwrap();
        assert_eq!(single.into_outcomes(), vec![outcome]);
    }

    #[test]
    fn availability_round_trips_with_version() {
        let availability = Availability {
            event_id: 7,
            version: 42,
            available: 3,
        };
        let bytes = encode(&availability);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.contains(r#""v":1"#), "{text}");
        assert_eq!(decode::<Availability>(&bytes).unwrap(), availability);
    }

    #[test]
    fn rejects_unknown_version_and_garbage() {
        let future = br#"{"v":2,"type":"reserve","reservation_id":"00000000-0000-0000-0000-000000000000","event_id":1,"quantity":1,"user_id":null}"#;
        assert!(matches!(
            decode::<Command>(future),
            Err(DecodeError::UnknownVersion(2))
        ));
        assert!(matches!(
            decode::<Command>(b"\xff garbage"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode::<Command>(br#"{"v":1,"type":"explode"}"#),
            Err(DecodeError::Malformed(_))
        ));
    }
}
