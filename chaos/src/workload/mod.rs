//! The randomized workload: concurrent clients making reserve (sync and
//! async, quantity 1–4, some with Idempotency-Key and retries, some holds
//! of 1–3 s that expire during the faults; of a ticket type and for a user
//! where the event has them), confirm, cancel, poll, read and waiting-list
//! (`waiting`) requests against one or more api replicas, every request
//! and answer recorded in the history. Each client acts anonymously or
//! with one of the run's API keys (whose reservations are owed webhooks),
//! and acts on a reservation with the key that made it.

mod flood;
mod waiting;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use self::flood::{Flood, flood};
use crate::history::{EventMeta, HistoryWriter, Op, OpKind, Record};

#[derive(Debug, Clone)]
pub struct Config {
    pub apis: Vec<String>,
    pub events: Vec<EventMeta>,
    pub clients: usize,
    /// Stop after this many operations (all clients together).
    pub max_ops: Option<u64>,
    pub seed: u64,
    /// Per-request client timeout; a request that hits it is a hang.
    pub request_timeout: Duration,
    /// API keys of the clients (storefronts) the workload acts for: each
    /// of its tasks acts for one of them or anonymously, in turn, so that
    /// reservations of both kinds are made (only a client's are owed
    /// webhooks).
    pub keys: Vec<String>,
}

/// How long an idle connection stays pooled: well under the api's
/// keep-alive idle close (`HEADER_READ_TIMEOUT_MS`, 10 s).
const IDLE_CONNECTION: Duration = Duration::from_secs(4);

/// Ids the clients share: what they may poll, confirm and cancel.
#[derive(Default)]
struct Known {
    any: Vec<Uuid>,
    confirmed: Vec<Uuid>,
    held: Vec<Uuid>,
    /// Waiting-list entries not seen offered yet.
    waiting: Vec<Uuid>,
    /// The key (index in `Config::keys`) a reservation or entry was made
    /// with: only its owner may see or change it.
    owners: HashMap<Uuid, usize>,
}

struct Shared {
    config: Config,
    http: reqwest::Client,
    history: Arc<HistoryWriter>,
    known: Mutex<Known>,
    ops: AtomicU64,
    stop: CancellationToken,
}

/// Runs until `stop` is cancelled or `max_ops` is reached; returns the
/// number of requests made.
pub async fn run(
    config: Config,
    history: Arc<HistoryWriter>,
    stop: CancellationToken,
) -> anyhow::Result<u64> {
    let shared = Shared::new(config.clone(), history, stop)?;
    let tasks: Vec<_> = (0..config.clients)
        .map(|client| tokio::spawn(client_loop(shared.clone(), client)))
        .collect();
    for task in tasks {
        task.await?;
    }
    shared.history.flush();
    Ok(shared.ops.load(Ordering::Relaxed))
}

struct Request {
    op: OpKind,
    method: reqwest::Method,
    path: String,
    event_id: Option<i64>,
    reservation_id: Option<Uuid>,
    quantity: Option<i32>,
    idempotency_key: Option<String>,
    attempt: u32,
    asynchronous: bool,
    body: Option<Value>,
    /// Sent with `Config::keys[key]`; anonymous when `None`.
    key: Option<usize>,
}

impl Request {
    fn new(op: OpKind, method: reqwest::Method, path: String) -> Self {
        Self {
            op,
            method,
            path,
            event_id: None,
            reservation_id: None,
            quantity: None,
            idempotency_key: None,
            attempt: 1,
            asynchronous: false,
            body: None,
            key: None,
        }
    }
}

impl Shared {
    fn new(
        config: Config,
        history: Arc<HistoryWriter>,
        stop: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        // The api closes a keep-alive connection idle for its header read
        // timeout (10 s by default); a client that reuses one just then
        // gets a transport error the checker counts as no answer. Like a
        // well-configured client, this one lets idle connections go first.
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(config.clients * 2)
            .pool_idle_timeout(IDLE_CONNECTION)
            .build()?;
        Ok(Arc::new(Self {
            config,
            http,
            history,
            known: Mutex::new(Known::default()),
            ops: AtomicU64::new(0),
            stop,
        }))
    }

    fn budget_left(&self) -> bool {
        !self.stop.is_cancelled()
            && self
                .config
                .max_ops
                .is_none_or(|max| self.ops.load(Ordering::Relaxed) < max)
    }

