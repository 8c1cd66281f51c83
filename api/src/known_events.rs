//! Ids of events this process has seen exist. Events are never deleted, so
//! once seen, an event's existence needs no further round trip: the reserve
//! path then touches neither Redis nor MySQL before publishing (a burst of
//! requests for a new event would otherwise all miss the cache at once).

use std::{
    collections::HashSet,
    sync::{PoisonError, RwLock},
};

#[derive(Default)]
pub struct KnownEvents(RwLock<HashSet<i64>>);

impl KnownEvents {
    pub fn contains(&self, id: i64) -> bool {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&id)
    }

    pub fn insert(&self, id: i64) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
    }
}
