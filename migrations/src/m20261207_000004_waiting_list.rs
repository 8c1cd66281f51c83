//! Waiting lists: when what a client asks for is sold out, it can queue
//! for it. Tickets that come back are offered to the queue in order, as
//! holds, before anyone else can buy them. An entry's id is also the id of
//! the hold offered to it, so an offer made twice finds it already made.
//! `seq` orders the queue; `events.waiting` counts the entries not offered
//! yet, so a worker knows from the event row it already locks whether to
//! read the queue.

sql_migration!("m20261207_000004_waiting_list");

const UP: [&str; 2] = [
    "CREATE TABLE waiting_entries (
        id BINARY(16) NOT NULL PRIMARY KEY,
        seq BIGINT NOT NULL AUTO_INCREMENT,
        event_id BIGINT NOT NULL,
        ticket_type_id BIGINT NULL,
        client_id BIGINT NOT NULL,
        user_id BIGINT NULL,
        quantity INT NOT NULL,
        created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        offered_at DATETIME(6) NULL,
        UNIQUE KEY waiting_entries_seq (seq),
        KEY waiting_entries_queue (event_id, offered_at, seq),
        CONSTRAINT waiting_entries_event FOREIGN KEY (event_id) REFERENCES events (id),
        CONSTRAINT waiting_entries_quantity_positive CHECK (quantity > 0)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "ALTER TABLE events ADD COLUMN waiting INT NOT NULL DEFAULT 0 AFTER ticket_types",
];

const DOWN: [&str; 2] = [
    "ALTER TABLE events DROP COLUMN waiting",
    "DROP TABLE waiting_entries",
];
