//! `ticketctl clients`: the api's clients and their keys. A key is shown
//! once, by `create`; the api keeps only its digest.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    api::Api,
    output::{Format, emit, fields, table},
};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Creates a client and prints its API key (shown only this once).
    Create {
        /// Who the key is for (a storefront, a box office).
        #[arg(long)]
        name: String,
    },
    /// Lists every client, revoked ones included.
    List,
    /// Revokes a client's key: refused from now on (every api replica
    /// within seconds); its reservations stay.
    Revoke { id: i64 },
}

pub async fn run(api: &Api, out: Format, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Create { name } => {
            let body = json!({ "name": name });
            let created = api
                .call(Method::POST, "/admin/clients", Some(&body))
                .await?;
            emit(out, &created, fields);
        }
        Command::List => {
            let clients = api.get("/admin/clients").await?;
            emit(out, &clients, |clients| {
                let rows = clients.as_array().map(Vec::as_slice).unwrap_or_default();
                let columns = [
                    ("ID", "id"),
                    ("NAME", "name"),
                    ("CREATED", "created_at"),
                    ("REVOKED", "revoked_at"),
                ];
                table(rows, &columns)
            });
        }
        Command::Revoke { id } => {
            let revoked: Value = api
                .call(Method::DELETE, &format!("/admin/clients/{id}"), None)
                .await?;
            emit(out, &revoked, fields);
        }
    }
    Ok(())
}