    /// Sends one request and records it.
    async fn send(&self, client: usize, rng: &mut StdRng, request: Request) -> Op {
        self.ops.fetch_add(1, Ordering::Relaxed);
        let api = rng.random_range(0..self.config.apis.len());
        let url = format!("{}{}", self.config.apis[api], request.path);
        let mut builder = self.http.request(request.method.clone(), url);
        if let Some(key) = &request.idempotency_key {
            builder = builder.header("Idempotency-Key", key);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        if let Some(key) = request.key.and_then(|k| self.config.keys.get(k)) {
            builder = builder.bearer_auth(key);
        }
        let key = request.key;
        let start_ms = self.history.now_ms();
        let (status, retry_after, body, error) = match builder.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match response.bytes().await {
                    Ok(bytes) => (
                        status,
                        retry_after,
                        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(&bytes).into_owned())
                        }),
                        None,
                    ),
                    Err(e) => (0, retry_after, Value::Null, Some(format!("body: {e}"))),
                }
            }
            Err(e) => (0, None, Value::Null, Some(e.to_string())),
        };
        let end_ms = self.history.now_ms();
        let reservation_id = request
            .reservation_id
            .or_else(|| body["reservation_id"].as_str().and_then(|s| s.parse().ok()));
        let op = Op {
            op: request.op,
            client,
            api,
            method: request.method.to_string(),
            path: request.path,
            event_id: request.event_id,
            reservation_id,
            quantity: request.quantity,
            idempotency_key: request.idempotency_key,
            attempt: request.attempt,
            asynchronous: request.asynchronous,
            start_ms,
            end_ms,
            status,
            retry_after,
            body,
            error,
        };
        self.history.write(&Record::Op(op.clone()));
        self.learn(&op, key);
        op
    }

    /// The key task `client` acts with: tasks take the keys and anonymity
    /// in turn.
    fn identity(&self, client: usize) -> Option<usize> {
        (client % (self.config.keys.len() + 1)).checked_sub(1)
    }

    /// The key reservation or entry `id` was made with.
    fn owner(&self, id: Uuid) -> Option<usize> {
        self.known
            .lock()
            .expect("known ids")
            .owners
            .get(&id)
            .copied()
    }

    fn learn(&self, op: &Op, key: Option<usize>) {
        let Some(id) = op.reservation_id else { return };
        let mut known = self.known.lock().expect("known ids");
        if op.op == OpKind::Reserve && matches!(op.status, 200 | 202 | 409 | 503) && op.attempt == 1
        {
            known.any.push(id);
        }
        if op.op == OpKind::Reserve
            && let Some(key) = key
        {
            known.owners.insert(id, key);
        }
        if op.op != OpKind::Cancel {
            match op.reported_status() {
                Some("confirmed") => known.confirmed.push(id),
                Some("held") => known.held.push(id),
                _ => {}
            }
        }
    }
}

async fn client_loop(shared: Arc<Shared>, client: usize) {
    let mut rng = StdRng::seed_from_u64(shared.config.seed.wrapping_add(client as u64 * 7919));
    let mut n = 0u64;
    while shared.budget_left() {
        n += 1;
        let roll: f64 = rng.random();
        let op = if roll < 0.50 {
            reserve(&shared, client, &mut rng, n).await
        } else if roll < 0.58 {
            confirm(&shared, client, &mut rng).await
        } else if roll < 0.67 {
            cancel(&shared, client, &mut rng).await
        } else if roll < 0.77 {
            poll(&shared, client, &mut rng).await
        } else if roll < 0.81 {
            waiting::join(&shared, client, &mut rng).await
        } else if roll < 0.85 {
            waiting::look(&shared, client, &mut rng).await
        } else {
            read(&shared, client, &mut rng).await
        };
        // Refused (overload, outage, rate limit): back off a little, as a
        // client would.
        if let Some(op) = op
            && matches!(op.status, 0 | 429 | 503)
        {
            let ms = rng.random_range(50..250);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

async fn reserve(shared: &Shared, client: usize, rng: &mut StdRng, n: u64) -> Option<Op> {
    let event = shared.config.events.choose(rng)?;
    let quantity = rng.random_range(1..=4);
    let mut body = reserve_body(event, quantity, rng);
    if rng.random_bool(0.3) {
        body["hold"] = json!(true);
        body["hold_seconds"] = json!(rng.random_range(1..=3));
    }
    let asynchronous = rng.random_bool(0.25);
    let key = rng
        .random_bool(0.2)
        .then(|| format!("chaos-{}-{client}-{n}", shared.config.seed));
    let path = format!(
        "/events/{}/reserve{}",
        event.id,
        if asynchronous { "?wait=false" } else { "" }
    );
    let mut last = None;
    for attempt in 1..=4 {
        let mut request = Request::new(OpKind::Reserve, reqwest::Method::POST, path.clone());
        request.event_id = Some(event.id);
        request.quantity = Some(quantity);
        request.idempotency_key = key.clone();
        request.attempt = attempt;
        request.asynchronous = asynchronous;
        request.body = Some(body.clone());
        request.key = shared.identity(client);
        let op = shared.send(client, rng, request).await;
        // With a key, retry: always after a refusal or no answer (that is
        // what the key is for), and half the time after an answer too, to
        // check that a retry gets the same reservation and decision.
        let retry = key.is_some()
            && attempt < 4
            && shared.budget_left()
            && (matches!(op.status, 0 | 429 | 503) || (attempt == 1 && rng.random_bool(0.5)));
        let status = op.status;
        last = Some(op);
        if !retry {
            break;
        }
        if matches!(status, 0 | 429 | 503) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(200..600))).await;
        }
    }
    last
}

