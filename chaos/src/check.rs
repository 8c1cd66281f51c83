//! The checker: a history and the database, judged together against the
//! invariants of DESIGN.md §2.
//!
//! | rule | what is checked |
//! |---|---|
//! | `inv1-range` | every event: `0 <= available <= capacity` (database) |
//! | `inv2-conservation` | every event: `available + Σ confirmed quantities == capacity` |
//! | `inv3-decided-twice` | no reservation id was seen both rejected and confirmed/cancelled, nor confirmed again after it was seen cancelled, nor with two quantities; one Idempotency-Key, one id |
//! | `inv4-response-vs-db` | every decided answer agrees with the final row: confirmed ⇒ row confirmed (or cancelled by a cancel the history shows), rejected ⇒ row rejected, cancelled ⇒ row cancelled, same quantity |
//! | `inv5-lost` | every acknowledged command (reserve 200/202/409, cancel 200/202) reached a final state |
//! | `read-range` | every availability the api showed (`tickets`, `remaining_tickets`) is within `[0, capacity]` |
//! | `http-5xx` | no 5xx other than 503; every 503 and 429 carries `Retry-After`; a valid reserve is refused only with 409 (a decision), 429 (rate limit) or 503 |
//! | `hang` | no request went unanswered or took longer than the bound |

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt,
    time::{Duration, Instant},
};

use serde::Serialize;
use shared::messages::ReservationStatus;
use uuid::Uuid;

use crate::history::{Fault, Meta, Op, OpKind, Record};

/// What the checker needs of the database.
#[derive(Debug, Clone, Default)]
pub struct DbState {
    pub events: BTreeMap<i64, EventRow>,
    pub rows: HashMap<Uuid, Row>,
}

