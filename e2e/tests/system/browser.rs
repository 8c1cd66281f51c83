//! A real headless browser for the tests of pages: Debian's `chromium`
//! driven through `chromedriver` (both installed by `scripts/test`), which
//! each test starts on a free port and stops when done.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, wd::TimeoutConfiguration};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// How long a page gets to show what a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A chromedriver process and one browser session through it.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Browser {
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start chromedriver (Debian's chromium-driver; scripts/test installs it)");
        let url = format!("http://127.0.0.1:{port}");
        wait_driver_ready(&url, &mut driver).await;
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                // The tests run as root, and Chromium refuses to start its
                // sandbox as root: --no-sandbox. /dev/shm is small in
                // containers: --disable-dev-shm-usage.
                "args": ["--headless", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("a Chromium session");
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(PATIENCE),
                Some(PATIENCE),
                None,
            ))
            .await
            .expect("set the session's timeouts");
        Self { client, driver }
    }

    /// The text of the element with `id`.
    pub async fn text(&self, id: &str) -> String {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no element #{id}: {e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("text of #{id}: {e}"))
    }

    /// Waits, in the page, until the element with `id` shows `expected`
    /// (a `MutationObserver` resolves as soon as it does), for at most
    /// [`PATIENCE`]; panics with what it shows otherwise.
    pub async fn await_text(&self, id: &str, expected: &str) {
        const SCRIPT: &str = r#"
            const [id, expected, done] = arguments;
            const element = document.getElementById(id);
            if (!element) { done(false); return; }
            const check = () => {
                if (element.textContent === expected) { observer.disconnect(); done(true); }
            };
            const observer = new MutationObserver(check);
            observer.observe(element, { childList: true, characterData: true, subtree: true });
            check();
        "#;
        let shown = self
            .client
            .execute_async(SCRIPT, vec![json!(id), json!(expected)])
            .await;
        if !matches!(shown, Ok(Value::Bool(true))) {
            panic!(
                "#{id} shows {:?}, not {expected:?}, after {PATIENCE:?} ({shown:?})",
                self.text(id).await
            );
        }
    }

    /// Ends the browser session; the driver stops when `self` drops.
    pub async fn stop(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// Also when a test failed before [`Browser::stop`]: no driver is left
    /// behind.
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Waits until the driver at `url` says it is ready to start sessions.
async fn wait_driver_ready(url: &str, driver: &mut Child) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(response) = http.get(format!("{url}/status")).send().await
            && let Ok(status) = response.json::<Value>().await
            && status["value"]["ready"] == true
        {
            return;
        }
        if let Ok(Some(exit)) = driver.try_wait() {
            panic!("chromedriver exited during start-up: {exit}");
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver not ready in {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