/// A valid reserve of `quantity` tickets of `event`: of a random type and
/// for a random user where the event has them.
fn reserve_body(event: &EventMeta, quantity: i32, rng: &mut StdRng) -> Value {
    let mut body = json!({ "quantity": quantity });
    if let Some(kind) = event.ticket_types.choose(rng) {
        body["ticket_type"] = json!(kind);
    }
    if let Some(user) = event.users.choose(rng) {
        body["user_id"] = json!(user);
    }
    body
}

/// Takes one id out of `ids` at random.
fn take(ids: &mut Vec<Uuid>, rng: &mut StdRng) -> Option<Uuid> {
    (!ids.is_empty()).then(|| ids.swap_remove(rng.random_range(0..ids.len())))
}

async fn confirm(shared: &Shared, client: usize, rng: &mut StdRng) -> Option<Op> {
    let id = take(&mut shared.known.lock().expect("known ids").held, rng);
    let Some(id) = id else {
        return read(shared, client, rng).await;
    };
    let mut request = Request::new(
        OpKind::Confirm,
        reqwest::Method::POST,
        format!("/reservations/{id}/confirm"),
    );
    request.reservation_id = Some(id);
    request.key = shared.owner(id);
    Some(shared.send(client, rng, request).await)
}

/// Cancels a confirmed reservation or releases a hold.
async fn cancel(shared: &Shared, client: usize, rng: &mut StdRng) -> Option<Op> {
    let id = {
        let mut known = shared.known.lock().expect("known ids");
        let from_held = rng.random_bool(0.3) && !known.held.is_empty();
        take(
            if from_held {
                &mut known.held
            } else {
                &mut known.confirmed
            },
            rng,
        )
    };
    let Some(id) = id else {
        return read(shared, client, rng).await;
    };
    let mut request = Request::new(
        OpKind::Cancel,
        reqwest::Method::DELETE,
        format!("/reservations/{id}"),
    );
    request.reservation_id = Some(id);
    request.key = shared.owner(id);
    Some(shared.send(client, rng, request).await)
}

async fn poll(shared: &Shared, client: usize, rng: &mut StdRng) -> Option<Op> {
    let id = {
        let known = shared.known.lock().expect("known ids");
        known.any.choose(rng).copied()
    };
    let Some(id) = id else {
        return read(shared, client, rng).await;
    };
    let mut request = Request::new(
        OpKind::Poll,
        reqwest::Method::GET,
        format!("/reservations/{id}"),
    );
    request.reservation_id = Some(id);
    request.key = shared.owner(id);
    Some(shared.send(client, rng, request).await)
}

async fn read(shared: &Shared, client: usize, rng: &mut StdRng) -> Option<Op> {
    let event = shared.config.events.choose(rng)?;
    let mut request = Request::new(
        OpKind::Read,
        reqwest::Method::GET,
        format!("/events/{}/tickets", event.id),
    );
    request.event_id = Some(event.id);
    Some(shared.send(client, rng, request).await)
}
