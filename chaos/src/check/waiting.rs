//! Rules on the waiting lists (`inv-waiting-offer`): an offer is made once
//! and whole. An entry marked offered has its hold (the reservation with
//! the entry's id), and a reservation with an entry's id belongs to an
//! entry marked offered: the worker writes both in one transaction, so a
//! fault can leave neither half alone.

use super::model::{DbState, Violation};

pub(super) fn check(events: &[i64], db: &DbState) -> Vec<Violation> {
    let mut ids: Vec<_> = db
        .waiting
        .iter()
        .filter(|(_, entry)| events.contains(&entry.event_id))
        .collect();
    ids.sort_by_key(|(id, _)| **id);
    ids.into_iter()
        .filter_map(|(id, entry)| {
            let detail = match (entry.offered, db.rows.get(id)) {
                (true, None) => "marked offered, but no hold has its id",
                (false, Some(_)) => "a reservation has its id, but it is not marked offered",
                _ => return None,
            };
            Some(Violation::new("inv-waiting-offer", id.to_string(), detail))
        })
        .collect()
}
