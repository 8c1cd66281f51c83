//! The yardstick of the availability read: a bare axum route that does one
//! Redis GET and answers it as JSON, served inside the bench process. The
//! tickets read cannot be faster than the machine's HTTP stack plus one
//! cache round trip unless it skips the round trip, so its rate divided by
//! this one says how much the api's own layers cost, on the machine and in
//! the run that measured both.
//!
//! The server runs on a runtime of its own with as many threads as the
//! api's (`#[tokio::main]`'s default), so it does not share the load
//! generator's threads, as the api process does not.

use std::{net::SocketAddr, sync::Arc, thread::JoinHandle};

use anyhow::Context;
use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::get,
};
use redis::{AsyncCommands, aio::ConnectionManager};
use serde::Serialize;
use tokio::sync::oneshot;

/// The event id the load asks for (any id works; its key is set once).
pub const EVENT: i64 = 1;

/// How long the reference key outlives a run that did not clean up.
const KEY_TTL_SECS: u64 = 600;

/// The reference server, running until [`Reference::stop`].
pub struct Reference {
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Clone)]
struct Shared {
    redis: ConnectionManager,
    prefix: Arc<str>,
}

#[derive(Serialize)]
struct Tickets {
    tickets: i64,
}

impl Reference {
    /// Sets the key of [`EVENT`] in Redis at `redis_url`, then serves
    /// `GET /events/{id}/tickets` on a free loopback port.
    pub async fn start(redis_url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(redis_url).context("REDIS_URL")?;
        let prefix = format!("bench-reference-{}", uuid::Uuid::new_v4().simple());
        let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<SocketAddr>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("reference".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error.into()));
                        return;
                    }
                };
                runtime.block_on(serve(client, prefix, ready_tx, stop_rx));
            })
            .context("starting the reference server's thread")?;
        let addr = ready_rx
            .await
            .context("the reference server's thread ended")??;
        Ok(Self {
            base: format!("http://{addr}"),
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Stops serving and waits for the server's thread.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Connects, sets the key, reports the address, serves until `stop`.
async fn serve(
    client: redis::Client,
    prefix: String,
    ready: oneshot::Sender<anyhow::Result<SocketAddr>>,
    stop: oneshot::Receiver<()>,
) {
    let setup = async {
        let mut redis = ConnectionManager::new(client)
            .await
            .context("connecting to Redis")?;
        redis
            .set_ex::<_, _, ()>(key(&prefix, EVENT), 100, KEY_TTL_SECS)
            .await
            .context("setting the reference key")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the reference server")?;
        let router = Router::new()
            .route("/events/{id}/tickets", get(tickets))
            .with_state(Shared {
                redis,
                prefix: prefix.into(),
            });
        anyhow::Ok((listener, router))
    };
    let (listener, router) = match setup.await {
        Ok(ready) => ready,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    let addr = listener.local_addr();
    if ready.send(addr.map_err(Into::into)).is_err() {
        return;
    }
    let shutdown = async {
        let _ = stop.await;
    };
    if let Err(error) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        eprintln!("reference server: {error}");
    }
}

fn key(prefix: &str, event: i64) -> String {
    format!("{prefix}:event:{event}:tickets")
}

/// One Redis GET, answered as `{"tickets": n}`.
async fn tickets(
    State(Shared { mut redis, prefix }): State<Shared>,
    Path(event): Path<i64>,
) -> Result<Json<Tickets>, StatusCode> {
    let tickets: Option<i64> = redis
        .get(key(&prefix, event))
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    tickets
        .map(|tickets| Json(Tickets { tickets }))
        .ok_or(StatusCode::NOT_FOUND)
}
