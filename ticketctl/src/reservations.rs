//! `ticketctl reservations`: every client's reservations, through the
//! admin listing (`GET /admin/reservations`, keyset pages linked by
//! `Link: rel="next"`): list, show, cancel one, cancel all of an event,
//! export. The long ones show a progress bar on a terminal.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
};

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    api::Api,
    output::{Column, Format, counter, emit, fields, walk_pages},
};

#[derive(Args, Debug, Clone, Default)]
pub struct Filter {
    /// Only this event's reservations.
    #[arg(long)]
    event: Option<i64>,
    /// Only this user's.
    #[arg(long)]
    user: Option<i64>,
    /// Only those in this state (confirmed, held, cancelled, …).
    #[arg(long)]
    status: Option<String>,
    /// Only this client's (0: anonymous).
    #[arg(long)]
    client: Option<i64>,
}

impl Filter {
    /// The first page's path.
    fn path(&self, limit: u32, after: Option<&str>) -> String {
        let mut query = vec![format!("limit={limit}")];
        let numbers = [
            ("event_id", self.event),
            ("user_id", self.user),
            ("client", self.client),
        ];
        query.extend(
            numbers
                .iter()
                .filter_map(|(k, v)| v.map(|v| format!("{k}={v}"))),
        );
        if let Some(status) = &self.status {
            query.push(format!("status={status}"));
        }
        if let Some(after) = after {
            query.push(format!("after={after}"));
        }
        format!("/admin/reservations?{}", query.join("&"))
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Lists reservations, oldest first, one page (or every page).
    List {
        #[command(flatten)]
        filter: Filter,
        /// Reservations per page, 1 to 500.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Start after this reservation id (a page's `next_after`).
        #[arg(long)]
        after: Option<String>,
        /// Every page, not just the first.
        #[arg(long)]
        all: bool,
    },
    /// Shows one reservation.
    Show { id: String },
    /// Cancels (or releases, if held) one reservation.
    Cancel { id: String },
    /// Cancels every confirmed or held reservation of an event, one by one.
    CancelAll {
        #[arg(long)]
        event: i64,
        /// Do it; without it, only says how many would be cancelled.
        #[arg(long)]
        yes: bool,
    },
    /// Writes every matching reservation to a file, one JSON object a line.
    Export {
        #[command(flatten)]
        filter: Filter,
        /// The file to write (replaced).
        #[arg(long)]
        file: PathBuf,
    },
}

const COLUMNS: &[Column] = &[
    ("ID", "reservation_id"),
    ("EVENT", "event_id"),
    ("CLIENT", "client_id"),
    ("USER", "user_id"),
    ("QTY", "quantity"),
    ("STATUS", "status"),
    ("CREATED", "created_at"),
];

/// Largest page the api serves: long walks take as few requests as they can.
const WALK_PAGE: u32 = 500;

/// Calls `each` with every reservation `filter` matches, page by page.
async fn walk(
    api: &Api,
    filter: &Filter,
    bar: &ProgressBar,
    mut each: impl FnMut(Value) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut next = Some(filter.path(WALK_PAGE, None));
    let mut seen = 0;
    while let Some(path) = next {
        let (page, following) = api.page(&path).await?;
        for row in page["reservations"].as_array().cloned().unwrap_or_default() {
            each(row)?;
            seen += 1;
            bar.inc(1);
        }
        next = following;
    }
    Ok(seen)
}

pub async fn run(api: &Api, out: Format, command: Command) -> anyhow::Result<()> {
    match command {
        Command::List {
            filter,
            limit,
            after,
            all,
        } => {
            let first = filter.path(limit, after.as_deref());
            walk_pages(api, out, first, "reservations", all, COLUMNS).await?;
        }
        Command::Show { id } => emit(out, &api.get(&format!("/reservations/{id}")).await?, fields),
        Command::Cancel { id } => {
            let cancelled = api
                .call(Method::DELETE, &format!("/reservations/{id}"), None)
                .await?;
            emit(out, &cancelled, fields);
        }
        Command::CancelAll { event, yes } => cancel_all(api, out, event, yes).await?,
        Command::Export { filter, file } => {
            let mut writer = BufWriter::new(
                File::create(&file).with_context(|| format!("creating {}", file.display()))?,
            );
            let bar = counter("reservations exported");
            let written = walk(api, &filter, &bar, |row| {
                serde_json::to_writer(&mut writer, &row)?;
                writer.write_all(b"\n")?;
                Ok(())
            })
            .await?;
            writer.flush()?;
            bar.finish_and_clear();
            let summary = json!({"exported": written, "file": file.display().to_string()});
            emit(out, &summary, |_| {
                format!("{written} reservations written to {}", file.display())
            });
        }
    }
    Ok(())
}

/// Cancels every reservation of `event` that takes tickets: first the
/// list (so the count is known and the bar has a length), then one
/// cancellation each, each a command decided by the event's worker.
async fn cancel_all(api: &Api, out: Format, event: i64, yes: bool) -> anyhow::Result<()> {
    let mut ids = Vec::new();
    let bar = counter("reservations to cancel");
    for status in ["confirmed", "held"] {
        let filter = Filter {
            event: Some(event),
            status: Some(status.into()),
            ..Filter::default()
        };
        walk(api, &filter, &bar, |row| {
            ids.extend(row["reservation_id"].as_str().map(str::to_owned));
            Ok(())
        })
        .await?;
    }
    bar.finish_and_clear();
    if !yes {
        let plan = json!({"event_id": event, "would_cancel": ids.len(), "cancelled": 0});
        emit(out, &plan, |_| {
            format!(
                "would cancel {} reservations of event {event}; pass --yes to do it",
                ids.len()
            )
        });
        return Ok(());
    }
    let bar = ProgressBar::new(ids.len() as u64);
    if let Ok(style) =
        ProgressStyle::with_template("[{bar:40}] {pos}/{len} cancelled ({eta} left) {msg}")
    {
        bar.set_style(style);
    }
    let (mut cancelled, mut failed) = (0u64, Vec::new());
    for id in &ids {
        match api
            .call(Method::DELETE, &format!("/reservations/{id}"), None)
            .await
        {
            Ok(_) => cancelled += 1,
            Err(error) => {
                bar.set_message(format!("{} failed", failed.len() + 1));
                failed.push(json!({"reservation_id": id, "error": error.to_string()}));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let failures = failed.len();
    let report = json!({"event_id": event, "cancelled": cancelled, "failed": failed});
    emit(out, &report, |_| {
        format!("cancelled {cancelled} reservations of event {event}, {failures} failed")
    });
    anyhow::ensure!(failures == 0, "{failures} cancellations failed");
    Ok(())
}
