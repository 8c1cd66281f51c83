//! Response bodies. Field names of the seed-compatible ones are part of the
//! contract (DESIGN.md §5).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{
    entities::{event, reservation, reservation_request, user},
    messages::{Outcome, ReservationStatus},
};
use utoipa::ToSchema;
use uuid::Uuid;

/// A reservation's state as clients see it (the domain's
/// `ReservationStatus`, which knows nothing of OpenAPI). `held` takes
/// tickets until `expires_at`; `released` and `expired` are holds that
/// gave them back (by the client, by the clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Confirmed,
    Rejected,
    Cancelled,
    Held,
    Released,
    Expired,
}

impl Status {
    /// The domain's state of the same name (what the rows store).
    pub fn domain(self) -> ReservationStatus {
        match self {
            Self::Pending => ReservationStatus::Pending,
            Self::Confirmed => ReservationStatus::Confirmed,
            Self::Rejected => ReservationStatus::Rejected,
            Self::Cancelled => ReservationStatus::Cancelled,
            Self::Held => ReservationStatus::Held,
            Self::Released => ReservationStatus::Released,
            Self::Expired => ReservationStatus::Expired,
        }
    }
}

impl From<ReservationStatus> for Status {
    fn from(status: ReservationStatus) -> Self {
        match status {
            ReservationStatus::Pending => Self::Pending,
            ReservationStatus::Confirmed => Self::Confirmed,
            ReservationStatus::Rejected => Self::Rejected,
            ReservationStatus::Cancelled => Self::Cancelled,
            ReservationStatus::Held => Self::Held,
            ReservationStatus::Released => Self::Released,
            ReservationStatus::Expired => Self::Expired,
        }
    }
}

/// `GET /events/{id}/tickets`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tickets {
    /// Tickets still available (all types together).
    pub tickets: i32,
    /// For an event that sells ticket types: what each has left (read
    /// from MySQL; absent for an event without types).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_types: Option<Vec<crate::routes::ticket_types::TicketType>>,
}

/// The answer to a reserve or confirm that was decided: `200` when it
/// succeeded (confirmed, or held), `409` otherwise.
#[derive(Debug, Serialize, ToSchema)]
pub struct Decision {
    pub message: String,
    pub remaining_tickets: i32,
    pub reservation_id: Uuid,
    pub status: Status,
    pub quantity: i32,
    pub event_id: i64,
    pub user_id: Option<i64>,
    /// The ticket type it took from, for an event that sells types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_type_id: Option<i64>,
    /// For a hold: how long it was asked to last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_seconds: Option<i32>,
    /// For a hold: when its tickets go back unless it is confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<Outcome> for Decision {
    fn from(o: Outcome) -> Self {
        Self {
            message: o.message,
            remaining_tickets: o.remaining_tickets,
            reservation_id: o.reservation_id,
            status: o.status.into(),
            quantity: o.quantity,
            event_id: o.event_id,
            user_id: o.user_id,
            ticket_type_id: o.ticket_type_id,
            hold_seconds: o.hold_seconds,
            expires_at: o.expires_at,
        }
    }
}

/// `202`: queued, not decided yet; poll `Location`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub reservation_id: Uuid,
    pub status: Status,
    pub message: String,
}

/// A reservation as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reservation {
    pub reservation_id: Uuid,
    /// The owner (0: anonymous); checked, not shown.
    #[serde(skip)]
    #[schema(ignore)]
    pub client_id: i64,
    pub event_id: i64,
    /// The ticket type it takes from, for an event that sells types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_type_id: Option<i64>,
    pub quantity: i32,
    pub status: Status,
    pub user_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// For a hold: how long it was asked to last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_seconds: Option<i32>,
    /// For a hold: when it ends (or ended), on the database's clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<reservation::Model> for Reservation {
    fn from(r: reservation::Model) -> Self {
        Self {
            reservation_id: r.id,
            client_id: r.client_id,
            event_id: r.event_id,
            ticket_type_id: r.ticket_type_id,
            quantity: r.quantity,
            status: r.status.into(),
            user_id: r.user_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            decided_at: r.decided_at,
            hold_seconds: r.hold_seconds,
            expires_at: r.expires_at,
        }
    }
}

/// A request accepted and not decided yet.
impl From<reservation_request::Model> for Reservation {
    fn from(r: reservation_request::Model) -> Self {
        Self {
            reservation_id: r.id,
            client_id: r.client_id,
            event_id: r.event_id,
            ticket_type_id: r.ticket_type_id,
            quantity: r.quantity,
            status: Status::Pending,
            user_id: r.user_id,
            created_at: r.created_at,
            updated_at: r.created_at,
            decided_at: None,
            hold_seconds: r.hold_seconds,
            expires_at: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Event {
    pub id: i64,
    pub name: String,
    pub venue: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    /// Reservations are refused (`sale-not-open`) before this time.
    pub sale_opens_at: Option<DateTime<Utc>>,
    /// Reservations are refused (`sale-closed`) from this time on.
    pub sale_closes_at: Option<DateTime<Utc>>,
    pub capacity: i32,
    /// Most tickets one user may hold and have confirmed (absent: no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_per_user: Option<i32>,
    pub remaining_tickets: i32,
    pub created_at: DateTime<Utc>,
}

impl From<event::Model> for Event {
    fn from(e: event::Model) -> Self {
        Self {
            id: e.id,
            name: e.name,
            venue: e.venue,
            starts_at: e.starts_at,
            sale_opens_at: e.sale_opens_at,
            sale_closes_at: e.sale_closes_at,
            capacity: e.capacity,
            max_per_user: e.max_per_user,
            remaining_tickets: e.available,
            created_at: e.created_at,
        }
    }
}

/// One page of `GET /events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<user::Model> for User {
    fn from(u: user::Model) -> Self {
        Self {
            id: u.id,
            email: u.email,
            name: u.name,
            created_at: u.created_at,
        }
    }
}
