//! Live settings. The environment gives defaults; keys under
//! `/<namespace>/config/` in etcd override them and are watched, so an
//! operator can pause sales or change limits without a restart.
//!
//! Keys (values are plain text): `max_quantity`, `reserve_wait_timeout_ms`,
//! `sales_paused`, `events/<id>/sales_paused`, `batch_size`,
//! `batch_linger_ms`, `max_hold_seconds`, `default_hold_seconds`. A key that does not parse is logged and ignored.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use backon::BackoffBuilder;
use clap::Args;
use etcd_client::Client;

use crate::etcd::PrefixView;
use tokio::sync::watch;

/// Defaults for the live settings, from flags or the environment.
#[derive(Args, Debug, Clone)]
pub struct SettingsArgs {
    /// Largest quantity one reservation may ask for.
    #[arg(long, env = "MAX_QUANTITY", default_value_t = 10)]
    pub max_quantity: i32,

    /// How long a synchronous reserve waits for its outcome before answering
    /// 202 with the reservation id to poll.
    #[arg(long, env = "RESERVE_WAIT_TIMEOUT_MS", default_value_t = 5000)]
    pub reserve_wait_timeout_ms: u64,

    /// Refuse every new reservation with 503 (maintenance switch).
    #[arg(long, env = "SALES_PAUSED", default_value_t = false)]
    pub sales_paused: bool,

    /// Most commands a worker decides in one batch (1 = one lock hold and one
    /// transaction per reservation).
    #[arg(long, env = "BATCH_SIZE", default_value_t = 256)]
    pub batch_size: usize,

    /// How long a worker waits for more commands before deciding a batch
    /// that is not full.
    #[arg(long, env = "BATCH_LINGER_MS", default_value_t = 2)]
    pub batch_linger_ms: u64,

    /// Longest hold a reservation may ask for (`hold_seconds`).
    #[arg(long, env = "MAX_HOLD_SECONDS", default_value_t = 900)]
    pub max_hold_seconds: i32,

    /// How long a hold lasts when it does not say (at most
    /// MAX_HOLD_SECONDS).
    #[arg(long, env = "DEFAULT_HOLD_SECONDS", default_value_t = 600)]
    pub default_hold_seconds: i32,
}

/// The keys that apply to every event, in the order tools list them. Each
/// event has one more: `events/<id>/sales_paused` ([`event_pause_key`]).
pub const KEYS: &[&str] = &[
    "max_quantity",
    "reserve_wait_timeout_ms",
    "sales_paused",
    "batch_size",
    "batch_linger_ms",
    "max_hold_seconds",
    "default_hold_seconds",
];

/// The key that pauses (or resumes) one event's sales.
pub fn event_pause_key(event_id: i64) -> String {
    format!("events/{event_id}/sales_paused")
}

/// One consistent snapshot of the live settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub max_quantity: i32,
    pub reserve_wait_timeout: Duration,
    pub sales_paused: bool,
    pub paused_events: BTreeSet<i64>,
    pub batch_size: usize,
    pub batch_linger: Duration,
    pub max_hold_seconds: i32,
    default_hold_seconds: i32,
}

impl Settings {
    pub fn from_args(args: &SettingsArgs) -> Self {
        Self {
            max_quantity: args.max_quantity,
            reserve_wait_timeout: Duration::from_millis(args.reserve_wait_timeout_ms),
            sales_paused: args.sales_paused,
            paused_events: BTreeSet::new(),
            batch_size: args.batch_size.max(1),
            batch_linger: Duration::from_millis(args.batch_linger_ms),
            max_hold_seconds: args.max_hold_seconds.max(1),
            default_hold_seconds: args.default_hold_seconds.max(1),
        }
    }

    /// How long a hold lasts when it does not say: the default, capped by
    /// the maximum (either may be changed live).
    pub fn default_hold_seconds(&self) -> i32 {
        self.default_hold_seconds.min(self.max_hold_seconds)
    }

    /// The defaults with every valid override applied.
    pub fn with_overrides(&self, overrides: &BTreeMap<String, String>) -> Self {
        let mut settings = self.clone();
        for (key, value) in overrides {
            if let Err(reason) = settings.apply(key, value.trim()) {
                tracing::warn!(key, value, reason, "ignoring invalid live setting");
            }
        }
        settings
    }

