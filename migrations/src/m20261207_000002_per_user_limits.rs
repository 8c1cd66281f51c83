//! Per-user limits: an event may cap how many tickets one user holds and
//! has confirmed across all of their reservations. The worker sums a
//! user's tickets while it decides, so the `(event_id, user_id)` index is
//! what keeps that sum a short range read on a hot event.

sql_migration!("m20261207_000002_per_user_limits");

const UP: [&str; 2] = [
    "ALTER TABLE events
        ADD COLUMN max_per_user INT NULL AFTER capacity,
        ADD CONSTRAINT events_max_per_user_positive CHECK (max_per_user IS NULL OR max_per_user > 0)",
    "ALTER TABLE reservations ADD KEY reservations_event_user (event_id, user_id)",
];

const DOWN: [&str; 2] = [
    "ALTER TABLE reservations DROP KEY reservations_event_user",
    "ALTER TABLE events
        DROP CONSTRAINT events_max_per_user_positive,
        DROP COLUMN max_per_user",
];
