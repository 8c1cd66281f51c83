//! The database schema, as sea-orm migrations, plus the demo data the seed
//! scenario expects. Run by the `migrate` binary (a one-shot job in
//! deployments) and by the system tests for each test database.

use sea_orm::{ConnectionTrait, DbErr, Statement};
pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

/// Declares the migration `$name` of a module whose `UP` and `DOWN` are
/// the plain SQL statements it runs: every migration here is one.
macro_rules! sql_migration {
    ($name:literal) => {
        pub struct Migration;

        impl sea_orm_migration::MigrationName for Migration {
            fn name(&self) -> &str {
                $name
            }
        }

        #[sea_orm_migration::async_trait::async_trait]
        impl sea_orm_migration::MigrationTrait for Migration {
            async fn up(
                &self,
                manager: &sea_orm_migration::SchemaManager,
            ) -> Result<(), sea_orm::DbErr> {
                crate::execute_all(manager, &UP).await
            }

            async fn down(
                &self,
                manager: &sea_orm_migration::SchemaManager,
            ) -> Result<(), sea_orm::DbErr> {
                crate::execute_all(manager, &DOWN).await
            }
        }
    };
}

mod m20261124_000001_initial;
mod m20261202_000001_clients;
mod m20261202_000002_sale_windows;
mod m20261207_000001_holds;
mod m20261207_000002_per_user_limits;
mod m20261207_000003_ticket_types;
mod m20261207_000004_waiting_list;
mod m20261207_000005_type_sale_windows;
mod m20261207_000006_webhooks;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_initial::Migration),
            Box::new(m20261202_000001_clients::Migration),
            Box::new(m20261202_000002_sale_windows::Migration),
            Box::new(m20261207_000001_holds::Migration),
            Box::new(m20261207_000002_per_user_limits::Migration),
            Box::new(m20261207_000003_ticket_types::Migration),
            Box::new(m20261207_000004_waiting_list::Migration),
            Box::new(m20261207_000005_type_sale_windows::Migration),
            Box::new(m20261207_000006_webhooks::Migration),
        ]
    }
}

/// Runs `statements` in order: every migration here is plain SQL, kept as
/// the text MariaDB and MySQL are given.
async fn execute_all(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    for sql in statements {
        manager.get_connection().execute_unprepared(sql).await?;
    }
    Ok(())
}

/// Creates event 1 ("Demo event", 100 tickets) unless it already exists, so
/// the seed document's curl commands work on a fresh database. Never touches
/// an existing event 1.
pub async fn seed_demo_event<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    let inserted = db
        .execute_raw(Statement::from_string(
            db.get_database_backend(),
            "INSERT IGNORE INTO events (id, name, venue, capacity, available) \
             VALUES (1, 'Demo event', NULL, 100, 100)",
        ))
        .await?;
    Ok(inserted.rows_affected() == 1)
}
