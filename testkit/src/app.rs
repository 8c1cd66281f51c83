//! `TestApp`: one isolated deployment per test. Each test gets its own
//! database, its own queue/etcd/Redis namespace, an api process on a free
//! port and worker processes, all against the real servers that
//! `scripts/test` started (their URLs come from the environment).

use std::{
    collections::BTreeMap,
    fs::OpenOptions,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};

/// Command partitions of every test deployment.
pub const COMMAND_PARTITIONS: u16 = 4;

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test, which starts the servers")
    })
}

/// `GET /events/{id}/tickets` on the api replica at `base`; asserts 200.
pub async fn tickets_at(http: &reqwest::Client, base: &str, event_id: i64) -> i64 {
    let response = http
        .get(format!("{base}/events/{event_id}/tickets"))
        .send()
        .await
        .expect("GET tickets");
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.expect("json")["tickets"]
        .as_i64()
        .expect("tickets is a number")
}

/// Directory holding the `api` and `worker` binaries of this build: beside
/// the running executable (a binary in `target/<profile>/`) or one level up
/// (a test in `target/<profile>/deps/`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    exe.ancestors()
        .skip(1)
        .take(2)
        .find(|dir| dir.join("api").exists() && dir.join("worker").exists())
        .unwrap_or_else(|| {
            panic!(
                "api/worker binaries not found near {}: run `cargo build --workspace --bins` \
                 first (scripts/test does)",
                exe.display()
            )
        })
        .to_path_buf()
}

/// Path of one of this build's binaries (`api`, `worker`, `migrate`).
pub fn binary(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// Peak resident set size of a process (VmHWM), in MB.
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Replaces the database name of a `mysql://…/name` URL.
fn with_database(url: &str, database: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("DATABASE_URL has a database part");
    format!("{base}/{database}")
}

/// A fresh namespace and its own database, migrated, with the demo event:
/// what every test deployment starts from, in-process or not.
pub struct Deployment {
    pub namespace: String,
    pub database_url: String,
    pub db: DatabaseConnection,
}

impl Deployment {
    pub async fn create() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let namespace = format!("t{}", &id[..12]);
        let admin_url = env("DATABASE_URL");
        let admin = shared::db::connect_url(&admin_url, 1, Duration::from_secs(10))
            .await
            .expect("connect to MySQL");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {namespace}"))
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let database_url = with_database(&admin_url, &namespace);
        let db = shared::db::connect_url(&database_url, 8, Duration::from_secs(10))
            .await
            .expect("connect to the test database");
        Migrator::up(&db, None).await.expect("migrations");
        migrations::seed_demo_event(&db).await.expect("demo event");
        Self {
            namespace,
            database_url,
            db,
        }
    }
}

pub struct Options {
    pub workers: usize,
    pub env: BTreeMap<&'static str, String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            workers: 2,
            env: BTreeMap::new(),
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub namespace: String,
    /// URL of this deployment's own database.
    pub database_url: String,
    pub db: DatabaseConnection,
    pub http: reqwest::Client,
    env: Vec<(String, String)>,
    api: Child,
    pub workers: Vec<Child>,
    /// Base URL of each worker's HTTP port (`/metrics`, `/readyz`), in
    /// the order of `workers`.
    pub worker_ports: Vec<String>,
    /// Api processes started by [`TestApp::add_api`].
    extra_apis: Vec<Child>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        let Deployment {
            namespace,
            database_url,
            db,
        } = Deployment::create().await;

