//! The live page of a sale: `GET /live/{id}`, a static page compiled into
//! the binary, and `GET /events/{id}/live`, the Server-Sent Events stream
//! it listens to, with the tickets left and the pace of the sale as the
//! workers' announcements reach this replica (`live_feed.rs`).

use std::time::Duration;

use axum::{
    extract::State,
    http::header,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::Stream;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::{sync::OwnedSemaphorePermit, time::Interval};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::{
    catalog,
    extract::PathId,
    live_feed::{Refusal, Watcher},
    problem::{ApiError, Problem, Unavailability},
    state::AppState,
};

/// The page: HTML, CSS and script in one file, no outside resource.
const PAGE: &str = include_str!("../../assets/live.html");

/// What the page may load and talk to: its own inline code and this
/// server, nothing else.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'";

/// A comment line this often keeps an idle stream open through proxies
/// that close quiet connections (the compose HAProxy after 30 s).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often the pace is computed again while no count arrives, so that it
/// falls back to zero when the sale stops.
const PACE_TICK: Duration = Duration::from_secs(1);

/// A stream sends at most one update this often: a hot event's thousands
/// of announcements a second reach each stream as a few, the latest (a
/// `watch` keeps only that), and wake it no more often.
const MIN_GAP: Duration = Duration::from_millis(250);

/// What a browser waits before reconnecting a stream that ended.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

/// The data of each `tickets` event of the stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveUpdate {
    pub event_id: i64,
    pub name: String,
    pub capacity: i32,
    /// Tickets left, in `[0, capacity]`.
    pub tickets: i32,
    /// Tickets taken per second over the last 5 s (negative when more came
    /// back than were taken), to one decimal.
    pub rate_per_sec: f64,
}

/// The live page of an event: its name, tickets left, the sale's pace and
/// the state of the connection, updated as the sale goes.
#[utoipa::path(get, path = "/live/{id}", tag = "live",
    params(("id" = i64, Path, description = "Event id")),
    responses(
        (status = 200, description = "The page (HTML with its script; it opens `/events/{id}/live`)", content_type = "text/html", body = String),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn page(
    State(state): State<AppState>,
    PathId(event_id): PathId<i64>,
) -> Result<Response, ApiError> {
    catalog::terms(&state, event_id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
        ],
        PAGE,
    )
        .into_response())
}