#[derive(Debug, Clone, Copy)]
pub struct EventRow {
    pub capacity: i64,
    pub available: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub event_id: i64,
    pub status: ReservationStatus,
    pub quantity: i32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub rule: &'static str,
    /// The offending reservation id, event or request.
    pub id: String,
    pub detail: String,
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
    pub violations: Vec<Violation>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EventSummary {
    pub capacity: i64,
    pub available: i64,
    pub confirmed_quantity: i64,
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

fn status_of(text: &str) -> Option<ReservationStatus> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

/// Acknowledged commands that have not reached a final state in `db`.
pub fn unresolved(history: &[Record], db: &DbState) -> Vec<Uuid> {
    let (_, ops, _) = split(history);
    let mut ids = BTreeSet::new();
    for op in ops.iter().filter(|op| op.acknowledged()) {
        let Some(id) = op.reservation_id else {
            continue;
        };
        let done = match (op.op, db.rows.get(&id)) {
            (_, None) => false,
            (OpKind::Cancel, Some(row)) => row.status == ReservationStatus::Cancelled,
            (_, Some(row)) => row.status.is_decided(),
        };
        if !done {
            ids.insert(id);
        }
    }
    ids.into_iter().collect()
}

/// Judges `history` against the final database state `db`.
pub fn check(history: &[Record], db: &DbState, limits: Limits) -> Summary {
    let (meta, ops, faults) = split(history);
    let mut summary = Summary {
        operations: ops.len(),
        faults: faults.len(),
        ..Summary::default()
    };
    let mut violations = Vec::new();
    let mut violate = |rule: &'static str, id: String, detail: String| {
        violations.push(Violation { rule, id, detail });
    };
    for fault in &faults {
        *summary.fault_kinds.entry(fault.fault.clone()).or_default() += 1;
    }

    // Capacities: from the history's meta, else from the database.
    let mut capacity: BTreeMap<i64, i64> =
        db.events.iter().map(|(id, e)| (*id, e.capacity)).collect();
    if let Some(meta) = meta {
        for event in &meta.events {
            capacity.insert(event.id, event.capacity);
        }
    }

    // Invariants 1 and 2, per event, on the database.
    let events: Vec<i64> = match meta {
        Some(meta) => meta.events.iter().map(|e| e.id).collect(),
        None => db.events.keys().copied().collect(),
    };
    for event_id in &events {
        let Some(event) = db.events.get(event_id) else {
            violate(
                "inv1-range",
                format!("event {event_id}"),
                "event missing from the database".into(),
            );
            continue;
        };
        let confirmed: i64 = db
            .rows
            .values()
            .filter(|r| r.event_id == *event_id && r.status == ReservationStatus::Confirmed)
            .map(|r| i64::from(r.quantity))
            .sum();
        summary.events.insert(
            *event_id,
            EventSummary {
                capacity: event.capacity,
                available: event.available,
                confirmed_quantity: confirmed,
            },
        );
        if !(0..=event.capacity).contains(&event.available) {
            violate(
                "inv1-range",
                format!("event {event_id}"),
                format!(
                    "available {} outside [0, {}]",
                    event.available, event.capacity
                ),
            );
        }
        if event.available + confirmed != event.capacity {
            violate(
                "inv2-conservation",
                format!("event {event_id}"),
                format!(
                    "available {} + confirmed {confirmed} != capacity {}",
                    event.available, event.capacity
                ),
            );
        }
    }

    // Per-request checks: status codes, latency, ranges.
    let in_fault = |op: &Op| {
        faults
            .iter()
            .any(|f| op.start_ms <= f.end_ms + 5_000.0 && op.end_ms >= f.start_ms)
    };
    for op in &ops {
        let key = serde_json::to_value(op.op)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *summary
            .by_op
            .entry(key)
            .or_default()
            .entry(op.status)
            .or_default() += 1;
        let request = format!("{} {} @{:.0}ms", op.method, op.path, op.start_ms);
        summary.max_latency_ms = summary.max_latency_ms.max(op.latency_ms());
        if in_fault(op) {
            summary.max_latency_during_faults_ms =
                summary.max_latency_during_faults_ms.max(op.latency_ms());
        }
        if op.status == 0 {
            violate(
                "hang",
                request.clone(),
                format!(
                    "no answer after {:.0} ms: {}",
                    op.latency_ms(),
                    op.error.as_deref().unwrap_or("?")
                ),
            );
        } else if op.latency_ms() > limits.max_latency_ms {
            violate(
                "hang",
                request.clone(),
                format!("answered {} after {:.0} ms", op.status, op.latency_ms()),
            );
        }
        if op.status >= 500 && op.status != 503 {
            violate(
                "http-5xx",
                request.clone(),
                format!("{}: {}", op.status, op.body),
            );
        }
        if matches!(op.status, 429 | 503) && op.retry_after.is_none() {
            violate(
                "http-5xx",
                request.clone(),
                format!("{} without Retry-After", op.status),
            );
        }
        if op.acknowledged() && op.reservation_id.is_none() {
            violate(
                "inv5-lost",
                request.clone(),
                format!(
                    "acknowledged ({}) without a reservation id: {}",
                    op.status, op.body
                ),
            );
        }
        let shown = match (op.op, op.status) {
            (OpKind::Read, 200) => op.body["tickets"].as_i64().map(|t| ("tickets", t)),
            (OpKind::Reserve, 200 | 409) => op.body["remaining_tickets"]
                .as_i64()
                .map(|t| ("remaining_tickets", t)),
            _ => None,
        };
        if let (Some((field, value)), Some(event_id)) = (shown, op.event_id)
            && let Some(cap) = capacity.get(&event_id)
            && !(0..=*cap).contains(&value)
        {
            violate(
                "read-range",
                request.clone(),
                format!("{field} {value} outside [0, {cap}] of event {event_id}"),
            );
        }
        if op.op == OpKind::Reserve
            && (400..500).contains(&op.status)
            && !matches!(op.status, 409 | 429)
        {
            violate(
                "http-5xx",
                request.clone(),
                format!(
                    "a valid reserve was refused with {}: {}",
                    op.status, op.body
                ),
            );
        }
    }

    // Per reservation id: what the answers said, then the database.
    struct Seen<'a> {
        op: &'a Op,
        status: ReservationStatus,
    }
    let mut seen: HashMap<Uuid, Vec<Seen>> = HashMap::new();
    let mut cancel_asked: BTreeSet<Uuid> = BTreeSet::new();
    let mut keys: HashMap<&str, BTreeSet<Uuid>> = HashMap::new();
    let mut named: BTreeSet<Uuid> = BTreeSet::new();
    for op in &ops {
        let Some(id) = op.reservation_id else {
            continue;
        };
        named.insert(id);
        if op.op == OpKind::Cancel {
            cancel_asked.insert(id);
        }
        if let Some(key) = &op.idempotency_key
            && matches!(op.status, 200 | 202 | 409 | 503)
        {
            keys.entry(key).or_default().insert(id);
        }
        if let Some(status) = op.reported_status().and_then(status_of) {
            seen.entry(id).or_default().push(Seen { op, status });
        }
    }
    summary.reservations_seen = named.len();
    summary.rows_not_in_history = db
        .rows
        .iter()
        .filter(|(id, row)| events.contains(&row.event_id) && !named.contains(id))
        .count();
    for (key, ids) in &keys {
        if ids.len() > 1 {
            violate(
                "inv3-decided-twice",
                format!("Idempotency-Key {key}"),
                format!("one key, several reservation ids: {ids:?}"),
            );
        }
    }

