//! Sale windows: an event may open and close its sale at given times.
//! Both are optional (no window: on sale as soon as it exists, as before),
//! and the database refuses a window that closes before it opens.

sql_migration!("m20261202_000002_sale_windows");

const UP: [&str; 1] = ["ALTER TABLE events
        ADD COLUMN sale_opens_at DATETIME(6) NULL AFTER starts_at,
        ADD COLUMN sale_closes_at DATETIME(6) NULL AFTER sale_opens_at,
        ADD CONSTRAINT events_sale_window CHECK (
            sale_opens_at IS NULL OR sale_closes_at IS NULL OR sale_closes_at > sale_opens_at
        )"];

const DOWN: [&str; 1] = ["ALTER TABLE events
        DROP CONSTRAINT events_sale_window,
        DROP COLUMN sale_closes_at,
        DROP COLUMN sale_opens_at"];
