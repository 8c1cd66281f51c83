//! `ticketctl webhooks`: the endpoints a client's reservation changes are
//! sent to (Standard Webhooks, signed with the endpoint's secret, shown
//! once by `add`), the deliveries of those messages, and replaying them
//! once a receiver is fixed. The worker sends; this only administers,
//! through `/admin/webhooks`, `/admin/webhook-deliveries` and
//! `/admin/webhook-messages`.

use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::{
    api::Api,
    output::{Column, Format, emit, fields, table, walk_pages},
};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Registers an endpoint for a client's reservation changes and prints
    /// its signing secret (shown only this once).
    Add {
        /// The client whose reservations' changes are sent.
        client_id: i64,
        /// Where the messages are POSTed: an absolute http(s) URL.
        // Not named `url`: that is the global `--url`, which clap would
        // set to this value.
        #[arg(value_name = "URL")]
        endpoint_url: String,
        /// What the endpoint is, for operators (up to 200 characters).
        #[arg(long)]
        description: Option<String>,
    },
    /// Lists webhook endpoints (REMOVED: when one was removed).
    List {
        /// Only this client's.
        #[arg(long)]
        client: Option<i64>,
    },
    /// Removes an endpoint: no new messages; its pending deliveries fail.
    Remove { endpoint_id: i64 },
    /// Lists deliveries, oldest message first, one page (or every page).
    Deliveries {
        #[command(flatten)]
        filter: DeliveryFilter,
        /// Deliveries per page, 1 to 500.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Start after this cursor (a page's `next_after`).
        #[arg(long)]
        after: Option<String>,
        /// Every page, not just the first.
        #[arg(long)]
        all: bool,
    },
    /// Shows one message: what it says, its payload and its deliveries.
    Show { message_id: String },
    /// Sends deliveries again from a first attempt, due now: an endpoint's,
    /// a message's, or a message's to one endpoint.
    Replay {
        #[command(flatten)]
        target: ReplayTarget,
        /// Which of them: `failed` ones, `delivered` ones to send again, or
        /// `pending` ones to try now.
        #[arg(long, value_enum, default_value_t = Status::Failed)]
        status: Status,
    },
}

/// A delivery's state, as the api names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Status {
    Pending,
    Delivered,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
        }
    }
}

#[derive(Args, Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only deliveries to this endpoint.
    #[arg(long)]
    endpoint: Option<i64>,
    /// Only this client's.
    #[arg(long)]
    client: Option<i64>,
    /// Only those in this state.
    #[arg(long, value_enum)]
    status: Option<Status>,
    /// Only the messages of this reservation (its id).
    #[arg(long)]
    reservation: Option<String>,
}

impl DeliveryFilter {
    /// The path of the page that starts after `after` (the first without).
    fn path(&self, limit: u32, after: Option<&str>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("limit", &limit.to_string());
        let numbers = [("endpoint_id", self.endpoint), ("client_id", self.client)];
        for (key, value) in numbers {
            if let Some(value) = value {
                query.append_pair(key, &value.to_string());
            }
        }
        let texts = [
            ("status", self.status.map(Status::as_str)),
            ("reservation_id", self.reservation.as_deref()),
            // The cursor is opaque: encoded, whatever it holds.
            ("after", after),
        ];
        for (key, value) in texts {
            if let Some(value) = value {
                query.append_pair(key, value);
            }
        }
        format!("/admin/webhook-deliveries?{}", query.finish())
    }
}

#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = true)]
pub struct ReplayTarget {
    /// The deliveries to this endpoint.
    #[arg(long)]
    endpoint: Option<i64>,
    /// The deliveries of this message (its id, as `webhooks show` takes).
    #[arg(long)]
    message: Option<String>,
}

impl ReplayTarget {
    /// The replay request's body; the two targets narrow each other.
    fn body(&self, status: Status) -> Value {
        let mut body = Map::new();
        if let Some(endpoint) = self.endpoint {
            body.insert("endpoint_id".into(), json!(endpoint));
        }
        if let Some(message) = &self.message {
            body.insert("message_id".into(), json!(message));
        }
        body.insert("status".into(), json!(status.as_str()));
        Value::Object(body)
    }
}

const ENDPOINTS: &[Column] = &[
    ("ID", "id"),
    ("CLIENT", "client_id"),
    ("URL", "url"),
    ("DESCRIPTION", "description"),
    ("CREATED", "created_at"),
    ("REMOVED", "disabled_at"),
];

// The error last: the one column of unbounded width.
const DELIVERIES: &[Column] = &[
    ("MESSAGE", "message_id"),
    ("ENDPOINT", "endpoint_id"),
    ("RESERVATION", "reservation_id"),
    ("TYPE", "event_type"),
    ("STATUS", "status"),
    ("ATTEMPTS", "attempts"),
    ("NEXT ATTEMPT", "next_attempt_at"),
    ("LAST", "last_status"),
    ("ERROR", "last_error"),
];

