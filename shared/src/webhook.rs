//! What a webhook says and how it is signed, shared by the worker (which
//! writes and sends messages), the api (which creates secrets and shows
//! messages) and the tests (which check signatures).
//!
//! The scheme is Standard Webhooks (<https://www.standardwebhooks.com>):
//! headers `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
//! `{id}.{timestamp}.{body}`, keyed with the base64-decoded part of the
//! endpoint's `whsec_` secret). Its libraries in every language verify it.

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::domain::ReservationStatus;

/// The prefix of every secret, as Standard Webhooks names it.
pub const SECRET_PREFIX: &str = "whsec_";

/// Namespace of message ids (a UUIDv5 of the reservation id and its state).
const MESSAGE_NAMESPACE: Uuid = Uuid::from_u128(0x5f0c_9a7e_4a1b_4c2d_9e3f_7b6a_1d2c_3b4a);

/// The event type a reservation reaching `status` is sent as; `None` for
/// `pending`, which is not a change anyone is told about.
pub fn event_type(status: ReservationStatus) -> Option<&'static str> {
    Some(match status {
        ReservationStatus::Pending => return None,
        ReservationStatus::Confirmed => "reservation.confirmed",
        ReservationStatus::Rejected => "reservation.rejected",
        ReservationStatus::Cancelled => "reservation.cancelled",
        ReservationStatus::Held => "reservation.held",
        ReservationStatus::Released => "reservation.released",
        ReservationStatus::Expired => "reservation.expired",
    })
}

/// The id of the message for `reservation` reaching `status`. A
/// reservation reaches each state at most once, so one id per change, the
/// same whoever computes it: a receiver deduplicates on it
/// (`webhook-id`), and a second message for one change would be refused
/// by the outbox's primary key.
pub fn message_id(reservation: Uuid, status: ReservationStatus) -> Uuid {
    let mut name = reservation.as_bytes().to_vec();
    name.extend_from_slice(status.as_str().as_bytes());
    Uuid::new_v5(&MESSAGE_NAMESPACE, &name)
}

/// `webhook-id` of a message: `msg_` and its id.
pub fn header_id(message: Uuid) -> String {
    format!("msg_{}", message.simple())
}

/// The body of a webhook (Standard Webhooks' `type`, `timestamp`, `data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the change was committed, on the database's clock.
    pub timestamp: DateTime<Utc>,
    pub data: Reservation,
}

/// The reservation as it stood right after the change: the fields of
/// `GET /reservations/{id}` that a change can tell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub reservation_id: Uuid,
    pub event_id: i64,
    pub ticket_type_id: Option<i64>,
    pub user_id: Option<i64>,
    pub quantity: i32,
    pub status: ReservationStatus,
    pub hold_seconds: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new secret: 32 random bytes from the OS, `whsec_`-prefixed base64.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

#[derive(Debug, thiserror::Error)]
#[error("a webhook secret is `whsec_` followed by base64")]
pub struct BadSecret;

/// The `webhook-signature` header of `body`, sent as message `id` at
/// `timestamp` (Unix seconds), signed with `secret`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, BadSecret> {
    let key = secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|key| STANDARD.decode(key).ok())
        .ok_or(BadSecret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadSecret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification
    /// (`spec/standard-webhooks.md`, "Signature scheme").
    #[test]
    fn signs_as_the_specification_example() {
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signature.ok().as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn a_secret_without_its_prefix_is_refused() {
        assert!(sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_1", 1, b"{}").is_err());
    }

    #[test]
    fn every_change_has_its_own_message_id() {
        let reservation = Uuid::from_u128(7);
        let ids: std::collections::HashSet<Uuid> = ReservationStatus::ALL
            .iter()
            .map(|status| message_id(reservation, *status))
            .collect();
        assert_eq!(ids.len(), ReservationStatus::ALL.len());
        assert_ne!(
            message_id(Uuid::from_u128(8), ReservationStatus::Held),
            message_id(reservation, ReservationStatus::Held)
        );
    }

    #[test]
    fn new_secrets_sign() {
        let secret = new_secret();
        assert!(secret.starts_with(SECRET_PREFIX));
        assert!(sign(&secret, "msg_1", 1, b"{}").is_ok());
    }
}
