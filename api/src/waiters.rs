//! Requests waiting for their outcome, keyed by reservation id. Several
//! requests may wait on one id (idempotent retries); one outcome wakes them
//! all. The registry is bounded: past `max` the api sheds load instead of
//! growing memory. Its size is the `tickets_waiters` gauge.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use shared::messages::Outcome;
use tokio::sync::oneshot;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
#[error("too many requests are already waiting for an outcome")]
pub struct Full;

pub struct Waiters {
    inner: Mutex<Inner>,
    max: usize,
    gauge: metrics::Gauge,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<Uuid, Vec<oneshot::Sender<Outcome>>>,
    count: usize,
}

/// One request's place in the registry; leaving (drop) frees it.
pub struct Waiter {
    id: Uuid,
    receiver: oneshot::Receiver<Outcome>,
    registry: Arc<Waiters>,
}

impl Waiters {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            max,
            gauge: metrics::gauge!("tickets_waiters"),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The map stays consistent even if a holder panicked mid-way: every
        // mutation is a single insert or removal.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn register(self: &Arc<Self>, id: Uuid) -> Result<Waiter, Full> {
        let (sender, receiver) = oneshot::channel();
        let mut inner = self.lock();
        if inner.count >= self.max {
            return Err(Full);
        }
        inner.by_id.entry(id).or_default().push(sender);
        inner.count += 1;
        self.gauge.set(inner.count as f64);
        Ok(Waiter {
            id,
            receiver,
            registry: self.clone(),
        })
    }

    /// Hands `outcome` to everyone waiting for its reservation.
    pub fn resolve(&self, outcome: &Outcome) {
        let senders = {
            let mut inner = self.lock();
            let senders = inner
                .by_id
                .remove(&outcome.reservation_id)
                .unwrap_or_default();
            inner.count -= senders.len();
            self.gauge.set(inner.count as f64);
            senders
        };
        for sender in senders {
            let _ = sender.send(outcome.clone());
        }
    }

    /// Sets the gauge again, unchanged: a gauge left alone for long drops
    /// out of the exposition (`shared::prometheus`).
    pub fn report(&self) {
        let count = self.lock().count;
        self.gauge.set(count as f64);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().count
    }
}

impl Waiter {
    /// The outcome, or `None` if the registry was dropped.
    pub async fn outcome(&mut self) -> Option<Outcome> {
        (&mut self.receiver).await.ok()
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.receiver.close();
        let mut inner = self.registry.lock();
        if let Some(senders) = inner.by_id.get_mut(&self.id) {
            let before = senders.len();
            senders.retain(|s| !s.is_closed());
            let removed = before - senders.len();
            if senders.is_empty() {
                inner.by_id.remove(&self.id);
            }
            inner.count -= removed;
            self.registry.gauge.set(inner.count as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use shared::messages::ReservationStatus;

    use super::*;

    fn outcome(id: Uuid) -> Outcome {
        Outcome {
            reservation_id: id,
            event_id: 1,
            ticket_type_id: None,
            quantity: 1,
            user_id: None,
            status: ReservationStatus::Confirmed,
            remaining_tickets: 9,
            hold_seconds: None,
            expires_at: None,
            message: "Ticket reserved".into(),
            refused: None,
        }
    }

    #[tokio::test]
    async fn one_outcome_wakes_every_waiter_of_its_id() {
        let waiters = Waiters::new(10);
        let id = Uuid::now_v7();
        let mut a = waiters.register(id).unwrap();
        let mut b = waiters.register(id).unwrap();
        let other = waiters.register(Uuid::now_v7()).unwrap();
        assert_eq!(waiters.len(), 3);
        waiters.resolve(&outcome(id));
        assert_eq!(a.outcome().await.unwrap().reservation_id, id);
        assert_eq!(b.outcome().await.unwrap().reservation_id, id);
        assert_eq!(waiters.len(), 1);
        drop(other);
        assert_eq!(waiters.len(), 0);
    }

    #[test]
    fn bounded_and_freed_on_drop() {
        let waiters = Waiters::new(2);
        let id = Uuid::now_v7();
        let a = waiters.register(id).unwrap();
        let _b = waiters.register(id).unwrap();
        assert!(waiters.register(Uuid::now_v7()).is_err());
        drop(a);
        assert_eq!(waiters.len(), 1);
        assert!(waiters.register(Uuid::now_v7()).is_ok());
    }
}
