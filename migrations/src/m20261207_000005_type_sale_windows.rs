//! Sale windows per ticket type: a type may open and close its sale at
//! given times of its own (an early-bird type closing first, a late type
//! opening later), inside whatever window its event has. Both optional, and
//! the database refuses a window that closes before it opens, as for events.

sql_migration!("m20261207_000005_type_sale_windows");

const UP: [&str; 1] = ["ALTER TABLE ticket_types
        ADD COLUMN sale_opens_at DATETIME(6) NULL AFTER closed,
        ADD COLUMN sale_closes_at DATETIME(6) NULL AFTER sale_opens_at,
        ADD CONSTRAINT ticket_types_sale_window CHECK (
            sale_opens_at IS NULL OR sale_closes_at IS NULL OR sale_closes_at > sale_opens_at
        )"];

const DOWN: [&str; 1] = ["ALTER TABLE ticket_types
        DROP CONSTRAINT ticket_types_sale_window,
        DROP COLUMN sale_closes_at,
        DROP COLUMN sale_opens_at"];
