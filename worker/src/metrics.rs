//! The worker's Prometheus metrics. The deciding path only touches
//! handles registered once (an atomic add per batch or per group, a
//! histogram sample): no label is built and no map is searched per
//! command. What a worker owns now (its partitions' queue depth, the
//! tickets left of its busiest events) is sampled every few seconds, and
//! drops out of the exposition once it is no longer set (a partition that
//! moved away, an event that went quiet).
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `tickets_batch_size` | histogram | commands per batch taken from a partition |
//! | `tickets_decide_duration_seconds` | histogram | one event group: lock, transaction, commit |
//! | `tickets_decisions_total{status}` | counter | outcomes by reservation state |
//! | `tickets_lock_acquisitions_total` | counter | event locks taken from etcd (not kept ones) |
//! | `tickets_lock_wait_seconds` | histogram | time to take an event lock |
//! | `tickets_lock_handovers_total` | counter | kept locks released at their maximum hold because another worker waited |
//! | `tickets_fencing_rejections_total` | counter | writes refused by a newer fencing token |
//! | `tickets_dead_lettered_total{reason}` | counter | `unparseable` messages, commands the database `refused` |
//! | `tickets_webhook_attempts_total{result}` | counter | webhook attempts: `delivered`, `retrying` (failed, due again), `failed` (the last one) |
//! | `tickets_command_queue_depth{partition}` | gauge | ready commands in each partition this worker consumes |
//! | `tickets_partitions_owned` | gauge | partitions this worker consumes |
//! | `tickets_available{event_id}` | gauge | tickets left, for the [`TOP_EVENTS`] busiest events this worker decided |

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Mutex, OnceLock, PoisonError},
    time::{Duration, Instant},
};

use lapin::{Connection, options::QueueDeclareOptions, types::FieldTable};
use metrics::{Counter, Histogram};
use shared::{messages::ReservationStatus, topology::Topology};
use tokio::sync::watch;

/// Events whose tickets left are exported at most, per worker: the label
/// `event_id` stays bounded however many events sell.
pub const TOP_EVENTS: usize = 20;

/// How often the owned state is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// An event not decided for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);

pub struct Metrics {
    batch_size: Histogram,
    decide_seconds: Histogram,
    /// Indexed like `ReservationStatus::ALL`.
    decisions: Vec<Counter>,
    lock_acquisitions: Counter,
    lock_wait_seconds: Histogram,
    lock_handovers: Counter,
    fencing_rejections: Counter,
    unparseable: Counter,
    refused: Counter,
    /// Webhook attempts: delivered, failed and retried, failed for good.
    webhooks: [Counter; 3],
    events: Mutex<HashMap<i64, Activity>>,
}

/// What the worker last saw of an event.
struct Activity {
    available: i32,
    /// Commands decided since the last sample.
    commands: usize,
    last: Instant,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The worker's handles, registered on first use (after `main` installed
/// the recorder).
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(|| {
        let dead = |reason: &'static str| metrics::counter!("tickets_dead_lettered_total", "reason" => reason);
        Metrics {
            batch_size: metrics::histogram!("tickets_batch_size"),
            decide_seconds: metrics::histogram!("tickets_decide_duration_seconds"),
            decisions: ReservationStatus::ALL
                .iter()
                .map(|status| metrics::counter!("tickets_decisions_total", "status" => status.as_str()))
                .collect(),
            lock_acquisitions: metrics::counter!("tickets_lock_acquisitions_total"),
            lock_wait_seconds: metrics::histogram!("tickets_lock_wait_seconds"),
            lock_handovers: metrics::counter!("tickets_lock_handovers_total"),
            fencing_rejections: metrics::counter!("tickets_fencing_rejections_total"),
            unparseable: dead("unparseable"),
            refused: dead("refused"),
            webhooks: ["delivered", "retrying", "failed"].map(|result| {
                metrics::counter!("tickets_webhook_attempts_total", "result" => result)
            }),
            events: Mutex::default(),
        }
    })
}

impl Metrics {
    pub fn batch(&self, commands: usize) {
        self.batch_size.record(commands as f64);
    }

