//! The api's configuration, from flags or the environment.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use shared::{config::ConnectionArgs, settings::SettingsArgs};

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

    /// Bearer token required by the admin endpoints (`POST /events`). Empty
    /// disables them.
    #[arg(long, env = "ADMIN_TOKEN", default_value = "", hide_env_values = true)]
    pub admin_token: String,

    /// Most requests that may wait for an outcome at once; beyond it new
    /// reservations are shed with 503.
    #[arg(long, env = "MAX_WAITERS", default_value_t = 10_000)]
    pub max_waiters: usize,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,
}

impl Config {
    pub fn publish_timeout(&self) -> Duration {
        self.connections.backend_timeout()
    }
}
