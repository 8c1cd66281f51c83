//! Optional Redis cache of each event's availability, for the read-heavy
//! `GET /events/{id}/tickets`. MySQL stays the source of truth: every cache
//! failure is logged and answered from MySQL instead.
//!
//! Redis never holds anything up for long: every call is bounded by a short
//! timeout, and after a failure a breaker leaves Redis alone for a few
//! seconds, so a black-holed Redis costs one timeout every few seconds, not
//! one per request.
//!
//! Entries carry the event row's `version` and are only ever replaced by a
//! newer version, so a reader that fills the cache from an old MySQL read can
//! never overwrite what a worker wrote after its commit.
//!
//! Every call is counted in `tickets_redis_operations_total` by `op`
//! (`read`, `write`) and `result` (`hit`, `miss`, `ok`, `error`, `skipped`
//! while the breaker is open).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{
    AsyncCommands, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

/// Bounds how long a cache entry can be stale if Redis missed an update
/// (e.g. it was unreachable when a worker committed).
const ENTRY_TTL: Duration = Duration::from_secs(60);

/// Longest wait for Redis, whatever the backend timeout: an answer from a
/// cache that takes longer is worth less than asking MySQL.
const MAX_WAIT: Duration = Duration::from_millis(250);

/// How long the cache is skipped after a failure.
const BREAK_FOR: Duration = Duration::from_secs(5);

const SET_IF_NEWER: &str = r"
local current = tonumber(redis.call('HGET', KEYS[1], 'v') or '-1')
if tonumber(ARGV[1]) > current then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'a', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
";

/// Open (skip Redis) until a moment `BREAK_FOR` after the last failure.
struct Breaker {
    since: Instant,
    open_until_ms: AtomicU64,
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        self.since.elapsed().as_millis() as u64
    }

    fn is_open(&self) -> bool {
        self.now_ms() < self.open_until_ms.load(Ordering::Relaxed)
    }

    fn trip(&self) {
        let until = self.now_ms() + BREAK_FOR.as_millis() as u64;
        self.open_until_ms.store(until, Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct AvailabilityCache {
    connection: Option<ConnectionManager>,
    breaker: Arc<Breaker>,
    namespace: String,
    set_if_newer: Script,
}

/// An event's cached availability and the row version it was read at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cached {
    pub version: i64,
    pub available: i32,
}

/// What `/readyz` reports about Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheHealth {
    Up,
    Down,
    Disabled,
}

impl AvailabilityCache {
    /// An empty `url` disables the cache. The connection is made lazily and
    /// re-made after failures, so Redis may come and go at any time.
    pub fn new(url: &str, namespace: &str, timeout: Duration) -> redis::RedisResult<Self> {
        let connection = if url.is_empty() {
            None
        } else {
            let timeout = timeout.min(MAX_WAIT);
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            Some(ConnectionManager::new_lazy_with_config(
                redis::Client::open(url)?,
                config,
            )?)
        };
        Ok(Self {
            connection,
            breaker: Arc::new(Breaker {
                since: Instant::now(),
                open_until_ms: AtomicU64::new(0),
            }),
            namespace: namespace.to_owned(),
            set_if_newer: Script::new(SET_IF_NEWER),
        })
    }

    fn key(&self, event_id: i64) -> String {
        format!("{}:event:{event_id}:availability", self.namespace)
    }

    /// The connection, unless the cache is disabled or its breaker open
    /// (counted as a skipped `op`).
    fn connection(&self, op: &'static str) -> Option<ConnectionManager> {
        let connection = self.connection.clone()?;
        if self.breaker.is_open() {
            counted(op, "skipped");
            return None;
        }
        Some(connection)
    }

    /// The cached number of tickets left and its version, if Redis has
    /// them and answers.
    pub async fn available(&self, event_id: i64) -> Option<Cached> {
        let mut connection = self.connection("read")?;
        let read =
            connection.hmget::<_, _, (Option<i64>, Option<i32>)>(self.key(event_id), &["v", "a"]);
        match tokio::time::timeout(MAX_WAIT, read).await {
            Ok(Ok((Some(version), Some(available)))) => {
                counted("read", "hit");
                Some(Cached { version, available })
            }
            Ok(Ok(_)) => {
                counted("read", "miss");
                None
            }
            Ok(Err(error)) => {
                counted("read", "error");
                tracing::debug!(%error, "availability cache read failed");
                self.breaker.trip();
                None
            }
            Err(_) => {
                counted("read", "error");
                tracing::debug!("availability cache read timed out");
                self.breaker.trip();
                None
            }
        }
    }

    /// Records `available` for the event unless a newer version is cached.
    /// Waits at most [`MAX_WAIT`]; a failure opens the breaker.
    pub async fn store(&self, event_id: i64, version: i64, available: i32) {
        let Some(mut connection) = self.connection("write") else {
            return;
        };
        let mut invocation = self.set_if_newer.key(self.key(event_id));
        invocation
            .arg(version)
            .arg(available)
            .arg(ENTRY_TTL.as_millis() as u64);
        let write = invocation.invoke_async::<i32>(&mut connection);
        let failed = match tokio::time::timeout(MAX_WAIT, write).await {
            Ok(Ok(_)) => return counted("write", "ok"),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        counted("write", "error");
        tracing::debug!(error = failed, event_id, "availability cache write failed");
        self.breaker.trip();
        // A stale entry must not outlive a missed update: drop it if we can.
        let delete = connection.del::<_, ()>(self.key(event_id));
        let _ = tokio::time::timeout(MAX_WAIT, delete).await;
    }

    pub async fn health(&self) -> CacheHealth {
        let Some(mut connection) = self.connection.clone() else {
            return CacheHealth::Disabled;
        };
        match redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
        {
            Ok(_) => CacheHealth::Up,
            Err(_) => CacheHealth::Down,
        }
    }
}

fn counted(op: &'static str, result: &'static str) {
    metrics::counter!("tickets_redis_operations_total", "op" => op, "result" => result)
        .increment(1);
}
