//! Optional Redis cache of each event's availability, for the read-heavy
//! `GET /events/{id}/tickets`. MySQL stays the source of truth: every cache
//! failure is logged and answered from MySQL instead.
//!
//! Entries carry the event row's `version` and are only ever replaced by a
//! newer version, so a reader that fills the cache from an old MySQL read can
//! never overwrite what a worker wrote after its commit.

use std::time::Duration;

use redis::{
    AsyncCommands, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

/// Bounds how long a cache entry can be stale if Redis missed an update
/// (e.g. it was unreachable when a worker committed).
const ENTRY_TTL: Duration = Duration::from_secs(60);

const SET_IF_NEWER: &str = r"
local current = tonumber(redis.call('HGET', KEYS[1], 'v') or '-1')
if tonumber(ARGV[1]) > current then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'a', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
";

#[derive(Clone)]
pub struct AvailabilityCache {
    connection: Option<ConnectionManager>,
    namespace: String,
    set_if_newer: Script,
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
            namespace: namespace.to_owned(),
            set_if_newer: Script::new(SET_IF_NEWER),
        })
    }

    fn key(&self, event_id: i64) -> String {
        format!("{}:event:{event_id}:availability", self.namespace)
    }

    /// The cached number of tickets left, if Redis has it and answers.
    pub async fn available(&self, event_id: i64) -> Option<i32> {
        let mut connection = self.connection.clone()?;
        match connection
            .hget::<_, _, Option<i32>>(self.key(event_id), "a")
            .await
        {
            Ok(value) => value,
            Err(error) => {
                tracing::debug!(%error, "availability cache read failed");
                None
            }
        }
    }

    /// Records `available` for the event unless a newer version is cached.
    pub async fn store(&self, event_id: i64, version: i64, available: i32) {
        let Some(mut connection) = self.connection.clone() else {
            return;
        };
        let result: redis::RedisResult<i32> = self
            .set_if_newer
            .key(self.key(event_id))
            .arg(version)
            .arg(available)
            .arg(ENTRY_TTL.as_millis() as u64)
            .invoke_async(&mut connection)
            .await;
        if let Err(error) = result {
            tracing::debug!(%error, event_id, "availability cache write failed");
            // A stale entry must not outlive a missed update: drop it if we can.
            let _: redis::RedisResult<()> = connection.del(self.key(event_id)).await;
        }
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
