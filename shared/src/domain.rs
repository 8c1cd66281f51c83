//! Values that have rules, parsed once at the edge (the api's handlers)
//! so that the code behind it cannot hold an invalid one. Plain Rust: how a
//! value is stored (`entities`), sent between processes (`messages`) or shown
//! to clients (the api's views) is defined there, not here.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event's id, as named in a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(pub i64);

impl FromStr for EventId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How many tickets one reservation takes: 1 to the configured maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(i32);

impl Quantity {
    /// `raw` when it is between 1 and `max`; otherwise why not.
    pub fn parse(raw: i64, max: i32) -> Result<Self, String> {
        i32::try_from(raw)
            .ok()
            .filter(|q| (1..=max).contains(q))
            .map(Self)
            .ok_or_else(|| format!("quantity must be between 1 and {max}"))
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// A client's name for one request: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let key = raw.trim();
        if !key.is_empty()
            && key.len() <= Self::MAX_LEN
            && key.bytes().all(|b| b.is_ascii_graphic())
        {
            Ok(Self(key.to_owned()))
        } else {
            Err(format!(
                "Idempotency-Key must be 1 to {} visible ASCII characters",
                Self::MAX_LEN
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A reservation's id: time-ordered (new rows append to the primary key
/// index) with 74 random bits, so no one can guess or compute another
/// client's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReservationId(pub Uuid);

impl ReservationId {
    pub fn random() -> Self {
        let millis = chrono::Utc::now().timestamp_millis().max(0) as u64;
        Self(
            uuid::Builder::from_unix_timestamp_millis(millis, &rand::random::<[u8; 10]>())
                .into_uuid(),
        )
    }
}

/// How long a hold keeps its tickets: 1 second to the configured maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldSeconds(i32);

impl HoldSeconds {
    /// `raw` when it is between 1 and `max`; otherwise why not.
    pub fn parse(raw: i64, max: i32) -> Result<Self, String> {
        i32::try_from(raw)
            .ok()
            .filter(|s| (1..=max).contains(s))
            .map(Self)
            .ok_or_else(|| format!("hold_seconds must be between 1 and {max}"))
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// State of a reservation (DESIGN §10). `pending` until a worker decides
/// it; then `confirmed` or `rejected`, or `held` until it is confirmed,
/// released (by its client) or expired (by the clock); a confirmed one can
/// be cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    Pending,
    Confirmed,
    Rejected,
    Cancelled,
    Held,
    Released,
    Expired,
}

impl ReservationStatus {
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Confirmed,
        Self::Rejected,
        Self::Cancelled,
        Self::Held,
        Self::Released,
        Self::Expired,
    ];

    pub fn is_decided(self) -> bool {
        self != Self::Pending
    }

    /// Whether a reservation in this state can move to `to` (DESIGN §9):
    /// each step of a reservation's life, and so each webhook it owes.
    pub fn can_become(self, to: Self) -> bool {
        use ReservationStatus::*;
        matches!(
            (self, to),
            (Pending, Confirmed | Rejected | Held)
                | (Held, Confirmed | Released | Expired)
                | (Confirmed, Cancelled)
        )
    }

    /// Whether a reservation in this state takes tickets from the event.
    pub fn takes_tickets(self) -> bool {
        matches!(self, Self::Confirmed | Self::Held)
    }

    /// The message that goes with a reservation in this state.
    pub fn message(self) -> &'static str {
        match self {
            Self::Pending => "Reservation pending",
            Self::Confirmed => "Ticket reserved",
            Self::Rejected => "Not enough tickets",
            Self::Cancelled => "Reservation cancelled",
            Self::Held => "Tickets held",
            Self::Released => "Hold released",
            Self::Expired => "Hold expired",
        }
    }

    /// The name stored and sent: `pending`, `confirmed`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
            Self::Held => "held",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }
}

impl FromStr for ReservationStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown reservation status {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_one_to_max() {
        assert_eq!(Quantity::parse(1, 10).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::parse(10, 10).map(Quantity::get), Ok(10));
        for bad in [0, -1, 11, i64::MAX] {
            assert!(Quantity::parse(bad, 10).is_err(), "{bad}");
        }
    }

    #[test]
    fn hold_seconds_are_one_to_max() {
        assert_eq!(HoldSeconds::parse(1, 900).map(HoldSeconds::get), Ok(1));
        assert_eq!(HoldSeconds::parse(900, 900).map(HoldSeconds::get), Ok(900));
        for bad in [0, -5, 901, i64::MIN] {
            assert!(HoldSeconds::parse(bad, 900).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_visible_ascii_up_to_255() {
        assert_eq!(
            IdempotencyKey::parse(" order-1 ").unwrap().as_str(),
            "order-1"
        );
        for bad in ["", "   ", "with space", "é", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in ReservationStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
    }

    #[test]
    fn ids_are_version_7_and_differ_in_their_random_bits() {
        let (a, b) = (ReservationId::random().0, ReservationId::random().0);
        assert_eq!(a.get_version_num(), 7);
        assert_ne!(a.as_bytes()[6..], b.as_bytes()[6..]);
    }
}
