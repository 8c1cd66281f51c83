//! HTTP load: N clients in a closed loop, or a fixed request rate (open
//! loop, latency measured from the scheduled start so a stalled server
//! cannot hide its queueing).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;

use crate::stats::{self, Row, Tally};

/// One unit of the workload.
#[derive(Clone, Copy)]
pub enum Op {
    Reserve,
    ReadTickets,
    /// A storefront's checkout: hold one ticket for [`CHECKOUT_HOLD_SECONDS`],
    /// then confirm it (four checkouts in five) or walk away and let it
    /// expire. Counts as one operation, its latency from hold to confirm.
    Checkout,
}

/// Short enough that the abandoned holds expire during the run.
pub const CHECKOUT_HOLD_SECONDS: u64 = 2;

#[derive(Clone)]
pub struct Load {
    pub base: String,
    pub events: Vec<i64>,
    pub op: Op,
    pub clients: usize,
    pub duration: Duration,
    /// Requests per second for the open loop; `None` runs closed loop.
    pub rate: Option<u64>,
}

impl Load {
    pub async fn run(&self, scenario: &str) -> Row {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(self.clients)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let tally = Arc::new(Tally::default());
        let progress = progress(scenario, self.duration);
        let started = Instant::now();
        let deadline = started + self.duration;
        let histograms = match self.rate {
            None => self.closed(&http, &tally, deadline).await,
            Some(rate) => self.open(&http, &tally, deadline, rate).await,
        };
        let elapsed = started.elapsed();
        progress.finish_and_clear();
        tally.row(scenario, elapsed, histograms)
    }

    /// The `n`th unit of work; whether it succeeded.
    async fn once(&self, http: &reqwest::Client, n: usize) -> bool {
        let event = self.events[n % self.events.len()];
        match self.op {
            Op::Reserve => send(http.post(format!("{}/events/{event}/reserve", self.base))).await,
            Op::ReadTickets => {
                send(http.get(format!("{}/events/{event}/tickets", self.base))).await
            }
            Op::Checkout => self.checkout(http, event, !n.is_multiple_of(5)).await,
        }
    }

    async fn checkout(&self, http: &reqwest::Client, event: i64, pays: bool) -> bool {
        let held = http
            .post(format!("{}/events/{event}/reserve", self.base))
            .json(&serde_json::json!({"hold": true, "hold_seconds": CHECKOUT_HOLD_SECONDS}))
            .send()
            .await;
        let Ok(held) = held else { return false };
        if held.status().as_u16() != 200 {
            return false;
        }
        let Ok(body) = held.json::<serde_json::Value>().await else {
            return false;
        };
        let Some(id) = body["reservation_id"].as_str() else {
            return false;
        };
        !pays || send(http.post(format!("{}/reservations/{id}/confirm", self.base))).await
    }

    async fn closed(
        &self,
        http: &reqwest::Client,
        tally: &Arc<Tally>,
        deadline: Instant,
    ) -> Vec<Histogram<u64>> {
        let clients = (0..self.clients).map(|client| async move {
            let mut histogram = stats::histogram();
            let mut n = client;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let ok = self.once(http, n).await;
                stats::record(&mut histogram, sent.elapsed());
                tally.count(ok);
                n += self.clients;
            }
            histogram
        });
        futures::future::join_all(clients).await
    }

    async fn open(
        &self,
        http: &reqwest::Client,
        tally: &Arc<Tally>,
        deadline: Instant,
        rate: u64,
    ) -> Vec<Histogram<u64>> {
        let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
        // Bounds memory if the server falls behind: beyond `clients` requests
        // in flight, new ones wait (and their wait counts as latency).
        let in_flight = Arc::new(Semaphore::new(self.clients));
        let mut tasks = Vec::new();
        let start = Instant::now();
        let mut n = 0usize;
        loop {
            let scheduled = start + interval.mul_f64(n as f64);
            if scheduled >= deadline {
                break;
            }
            tokio::time::sleep_until(scheduled.into()).await;
            let permit = in_flight
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore open");
            let (load, http) = (self.clone(), http.clone());
            let tally = tally.clone();
            tasks.push(tokio::spawn(async move {
                let ok = load.once(&http, n).await;
                drop(permit);
                tally.count(ok);
                scheduled.elapsed()
            }));
            n += 1;
        }
        let mut histogram = stats::histogram();
        for task in tasks {
            if let Ok(latency) = task.await {
                stats::record(&mut histogram, latency);
            }
        }
        vec![histogram]
    }
}

async fn send(request: reqwest::RequestBuilder) -> bool {
    match request.send().await {
        Ok(response) => response.status().as_u16() == 200,
        Err(_) => false,
    }
}

/// A bar that fills over the run's duration.
pub fn progress(scenario: &str, duration: Duration) -> ProgressBar {
    let bar = ProgressBar::new(duration.as_secs().max(1));
    bar.set_style(
        ProgressStyle::with_template("{msg:<44} [{bar:30}] {pos}/{len} s")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(scenario.to_owned());
    let ticker = bar.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        while !ticker.is_finished() {
            tick.tick().await;
            ticker.inc(1);
        }
    });
    bar
}
