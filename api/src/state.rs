//! What every handler can reach.

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use shared::{cache::AvailabilityCache, settings::LiveSettings};

use crate::{
    auth::Keys, availability::AvailabilityView, broker::Broker, known_events::KnownEvents,
    ratelimit::ClientLimiter,
};

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub cache: AvailabilityCache,
    /// Fresh counts in memory, kept current by the workers' announcements.
    pub availability: Arc<AvailabilityView>,
    pub settings: LiveSettings,
    pub broker: Arc<Broker>,
    pub known_events: Arc<KnownEvents>,
    pub etcd: etcd_client::Client,
    /// The admin token and the clients' API keys.
    pub keys: Arc<Keys>,
    pub max_body_bytes: usize,
    pub body_read_timeout: std::time::Duration,
    /// `None` when the per-client limit on reserve is off.
    pub reserve_limiter: Option<Arc<ClientLimiter>>,
    pub backend_timeout: std::time::Duration,
}
