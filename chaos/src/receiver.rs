//! The webhook receiver a scenario runs for its clients' endpoints: an
//! HTTP server on 127.0.0.1 that checks each request's Standard Webhooks
//! signature against its endpoint's secret, records every message id and
//! body it got, and answers 500 to the first attempt of every
//! `fail_every`-th new message, so that the dispatchers' retries are
//! exercised in every run. What it got is judged by
//! [`crate::check::check_received`].

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::post,
};
use shared::webhook;
use uuid::Uuid;

use crate::check::Received;

/// How far a `webhook-timestamp` may be from the receiver's clock, as
/// Standard Webhooks advises receivers to allow (replay protection).
const TOLERANCE_SECS: i64 = 5 * 60;

#[derive(Default)]
struct Book {
    /// The path's slot → the endpoint served there and its secret.
    slots: HashMap<i64, (i64, String)>,
    received: Received,
    /// Message ids seen so far, all endpoints together.
    new_ids: usize,
    fail_every: usize,
}

pub struct Receiver {
    addr: SocketAddr,
    book: Arc<Mutex<Book>>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on an ephemeral port of 127.0.0.1; every `fail_every`-th new
    /// message id gets a 500 on its first attempt (0: never).
    pub async fn start(fail_every: usize) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let book = Arc::new(Mutex::new(Book {
            fail_every,
            ..Book::default()
        }));
        let app = Router::new()
            .route("/hooks/{slot}", post(hook))
            .with_state(book.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("chaos: the webhook receiver stopped: {error}");
            }
        });
        Ok(Self { addr, book, server })
    }

    /// The URL of `slot` (any number the caller picks, one per endpoint).
    pub fn url(&self, slot: i64) -> String {
        format!("http://{}/hooks/{slot}", self.addr)
    }

    /// Accepts requests at `slot` as those of `endpoint`, signed with
    /// `secret`.
    pub fn serve(&self, slot: i64, endpoint: i64, secret: String) {
        let mut book = lock(&self.book);
        book.slots.insert(slot, (endpoint, secret));
        book.received.endpoints.insert(endpoint);
    }

    /// What it has received so far.
    pub fn snapshot(&self) -> Received {
        lock(&self.book).received.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock(book: &Mutex<Book>) -> std::sync::MutexGuard<'_, Book> {
    // A handler never panics while holding it; if one did, the book is
    // still a record of what arrived.
    book.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn hook(
    State(book): State<Arc<Mutex<Book>>>,
    Path(slot): Path<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut book = lock(&book);
    let Some((endpoint, secret)) = book.slots.get(&slot).cloned() else {
        book.received
            .invalid
            .push(format!("a request to {slot}, which serves no endpoint"));
        return StatusCode::NOT_FOUND;
    };
    let message = match verify(&secret, &headers, &body) {
        Ok(message) => message,
        Err(why) => {
            book.received
                .invalid
                .push(format!("a request to endpoint {endpoint}: {why}"));
            return StatusCode::UNAUTHORIZED;
        }
    };
    let first = !book.received.messages.contains_key(&(message, endpoint));
    if first {
        book.new_ids += 1;
    }
    let refuse = first && book.fail_every > 0 && book.new_ids.is_multiple_of(book.fail_every);
    if refuse {
        book.received.refused_on_purpose += 1;
    }
    let receipt = book
        .received
        .messages
        .entry((message, endpoint))
        .or_default();
    receipt.attempts += 1;
    if !receipt.bodies.iter().any(|b| b[..] == body[..]) {
        receipt.bodies.push(body.to_vec());
    }
    if refuse {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    receipt.accepted += 1;
    StatusCode::NO_CONTENT
}

/// The message id of a request whose signature `secret` made, within the
/// timestamp tolerance; otherwise why not.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<Uuid, String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(format!("no valid {name} header"))
    };
    let id = header("webhook-id")?;
    let timestamp: i64 = header("webhook-timestamp")?
        .parse()
        .map_err(|_| "a webhook-timestamp that is not a number".to_owned())?;
    let signatures = header("webhook-signature")?;
    let message = id
        .strip_prefix("msg_")
        .and_then(|simple| Uuid::try_parse(simple).ok())
        .ok_or(format!("webhook-id {id} is not msg_<uuid>"))?;
    let skew = (chrono::Utc::now().timestamp() - timestamp).abs();
    if skew > TOLERANCE_SECS {
        return Err(format!(
            "{id}: webhook-timestamp {timestamp} is {skew} s off"
        ));
    }
    let expected = webhook::sign(secret, id, timestamp, body).map_err(|e| e.to_string())?;
    // The header may carry several signatures, space-separated (key
    // rotation); one matching is enough.
    if signatures.split(' ').any(|s| s == expected) {
        Ok(message)
    } else {
        Err(format!("{id}: bad signature {signatures}"))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn signed(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let signature = webhook::sign(secret, id, timestamp, body).unwrap_or_default();
        for (name, value) in [
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ] {
            headers.insert(name, HeaderValue::from_str(&value).expect("header"));
        }
        headers
    }

    #[test]
    fn only_a_fresh_request_signed_with_the_endpoints_secret_is_accepted() {
        let secret = webhook::new_secret();
        let message = Uuid::now_v7();
        let id = webhook::header_id(message);
        let now = chrono::Utc::now().timestamp();
        let body = br#"{"type":"reservation.held"}"#;
        let good = signed(&secret, &id, now, body);
        assert_eq!(verify(&secret, &good, body), Ok(message));
        assert!(verify(&secret, &good, b"{}").is_err(), "body changed");
        assert!(verify(&webhook::new_secret(), &good, body).is_err());
        let stale = signed(&secret, &id, now - 3600, body);
        assert!(verify(&secret, &stale, body).is_err());
        let mut unsigned = good.clone();
        unsigned.remove("webhook-signature");
        assert!(verify(&secret, &unsigned, body).is_err());
    }
}