/// Tickets left and the sale's pace as they change (Server-Sent Events).
///
/// Each event is named `tickets` and its data is a `LiveUpdate` (JSON):
/// one at once, then one whenever the count or the pace changes (at most
/// four a second, the latest); a comment line every 15 s keeps an idle
/// stream open. The stream ends after `LIVE_STREAM_MAX_SECONDS` and when
/// the server shuts down; browsers reconnect by themselves. At most `LIVE_MAX_STREAMS` streams are open
/// on a server at once (503 beyond).
#[utoipa::path(get, path = "/events/{id}/live", tag = "live",
    params(("id" = i64, Path, description = "Event id")),
    responses(
        (status = 200, description = "`text/event-stream` of `tickets` events, each a `LiveUpdate`", content_type = "text/event-stream", body = String),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event, or live updates are turned off", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many streams open, or shutting down", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    PathId(event_id): PathId<i64>,
) -> Result<Sse<impl Stream<Item = Result<Event, axum::Error>>>, ApiError> {
    let live = &state.live;
    let permit = live.admit().map_err(refused)?;
    // Watching before the read: an announcement that lands in between is
    // kept, and the read only counts if its version is newer.
    let watcher = live.watch(event_id);
    let event = catalog::find(&state, event_id).await?;
    live.observe(event.id, event.version, event.available);
    let mut tick = tokio::time::interval(PACE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let feed = Feed {
        watcher,
        _permit: permit,
        event_id: event.id,
        name: event.name,
        capacity: event.capacity,
        tick,
        closing: live.closing(),
        ends_at: tokio::time::Instant::now() + live.max_lifetime(),
        quiet_until: tokio::time::Instant::now(),
        last: None,
    };
    let events = futures::stream::unfold(feed, |mut feed| async move {
        let update = feed.next_update().await?;
        let retry = feed.last.is_none();
        feed.last = Some((update.tickets, update.rate_per_sec));
        let mut event = Event::default().event("tickets");
        if retry {
            event = event.retry(RECONNECT_AFTER);
        }
        Some((event.json_data(&update), feed))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// Where the stream's answer is in the document (a JSON pointer).
const STREAM_CONTENT: &str =
    "/paths/~1events~1{id}~1live/get/responses/200/content/text~1event-stream";

/// Describes the stream's events in `document` (the OpenAPI document as
/// JSON): utoipa describes bodies, not event streams. In OpenAPI 3.1 the
/// `schema` of `text/event-stream` is one event's, as its fields are read
/// (`event`, `data`, `retry`); the data is a `LiveUpdate` in JSON, inlined
/// so that a reader needs no bundling to check it (Schemathesis checks
/// every event it reads against it).
pub fn describe_events(document: &mut Value) {
    let update = document
        .pointer("/components/schemas/LiveUpdate")
        .cloned()
        .unwrap_or_else(|| json!({"type": "object"}));
    if let Some(content) = document.pointer_mut(STREAM_CONTENT) {
        content["schema"] = json!({
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"const": "tickets"},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": update,
                },
                "retry": {"type": "integer", "minimum": 0},
            },
        });
    }
}

fn refused(refusal: Refusal) -> ApiError {
    let detail = refusal.to_string();
    match refusal {
        Refusal::Off => ApiError::NotFound(detail),
        Refusal::Full(_) => ApiError::unavailable(Unavailability::Overloaded, detail, 5),
        Refusal::Closing => ApiError::unavailable(Unavailability::Overloaded, detail, 1),
    }
}

/// One open stream.
struct Feed {
    watcher: Watcher,
    /// Its place among the streams, given back when the client leaves.
    _permit: OwnedSemaphorePermit,
    event_id: i64,
    name: String,
    capacity: i32,
    tick: Interval,
    closing: CancellationToken,
    ends_at: tokio::time::Instant,
    /// No update is sent before this time ([`MIN_GAP`] after the last).
    quiet_until: tokio::time::Instant,
    /// The tickets and pace last sent.
    last: Option<(i32, f64)>,
}

impl Feed {
    /// The next update that differs from the last one sent; `None` when the
    /// stream must end.
    async fn next_update(&mut self) -> Option<LiveUpdate> {
        tokio::select! {
            biased;
            () = ended(&self.closing, self.ends_at) => return None,
            () = tokio::time::sleep_until(self.quiet_until) => {}
        }
        loop {
            if let Some((available, pace)) = self.watcher.current(std::time::Instant::now()) {
                let tickets = available.clamp(0, self.capacity.max(0));
                let rate_per_sec = (pace * 10.0).round() / 10.0;
                if self.last != Some((tickets, rate_per_sec)) {
                    self.quiet_until = tokio::time::Instant::now() + MIN_GAP;
                    return Some(LiveUpdate {
                        event_id: self.event_id,
                        name: self.name.clone(),
                        capacity: self.capacity,
                        tickets,
                        rate_per_sec,
                    });
                }
            }
            tokio::select! {
                biased;
                () = ended(&self.closing, self.ends_at) => return None,
                changed = self.watcher.changed() => if !changed { return None },
                _ = self.tick.tick() => {}
            }
        }
    }
}

/// Resolves when a stream must end: the server shuts down, or the stream
/// has lived its time.
async fn ended(closing: &CancellationToken, ends_at: tokio::time::Instant) {
    tokio::select! {
        () = closing.cancelled() => {}
        () = tokio::time::sleep_until(ends_at) => {}
    }
}
