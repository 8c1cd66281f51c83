//! The api in-process: the router `startup` builds, driven with
//! `tower::ServiceExt::oneshot`, against the real MySQL, RabbitMQ, etcd and
//! Redis that `scripts/test` starts, in a database and namespace of its
//! own. No worker: these tests are about HTTP semantics, not decisions.

use std::time::{Duration, Instant};

use api::{config::Config, startup::App};
use axum::{
    Router,
    body::{Body, to_bytes},
    http::{HeaderMap, Request},
};
use clap::Parser;
use sea_orm::DatabaseConnection;
use serde_json::Value;
use testkit::app::{Deployment, env};
use tower::ServiceExt;

pub struct Api {
    pub db: DatabaseConnection,
    router: Router,
    _app: App,
}

/// An answer: status, headers and the body as JSON (`Null` if it is not)
/// and as text (lossy UTF-8).
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Api {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// With `flags` (e.g. `["--require-api-key", "true"]`) on top of the
    /// test deployment's.
    pub async fn spawn_with(flags: &[&str]) -> Self {
        let deployment = Deployment::create().await;
        let mut args = vec![
            "api".to_owned(),
            "--database-url".into(),
            deployment.database_url.clone(),
            "--namespace".into(),
            deployment.namespace.clone(),
        ];
        if !flags.contains(&"--admin-token") {
            args.extend(["--admin-token".into(), env("ADMIN_TOKEN")]);
        }
        args.extend(flags.iter().map(|f| (*f).to_owned()));
        let config = Config::try_parse_from(args).expect("api flags");
        let app = App::build(config).await.expect("build the api");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !app.is_connected() {
            assert!(Instant::now() < deadline, "no broker link in 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            db: deployment.db,
            router: app.router(),
            _app: app,
        }
    }

    pub async fn call(&self, request: Request<Body>) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("read the body");
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Request::get(path).body(Body::empty()).expect("request"))
            .await
    }
}
