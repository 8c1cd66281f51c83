//! A webhook receiver for the tests: an HTTP server on a free loopback
//! port that records every request it gets, checks its Standard Webhooks
//! signature, and answers as the test tells it (fail the first attempts of
//! each message, or every attempt, or take its time).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id`.
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Bytes,
    /// What the receiver answered.
    pub answered: u16,
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Behaviour {
    /// Answer 500 to the first this many attempts of each message.
    pub fail_first: usize,
    /// Answer 500 to everything.
    pub fail_all: bool,
    /// Wait this long before answering the first attempt of each message.
    pub first_delay: Duration,
}

#[derive(Default)]
struct Shared {
    behaviour: Behaviour,
    received: Vec<Received>,
    attempts: HashMap<String, usize>,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Self {
        let shared = Arc::new(Mutex::new(Shared {
            behaviour,
            ..Shared::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook receiver");
        let port = listener.local_addr().expect("receiver address").port();
        let app = Router::new()
            .route("/hooks", post(receive))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Self {
            url: format!("http://127.0.0.1:{port}/hooks"),
            shared,
            server,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set(&self, behaviour: Behaviour) {
        self.lock().behaviour = behaviour;
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Requests that arrived, answered or not yet (a request still
    /// waiting to be answered counts).
    pub fn attempted(&self) -> usize {
        self.lock().attempts.values().sum()
    }

    /// The last request of each message the receiver accepted (2xx), by
    /// `webhook-id`.
    pub fn accepted(&self) -> HashMap<String, Received> {
        self.received()
            .into_iter()
            .filter(|r| r.answered < 300)
            .map(|r| (r.id.clone(), r))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let id = header("webhook-id");
    let (attempt, behaviour) = {
        let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let attempt = shared.attempts.entry(id.clone()).or_default();
        *attempt += 1;
        (*attempt, shared.behaviour)
    };
    if attempt == 1 && !behaviour.first_delay.is_zero() {
        tokio::time::sleep(behaviour.first_delay).await;
    }
    let answered = if behaviour.fail_all || attempt <= behaviour.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    };
    shared
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .received
        .push(Received {
            id,
            timestamp: header("webhook-timestamp").parse().unwrap_or_default(),
            signature: header("webhook-signature"),
            body,
            answered: answered.as_u16(),
        });
    answered
}
