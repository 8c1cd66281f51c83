//! Telling a database error that retrying cannot fix (the command breaks a
//! constraint) from one that passes (an outage, a deadlock, a lock wait
//! timeout). Retrying the first kind forever would wedge the worker and
//! every command prefetched behind it, and would do so again after a
//! restart, the command being durable.

use sea_orm::{DbErr, RuntimeErr, sqlx};
use shared::messages::{Command, Outcome};

/// MySQL/MariaDB error codes that mean "this statement can never succeed
/// as written": foreign key (1451, 1452), CHECK (3819 MySQL, 4025
/// MariaDB), NULL in a NOT NULL column (1048), a value out of range or of
/// the wrong type (1264, 1366, 1292), data too long (1406).
const PERMANENT: [u16; 9] = [1048, 1264, 1292, 1366, 1406, 1451, 1452, 3819, 4025];

/// Why `error` will never pass, or `None` when retrying may help.
pub fn reason(error: &DbErr) -> Option<String> {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = error
    else {
        return None;
    };
    let sqlx::Error::Database(database) = &**e else {
        return None;
    };
    let code = database
        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()?
        .number();
    PERMANENT
        .contains(&code)
        .then(|| format!("MySQL error {code}: {}", database.message()))
}

/// The outcome of a command the database refused: nothing was stored.
pub fn refused(command: &Command, reason: &str) -> Outcome {
    Outcome {
        refused: Some(reason.to_owned()),
        ..crate::rules::refusal(command, "Refused by the database")
    }
}
