//! The history: every request the workload made and every fault injected,
//! one JSON object per line, in the order they completed.

use std::{
    fs::File,
    io::{BufRead, BufReader, BufWriter, Write},
    path::Path,
    sync::Mutex,
    time::Instant,
};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// One line of the history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// First line: what the run was against.
    Meta(Meta),
    /// A request and its response.
    Op(Op),
    /// A fault, from when it was injected until it was healed.
    Fault(Fault),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub started_at: DateTime<Utc>,
    pub apis: Vec<String>,
    pub events: Vec<EventMeta>,
    #[serde(default)]
    pub scenario: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventMeta {
    pub id: i64,
    pub capacity: i64,
    /// The event's ticket types: a reserve of it names one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ticket_types: Vec<i64>,
    /// Users its reserves and waiting-list entries name (it limits tickets
    /// per user).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<i64>,
}

impl EventMeta {
    /// A plain event: no types, no users.
    pub fn plain(id: i64, capacity: i64) -> Self {
        Self {
            id,
            capacity,
            ticket_types: Vec::new(),
            users: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Reserve,
    /// Confirming a hold.
    Confirm,
    Cancel,
    Poll,
    Read,
    /// Joining a waiting list.
    Join,
    /// Reading a waiting-list entry.
    Wait,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Op {
    pub op: OpKind,
    pub client: usize,
    /// Index of the api replica (in `Meta::apis`) the request went to.
    pub api: usize,
    pub method: String,
    pub path: String,
    pub event_id: Option<i64>,
    /// The reservation the request named (cancel, poll) or got (reserve).
    pub reservation_id: Option<Uuid>,
    pub quantity: Option<i32>,
    pub idempotency_key: Option<String>,
    /// 1 for a first try, 2… for a retry with the same Idempotency-Key.
    pub attempt: u32,
    /// `?wait=false` was asked.
    pub asynchronous: bool,
    /// Milliseconds since `Meta::started_at`.
    pub start_ms: f64,
    pub end_ms: f64,
    /// HTTP status; 0 when no answer came (connection error or timeout).
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Value,
    pub error: Option<String>,
}

impl Op {
    pub fn latency_ms(&self) -> f64 {
        self.end_ms - self.start_ms
    }

    /// The reservation status a decided answer reported, if any.
    pub fn reported_status(&self) -> Option<&str> {
        match (self.op, self.status) {
            (OpKind::Reserve | OpKind::Confirm, 200 | 409)
            | (OpKind::Poll, 200)
            | (OpKind::Cancel, 200) => self.body["status"].as_str(),
            // An offered entry shows its hold as it is now.
            (OpKind::Wait, 200) => self.body["reservation"]["status"].as_str(),
            _ => None,
        }
    }

    /// The API accepted responsibility for the command (invariant 5).
    pub fn acknowledged(&self) -> bool {
        match self.op {
            OpKind::Reserve => matches!(self.status, 200 | 202 | 409),
            // A 409 problem (not decided yet) queued nothing; a 409 with
            // the reservation is a decision.
            OpKind::Confirm => {
                matches!(self.status, 200 | 202)
                    || (self.status == 409 && self.body["status"].is_string())
            }
            OpKind::Cancel => matches!(self.status, 200 | 202),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    /// e.g. `sigkill-worker`, `restart-rabbitmq`.
    pub fault: String,
    pub detail: String,
    pub start_ms: f64,
    pub end_ms: f64,
}

/// Appends records to a history file; shared by all clients.
pub struct HistoryWriter {
    started: Instant,
    out: Mutex<BufWriter<File>>,
}

impl HistoryWriter {
    pub fn create(path: &Path, meta: Meta) -> anyhow::Result<Self> {
        let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
        let writer = Self {
            started: Instant::now(),
            out: Mutex::new(BufWriter::new(file)),
        };
        writer.write(&Record::Meta(meta));
        Ok(writer)
    }

    /// Milliseconds since the history started.
    pub fn now_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    pub fn write(&self, record: &Record) {
        let mut line = serde_json::to_vec(record).expect("records serialize");
        line.push(b'\n');
        let mut out = self.out.lock().expect("history lock");
        out.write_all(&line).expect("write history");
    }

    pub fn flush(&self) {
        self.out
            .lock()
            .expect("history lock")
            .flush()
            .expect("flush history");
    }
}

pub fn read(path: &Path) -> anyhow::Result<Vec<Record>> {
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    BufReader::new(file)
        .lines()
        .enumerate()
        .filter(|(_, line)| !matches!(line, Ok(l) if l.trim().is_empty()))
        .map(|(n, line)| {
            let line = line?;
            serde_json::from_str(&line).with_context(|| format!("{}:{}", path.display(), n + 1))
        })
        .collect()
}
