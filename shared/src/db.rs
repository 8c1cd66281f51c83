//! MySQL connection pool with bounded waits, so a database outage turns into
//! fast errors (and 503s) rather than piled-up requests.

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr, sqlx};

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
    // A row lock wait ends after (about) the timeout, not InnoDB's 50 s,
    // so no request or decision waits on a row for longer than it may wait
    // for any backend. Whole seconds: the variable's unit.
    let lock_wait_secs = timeout.as_secs().max(1);
    options.map_sqlx_mysql_pool_opts(move |pool| {
        pool.after_connect(move |connection, _| {
            Box::pin(async move {
                let statement = format!("SET SESSION innodb_lock_wait_timeout = {lock_wait_secs}");
                sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                    .execute(connection)
                    .await
                    .map(drop)
            })
        })
    });
    Database::connect(options).await
}
