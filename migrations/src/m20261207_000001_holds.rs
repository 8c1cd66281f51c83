//! Holds: a reservation can keep its tickets for a while (`held`) until
//! it is confirmed, released or expires. A hold records what it asked
//! (`hold_seconds`) and when it ends on the database's clock
//! (`expires_at`). The `(status, expires_at)` index is what lets a worker
//! find the live holds of its partitions, soonest first, without a scan.

sql_migration!("m20261207_000001_holds");

const UP: [&str; 2] = [
    "ALTER TABLE reservations
        ADD COLUMN hold_seconds INT NULL AFTER quantity,
        ADD COLUMN expires_at DATETIME(6) NULL AFTER decided_at,
        ADD KEY reservations_holds (status, expires_at),
        ADD CONSTRAINT reservations_hold_positive CHECK (hold_seconds IS NULL OR hold_seconds > 0)",
    "ALTER TABLE reservation_requests
        ADD COLUMN hold_seconds INT NULL AFTER quantity",
];

const DOWN: [&str; 2] = [
    "ALTER TABLE reservation_requests DROP COLUMN hold_seconds",
    "ALTER TABLE reservations
        DROP CONSTRAINT reservations_hold_positive,
        DROP KEY reservations_holds,
        DROP COLUMN expires_at,
        DROP COLUMN hold_seconds",
];