        let port = free_port();
        let env: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), database_url.clone()),
            ("DATABASE_MAX_CONNECTIONS".into(), "8".into()),
            ("AMQP_URL".into(), env("AMQP_URL")),
            ("ETCD_ENDPOINTS".into(), env("ETCD_ENDPOINTS")),
            ("REDIS_URL".into(), env("REDIS_URL")),
            ("ADMIN_TOKEN".into(), env("ADMIN_TOKEN")),
            ("TICKETS_NAMESPACE".into(), namespace.clone()),
            // Fewer than the default: every test declares its own queues.
            ("COMMAND_PARTITIONS".into(), COMMAND_PARTITIONS.to_string()),
            ("LISTEN_ADDR".into(), format!("127.0.0.1:{port}")),
            // Every test client shares 127.0.0.1; tests of the limit turn it
            // back on through `Options::env`.
            ("RESERVE_RATE_LIMIT_PER_SEC".into(), "0".into()),
            (
                "RUST_LOG".into(),
                std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
            ),
        ];
        let env = overridden(&env, options.env);
        let mut app = Self {
            base: format!("http://127.0.0.1:{port}"),
            namespace,
            database_url: database_url.clone(),
            db,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(64)
                .build()
                .expect("http client"),
            api: spawn("api", &env, None),
            workers: Vec::new(),
            worker_ports: Vec::new(),
            extra_apis: Vec::new(),
            env,
        };
        for _ in 0..options.workers {
            app.add_worker();
        }
        wait_ready(&app.http, &app.base, &mut app.api).await;
        app
    }

    pub fn add_worker(&mut self) {
        self.add_worker_with(&[], None);
    }

    /// Starts one more worker with `env` on top of the deployment's
    /// environment, its stdout and stderr appended to `log` (inherited when
    /// `None`), and returns its pid. Used by the fault-injection tests to
    /// start replacements and to keep worker logs apart.
    pub fn add_worker_with(&mut self, env: &[(&str, String)], log: Option<&Path>) -> u32 {
        let port = free_port();
        let vars = overridden(&self.env, [("METRICS_ADDR", format!("127.0.0.1:{port}"))]);
        let vars = overridden(&vars, env.iter().map(|(k, v)| (*k, v.clone())));
        let child = spawn("worker", &vars, log);
        let pid = child.id();
        self.workers.push(child);
        self.worker_ports.push(format!("http://127.0.0.1:{port}"));
        pid
    }

    /// Waits until worker `index` answers `/readyz` with 200: connected to
    /// RabbitMQ, holding an etcd lease, a member of the workers.
    pub async fn wait_worker_ready(&mut self, index: usize) {
        let url = format!("{}/readyz", self.worker_ports[index]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = self.http.get(&url).send().await
                && response.status() == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.workers[index].try_wait() {
                panic!("worker {index} exited during start-up: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "worker {index} not ready within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts another api process of this deployment (same database and
    /// namespace) on a free port, output appended to `log` (inherited when
    /// `None`), waits until it is ready and returns its base URL. It stops
    /// with the deployment.
    pub async fn add_api(&mut self, log: Option<&Path>) -> String {
        let port = free_port();
        let vars = overridden(&self.env, [("LISTEN_ADDR", format!("127.0.0.1:{port}"))]);
        let mut child = spawn("api", &vars, log);
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&self.http, &base, &mut child).await;
        self.extra_apis.push(child);
        base
    }

    /// Process ids of the api and of the workers still running.
    pub fn pids(&self) -> (u32, Vec<u32>) {
        (self.api.id(), self.workers.iter().map(Child::id).collect())
    }

    /// Process ids of every api replica: the first and those of `add_api`.
    pub fn api_pids(&self) -> Vec<u32> {
        std::iter::once(&self.api)
            .chain(&self.extra_apis)
            .map(Child::id)
            .collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn tickets(&self, event_id: i64) -> i64 {
        tickets_at(&self.http, &self.base, event_id).await
    }

    pub async fn create_event(&self, capacity: i64) -> i64 {
        let (status, event) = self
            .create_event_with(json!({"name": "Test event", "capacity": capacity}))
            .await;
        assert_eq!(status, 201, "{event}");
        event["id"].as_i64().expect("event id")
    }

    /// POST /events (admin) with `body`; returns status and body.
    pub async fn create_event_with(&self, body: Value) -> (u16, Value) {
        self.admin_post("/events", body).await
    }

    /// POST `path` as the admin with the JSON `body`; status and body.
    pub async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(env("ADMIN_TOKEN"))
            .json(&body)
            .send()
            .await
            .expect("admin POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A new user (`POST /users`) named `name`; its id.
    pub async fn create_user(&self, name: &str) -> i64 {
        let response = self
            .http
            .post(self.url("/users"))
            .json(&json!({"email": format!("{name}@example.com"), "name": name}))
            .send()
            .await
            .expect("POST /users");
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("json");
        body["id"].as_i64().expect("user id")
    }

    /// POST reserve with an optional JSON body; returns status and body.
    pub async fn reserve(&self, event_id: i64, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .post(self.url(&format!("/events/{event_id}/reserve")));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("POST reserve");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls `GET /reservations/{id}` until its status is not `pending`.
    pub async fn wait_decided(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let response = self
                .http
                .get(self.url(&format!("/reservations/{id}")))
                .send()
                .await
                .expect("GET reservation");
            if response.status() == 200 {
                let body: Value = response.json().await.expect("json");
                if body["status"] != "pending" {
                    return body;
                }
            }
            assert!(
                Instant::now() < deadline,
                "reservation {id} not decided in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn etcd_key(&self, key: &str) -> String {
        format!("{}{key}", shared::etcd::config_prefix(&self.namespace))
    }

    pub async fn etcd(&self) -> etcd_client::Client {
        let endpoints: Vec<String> = env("ETCD_ENDPOINTS")
            .split(',')
            .map(str::to_owned)
            .collect();
        shared::etcd::connect(&endpoints, Duration::from_secs(5))
            .await
            .expect("etcd")
    }
}

/// `base` with each of `overrides` replacing any earlier value of its key.
fn overridden<'a>(
    base: &[(String, String)],
    overrides: impl IntoIterator<Item = (&'a str, String)>,
) -> Vec<(String, String)> {
    let mut vars = base.to_vec();
    for (key, value) in overrides {
        vars.retain(|(k, _)| k != key);
        vars.push((key.to_owned(), value));
    }
    vars
}

/// Starts `binary` with exactly `env` (plus PATH), its stdout and stderr
/// appended to `log`, or inherited when `None`.
fn spawn(binary: &str, env: &[(String, String)], log: Option<&Path>) -> Child {
    let output = || match log {
        None => Stdio::inherit(),
        Some(log) => OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map(Stdio::from)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display())),
    };
    Command::new(bin_dir().join(binary))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(output())
        .stderr(output())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {binary}: {e}"))
}

/// Waits until the api at `base` answers `/readyz` with 200.
async fn wait_ready(http: &reqwest::Client, base: &str, api: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = http.get(format!("{base}/readyz")).send().await
            && response.status() == 200
        {
            return;
        }
        if let Ok(Some(status)) = api.try_wait() {
            panic!("api exited during start-up: {status}");
        }
        assert!(Instant::now() < deadline, "api not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for child in std::iter::once(&mut self.api)
            .chain(self.workers.iter_mut())
            .chain(self.extra_apis.iter_mut())
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
