//! One-shot job: bring the schema up to date and, on request, create the
//! demo event of the seed scenario.

use anyhow::Context;
use clap::Parser;
use migrations::{Migrator, MigratorTrait};

#[derive(Parser, Debug)]
#[command(about = "Apply database migrations")]
struct Config {
    /// MySQL/MariaDB URL (`mysql://user:password@host:port/database`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,

    /// Also create event 1 with 100 tickets if it does not exist.
    #[arg(long, env = "SEED_DEMO_EVENT", default_value_t = false)]
    seed_demo_event: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init("migrate", None)?;
    let config = Config::parse();
    let db = shared::db::connect_url(&config.database_url, 2, std::time::Duration::from_secs(10))
        .await
        .context("connecting to the database")?;
    Migrator::up(&db, None)
        .await
        .context("applying migrations")?;
    tracing::info!("migrations applied");
    if config.seed_demo_event {
        if migrations::seed_demo_event(&db)
            .await
            .context("seeding the demo event")?
        {
            tracing::info!("created demo event 1 with 100 tickets");
        } else {
            tracing::info!("demo event 1 already exists");
        }
    }
    Ok(())
}
