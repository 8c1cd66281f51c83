//! api entry point: configuration, then [`api::startup::App`] until a
//! termination signal.

use clap::Parser;
use shared::shutdown::terminate_signal;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let config = api::config::Config::parse();
    let app = api::startup::App::build(config).await?;
    app.serve(terminate_signal()).await?;
    tracing::info!("api stopped");
    Ok(())
}
