//! Events this process has seen exist, with the terms of their sale (the
//! window, the per-user limit, whether it sells ticket types), and the
//! event and sale window of each ticket type. Events are never deleted; an
//! event's limit is set at creation, and its window and count of ticket
//! types change only by an admin's hand (closing the sale, adding a type).
//! So an event's terms are read again at
//! most every [`TERMS_MAX_AGE`], and between reads the reserve path touches
//! neither Redis nor MySQL before publishing (a burst of requests for a new
//! event would otherwise all miss the cache at once).

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock},
    time::{Duration, Instant},
};

use shared::sale_window::SaleWindow;

/// How long a replica trusts the terms it read: another replica's new
/// ticket type is known here within this time (the worker refuses an
/// untyped reservation of a typed event meanwhile).
pub const TERMS_MAX_AGE: Duration = Duration::from_secs(5);

/// What the api checks of an event before it queues a reservation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Terms {
    pub window: SaleWindow,
    /// Set when the event limits tickets per user: a reservation must then
    /// name its user (the limit itself is enforced by the worker's
    /// decision, where two requests at once cannot both pass it).
    pub max_per_user: Option<i32>,
    /// Set when the event sells ticket types: a reservation must name one.
    pub typed: bool,
}

/// What the api checks of a ticket type: its event, and its own sale
/// window. Neither changes once the type exists (closing a type is its own
/// flag, which only the worker's decision reads), so a replica reads them
/// once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeTerms {
    pub event_id: i64,
    pub window: SaleWindow,
}

#[derive(Default)]
pub struct KnownEvents {
    terms: RwLock<HashMap<i64, (Terms, Instant)>>,
    types: RwLock<HashMap<i64, TypeTerms>>,
}

impl KnownEvents {
    /// The event's terms, if read less than [`TERMS_MAX_AGE`] ago.
    pub fn terms(&self, id: i64) -> Option<Terms> {
        self.any_terms(id)
            .filter(|(_, read_at)| read_at.elapsed() < TERMS_MAX_AGE)
            .map(|(terms, _)| terms)
    }

    /// The event's terms however old: better than none while MySQL is down.
    pub fn stale_terms(&self, id: i64) -> Option<Terms> {
        self.any_terms(id).map(|(terms, _)| terms)
    }

    fn any_terms(&self, id: i64) -> Option<(Terms, Instant)> {
        self.terms
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .copied()
    }

    pub fn insert(&self, id: i64, terms: Terms) {
        self.terms
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, (terms, Instant::now()));
    }

    /// A ticket type's terms, if this replica has read them.
    pub fn ticket_type(&self, ticket_type_id: i64) -> Option<TypeTerms> {
        self.types
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&ticket_type_id)
            .copied()
    }

    pub fn insert_type(&self, ticket_type_id: i64, terms: TypeTerms) {
        self.types
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ticket_type_id, terms);
    }
}
