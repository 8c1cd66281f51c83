//! `ticketctl watch <event>`: a live view of one sale, redrawn in place
//! every interval: tickets left out of the capacity (a gauge), the rate
//! they go at, the commands waiting in the event's queue, and whether the
//! sale is paused or closed. It polls `GET /events/{id}` conditionally
//! (`If-None-Match`), so an idle sale costs the api a `304` a tick, and
//! `GET /admin/events/{id}/queue` (the partition carries other events'
//! commands too).

use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::{
    api::{Api, Fresh},
    output::Format,
};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The event to watch.
    event: i64,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Prints one snapshot and exits (for scripts: with `--output json`).
    #[arg(long)]
    once: bool,
}

/// One look at the sale.
fn snapshot(event: &Value, paused: bool, rate: Option<f64>, queued: Option<u64>) -> Value {
    let capacity = event["capacity"].as_i64().unwrap_or(0);
    let remaining = event["remaining_tickets"].as_i64().unwrap_or(0);
    let closes = event["sale_closes_at"].as_str();
    json!({
        "event_id": event["id"],
        "name": event["name"],
        "capacity": capacity,
        "remaining_tickets": remaining,
        "taken": capacity - remaining,
        "tickets_per_sec": rate,
        "queued": queued,
        "paused": paused,
        "sale_closes_at": closes,
    })
}

async fn paused(api: &Api, event: i64) -> anyhow::Result<bool> {
    let setting = api
        .get(&format!("/admin/settings/events/{event}/sales_paused"))
        .await?;
    let global = api.get("/admin/settings/sales_paused").await?;
    Ok(setting["effective"] == "true" || global["effective"] == "true")
}

/// Commands waiting in the event's partition; `None` while the broker
/// cannot say (the view goes on without it).
async fn queued(api: &Api, event: i64) -> Option<u64> {
    let queue = api
        .get(&format!("/admin/events/{event}/queue"))
        .await
        .ok()?;
    queue["queued"].as_u64()
}

pub async fn run(api: &Api, out: Format, args: Args) -> anyhow::Result<()> {
    let path = format!("/events/{}", args.event);
    let interval = Duration::from_secs_f64(args.interval.clamp(0.1, 3600.0));
    let gauge = ProgressBar::new(0);
    if out == Format::Json || args.once {
        gauge.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{prefix}\n[{bar:50}] {pos}/{len} taken  {msg}")
    {
        gauge.set_style(style.progress_chars("#>-"));
    }
    let (mut event, mut tag): (Value, Option<String>) = (Value::Null, None);
    let mut last: Option<(Instant, i64)> = None;
    loop {
        if let Fresh::Changed(body, new_tag) = api.get_if_changed(&path, tag.as_deref()).await? {
            (event, tag) = (body, new_tag);
        }
        let now = Instant::now();
        let remaining = event["remaining_tickets"].as_i64().unwrap_or(0);
        let rate = last
            .map(|(at, before)| (before - remaining) as f64 / now.duration_since(at).as_secs_f64());
        last = Some((now, remaining));
        let view = snapshot(
            &event,
            paused(api, args.event).await?,
            rate,
            queued(api, args.event).await,
        );
        match out {
            Format::Json => println!("{view}"),
            Format::Text if args.once => println!(
                "{} (event {}): {} of {} left, {}",
                view["name"].as_str().unwrap_or_default(),
                args.event,
                view["remaining_tickets"],
                view["capacity"],
                state(&view)
            ),
            Format::Text => {
                gauge.set_length(view["capacity"].as_u64().unwrap_or(0));
                gauge.set_position(view["taken"].as_u64().unwrap_or(0));
                gauge.set_prefix(format!(
                    "{} (event {})",
                    view["name"].as_str().unwrap_or_default(),
                    args.event
                ));
                let rate = rate.map_or("-".to_owned(), |r| format!("{r:.1}"));
                let queued = view["queued"]
                    .as_u64()
                    .map_or("-".to_owned(), |q| q.to_string());
                gauge.set_message(format!(
                    "{} left, {rate} tickets/s, {queued} queued, {}",
                    view["remaining_tickets"],
                    state(&view)
                ));
            }
        }
        if args.once {
            return Ok(());
        }
        tokio::time::sleep(interval).await;
    }
}

fn state(view: &Value) -> &'static str {
    let closed = view["sale_closes_at"]
        .as_str()
        .and_then(|closes| chrono::DateTime::parse_from_rfc3339(closes).ok())
        .is_some_and(|closes| closes <= chrono::Utc::now());
    if view["paused"] == true {
        "PAUSED"
    } else if closed {
        "closed"
    } else {
        "on sale"
    }
}
