//! The api's configuration, from flags or the environment.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use anyhow::Context;
use axum::http::HeaderName;
use clap::Parser;
use ipnet::IpNet;
use shared::{config::ConnectionArgs, settings::SettingsArgs};

use crate::{ratelimit::ProxyHeader, server::Limits};

#[derive(Parser, Debug, Clone)]
#[command(name = "api", about = "HTTP api of the ticket reservation system")]
pub struct Config {
    #[command(flatten)]
    pub connections: ConnectionArgs,

    #[command(flatten)]
    pub settings: SettingsArgs,

    /// Address the HTTP server listens on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8000")]
    pub listen_addr: SocketAddr,

    /// Bearer token required by the admin endpoints (`POST /events`,
    /// `PATCH /events/{id}`, `POST /events/{id}/close`, `/admin/...`).
    /// Empty (the default) disables them; they then answer 403 saying how
    /// to set it.
    #[arg(long, env = "ADMIN_TOKEN", default_value = "", hide_env_values = true)]
    pub admin_token: String,

    /// Refuse requests without an API key (`Authorization: Bearer
    /// <api_key>`). Off by default, so anonymous clients (the seed
    /// scenario's curl and ab) work.
    #[arg(long, env = "REQUIRE_API_KEY", default_value_t = false, action = clap::ArgAction::Set)]
    pub require_api_key: bool,

    /// Most requests that may wait for an outcome at once; beyond it new
    /// reservations are shed with 503.
    #[arg(long, env = "MAX_WAITERS", default_value_t = 10_000)]
    pub max_waiters: usize,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,

    /// Time a client has to send a request body once its head is read (408
    /// beyond it).
    #[arg(long, env = "BODY_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_read_timeout_ms: u64,

    /// Largest request line plus headers, in bytes (431 beyond it).
    #[arg(long, env = "MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,

    /// Most header fields in one request (431 beyond it).
    #[arg(long, env = "MAX_HEADERS", default_value_t = 64)]
    pub max_headers: usize,

    /// Time a client has to send a request head; also how long an idle
    /// keep-alive connection stays open.
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,

    /// Open connections at most; further clients wait in the listen backlog.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Reserve requests per second allowed to one client, sustained; 0 turns
    /// the limit off. A client is an API key; anonymous requests are
    /// limited per address only behind a trusted proxy (`CLIENT_IP_HEADER`,
    /// `TRUSTED_PROXIES`), since without one every host client may share
    /// one address. Beyond it: 429 with `Retry-After`.
    #[arg(long, env = "RESERVE_RATE_LIMIT_PER_SEC", default_value_t = 100)]
    pub reserve_rate_limit_per_sec: u32,

    /// Reserve requests one client may send at once before the sustained rate
    /// applies.
    #[arg(long, env = "RESERVE_RATE_LIMIT_BURST", default_value_t = 200)]
    pub reserve_rate_limit_burst: u32,

    /// Header holding the client's address, set by a trusted reverse proxy
    /// (e.g. `X-Real-IP`); when set, anonymous requests coming through a
    /// proxy in `TRUSTED_PROXIES` are rate limited by that address (IPv6 by
    /// /64). When empty, anonymous requests are not rate limited.
    #[arg(long, env = "CLIENT_IP_HEADER", default_value = "")]
    pub client_ip_header: String,

    /// Comma-separated addresses or CIDRs of the reverse proxies whose
    /// `CLIENT_IP_HEADER` is believed. On a connection from any other
    /// address the header is ignored, so a client that reaches the api
    /// directly cannot pick its own rate-limit key.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "127.0.0.0/8,::1/128")]
    pub trusted_proxies: String,

    /// How old, in milliseconds, a count in this replica's memory may be
    /// and still answer `GET /events/{id}/tickets`. Workers announce every
    /// new count to every replica, which keeps the counts current; this
    /// bounds how stale one gets when an announcement is lost or the
    /// broker link is down (older, the read goes to Redis, then MySQL).
    /// 0 turns the in-memory view off.
    #[arg(long, env = "AVAILABILITY_MAX_STALENESS_MS", default_value_t = 1000)]
    pub availability_max_staleness_ms: u64,

    /// Most live streams (`GET /events/{id}/live`, what the live page
    /// `/live/{id}` listens to) open at once on this replica; beyond it new
    /// ones are refused with 503. 0 turns the live streams off (404).
    #[arg(long, env = "LIVE_MAX_STREAMS", default_value_t = 1000)]
    pub live_max_streams: usize,

    /// Seconds after which a live stream ends, 1 to 86400; a browser
    /// reconnects by itself, possibly to another replica, so open streams
    /// spread again after a scale-out.
    #[arg(long, env = "LIVE_STREAM_MAX_SECONDS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub live_stream_max_seconds: u64,
}

impl Config {
    pub fn availability_max_staleness(&self) -> Duration {
        Duration::from_millis(self.availability_max_staleness_ms)
    }

    pub fn live_stream_max_lifetime(&self) -> Duration {
        Duration::from_secs(self.live_stream_max_seconds)
    }

    pub fn publish_timeout(&self) -> Duration {
        self.connections.backend_timeout()
    }

    /// The validated `CLIENT_IP_HEADER` with the proxies allowed to set it.
    /// An empty header counts as unset, as compose files pass
    /// `${CLIENT_IP_HEADER:-}` through.
    pub fn client_header(&self) -> anyhow::Result<Option<ProxyHeader>> {
        if self.client_ip_header.is_empty() {
            return Ok(None);
        }
        let name = HeaderName::try_from(self.client_ip_header.as_str())
            .with_context(|| format!("CLIENT_IP_HEADER {:?}", self.client_ip_header))?;
        let trusted = self
            .trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .with_context(|| format!("TRUSTED_PROXIES entry {entry:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(
            !trusted.is_empty(),
            "CLIENT_IP_HEADER is set but TRUSTED_PROXIES is empty: the header would never be believed"
        );
        Ok(Some(ProxyHeader { name, trusted }))
    }

    pub fn server_limits(&self) -> Limits {
        Limits {
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            max_connections: self.max_connections,
        }
    }
}
