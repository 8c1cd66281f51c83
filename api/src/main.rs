//! api entry point: configuration, then [`api::startup::App`] until a
//! termination signal.

use clap::Parser;
use shared::shutdown::terminate_signal;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = api::config::Config::parse();
    let telemetry =
        shared::telemetry::init("api", Some(&config.connections.otel_exporter_otlp_endpoint))?;
    let app = api::startup::App::build(config).await?;
    app.serve(terminate_signal()).await?;
    tracing::info!("api stopped");
    telemetry.shutdown();
    Ok(())
}