pub async fn run(api: &Api, out: Format, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Add {
            client_id,
            endpoint_url,
            description,
        } => {
            let mut body = Map::new();
            body.insert("url".into(), json!(endpoint_url));
            if let Some(description) = description {
                body.insert("description".into(), json!(description));
            }
            let created = api
                .call(
                    Method::POST,
                    &format!("/admin/clients/{client_id}/webhooks"),
                    Some(&Value::Object(body)),
                )
                .await?;
            emit(out, &created, |created| {
                format!(
                    "{}\n\nThe secret is shown only this once: give it to the receiver now, \
                     which verifies every message's signature with it.",
                    fields(created)
                )
            });
        }
        Command::List { client } => {
            let path = match client {
                Some(client) => format!("/admin/webhooks?client_id={client}"),
                None => "/admin/webhooks".to_owned(),
            };
            emit(out, &api.get(&path).await?, |endpoints| {
                let rows = endpoints.as_array().map(Vec::as_slice).unwrap_or_default();
                table(rows, ENDPOINTS)
            });
        }
        Command::Remove { endpoint_id } => {
            // `204`, no body: the outcome is said here.
            api.call(
                Method::DELETE,
                &format!("/admin/webhooks/{endpoint_id}"),
                None,
            )
            .await?;
            let removed = json!({"id": endpoint_id, "removed": true});
            emit(out, &removed, |_| {
                format!("webhook endpoint {endpoint_id} removed; its pending deliveries fail")
            });
        }
        Command::Deliveries {
            filter,
            limit,
            after,
            all,
        } => {
            let first = filter.path(limit, after.as_deref());
            walk_pages(api, out, first, "deliveries", all, DELIVERIES).await?
        }
        Command::Show { message_id } => {
            let message = api
                .get(&format!("/admin/webhook-messages/{message_id}"))
                .await?;
            emit(out, &message, show);
        }
        Command::Replay { target, status } => {
            let replayed = api
                .call(
                    Method::POST,
                    "/admin/webhook-deliveries/replay",
                    Some(&target.body(status)),
                )
                .await?;
            emit(out, &replayed, |replayed| {
                format!(
                    "{} deliveries replayed (pending again, first attempt due now)",
                    replayed["replayed"].as_u64().unwrap_or_default()
                )
            });
        }
    }
    Ok(())
}

/// A message as text: its fields, the payload as sent (pretty JSON), then
/// its deliveries as a table.
fn show(message: &Value) -> String {
    let mut head = message.clone();
    let (payload, deliveries) = match head.as_object_mut() {
        Some(object) => (
            object.remove("payload").unwrap_or_default(),
            object.remove("deliveries").unwrap_or_default(),
        ),
        None => (Value::Null, Value::Null),
    };
    let rows = deliveries.as_array().map(Vec::as_slice).unwrap_or_default();
    format!(
        "{}\n\npayload:\n{}\n\ndeliveries:\n{}",
        fields(&head),
        serde_json::to_string_pretty(&payload).unwrap_or_default(),
        table(rows, DELIVERIES)
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[test]
    fn delivery_filters_become_an_encoded_query() {
        let filter = DeliveryFilter {
            endpoint: Some(3),
            client: Some(7),
            status: Some(Status::Failed),
            reservation: Some("019af2b4-0000-7000-8000-000000000001".into()),
        };
        assert_eq!(
            filter.path(100, Some("2026-12-07T12:00:00+00:00/a b")),
            "/admin/webhook-deliveries?limit=100&endpoint_id=3&client_id=7&status=failed\
             &reservation_id=019af2b4-0000-7000-8000-000000000001\
             &after=2026-12-07T12%3A00%3A00%2B00%3A00%2Fa+b"
        );
        assert_eq!(
            DeliveryFilter::default().path(50, None),
            "/admin/webhook-deliveries?limit=50"
        );
    }

    #[test]
    fn a_replay_names_its_target_and_defaults_to_failed_deliveries() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["webhooks", "replay"].iter().chain(args)).map(|cli| cli.command)
        };
        match parse(&["--endpoint", "3"]) {
            Ok(Command::Replay { target, status }) => assert_eq!(
                target.body(status),
                json!({"endpoint_id": 3, "status": "failed"})
            ),
            other => panic!("{other:?}"),
        }
        match parse(&["--endpoint", "3", "--message", "m", "--status", "delivered"]) {
            Ok(Command::Replay { target, status }) => assert_eq!(
                target.body(status),
                json!({"endpoint_id": 3, "message_id": "m", "status": "delivered"})
            ),
            other => panic!("{other:?}"),
        }
        assert!(parse(&[]).is_err(), "a replay of everything is refused");
        assert!(parse(&["--message", "m", "--status", "lost"]).is_err());
    }

    #[test]
    fn a_message_shows_its_payload_and_deliveries() {
        let message = json!({
            "id": "m1",
            "event_type": "reservation.held",
            "payload": {"type": "reservation.held"},
            "deliveries": [{"message_id": "m1", "endpoint_id": 3, "status": "delivered"}],
        });
        assert_eq!(
            show(&message),
            "event_type: reservation.held\nid: m1\n\n\
             payload:\n{\n  \"type\": \"reservation.held\"\n}\n\n\
             deliveries:\n\
             MESSAGE  ENDPOINT  RESERVATION  TYPE  STATUS     ATTEMPTS  NEXT ATTEMPT  LAST  ERROR\n\
             m1       3         -            -     delivered  -         -             -     -"
        );
    }
}
