//! Hold expiry (DESIGN §10). The worker that consumes a partition keeps
//! that partition's live holds in time order; when one comes due it
//! publishes an `Expire` command into the partition's own queue, where it
//! is decided like every other command: in order with them, under the
//! event's lock and fencing token, on the database's clock. So expiry needs
//! no second writer, no timer in the broker, and no scan per tick.
//!
//! The schedule is filled from MySQL when the partition is taken over (one
//! read of the `(status, expires_at)` index) and from the outcomes of the
//! partition's own batches; it is read again every [`RESCAN`] to pick up
//! a hold a previous owner committed after the takeover read. It is only a
//! reminder list: losing it (a SIGKILL) costs the next owner one read, and
//! an `Expire` sent twice or early changes nothing (the rules expire only a
//! hold whose time has come, by the database's clock).

use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};
use lapin::{BasicProperties, Channel, Confirmation, options::BasicPublishOptions};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr,
};
use shared::{
    entities::reservation,
    messages::{self, Command, Outcome, ReservationStatus},
    topology::Topology,
};
use tokio::sync::Notify;
use uuid::Uuid;

/// How long after a hold's `expires_at` its `Expire` is sent: a worker's
/// clock a little ahead of the database's would otherwise send it before
/// the database agrees the hold is due.
const GRACE: TimeDelta = TimeDelta::milliseconds(100);
/// When an `Expire` found its hold still live (the clocks disagree by more
/// than [`GRACE`]), how soon to try again.
const RECHECK: TimeDelta = TimeDelta::milliseconds(200);
/// When an `Expire` was published (or could not be) and no outcome has
/// been seen yet, how long before it is sent again. A copy that waits in a
/// long queue is sent again meanwhile; the second copy changes nothing.
const RESEND: TimeDelta = TimeDelta::seconds(5);
/// How often the partition's live holds are read from MySQL again.
pub const RESCAN: Duration = Duration::from_secs(30);

/// The live holds of one partition, soonest due first. Pure bookkeeping.
#[derive(Debug, Default)]
pub struct Schedule {
    by_due: BTreeSet<(DateTime<Utc>, Uuid)>,
    entries: HashMap<Uuid, (DateTime<Utc>, i64)>,
}

impl Schedule {
    /// Schedules `id` (of `event_id`) for `due`, replacing its earlier time.
    pub fn set(&mut self, id: Uuid, event_id: i64, due: DateTime<Utc>) {
        self.forget(id);
        self.by_due.insert((due, id));
        self.entries.insert(id, (due, event_id));
    }

    pub fn forget(&mut self, id: Uuid) {
        if let Some((due, _)) = self.entries.remove(&id) {
            self.by_due.remove(&(due, id));
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.by_due.first().map(|(due, _)| *due)
    }

    /// Removes and returns every hold due at `now`, as (id, event).
    pub fn take_due(&mut self, now: DateTime<Utc>) -> Vec<(Uuid, i64)> {
        let mut due = Vec::new();
        while let Some(&(at, id)) = self.by_due.first() {
            if at > now {
                break;
            }
            self.by_due.pop_first();
            if let Some((_, event_id)) = self.entries.remove(&id) {
                due.push((id, event_id));
            }
        }
        due
    }

    /// Follows a decided outcome at `now`: a hold is (re)scheduled for its
    /// end, anything else is no longer this schedule's business.
    pub fn observe(&mut self, outcome: &Outcome, now: DateTime<Utc>) {
        match (outcome.status, outcome.expires_at) {
            (ReservationStatus::Held, Some(expires_at)) => self.set(
                outcome.reservation_id,
                outcome.event_id,
                (expires_at + GRACE).max(now + RECHECK),
            ),
            _ => self.forget(outcome.reservation_id),
        }
    }

    /// A hold read from MySQL: scheduled unless it already is (an `Expire`
    /// on its way keeps its resend time).
    pub fn add_found(&mut self, id: Uuid, event_id: i64, expires_at: DateTime<Utc>) {
        if !self.entries.contains_key(&id) {
            self.set(id, event_id, expires_at + GRACE);
        }
    }
}

/// One partition's schedule and the means to act on it.
#[derive(Default)]
pub struct Expiry {
    schedule: Mutex<Schedule>,
    changed: Notify,
}

impl Expiry {
    fn schedule(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follows the outcomes of one of the partition's batches.
    pub fn observe(&self, outcomes: &[Outcome]) {
        let now = Utc::now();
        let sooner = {
            let mut schedule = self.schedule();
            let before = schedule.next_due();
            for outcome in outcomes {
                schedule.observe(outcome, now);
            }
            match (before, schedule.next_due()) {
                (Some(before), Some(after)) => after < before,
                (None, after) => after.is_some(),
                (Some(_), None) => false,
            }
        };
        // The sender sleeps until the soonest hold; only a sooner one
        // needs to wake it.
        if sooner {
            self.changed.notify_one();
        }
    }

    /// Sends an `Expire` for each hold of `partition` as it comes due, on
    /// `channel` (in confirm mode). Runs until dropped.
    pub async fn run(
        &self,
        db: &DatabaseConnection,
        topology: &Topology,
        partition: u16,
        channel: &Channel,
    ) {
        let queue = topology.partition_queue(partition);
        let mut next_scan = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_scan {
                match live_holds(db, topology.partitions(), partition).await {
                    Ok(found) => {
                        let mut schedule = self.schedule();
                        for (id, event_id, expires_at) in found {
                            schedule.add_found(id, event_id, expires_at);
                        }
                        tracing::debug!(%queue, holds = schedule.len(), "live holds read");
                    }
                    Err(error) => tracing::warn!(%error, %queue, "could not read live holds"),
                }
                next_scan = tokio::time::Instant::now() + RESCAN;
            }
            let wake = self
                .schedule()
                .next_due()
                .map(|due| {
                    let wait = (due - Utc::now()).to_std().unwrap_or_default();
                    tokio::time::Instant::now() + wait
                })
                .map_or(next_scan, |due| due.min(next_scan));
            tokio::select! {
                () = self.changed.notified() => continue,
                () = tokio::time::sleep_until(wake) => {}
            }
            let due = self.schedule().take_due(Utc::now());
            for (id, event_id) in due {
                let command = Command::Expire {
                    reservation_id: id,
                    event_id,
                };
                if let Err(error) = publish(channel, &queue, &command).await {
                    tracing::warn!(%error, reservation_id = %id, "could not send an expiry; will retry");
                }
                self.schedule().set(id, event_id, Utc::now() + RESEND);
            }
        }
    }
}

/// Publishes `command` persistently and waits for the broker's confirm.
async fn publish(channel: &Channel, queue: &str, command: &Command) -> Result<(), String> {
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into());
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            &messages::encode(command),
            properties,
        )
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(5), confirm).await {
        Ok(Ok(Confirmation::Ack(None))) => Ok(()),
        Ok(Ok(_)) => Err("the broker refused or returned it".into()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no confirm in 5 s".into()),
    }
}

