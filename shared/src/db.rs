//! MySQL connection pool with bounded waits, so a database outage turns into
//! fast errors (and 503s) rather than piled-up requests.

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::config::ConnectionArgs;

pub async fn connect(args: &ConnectionArgs) -> Result<DatabaseConnection, DbErr> {
    connect_url(
        &args.database_url,
        args.database_max_connections,
        args.backend_timeout(),
    )
    .await
}

pub async fn connect_url(
    url: &str,
    max_connections: u32,
    timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(timeout)
        .acquire_timeout(timeout)
        .idle_timeout(Duration::from_secs(300))
        .sqlx_logging(false);
    Database::connect(options).await
}