    /// One event group decided in `took`: its outcomes, and the event's
    /// tickets left after the commit.
    pub fn decided(
        &self,
        event_id: i64,
        took: Duration,
        statuses: impl Iterator<Item = ReservationStatus>,
        available: Option<i32>,
    ) {
        self.decide_seconds.record(took);
        let mut counts = [0u64; ReservationStatus::ALL.len()];
        let mut commands = 0;
        for status in statuses {
            commands += 1;
            if let Some(i) = ReservationStatus::ALL.iter().position(|s| *s == status) {
                counts[i] += 1;
            }
        }
        for (counter, n) in self.decisions.iter().zip(counts) {
            if n > 0 {
                counter.increment(n);
            }
        }
        if let Some(available) = available {
            let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
            let activity = events.entry(event_id).or_insert(Activity {
                available,
                commands: 0,
                last: Instant::now(),
            });
            activity.available = available;
            activity.commands += commands;
            activity.last = Instant::now();
        }
    }

    pub fn lock_acquired(&self, waited: Duration) {
        self.lock_acquisitions.increment(1);
        self.lock_wait_seconds.record(waited);
    }

    pub fn lock_handed_over(&self) {
        self.lock_handovers.increment(1);
    }

    pub fn fencing_rejected(&self) {
        self.fencing_rejections.increment(1);
    }

    pub fn dead_lettered_unparseable(&self) {
        self.unparseable.increment(1);
    }

    pub fn dead_lettered_refused(&self, n: usize) {
        self.refused.increment(n as u64);
    }

    /// One webhook attempt; `last` when no other follows.
    pub fn webhook_attempt(&self, attempt: &crate::webhooks::claims::Attempt, last: bool) {
        let index = match attempt {
            crate::webhooks::claims::Attempt::Delivered(_) => 0,
            _ if last => 2,
            _ => 1,
        };
        self.webhooks[index].increment(1);
    }

    /// Sets the tickets-left gauges of the busiest events: most commands
    /// since the last sample, then most recently decided.
    fn sample_events(&self) {
        let top: Vec<(i64, i32)> = {
            let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
            events.retain(|_, activity| activity.last.elapsed() < FORGET_AFTER);
            let mut ranked: Vec<(&i64, &Activity)> = events.iter().collect();
            ranked.sort_by(|(_, a), (_, b)| b.commands.cmp(&a.commands).then(b.last.cmp(&a.last)));
            let top = ranked
                .into_iter()
                .take(TOP_EVENTS)
                .map(|(id, activity)| (*id, activity.available))
                .collect();
            events
                .values_mut()
                .for_each(|activity| activity.commands = 0);
            top
        };
        for (event_id, available) in top {
            metrics::gauge!("tickets_available", "event_id" => event_id.to_string())
                .set(f64::from(available));
        }
    }
}

/// Samples what this worker owns every few seconds, for as long as its
/// broker session lasts: the ready depth of each partition it consumes
/// (a passive declare on a channel of its own), how many it consumes, and
/// its busiest events' tickets left.
pub async fn sample(
    connection: &Connection,
    topology: &Topology,
    assignment: watch::Receiver<BTreeSet<u16>>,
) {
    let mut channel = None;
    loop {
        // First wait: the session declares the queues meanwhile (a
        // passive declare of a queue not declared yet would fail).
        tokio::time::sleep(SAMPLE_EVERY).await;
        let owned = assignment.borrow().clone();
        metrics::gauge!("tickets_partitions_owned").set(owned.len() as f64);
        get().sample_events();
        if channel.is_none() {
            channel = connection.create_channel().await.ok();
        }
        if let Some(open) = &channel {
            for partition in owned {
                let declared = open
                    .queue_declare(
                        topology.partition_queue(partition).as_str().into(),
                        QueueDeclareOptions {
                            passive: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await;
                match declared {
                    Ok(queue) => metrics::gauge!(
                        "tickets_command_queue_depth",
                        "partition" => partition.to_string()
                    )
                    .set(f64::from(queue.message_count())),
                    Err(error) => {
                        // A failed declare closes the channel: open
                        // another at the next sample.
                        tracing::debug!(%error, partition, "could not read a queue's depth");
                        channel = None;
                        break;
                    }
                }
            }
        }
    }
}
