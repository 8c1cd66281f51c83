//! Users this process has seen exist. A reservation or a waiting-list
//! entry that names a user is refused unless the user exists; users are
//! never deleted, so once a replica has read one it need not ask MySQL
//! again, and the reserve path of a user it knows touches MySQL not at
//! all before publishing (found by the chaos suite's overload scenario:
//! under overload that one read per reserve waited behind the workers'
//! transactions long enough to push answers past 10 s).

use std::{
    collections::HashSet,
    sync::{PoisonError, RwLock},
};

/// Users remembered at most; past it the set starts again (each user is
/// then read once more), so memory stays bounded whatever the user count.
const MAX_KNOWN: usize = 1_000_000;

#[derive(Default)]
pub struct KnownUsers {
    ids: RwLock<HashSet<i64>>,
}

impl KnownUsers {
    pub fn contains(&self, id: i64) -> bool {
        self.ids
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&id)
    }

    pub fn insert(&self, id: i64) {
        let mut ids = self.ids.write().unwrap_or_else(PoisonError::into_inner);
        if ids.len() >= MAX_KNOWN {
            ids.clear();
        }
        ids.insert(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_seen_is_known_and_only_that_one() {
        let users = KnownUsers::default();
        assert!(!users.contains(7));
        users.insert(7);
        assert!(users.contains(7));
        assert!(!users.contains(8));
    }
}
