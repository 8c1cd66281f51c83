//! Webhooks: endpoints an admin registers for a client, and the outbox of
//! the reservation state changes owed to them.
//!
//! `webhook_messages` is the outbox: a worker writes a message (and one
//! delivery per enabled endpoint of the reservation's client) in the same
//! transaction that changes the reservation, so a change is never
//! committed without its message, nor a message without its change. A
//! message's id is derived from the reservation id and the state it
//! reached: each state is reached at most once, so the primary key also
//! refuses a second message for one change. Deliveries are claimed, sent
//! and retried by the workers' dispatchers.
//!
//! Messages older than `WEBHOOK_RETENTION_DAYS` whose deliveries are
//! settled are deleted by the dispatchers, oldest first
//! (`webhook_messages_created`).
//!
//! The endpoint's signing secret is stored as it is, not hashed: the
//! dispatcher needs it to sign (Standard Webhooks, HMAC-SHA256).

sql_migration!("m20261207_000006_webhooks");

const UP: [&str; 3] = [
    "CREATE TABLE webhook_endpoints (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        client_id BIGINT NOT NULL,
        url VARCHAR(2048) NOT NULL,
        description VARCHAR(200) NULL,
        secret VARCHAR(100) NOT NULL,
        created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        disabled_at DATETIME(6) NULL,
        KEY webhook_endpoints_client (client_id, disabled_at),
        CONSTRAINT webhook_endpoints_client FOREIGN KEY (client_id) REFERENCES clients (id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE webhook_messages (
        id BINARY(16) NOT NULL PRIMARY KEY,
        client_id BIGINT NOT NULL,
        reservation_id BINARY(16) NOT NULL,
        event_type VARCHAR(40) NOT NULL,
        payload TEXT NOT NULL,
        created_at DATETIME(6) NOT NULL,
        KEY webhook_messages_reservation (reservation_id),
        KEY webhook_messages_client (client_id, created_at),
        KEY webhook_messages_created (created_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE webhook_deliveries (
        message_id BINARY(16) NOT NULL,
        endpoint_id BIGINT NOT NULL,
        status VARCHAR(16) NOT NULL DEFAULT 'pending',
        attempts INT NOT NULL DEFAULT 0,
        next_attempt_at DATETIME(6) NOT NULL,
        last_attempt_at DATETIME(6) NULL,
        last_status INT NULL,
        last_error VARCHAR(500) NULL,
        delivered_at DATETIME(6) NULL,
        PRIMARY KEY (message_id, endpoint_id),
        KEY webhook_deliveries_due (status, next_attempt_at),
        KEY webhook_deliveries_endpoint (endpoint_id, status),
        CONSTRAINT webhook_deliveries_message FOREIGN KEY (message_id) REFERENCES webhook_messages (id),
        CONSTRAINT webhook_deliveries_endpoint FOREIGN KEY (endpoint_id) REFERENCES webhook_endpoints (id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
];

const DOWN: [&str; 3] = [
    "DROP TABLE webhook_deliveries",
    "DROP TABLE webhook_messages",
    "DROP TABLE webhook_endpoints",
];
