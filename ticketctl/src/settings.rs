//! `ticketctl settings`: the live settings the api and workers follow in
//! etcd. The api checks a value with the parser they use and refuses one
//! that would be ignored, so `set` either takes effect everywhere within
//! moments or changes nothing.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    api::Api,
    output::{Format, emit, fields, table},
};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Shows every setting (or one): default, override and effective value.
    Show {
        /// `max_quantity`, `reserve_wait_timeout_ms`, `sales_paused`,
        /// `batch_size`, `batch_linger_ms`, `max_hold_seconds`,
        /// `default_hold_seconds` or `events/<id>/sales_paused`.
        name: Option<String>,
    },
    /// Overrides a setting (checked by the api before it is stored).
    Set { name: String, value: String },
    /// Removes a setting's override: its default applies again.
    Unset { name: String },
}

const COLUMNS: &[(&str, &str)] = &[
    ("NAME", "name"),
    ("EFFECTIVE", "effective"),
    ("DEFAULT", "default"),
    ("OVERRIDE", "override"),
    ("INVALID", "invalid"),
];

pub async fn run(api: &Api, out: Format, command: Command) -> anyhow::Result<()> {
    let setting = match command {
        Command::Show { name: None } => {
            let all = api.get("/admin/settings").await?;
            emit(out, &all, |all| {
                let rows = all["settings"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                table(rows, COLUMNS)
            });
            return Ok(());
        }
        Command::Show { name: Some(name) } => api.get(&path(&name)).await?,
        Command::Set { name, value } => {
            let body = json!({ "value": value });
            api.call(Method::PUT, &path(&name), Some(&body)).await?
        }
        Command::Unset { name } => api.call(Method::DELETE, &path(&name), None).await?,
    };
    emit(out, &setting, |setting: &Value| fields(setting));
    Ok(())
}

fn path(name: &str) -> String {
    format!("/admin/settings/{}", name.trim_matches('/'))
}
