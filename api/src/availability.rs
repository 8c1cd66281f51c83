//! The replica's in-memory view of events' availability, so that the
//! read-heavy `GET /events/{id}/tickets` usually costs no round trip.
//!
//! Workers announce each decided event's new count on a fanout that every
//! replica receives (`broker.rs`), right after the commit and before the
//! outcomes, so a replica has normally seen a count before any client
//! could have learnt it from another replica. Redis and MySQL reads refresh
//! the view too.
//!
//! Staleness is bounded by `max_age` (`AVAILABILITY_MAX_STALENESS_MS`): an
//! entry is served only that long after a source last confirmed it; older,
//! the read goes to Redis, then MySQL, and refreshes it. So when this
//! replica's broker link is down, or an announcement is lost, entries age
//! out instead of going stale. An entry is also stopped from serving when
//! this replica relays an outcome of its event, so the client of that
//! outcome reads its own write here whatever order the broker delivered
//! the two messages in.
//!
//! Entries carry the event row's version and only an equal or newer version
//! replaces one (the rule of the Redis cache's `store`), so announcements
//! that arrive late or out of order never move a count back. A count is
//! served clamped to `[0, capacity]`, and only once the capacity (fixed at
//! creation) is known from a MySQL read.

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock},
    time::{Duration, Instant},
};

use shared::messages::Availability;

/// What a source (an announcement, Redis, MySQL) says about an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub version: i64,
    pub available: i32,
    /// Only MySQL reads carry it.
    pub capacity: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    version: i64,
    available: i32,
    capacity: Option<i32>,
    /// When a source last confirmed `available`; `None` once it must be
    /// confirmed again before it is served.
    confirmed_at: Option<Instant>,
}

impl Entry {
    fn new(seen: Seen, now: Instant) -> Self {
        Self {
            version: seen.version,
            available: seen.available,
            capacity: seen.capacity,
            confirmed_at: Some(now),
        }
    }

    /// The entry once `seen` arrived at `now`: an equal or newer version
    /// replaces the count and confirms it; an older one only adds what it
    /// knows of the capacity.
    fn updated(self, seen: Seen, now: Instant) -> Self {
        let capacity = seen.capacity.or(self.capacity);
        if seen.version < self.version {
            return Self { capacity, ..self };
        }
        Self {
            capacity,
            ..Self::new(seen, now)
        }
    }

    /// The count to serve at `now`, if confirmed within `max_age` and the
    /// capacity is known.
    fn serving(&self, now: Instant, max_age: Duration) -> Option<i32> {
        let confirmed_at = self.confirmed_at?;
        let capacity = self.capacity?;
        (now.saturating_duration_since(confirmed_at) < max_age)
            .then(|| self.available.clamp(0, capacity.max(0)))
    }
}

pub struct AvailabilityView {
    max_age: Duration,
    entries: RwLock<HashMap<i64, Entry>>,
}

impl AvailabilityView {
    /// A view serving entries up to `max_age` old; zero turns it off (it
    /// then holds and serves nothing).
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            entries: RwLock::default(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.max_age.is_zero()
    }