    use ReservationStatus::{Cancelled, Confirmed, Pending, Rejected};
    let mut ids: Vec<&Uuid> = seen.keys().collect();
    ids.sort();
    for id in ids {
        let observations = &seen[id];
        let has = |s: ReservationStatus| observations.iter().any(|o| o.status == s);
        if has(Rejected) && (has(Confirmed) || has(Cancelled)) {
            let list: Vec<String> = observations
                .iter()
                .map(|o| format!("{:?} {}@{:.0}ms", o.op.op, o.op.status, o.op.end_ms))
                .collect();
            violate(
                "inv3-decided-twice",
                id.to_string(),
                format!(
                    "seen both rejected and confirmed/cancelled: {}",
                    list.join(", ")
                ),
            );
        }
        // Confirmed again in an answer to a request that started after
        // another answer had shown it cancelled.
        if let Some(cancelled_at) = observations
            .iter()
            .filter(|o| o.status == Cancelled)
            .map(|o| o.op.end_ms)
            .reduce(f64::min)
            && let Some(late) = observations
                .iter()
                .find(|o| o.status == Confirmed && o.op.start_ms > cancelled_at)
        {
            violate(
                "inv3-decided-twice",
                id.to_string(),
                format!(
                    "seen cancelled at {cancelled_at:.0} ms, then confirmed by {} {} started at {:.0} ms",
                    late.op.method, late.op.path, late.op.start_ms
                ),
            );
        }
        let quantities: BTreeSet<i64> = observations
            .iter()
            .filter_map(|o| o.op.body["quantity"].as_i64())
            .collect();
        if quantities.len() > 1 {
            violate(
                "inv3-decided-twice",
                id.to_string(),
                format!("answers disagree on the quantity: {quantities:?}"),
            );
        }

        // Invariant 4: the final row agrees with every decided answer.
        let Some(row) = db.rows.get(id) else {
            violate(
                "inv4-response-vs-db",
                id.to_string(),
                "answered as decided but no row in the database".into(),
            );
            continue;
        };
        for o in observations {
            let agrees = match o.status {
                Pending => true,
                Confirmed => {
                    row.status == Confirmed
                        || (row.status == Cancelled && cancel_asked.contains(id))
                }
                Rejected => row.status == Rejected,
                Cancelled => row.status == Cancelled,
            };
            if !agrees {
                violate(
                    "inv4-response-vs-db",
                    id.to_string(),
                    format!(
                        "{} {} answered {} ({:?}) but the row is {:?}{}",
                        o.op.method,
                        o.op.path,
                        o.op.status,
                        o.status,
                        row.status,
                        if row.status == Cancelled {
                            " and no cancel was asked"
                        } else {
                            ""
                        }
                    ),
                );
            }
            if let Some(q) = o.op.body["quantity"].as_i64()
                && q != i64::from(row.quantity)
            {
                violate(
                    "inv4-response-vs-db",
                    id.to_string(),
                    format!("answered quantity {q}, row has {}", row.quantity),
                );
            }
        }
    }

