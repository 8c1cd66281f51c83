//! What the checker reads (the database's state) and what it reports (a
//! summary with its violations), and the history split into its parts: the
//! vocabulary every rule family shares.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
};

use serde::Serialize;
use shared::{entities::webhook_delivery::DeliveryStatus, messages::ReservationStatus};
use testkit::invariants::rules::{QuotaCount, TypeCount};
use uuid::Uuid;

use crate::history::{Fault, Meta, Op, Record};

/// What the checker needs of the database.
#[derive(Debug, Clone, Default)]
pub struct DbState {
    pub events: BTreeMap<i64, EventRow>,
    pub rows: HashMap<Uuid, Row>,
    /// The events' waiting-list entries, by id (an offered entry's hold has
    /// its id).
    pub waiting: HashMap<Uuid, WaitingRow>,
    /// The database's clock when it was read.
    pub read_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The webhook tables, whole (the run's database is its own).
    pub outbox: Outbox,
}

/// The webhook endpoints, the outbox and its deliveries.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    pub endpoints: Vec<Endpoint>,
    pub messages: HashMap<Uuid, Message>,
    pub deliveries: Vec<Delivery>,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: i64,
    pub client_id: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub disabled_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub client_id: i64,
    pub reservation_id: Uuid,
    pub event_type: String,
    /// The body sent, exactly as stored.
    pub payload: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The event of its reservation; `None` when no reservation has its id.
    pub event_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: Uuid,
    pub endpoint_id: i64,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
}

impl Outbox {
    /// Deliveries still `pending`: the dispatchers have work left.
    pub fn pending(&self) -> usize {
        self.deliveries
            .iter()
            .filter(|d| d.status == DeliveryStatus::Pending)
            .count()
    }
}

#[derive(Debug, Clone, Default)]
pub struct EventRow {
    pub capacity: i64,
    pub available: i64,
    pub max_per_user: Option<i64>,
    pub ticket_types: Vec<TypeCount>,
    pub quotas: Vec<QuotaCount>,
}

#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub event_id: i64,
    pub status: ReservationStatus,
    pub quantity: i32,
    /// For a hold: when it ends.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub ticket_type_id: Option<i64>,
    pub user_id: Option<i64>,
    /// The client that owns it; 0 is anonymous.
    pub client_id: i64,
    /// When a worker first wrote it (first decided it).
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Copy)]
pub struct WaitingRow {
    pub event_id: i64,
    /// A hold was offered to it.
    pub offered: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub rule: &'static str,
    /// The offending reservation id, event or request.
    pub id: String,
    pub detail: String,
}

impl Violation {
    pub fn new(rule: &'static str, id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            rule,
            id: id.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.rule, self.id, self.detail)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request slower than this is a hang.
    pub max_latency_ms: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_latency_ms: 10_000.0,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub operations: usize,
    pub by_op: BTreeMap<String, BTreeMap<u16, usize>>,
    pub faults: usize,
    pub fault_kinds: BTreeMap<String, usize>,
    pub acknowledged: usize,
    pub reservations_seen: usize,
    /// Rows of the history's events that no answer named (e.g. a reserve
    /// whose answer was a 503 after the broker had stored it).
    pub rows_not_in_history: usize,
    pub max_latency_ms: f64,
    /// Slowest request that overlapped a fault window (or the 5 s after it).
    pub max_latency_during_faults_ms: f64,
    pub events: BTreeMap<i64, EventSummary>,
    pub webhooks: WebhookSummary,
    pub violations: Vec<Violation>,
}

/// What the outbox held and what the run's receiver got.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct WebhookSummary {
    pub endpoints: usize,
    /// Reservations owed webhooks whose messages were judged against
    /// their row (`inv-outbox-complete`).
    pub reservations: usize,
    pub messages: usize,
    pub deliveries: usize,
    pub delivered: usize,
    /// Deliveries that took more than one attempt.
    pub retried: usize,
    /// Message ids of the outbox the receiver accepted.
    pub received: usize,
    /// Message ids it accepted that were committed after the database
    /// was read (not counted in `received`).
    pub late: usize,
    /// First attempts the receiver answered 500 on purpose.
    pub refused_on_purpose: usize,
    /// Message ids the receiver got more than once after accepting them.
    pub redelivered: usize,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EventSummary {
    pub capacity: i64,
    pub available: i64,
    pub taken_quantity: i64,
}

/// Splits a history into its parts.
pub fn split(history: &[Record]) -> (Option<&Meta>, Vec<&Op>, Vec<&Fault>) {
    let mut meta = None;
    let mut ops = Vec::new();
    let mut faults = Vec::new();
    for record in history {
        match record {
            Record::Meta(m) => meta = meta.or(Some(m)),
            Record::Op(op) => ops.push(op),
            Record::Fault(f) => faults.push(f),
        }
    }
    (meta, ops, faults)
}
