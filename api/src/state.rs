//! What every handler can reach. Handlers extract it on every request,
//! which clones it, so it is one `Arc`: cloning its fields one by one (the
//! etcd client alone holds a dozen gRPC channels) cost the availability
//! read more CPU than everything else it does.

use std::{ops::Deref, sync::Arc};

use sea_orm::DatabaseConnection;
use shared::{
    cache::AvailabilityCache,
    settings::{LiveSettings, Settings},
};

use crate::{
    auth::Keys, availability::AvailabilityView, broker::Broker, known_events::KnownEvents,
    known_users::KnownUsers, live_feed::LiveFeed, ratelimit::ClientLimiter,
};

#[derive(Clone)]
pub struct AppState(Arc<Resources>);

impl AppState {
    pub fn new(resources: Resources) -> Self {
        Self(Arc::new(resources))
    }
}

impl Deref for AppState {
    type Target = Resources;

    fn deref(&self) -> &Resources {
        &self.0
    }
}

pub struct Resources {
    pub db: DatabaseConnection,
    pub cache: AvailabilityCache,
    /// Fresh counts in memory, kept current by the workers' announcements.
    pub availability: Arc<AvailabilityView>,
    pub settings: LiveSettings,
    /// The live settings' defaults (flags and environment), for the admin
    /// view of what each override changes.
    pub settings_defaults: Settings,
    /// The etcd prefix of the live settings (`/<namespace>/config/`).
    pub settings_prefix: String,
    /// The counts the live page's streams watch, fed by the same
    /// announcements.
    pub live: Arc<LiveFeed>,
    pub broker: Arc<Broker>,
    pub known_events: Arc<KnownEvents>,
    pub known_users: Arc<KnownUsers>,
    pub etcd: etcd_client::Client,
    /// The admin token and the clients' API keys.
    pub keys: Arc<Keys>,
    pub max_body_bytes: usize,
    pub body_read_timeout: std::time::Duration,
    /// `None` when the per-client limit on reserve is off.
    pub reserve_limiter: Option<Arc<ClientLimiter>>,
    pub backend_timeout: std::time::Duration,
}
