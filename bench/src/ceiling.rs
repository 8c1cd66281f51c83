//! The database ceiling: the workers' own reservation transaction, one
//! reservation per transaction, issued straight at MySQL from N
//! connections: no HTTP, no queue, no lock.

use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use shared::messages::Command;
use worker::store::decide;

use crate::{
    load::progress,
    stats::{self, Row, Tally},
};

/// Every transaction presents the same token; the fence accepts an equal
/// token, so this measures the database alone.
const TOKEN: i64 = 1;

pub async fn run(
    db: &DatabaseConnection,
    event_id: i64,
    connections: usize,
    duration: Duration,
    scenario: &str,
) -> Row {
    let tally = Tally::default();
    let bar = progress(scenario, duration);
    let started = Instant::now();
    let deadline = started + duration;
    let histograms = futures::future::join_all((0..connections).map(|_| async {
        let mut histogram = stats::histogram();
        while Instant::now() < deadline {
            let command = Command::Reserve {
                reservation_id: uuid::Uuid::now_v7(),
                event_id,
                quantity: 1,
                user_id: None,
                client_id: 0,
                hold_seconds: None,
                ticket_type_id: None,
            };
            let sent = Instant::now();
            let result = decide(db, event_id, TOKEN, &[command], 600).await;
            stats::record(&mut histogram, sent.elapsed());
            tally.count(result.is_ok());
        }
        histogram
    }))
    .await;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    tally.row(scenario, elapsed, histograms)
}