    // Invariant 5: acknowledged commands reached a final state.
    summary.acknowledged = ops.iter().filter(|op| op.acknowledged()).count();
    for id in unresolved(history, db) {
        let state = db
            .rows
            .get(&id)
            .map_or("no row".to_owned(), |r| format!("row {:?}", r.status));
        violate(
            "inv5-lost",
            id.to_string(),
            format!("acknowledged but never reached a final state ({state})"),
        );
    }

    summary.violations = violations;
    summary
}

/// Reads the events of the history (all events when it names none) and
/// their reservations, from one consistent snapshot: workers may still be
/// deciding (commands the api never acknowledged, late cancels), and rows
/// read at different moments would make a correct database look
/// unbalanced.
pub async fn load_db(database_url: &str, events: &[i64]) -> anyhow::Result<DbState> {
    use sea_orm::{
        AccessMode, ColumnTrait, EntityTrait, IsolationLevel, QueryFilter, TransactionTrait,
    };
    use shared::entities::{event, reservation};

    let pool = shared::db::connect_url(database_url, 2, Duration::from_secs(10)).await?;
    let db = pool
        .begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await?;
    let mut query = event::Entity::find();
    if !events.is_empty() {
        query = query.filter(event::Column::Id.is_in(events.iter().copied()));
    }
    let mut state = DbState::default();
    for e in query.all(&db).await? {
        state.events.insert(
            e.id,
            EventRow {
                capacity: e.capacity.into(),
                available: e.available.into(),
            },
        );
        let rows = reservation::Entity::find()
            .filter(reservation::Column::EventId.eq(e.id))
            .all(&db)
            .await?;
        for r in rows {
            state.rows.insert(
                r.id,
                Row {
                    event_id: r.event_id,
                    status: r.status,
                    quantity: r.quantity,
                },
            );
        }
    }
    db.commit().await?;
    pool.close().await.ok();
    Ok(state)
}

/// Waits up to `wait` for the acknowledged commands to reach a final state
/// (reading the database every half second), then checks.
pub async fn check_database(
    history: &[Record],
    database_url: &str,
    wait: Duration,
    limits: Limits,
) -> anyhow::Result<Summary> {
    let events: Vec<i64> = split(history)
        .0
        .map(|m| m.events.iter().map(|e| e.id).collect())
        .unwrap_or_default();
    let deadline = Instant::now() + wait;
    loop {
        let db = load_db(database_url, &events).await;
        match db {
            Ok(db) if unresolved(history, &db).is_empty() || Instant::now() >= deadline => {
                return Ok(check(history, &db, limits));
            }
            Err(error) if Instant::now() >= deadline => return Err(error),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

impl Summary {
    /// Human-readable report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let ops: Vec<String> = self
            .by_op
            .iter()
            .map(|(op, statuses)| {
                let total: usize = statuses.values().sum();
                let detail: Vec<String> =
                    statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
                format!("{op} {total} ({})", detail.join(" "))
            })
            .collect();
        out.push_str(&format!(
            "operations {} [{}]\nacknowledged {}, reservations named {}, rows not named by any answer {}\n",
            self.operations,
            ops.join("; "),
            self.acknowledged,
            self.reservations_seen,
            self.rows_not_in_history
        ));
        let kinds: Vec<String> = self
            .fault_kinds
            .iter()
            .map(|(k, n)| format!("{k}×{n}"))
            .collect();
        out.push_str(&format!(
            "faults injected {} [{}]\n",
            self.faults,
            kinds.join(", ")
        ));
        out.push_str(&format!(
            "max latency {:.0} ms (during faults {:.0} ms)\n",
            self.max_latency_ms, self.max_latency_during_faults_ms
        ));
        for (id, e) in &self.events {
            out.push_str(&format!(
                "event {id}: capacity {} available {} confirmed {}\n",
                e.capacity, e.available, e.confirmed_quantity
            ));
        }
        out.push_str(&format!("violations {}\n", self.violations.len()));
        for v in self.violations.iter().take(50) {
            out.push_str(&format!("  {v}\n"));
        }
        if self.violations.len() > 50 {
            out.push_str(&format!("  … and {} more\n", self.violations.len() - 50));
        }
        out
    }
}