    fn apply(&mut self, key: &str, value: &str) -> Result<(), String> {
        let parse_err = |e: &dyn std::fmt::Display| e.to_string();
        match key {
            "max_quantity" => {
                let v: i32 = value.parse().map_err(|e| parse_err(&e))?;
                if v < 1 {
                    return Err("must be at least 1".into());
                }
                self.max_quantity = v;
            }
            "reserve_wait_timeout_ms" => {
                let v: u64 = value.parse().map_err(|e| parse_err(&e))?;
                self.reserve_wait_timeout = Duration::from_millis(v);
            }
            "sales_paused" => self.sales_paused = parse_bool(value)?,
            "batch_size" => {
                let v: usize = value.parse().map_err(|e| parse_err(&e))?;
                if v < 1 {
                    return Err("must be at least 1".into());
                }
                self.batch_size = v;
            }
            "batch_linger_ms" => {
                let v: u64 = value.parse().map_err(|e| parse_err(&e))?;
                self.batch_linger = Duration::from_millis(v);
            }
            "max_hold_seconds" | "default_hold_seconds" => {
                let v: i32 = value.parse().map_err(|e| parse_err(&e))?;
                if v < 1 {
                    return Err("must be at least 1".into());
                }
                if key == "max_hold_seconds" {
                    self.max_hold_seconds = v;
                } else {
                    self.default_hold_seconds = v;
                }
            }
            _ => {
                let event = key
                    .strip_prefix("events/")
                    .and_then(|rest| rest.strip_suffix("/sales_paused"))
                    .ok_or("unknown key")?;
                let id: i64 = event.parse().map_err(|e| parse_err(&e))?;
                if parse_bool(value)? {
                    self.paused_events.insert(id);
                } else {
                    self.paused_events.remove(&id);
                }
            }
        }
        Ok(())
    }

    /// Whether `value` (as stored, before trimming) is a valid value of
    /// `key`: the parser the watchers apply, so what an admin tool accepts
    /// is exactly what takes effect. `Err` says why not.
    pub fn check(&self, key: &str, value: &str) -> Result<(), String> {
        self.clone().apply(key, value.trim())
    }

    /// The value of `key` in this snapshot, as text (`None`: unknown key).
    pub fn value(&self, key: &str) -> Option<String> {
        let millis = |d: Duration| d.as_millis().to_string();
        Some(match key {
            "max_quantity" => self.max_quantity.to_string(),
            "reserve_wait_timeout_ms" => millis(self.reserve_wait_timeout),
            "sales_paused" => self.sales_paused.to_string(),
            "batch_size" => self.batch_size.to_string(),
            "batch_linger_ms" => millis(self.batch_linger),
            "max_hold_seconds" => self.max_hold_seconds.to_string(),
            "default_hold_seconds" => self.default_hold_seconds().to_string(),
            _ => {
                let id: i64 = key
                    .strip_prefix("events/")?
                    .strip_suffix("/sales_paused")?
                    .parse()
                    .ok()?;
                self.paused_events.contains(&id).to_string()
            }
        })
    }

    pub fn is_paused(&self, event_id: i64) -> bool {
        self.sales_paused || self.paused_events.contains(&event_id)
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("{value:?} is not a boolean")),
    }
}

/// A cheap, cloneable handle on the latest settings.
#[derive(Debug, Clone)]
pub struct LiveSettings(watch::Receiver<Arc<Settings>>);

impl LiveSettings {
    /// Settings that never change; for tools and tests without etcd.
    pub fn fixed(settings: Settings) -> Self {
        let (tx, rx) = watch::channel(Arc::new(settings));
        // Keeping the sender alive is unnecessary: a receiver still reads
        // the last value after its sender is dropped.
        drop(tx);
        Self(rx)
    }

    pub fn current(&self) -> Arc<Settings> {
        self.0.borrow().clone()
    }

    /// Loads the overrides from etcd and keeps following them in the
    /// background; until the first load succeeds the defaults apply.
    pub fn watch(client: Client, namespace: &str, defaults: Settings, timeout: Duration) -> Self {
        let (tx, rx) = watch::channel(Arc::new(defaults.clone()));
        let prefix = crate::etcd::config_prefix(namespace);
        tokio::spawn(follow(client, prefix, defaults, tx, timeout));
        Self(rx)
    }
}

