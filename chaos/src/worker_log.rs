//! A worker's log file, read by its structured fields. The scenarios start
//! workers with `LOG_FORMAT=json` (shared/src/telemetry.rs: one JSON object
//! a line, with `timestamp`, `level`, `target` and the event's `fields`),
//! and recognise a line by the fields it carries, never by its message:
//! rewording a message must not blind a scenario. Lines that are not JSON
//! (a failpoint's own output on stderr, see [`failpoint_pause`]) are kept
//! apart.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

/// One JSON line.
#[derive(Debug, Clone, Deserialize)]
pub struct Line {
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    pub fields: Map<String, Value>,
}

impl Line {
    fn has(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    fn int(&self, field: &str) -> Option<i64> {
        self.fields.get(field)?.as_i64()
    }
}

/// A write an event row refused for a stale fencing token
/// (worker/src/consumer.rs: fields `event_id` and `stored`, the token the
/// row holds; the token presented is not logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleRefusal {
    pub event_id: i64,
    pub stored: i64,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct WorkerLog {
    /// The JSON lines, in order.
    pub lines: Vec<Line>,
    /// The other lines, in order.
    pub text: Vec<String>,
}

impl WorkerLog {
    /// Reads `path`; a log not written yet is empty.
    pub fn read(path: &Path) -> Self {
        Self::parse(&std::fs::read_to_string(path).unwrap_or_default())
    }

    pub fn parse(text: &str) -> Self {
        let mut log = Self::default();
        for raw in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Line>(raw) {
                Ok(line) => log.lines.push(line),
                Err(_) => log.text.push(raw.to_owned()),
            }
        }
        log
    }

    /// The etcd leases (hex) the worker named (field `lease`: granted,
    /// expired), each once, in the order first named: its grants in order,
    /// the last being its current lease.
    pub fn leases(&self) -> Vec<String> {
        let mut leases: Vec<String> = Vec::new();
        for lease in self
            .lines
            .iter()
            .filter_map(|l| l.fields.get("lease")?.as_str())
        {
            if !leases.iter().any(|known| known == lease) {
                leases.push(lease.to_owned());
            }
        }
        leases
    }

    pub fn stale_refusals(&self) -> impl Iterator<Item = StaleRefusal> + '_ {
        self.lines.iter().filter_map(|l| {
            Some(StaleRefusal {
                event_id: l.int("event_id")?,
                stored: l.int("stored")?,
                at: l.timestamp,
            })
        })
    }

    /// Decision attempts that failed and were retried (fields `event_id`
    /// and `error`: a missed deadline, a database error, a lock not had).
    pub fn failed_attempts(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| l.has("event_id") && l.has("error"))
            .count()
    }

    /// Messages dead-lettered because they are not commands (field
    /// `bytes`, the body's length).
    pub fn undecodable_dead_lettered(&self) -> usize {
        self.lines.iter().filter(|l| l.has("bytes")).count()
    }

    /// Commands dead-lettered because the database refused them for good
    /// (fields `command` and `reason`).
    pub fn refused_dead_lettered(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| l.has("command") && l.has("reason"))
            .count()
    }
}

/// `(event, token)` a worker armed with `WORKER_PAUSE_AT=<point>:<nth>`
/// held when it stopped itself. That failpoint (worker/src/failpoint.rs)
/// writes to stderr, outside the JSON log, one line that starts with the
/// variable's value as the scenario set it and ends with what is held:
/// `WORKER_PAUSE_AT=after-token:3: … (event 2, token 289)`.
pub fn failpoint_pause(log: &WorkerLog, armed: &str) -> Option<(i64, i64)> {
    let prefix = format!("WORKER_PAUSE_AT={armed}:");
    let line = log.text.iter().find(|l| l.starts_with(&prefix))?;
    let (_, held) = line.rsplit_once("(event ")?;
    let (event, rest) = held.split_once(", token ")?;
    let token = rest.trim_end().strip_suffix(')')?;
    Some((event.parse().ok()?, token.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as a worker writes them (tracing-subscriber's JSON format).
    const LOG: &str = r#"{"timestamp":"2026-12-02T07:00:00.100000Z","level":"INFO","fields":{"message":"etcd lease granted","lease":"2a9b"},"target":"worker::lease"}
{"timestamp":"2026-12-02T07:00:01.000000Z","level":"WARN","fields":{"message":"write refused by a newer fencing token; retrying","event_id":4,"stored":4328},"target":"worker::consumer"}
WORKER_PAUSE_AT=after-token:3: pausing at after-token (event 4, token 4316)
{"timestamp":"2026-12-02T07:00:02.000000Z","level":"WARN","fields":{"message":"etcd lease expired","lease":"2a9b"},"target":"worker::lease"}
{"timestamp":"2026-12-02T07:00:02.500000Z","level":"INFO","fields":{"message":"etcd lease granted","lease":"51fe"},"target":"worker::lease"}
{"timestamp":"2026-12-02T07:00:03.000000Z","level":"WARN","fields":{"message":"could not decide; retrying","event_id":4,"error":"the decision did not commit within 1s"},"target":"worker::consumer"}
{"timestamp":"2026-12-02T07:00:04.000000Z","level":"WARN","fields":{"message":"dead-lettering a message that is not a command","error":"expected value","bytes":22},"target":"worker::consumer"}
{"timestamp":"2026-12-02T07:00:05.000000Z","level":"ERROR","fields":{"message":"dead-lettering a command the database refused","command":"Reserve { .. }","request_id":"","reason":"error 1452"},"target":"worker::deliveries"}
"#;

    #[test]
    fn lines_are_told_apart_by_their_fields() {
        let log = WorkerLog::parse(LOG);
        assert_eq!(log.lines.len(), 7);
        assert_eq!(log.leases(), ["2a9b", "51fe"]);
        let refusals: Vec<StaleRefusal> = log.stale_refusals().collect();
        assert_eq!(refusals.len(), 1);
        assert_eq!((refusals[0].event_id, refusals[0].stored), (4, 4328));
        assert_eq!(
            refusals[0].at.map(|t| t.to_rfc3339()),
            Some("2026-12-02T07:00:01+00:00".to_owned())
        );
        assert_eq!(log.failed_attempts(), 1);
        assert_eq!(log.undecodable_dead_lettered(), 1);
        assert_eq!(log.refused_dead_lettered(), 1);
    }

    #[test]
    fn a_reworded_message_is_still_recognised() {
        let log = WorkerLog::parse(
            r#"{"timestamp":"2026-12-02T07:00:01Z","level":"WARN","fields":{"message":"stale token","event_id":2,"stored":9},"target":"worker::consumer"}"#,
        );
        assert_eq!(log.stale_refusals().count(), 1);
        assert!(
            WorkerLog::parse("write refused by a newer fencing token")
                .stale_refusals()
                .next()
                .is_none()
        );
    }

    #[test]
    fn the_pause_names_the_event_and_token_held() {
        let log = WorkerLog::parse(LOG);
        assert_eq!(failpoint_pause(&log, "after-token:3"), Some((4, 4316)));
        assert_eq!(failpoint_pause(&log, "after-token:4"), None);
        assert_eq!(
            failpoint_pause(&WorkerLog::default(), "after-token:3"),
            None
        );
    }
}
