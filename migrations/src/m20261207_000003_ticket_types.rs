//! Ticket types and quotas (the pretix model): an event sells one or more
//! types ("standing", "VIP"), each with its own capacity and price, and a
//! quota caps several types together. A reservation of a type takes from
//! the type, from its quota if it has one, and from the event, whose
//! capacity still caps everything. `available` of each is only written by
//! the worker deciding under the event's lock; the CHECKs back that up.
//! `events.ticket_types` counts an event's types, so a worker knows from
//! the event row it already locks whether the types must be read too.

sql_migration!("m20261207_000003_ticket_types");

const UP: [&str; 5] = [
    "CREATE TABLE quotas (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        event_id BIGINT NOT NULL,
        name VARCHAR(100) NOT NULL,
        capacity INT NOT NULL,
        available INT NOT NULL,
        created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        UNIQUE KEY quotas_event_name (event_id, name),
        CONSTRAINT quotas_event FOREIGN KEY (event_id) REFERENCES events (id),
        CONSTRAINT quotas_available_in_range CHECK (available >= 0 AND available <= capacity)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE ticket_types (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        event_id BIGINT NOT NULL,
        name VARCHAR(100) NOT NULL,
        price_cents BIGINT NOT NULL DEFAULT 0,
        capacity INT NOT NULL,
        available INT NOT NULL,
        quota_id BIGINT NULL,
        closed BOOLEAN NOT NULL DEFAULT FALSE,
        created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        UNIQUE KEY ticket_types_event_name (event_id, name),
        CONSTRAINT ticket_types_event FOREIGN KEY (event_id) REFERENCES events (id),
        CONSTRAINT ticket_types_quota FOREIGN KEY (quota_id) REFERENCES quotas (id),
        CONSTRAINT ticket_types_available_in_range CHECK (available >= 0 AND available <= capacity),
        CONSTRAINT ticket_types_price_not_negative CHECK (price_cents >= 0)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "ALTER TABLE events ADD COLUMN ticket_types INT NOT NULL DEFAULT 0 AFTER max_per_user",
    "ALTER TABLE reservations
        ADD COLUMN ticket_type_id BIGINT NULL AFTER event_id,
        ADD CONSTRAINT reservations_ticket_type FOREIGN KEY (ticket_type_id) REFERENCES ticket_types (id)",
    "ALTER TABLE reservation_requests ADD COLUMN ticket_type_id BIGINT NULL AFTER event_id",
];

const DOWN: [&str; 5] = [
    "ALTER TABLE reservation_requests DROP COLUMN ticket_type_id",
    "ALTER TABLE reservations
        DROP FOREIGN KEY reservations_ticket_type,
        DROP COLUMN ticket_type_id",
    "ALTER TABLE events DROP COLUMN ticket_types",
    "DROP TABLE ticket_types",
    "DROP TABLE quotas",
];
