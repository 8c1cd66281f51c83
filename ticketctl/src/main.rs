//! `ticketctl`: the operator's command line. It speaks to the api over
//! HTTP only, with the admin token, never to the database or etcd: what it
//! can do is exactly what the api allows and checks, on any deployment the
//! api is reachable from.

mod api;
mod clients;
mod events;
mod output;
mod reservations;
mod settings;
mod watch;
mod webhooks;

use std::io;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use crate::{api::Api, output::Format};

#[derive(Parser, Debug)]
#[command(
    name = "ticketctl",
    version,
    about = "Administer a ticket reservation deployment through its HTTP api",
    after_help = "Every read command takes `--output json`. Exit status: 0 on success, 1 on any error (the api's problem detail is printed)."
)]
struct Cli {
    /// Base URL of the api.
    #[arg(
        long,
        global = true,
        env = "TICKETCTL_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    url: String,

    /// The api's ADMIN_TOKEN (sent as `Authorization: Bearer`).
    #[arg(
        long,
        global = true,
        env = "TICKETCTL_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    token: String,

    /// How results are printed: `text` for people, `json` for scripts.
    #[arg(long, short, global = true, env = "TICKETCTL_OUTPUT", value_enum, default_value_t = Format::Text)]
    output: Format,

    /// Seconds to wait for each api answer.
    #[arg(
        long,
        global = true,
        env = "TICKETCTL_TIMEOUT_SECS",
        default_value_t = 30
    )]
    timeout_secs: u64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Events: create, list, show, change capacity, pause, resume, close.
    #[command(subcommand)]
    Events(events::Command),
    /// Clients and their API keys: create, list, revoke.
    #[command(subcommand)]
    Clients(clients::Command),
    /// Reservations of every client: list, show, cancel, cancel-all, export.
    #[command(subcommand)]
    Reservations(reservations::Command),
    /// Live settings (etcd, applied without a restart): show, set, unset.
    #[command(subcommand)]
    Settings(settings::Command),
    /// Webhooks of clients' reservation changes: endpoints, deliveries,
    /// replay.
    #[command(subcommand)]
    Webhooks(webhooks::Command),
    /// A live view of one event's sale, refreshed in place.
    Watch(watch::Args),
    /// Prints a shell completion script (e.g. `ticketctl completions bash >
    /// /etc/bash_completion.d/ticketctl`).
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let api = || Api::new(&cli.url, &cli.token, cli.timeout_secs);
    let out = cli.output;
    match cli.command {
        Command::Events(command) => events::run(&api()?, out, command).await,
        Command::Clients(command) => clients::run(&api()?, out, command).await,
        Command::Reservations(command) => reservations::run(&api()?, out, command).await,
        Command::Settings(command) => settings::run(&api()?, out, command).await,
        Command::Webhooks(command) => webhooks::run(&api()?, out, command).await,
        Command::Watch(args) => watch::run(&api()?, out, args).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ticketctl", &mut io::stdout());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_webhook_url_is_not_taken_for_the_api_url() {
        let cli = Cli::try_parse_from(["ticketctl", "webhooks", "add", "7", "https://shop/hooks"]);
        assert_eq!(
            cli.ok().map(|cli| cli.url).as_deref(),
            Some("http://127.0.0.1:8000")
        );
    }
}
