//! Users, events and reservations. Plain SQL that both MariaDB 10.11 and
//! MySQL 8 accept; the CHECK constraint backs up the workers' own checks so
//! that even a buggy writer cannot oversell.

sql_migration!("m20261124_000001_initial");

const UP: [&str; 3] = [
    "CREATE TABLE users (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        email VARCHAR(254) NOT NULL,
        name VARCHAR(200) NOT NULL,
        created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        UNIQUE KEY users_email (email)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE events (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(200) NOT NULL,
        venue VARCHAR(200) NULL,
        starts_at DATETIME(6) NULL,
        capacity INT NOT NULL,
        available INT NOT NULL,
        fence_token BIGINT NOT NULL DEFAULT 0,
        version BIGINT NOT NULL DEFAULT 0,
        created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        CONSTRAINT events_available_in_range CHECK (available >= 0 AND available <= capacity)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE reservations (
        id BINARY(16) NOT NULL PRIMARY KEY,
        event_id BIGINT NOT NULL,
        user_id BIGINT NULL,
        quantity INT NOT NULL,
        status VARCHAR(16) NOT NULL,
        fence_token BIGINT NULL,
        created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        decided_at DATETIME(6) NULL,
        KEY reservations_event_status (event_id, status),
        CONSTRAINT reservations_event FOREIGN KEY (event_id) REFERENCES events (id),
        CONSTRAINT reservations_user FOREIGN KEY (user_id) REFERENCES users (id),
        CONSTRAINT reservations_quantity_positive CHECK (quantity > 0)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
];

const DOWN: [&str; 3] = [
    "DROP TABLE reservations",
    "DROP TABLE events",
    "DROP TABLE users",
];