/// Every live hold of `partition`: (id, event, expires_at).
async fn live_holds(
    db: &DatabaseConnection,
    partitions: u16,
    partition: u16,
) -> Result<Vec<(Uuid, i64, DateTime<Utc>)>, DbErr> {
    use reservation::Column as C;
    let rows: Vec<(Uuid, i64, Option<DateTime<Utc>>)> = reservation::Entity::find()
        .select_only()
        .columns([C::Id, C::EventId, C::ExpiresAt])
        .filter(C::Status.eq(ReservationStatus::Held))
        .filter(Expr::cust_with_values(
            "MOD(event_id, ?) = ?",
            [i64::from(partitions), i64::from(partition)],
        ))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, event, at)| Some((id, event, at?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    fn held(n: u128, expires_at: DateTime<Utc>) -> Outcome {
        Outcome {
            reservation_id: Uuid::from_u128(n),
            event_id: 3,
            ticket_type_id: None,
            quantity: 1,
            user_id: None,
            status: ReservationStatus::Held,
            remaining_tickets: 0,
            hold_seconds: Some(1),
            expires_at: Some(expires_at),
            message: String::new(),
            refused: None,
        }
    }

    #[test]
    fn holds_come_due_in_time_order_after_the_grace() {
        let mut schedule = Schedule::default();
        schedule.observe(&held(1, at(2_000)), at(0));
        schedule.observe(&held(2, at(1_000)), at(0));
        assert_eq!(schedule.next_due(), Some(at(1_100)));
        assert!(schedule.take_due(at(1_099)).is_empty());
        assert_eq!(schedule.take_due(at(1_100)), [(Uuid::from_u128(2), 3)]);
        assert_eq!(schedule.take_due(at(5_000)), [(Uuid::from_u128(1), 3)]);
        assert!(schedule.is_empty());
    }

    #[test]
    fn a_hold_that_ends_otherwise_leaves_the_schedule() {
        let mut schedule = Schedule::default();
        schedule.observe(&held(1, at(1_000)), at(0));
        let mut confirmed = held(1, at(1_000));
        confirmed.status = ReservationStatus::Confirmed;
        schedule.observe(&confirmed, at(10));
        assert!(schedule.is_empty());
        assert!(schedule.take_due(at(9_999)).is_empty());
    }

    #[test]
    fn a_hold_still_live_after_its_expire_is_checked_again_soon() {
        let mut schedule = Schedule::default();
        // The expire was decided at 1_150 but the database's clock said
        // the hold (ending at 1_000 by it) was not due yet.
        schedule.observe(&held(1, at(1_000)), at(1_150));
        assert_eq!(schedule.next_due(), Some(at(1_350)));
    }

    #[test]
    fn a_rescan_does_not_move_an_expire_on_its_way() {
        let mut schedule = Schedule::default();
        schedule.set(Uuid::from_u128(1), 3, at(6_000));
        schedule.add_found(Uuid::from_u128(1), 3, at(1_000));
        schedule.add_found(Uuid::from_u128(2), 3, at(2_000));
        assert_eq!(schedule.next_due(), Some(at(2_100)));
        assert_eq!(schedule.len(), 2);
    }
}