    /// The event's count, if the view may serve it now.
    pub fn get(&self, event_id: i64) -> Option<i32> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&event_id)?
            .serving(Instant::now(), self.max_age)
    }

    /// Whether the view would serve the event after a read from MySQL but
    /// not after one from Redis: it does not know the capacity yet.
    pub fn needs_capacity(&self, event_id: i64) -> bool {
        self.is_enabled()
            && self
                .entries
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&event_id)
                .is_none_or(|entry| entry.capacity.is_none())
    }

    /// What Redis or MySQL said; adds the event to the view.
    pub fn refresh(&self, event_id: i64, seen: Seen) {
        if !self.is_enabled() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let entry = match entries.get(&event_id) {
            Some(entry) => entry.updated(seen, now),
            None => Entry::new(seen, now),
        };
        entries.insert(event_id, entry);
    }

    /// A worker's announcement. Only events already in the view are
    /// updated: the view holds the events this replica is asked about, not
    /// every event that sells.
    pub fn announce(&self, availability: &Availability) {
        let seen = Seen {
            version: availability.version,
            available: availability.available,
            capacity: None,
        };
        let now = Instant::now();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.get_mut(&availability.event_id) {
            *entry = entry.updated(seen, now);
        }
    }

    /// Stops serving the event until a source confirms a count again: this
    /// replica is about to answer a client with one of its outcomes.
    pub fn expire(&self, event_id: i64) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.get_mut(&event_id) {
            entry.confirmed_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_AGE: Duration = Duration::from_secs(1);

    fn seen(version: i64, available: i32, capacity: Option<i32>) -> Seen {
        Seen {
            version,
            available,
            capacity,
        }
    }

    #[test]
    fn a_newer_version_wins_and_an_older_one_arriving_late_is_ignored() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(100);
        let entry = Entry::new(seen(5, 40, Some(100)), t0);

        let newer = entry.updated(seen(7, 30, None), t1);
        assert_eq!(newer.serving(t1, MAX_AGE), Some(30));
        assert_eq!(newer.version, 7);
        assert_eq!(newer.capacity, Some(100), "the capacity is kept");

        let late = newer.updated(seen(6, 35, None), t1 + Duration::from_millis(10));
        assert_eq!(late, newer, "an older version changes nothing");

        // An equal version confirms the count again, so it keeps serving.
        let t2 = t0 + Duration::from_millis(1500);
        assert_eq!(newer.serving(t2, MAX_AGE), None);
        let confirmed = newer.updated(seen(7, 30, None), t2);
        assert_eq!(confirmed.serving(t2, MAX_AGE), Some(30));
    }

    #[test]
    fn counts_are_clamped_to_zero_and_capacity() {
        let t0 = Instant::now();
        let below = Entry::new(seen(1, -3, Some(100)), t0);
        assert_eq!(below.serving(t0, MAX_AGE), Some(0));
        let above = Entry::new(seen(1, 250, Some(100)), t0);
        assert_eq!(above.serving(t0, MAX_AGE), Some(100));
        let unknown = Entry::new(seen(1, 50, None), t0);
        assert_eq!(
            unknown.serving(t0, MAX_AGE),
            None,
            "no capacity, no answer from the view"
        );
        // An older read from MySQL still teaches the capacity.
        let taught = Entry::new(seen(3, 250, None), t0).updated(seen(2, 60, Some(100)), t0);
        assert_eq!(taught.serving(t0, MAX_AGE), Some(100));
    }

    #[test]
    fn entries_age_out_and_expire() {
        let view = AvailabilityView::new(Duration::from_secs(60));
        view.refresh(1, seen(1, 10, Some(10)));
        assert_eq!(view.get(1), Some(10));
        assert!(!view.needs_capacity(1));
        view.expire(1);
        assert_eq!(view.get(1), None);
        view.announce(&Availability {
            event_id: 1,
            version: 2,
            available: 9,
        });
        assert_eq!(view.get(1), Some(9));

        let t0 = Instant::now();
        let entry = Entry::new(seen(1, 10, Some(10)), t0);
        assert_eq!(entry.serving(t0 + MAX_AGE, MAX_AGE), None);
    }

    #[test]
    fn announcements_of_unread_events_and_a_disabled_view_hold_nothing() {
        let view = AvailabilityView::new(Duration::from_secs(60));
        view.announce(&Availability {
            event_id: 2,
            version: 1,
            available: 5,
        });
        assert_eq!(view.get(2), None);
        assert!(view.needs_capacity(2));

        let off = AvailabilityView::new(Duration::ZERO);
        off.refresh(1, seen(1, 10, Some(10)));
        assert_eq!(off.get(1), None);
        assert!(!off.needs_capacity(1));
    }
}
