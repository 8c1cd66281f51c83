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

/// A pool whose sessions are READ COMMITTED, for the workers: every one of
/// their transactions wants that level, and a session that starts there
/// saves each of them the `SET TRANSACTION` round trip a per-transaction
/// level costs. Plain `begin()` on it is READ COMMITTED.
pub async fn connect_read_committed(args: &ConnectionArgs) -> Result<DatabaseConnection, DbErr> {
    connect_read_committed_url(
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
    open(url, max_connections, timeout, Isolation::ServerDefault).await
}

/// [`connect_read_committed`] for a URL.
pub async fn connect_read_committed_url(
    url: &str,
    max_connections: u32,
    timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    open(url, max_connections, timeout, Isolation::ReadCommitted).await
}

#[derive(Clone, Copy)]
enum Isolation {
    ServerDefault,
    ReadCommitted,
}

async fn open(
    url: &str,
    max_connections: u32,
    timeout: Duration,
    isolation: Isolation,
) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(timeout)
        .acquire_timeout(timeout)
        // Below MYSQL_WAIT_TIMEOUT_SECS: the pool, not the server, closes
        // the connections it does not need.
        .idle_timeout(Duration::from_secs(MYSQL_WAIT_TIMEOUT_SECS / 2))
        .sqlx_logging(false);
    let lock_wait_secs = timeout.as_secs().max(1);
    options.map_sqlx_mysql_pool_opts(move |pool| {
        pool.after_connect(move |connection, _| {
            Box::pin(async move { bound_session(connection, lock_wait_secs, isolation).await })
        })
    });
    Database::connect(options).await
}

/// MySQL (which has no idle-in-transaction timeout) ends any connection
/// idle this long, a transaction abandoned by its client included.
const MYSQL_WAIT_TIMEOUT_SECS: u64 = 60;

/// Starts a session at the pool's isolation level, and bounds what it can
/// hold up, in whole seconds (the variables' unit):
/// - a row lock wait ends after `secs`, not InnoDB's 50 s;
/// - a transaction whose client went silent (a network partition in the
///   middle of a decision) is ended by the server after `secs` idle, not
///   when the server notices the client is gone (`wait_timeout`, 8 h by
///   default), so its row locks go to the other workers. MariaDB has
///   `idle_transaction_timeout` for this; on MySQL, where setting it fails,
///   the connection's `wait_timeout` is shortened instead.
async fn bound_session(
    connection: &mut sqlx::MySqlConnection,
    secs: u64,
    isolation: Isolation,
) -> sqlx::Result<()> {
    let run = |statement: String| sqlx::raw_sql(sqlx::AssertSqlSafe(statement));
    if let Isolation::ReadCommitted = isolation {
        run("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_owned())
            .execute(&mut *connection)
            .await?;
    }
    run(format!("SET SESSION innodb_lock_wait_timeout = {secs}"))
        .execute(&mut *connection)
        .await?;
    let idle = run(format!("SET SESSION idle_transaction_timeout = {secs}"))
        .execute(&mut *connection)
        .await;
    if idle.is_err() {
        run(format!(
            "SET SESSION wait_timeout = {MYSQL_WAIT_TIMEOUT_SECS}"
        ))
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}
