//! `ticketctl events`: create, list, show, change capacity, pause,
//! resume, close.
//!
//! Pausing and closing differ. A pause is the live setting
//! `events/<id>/sales_paused`: new reservations are answered `503
//! sales-paused` with `Retry-After` (buyers are told to come back), and
//! `resume` removes it, so a pause is for a moment (an incident, a
//! price change). Closing ends the sale (`sale_closes_at` becomes now,
//! `403 sale-closed`) and is not undone; holds can still be confirmed in
//! both.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::{
    api::Api,
    output::{Column, Format, emit, fields, table},
};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Creates an event.
    Create {
        #[arg(long)]
        name: String,
        /// Tickets on sale, 1 to 10,000,000.
        #[arg(long)]
        capacity: i64,
        #[arg(long)]
        venue: Option<String>,
        /// When the event takes place (RFC 3339).
        #[arg(long)]
        starts_at: Option<String>,
        /// Reservations are refused before this time (RFC 3339).
        #[arg(long)]
        sale_opens_at: Option<String>,
        /// Reservations are refused from this time on (RFC 3339).
        #[arg(long)]
        sale_closes_at: Option<String>,
        /// Most tickets one user may hold and have confirmed.
        #[arg(long)]
        max_per_user: Option<i64>,
    },
    /// Lists events by id.
    List {
        /// Every page, not just the first.
        #[arg(long)]
        all: bool,
        /// Events per page, 1 to 100.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only events after this id.
        #[arg(long)]
        after: Option<i64>,
    },
    /// Shows one event.
    Show { id: i64 },
    /// Changes an event's capacity (never below what is held or sold).
    Update {
        id: i64,
        #[arg(long)]
        capacity: i64,
    },
    /// Pauses an event's sales: reservations get 503 until `resume`.
    Pause { id: i64 },
    /// Resumes an event's paused sales.
    Resume { id: i64 },
    /// Closes an event's sale for good (sale_closes_at = now).
    Close { id: i64 },
}

const COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("CAPACITY", "capacity"),
    ("REMAINING", "remaining_tickets"),
    ("SALE OPENS", "sale_opens_at"),
    ("SALE CLOSES", "sale_closes_at"),
];

pub async fn run(api: &Api, out: Format, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Create {
            name,
            capacity,
            venue,
            starts_at,
            sale_opens_at,
            sale_closes_at,
            max_per_user,
        } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("capacity".into(), json!(capacity));
            let optional = [
                ("venue", venue.map(Value::from)),
                ("starts_at", starts_at.map(Value::from)),
                ("sale_opens_at", sale_opens_at.map(Value::from)),
                ("sale_closes_at", sale_closes_at.map(Value::from)),
                ("max_per_user", max_per_user.map(Value::from)),
            ];
            for (key, value) in optional {
                if let Some(value) = value {
                    body.insert(key.into(), value);
                }
            }
            let event = api
                .call(Method::POST, "/events", Some(&Value::Object(body)))
                .await?;
            emit(out, &event, fields);
        }
        Command::List { all, limit, after } => {
            let mut events = Vec::new();
            let mut after = after;
            let next_after = loop {
                let mut path = format!("/events?limit={limit}");
                if let Some(after) = after {
                    path.push_str(&format!("&after={after}"));
                }
                let page = api.get(&path).await?;
                events.extend(page["events"].as_array().cloned().unwrap_or_default());
                after = page["next_after"].as_i64();
                if !all || after.is_none() {
                    break after;
                }
            };
            let page = json!({"events": events, "next_after": next_after});
            emit(out, &page, |page| {
                let rows = page["events"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let mut text = table(rows, COLUMNS);
                if let Some(next) = next_after {
                    text.push_str(&format!("\n(more: --after {next}, or --all)"));
                }
                text
            });
        }
        Command::Show { id } => emit(out, &api.get(&format!("/events/{id}")).await?, fields),
        Command::Update { id, capacity } => {
            let body = json!({"capacity": capacity});
            let event = api
                .call(Method::PATCH, &format!("/events/{id}"), Some(&body))
                .await?;
            emit(out, &event, fields);
        }
        Command::Pause { id } | Command::Resume { id } => {
            let pause = matches!(command, Command::Pause { .. });
            // A pause of an event that does not exist would be stored and
            // never apply: refuse it as the api would refuse a reserve.
            api.get(&format!("/events/{id}")).await?;
            let path = format!("/admin/settings/events/{id}/sales_paused");
            let setting = if pause {
                api.call(Method::PUT, &path, Some(&json!({"value": "true"})))
                    .await?
            } else {
                api.call(Method::DELETE, &path, None).await?
            };
            let state = json!({"event_id": id, "paused": setting["effective"] == "true", "setting": setting});
            emit(out, &state, |state| {
                let word = if state["paused"] == true {
                    "paused"
                } else {
                    "on sale (not paused)"
                };
                format!("event {id}: {word}")
            });
        }
        Command::Close { id } => {
            let event = api
                .call(Method::POST, &format!("/events/{id}/close"), None)
                .await?;
            emit(out, &event, fields);
        }
    }
    Ok(())
}
