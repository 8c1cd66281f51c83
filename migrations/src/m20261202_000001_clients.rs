//! Clients (API keys), the api's record of accepted requests, the owner of
//! every reservation, and the fencing epoch.
//!
//! `reservation_requests` is written only by the api: one row per request it
//! answered with an id before a decision (202) and per idempotency key,
//! whose unique `(client_id, idempotency_key)` makes "same key, other
//! request" a refusal decided by the database, however close together the
//! two arrive. `reservations` stays written only by the workers. Client 0 is
//! "anonymous" (no row in `clients`).

sql_migration!("m20261202_000001_clients");

const UP: [&str; 5] = [
    "CREATE TABLE clients (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(200) NOT NULL,
        key_hash BINARY(32) NOT NULL,
        created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        revoked_at DATETIME(6) NULL,
        UNIQUE KEY clients_key_hash (key_hash)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE reservation_requests (
        id BINARY(16) NOT NULL PRIMARY KEY,
        client_id BIGINT NOT NULL DEFAULT 0,
        idempotency_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
        event_id BIGINT NOT NULL,
        quantity INT NOT NULL,
        user_id BIGINT NULL,
        created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        UNIQUE KEY reservation_requests_key (client_id, idempotency_key)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "ALTER TABLE reservations ADD COLUMN client_id BIGINT NOT NULL DEFAULT 0 AFTER event_id",
    // The fencing epoch (see the worker's `fence` module): one row.
    "CREATE TABLE fencing_epoch (
        id TINYINT NOT NULL PRIMARY KEY,
        epoch BIGINT NOT NULL
    ) ENGINE=InnoDB",
    "INSERT INTO fencing_epoch (id, epoch) VALUES (1, 0)",
];

const DOWN: [&str; 4] = [
    "DROP TABLE fencing_epoch",
    "ALTER TABLE reservations DROP COLUMN client_id",
    "DROP TABLE reservation_requests",
    "DROP TABLE clients",
];