async fn follow(
    mut client: Client,
    prefix: String,
    defaults: Settings,
    tx: watch::Sender<Arc<Settings>>,
    timeout: Duration,
) {
    let backoff = crate::reconnect::backoff();
    let mut delays = backoff.build();
    loop {
        match sync_and_watch(&mut client, &prefix, &defaults, &tx, timeout).await {
            Ok(()) => {
                tracing::warn!("etcd settings watch ended; resubscribing");
                delays = backoff.build();
            }
            Err(error) => tracing::warn!(%error, "etcd settings watch failed; retrying"),
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
    }
}

async fn sync_and_watch(
    client: &mut Client,
    prefix: &str,
    defaults: &Settings,
    tx: &watch::Sender<Arc<Settings>>,
    timeout: Duration,
) -> Result<(), etcd_client::Error> {
    let mut view = PrefixView::open(client, prefix, timeout).await?;
    publish(tx, defaults, &view.entries);
    while view.changed().await? {
        publish(tx, defaults, &view.entries);
    }
    Ok(())
}

fn publish(
    tx: &watch::Sender<Arc<Settings>>,
    defaults: &Settings,
    overrides: &BTreeMap<String, String>,
) {
    let next = defaults.with_overrides(overrides);
    tx.send_if_modified(|current| {
        if **current == next {
            return false;
        }
        tracing::info!(settings = ?next, "live settings changed");
        *current = Arc::new(next);
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        Settings {
            max_quantity: 10,
            reserve_wait_timeout: Duration::from_secs(5),
            sales_paused: false,
            paused_events: BTreeSet::new(),
            batch_size: 256,
            batch_linger: Duration::from_millis(2),
            max_hold_seconds: 900,
            default_hold_seconds: 600,
        }
    }

    #[test]
    fn the_default_hold_never_exceeds_the_maximum() {
        assert_eq!(defaults().default_hold_seconds(), 600);
        let lower = BTreeMap::from([
            ("max_hold_seconds".to_owned(), "120".to_owned()),
            ("default_hold_seconds".to_owned(), "0".to_owned()),
        ]);
        let s = defaults().with_overrides(&lower);
        assert_eq!(s.max_hold_seconds, 120);
        assert_eq!(s.default_hold_seconds(), 120);
    }

    #[test]
    fn overrides_apply_and_invalid_ones_are_ignored() {
        let overrides: BTreeMap<String, String> = [
            ("max_quantity", "3"),
            ("batch_size", "0"),
            ("events/42/sales_paused", "true"),
            ("events/x/sales_paused", "true"),
            ("reserve_wait_timeout_ms", "250"),
            ("nonsense", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let s = defaults().with_overrides(&overrides);
        assert_eq!(s.max_quantity, 3);
        assert_eq!(s.batch_size, 256);
        assert_eq!(s.reserve_wait_timeout, Duration::from_millis(250));
        assert!(s.is_paused(42));
        assert!(!s.is_paused(1));
    }

    #[test]
    fn check_and_value_follow_the_parser() {
        let s = defaults();
        assert!(s.check("max_quantity", " 4 ").is_ok());
        assert!(s.check("max_quantity", "0").is_err());
        assert!(s.check("batch_linger_ms", "-1").is_err());
        assert!(s.check("events/7/sales_paused", "maybe").is_err());
        assert!(s.check("nonsense", "1").is_err());
        for key in KEYS {
            assert!(s.value(key).is_some(), "{key}");
        }
        assert_eq!(s.value("reserve_wait_timeout_ms").as_deref(), Some("5000"));
        let paused = BTreeMap::from([(event_pause_key(7), "on".to_owned())]);
        let s = s.with_overrides(&paused);
        assert_eq!(s.value(&event_pause_key(7)).as_deref(), Some("true"));
        assert_eq!(s.value(&event_pause_key(8)).as_deref(), Some("false"));
        assert_eq!(s.value("events/x/sales_paused"), None);
    }

    #[test]
    fn global_pause_covers_every_event() {
        let overrides = BTreeMap::from([("sales_paused".to_owned(), "true".to_owned())]);
        assert!(defaults().with_overrides(&overrides).is_paused(1));
    }
}
