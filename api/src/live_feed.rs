//! Live counts for the live page (`routes/live.rs`): the workers'
//! announcements that this replica already receives (`broker.rs`), handed
//! to the clients watching an event through one `watch` channel per
//! event. A channel exists only while someone watches: the first watcher
//! creates it, the last one to leave drops it. So an announcement costs a
//! map lookup when nobody watches, watchers never poll MySQL, and the
//! reserve path never touches any of it.
//!
//! The feed is bounded: at most `LIVE_MAX_STREAMS` watchers at once on a
//! replica, each stream ends after `LIVE_STREAM_MAX_SECONDS` (a browser's
//! `EventSource` reconnects by itself, possibly to a less busy replica),
//! and every stream ends when the api begins to shut down, so that open
//! streams do not hold the drain of in-flight requests.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use shared::messages::Availability;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, watch};
use tokio_util::sync::CancellationToken;

use crate::sale_pace::SalePace;

type Channels = Mutex<HashMap<i64, watch::Sender<SalePace>>>;

pub struct LiveFeed {
    channels: Arc<Channels>,
    /// One permit per open stream.
    streams: Arc<Semaphore>,
    max_streams: usize,
    max_lifetime: Duration,
    closing: CancellationToken,
}

/// Why a client may not watch now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("live updates are turned off on this server (LIVE_MAX_STREAMS=0)")]
    Off,
    #[error("{0} live streams are open on this server, its limit")]
    Full(usize),
    #[error("this server is shutting down")]
    Closing,
}

impl LiveFeed {
    /// A feed of at most `max_streams` streams (0 turns it off), each
    /// ended after `max_lifetime`.
    pub fn new(max_streams: usize, max_lifetime: Duration) -> Self {
        Self {
            channels: Arc::default(),
            streams: Arc::new(Semaphore::new(max_streams)),
            max_streams,
            max_lifetime,
            closing: CancellationToken::new(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.max_streams > 0
    }

    /// How long one stream may stay open.
    pub fn max_lifetime(&self) -> Duration {
        self.max_lifetime
    }

    /// Cancelled when the api begins to shut down: every stream ends.
    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// Ends every stream and refuses new ones.
    pub fn close(&self) {
        self.closing.cancel();
        self.streams.close();
    }

    /// A place among the open streams, held for the stream's life.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        if !self.is_enabled() {
            return Err(Refusal::Off);
        }
        self.streams
            .clone()
            .try_acquire_owned()
            .map_err(|error| match error {
                TryAcquireError::NoPermits => Refusal::Full(self.max_streams),
                TryAcquireError::Closed => Refusal::Closing,
            })
    }

    /// Starts watching `event_id`; every announcement of it from now on
    /// reaches the watcher.
    pub fn watch(&self, event_id: i64) -> Watcher {
        let mut channels = self.lock();
        let receiver = channels
            .entry(event_id)
            .or_insert_with(|| watch::channel(SalePace::default()).0)
            .subscribe();
        Watcher {
            channels: self.channels.clone(),
            event_id,
            receiver: Some(receiver),
        }
    }

    /// A worker's announcement: passed on when someone watches the event.
    pub fn announce(&self, availability: &Availability) {
        self.observe(
            availability.event_id,
            availability.version,
            availability.available,
        );
    }

    /// A count read elsewhere (MySQL): taken when newer than the latest.
    pub fn observe(&self, event_id: i64, version: i64, available: i32) {
        let now = Instant::now();
        if let Some(sender) = self.lock().get(&event_id) {
            sender.send_if_modified(|pace| pace.observe(version, available, now));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, watch::Sender<SalePace>>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn channel_count(&self) -> usize {
        self.lock().len()
    }
}

/// One client's view of an event's counts; dropping the last watcher of
/// an event drops its channel.
pub struct Watcher {
    channels: Arc<Channels>,
    event_id: i64,
    /// Always `Some` until dropped.
    receiver: Option<watch::Receiver<SalePace>>,
}

impl Watcher {
    /// Waits for a new count; `false` once the channel is gone.
    pub async fn changed(&mut self) -> bool {
        match &mut self.receiver {
            Some(receiver) => receiver.changed().await.is_ok(),
            None => false,
        }
    }

    /// The latest count and the pace at `now`, once a count is known.
    pub fn current(&mut self, now: Instant) -> Option<(i32, f64)> {
        let receiver = self.receiver.as_mut()?;
        let pace = receiver.borrow_and_update();
        Some((pace.available()?, pace.per_second(now)))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // Under the lock, as `watch` subscribes: no watcher can join
        // between this one leaving and the channel being dropped.
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        drop(self.receiver.take());
        if channels
            .get(&self.event_id)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            channels.remove(&self.event_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announcement(event_id: i64, version: i64, available: i32) -> Availability {
        Availability {
            event_id,
            version,
            available,
        }
    }

    #[tokio::test]
    async fn watchers_get_announcements_of_their_event_only() {
        let feed = LiveFeed::new(10, Duration::from_secs(60));
        let mut watcher = feed.watch(1);
        assert_eq!(watcher.current(Instant::now()), None, "no count yet");
        feed.announce(&announcement(2, 1, 50));
        feed.observe(1, 3, 100);
        assert!(watcher.changed().await);
        assert_eq!(watcher.current(Instant::now()).map(|(n, _)| n), Some(100));
        // An older version arriving late is no change.
        feed.announce(&announcement(1, 2, 120));
        feed.announce(&announcement(1, 4, 97));
        assert!(watcher.changed().await);
        let (count, pace) = watcher.current(Instant::now()).expect("a count");
        assert_eq!(count, 97);
        assert!(pace > 0.0, "{pace}");
        assert_eq!(feed.channel_count(), 1, "nobody watches event 2");
    }

    #[test]
    fn the_channel_lives_while_someone_watches() {
        let feed = LiveFeed::new(10, Duration::from_secs(60));
        let first = feed.watch(1);
        let second = feed.watch(1);
        assert_eq!(feed.channel_count(), 1);
        drop(first);
        assert_eq!(feed.channel_count(), 1);
        drop(second);
        assert_eq!(feed.channel_count(), 0);
        // Announcements of an unwatched event create nothing.
        feed.announce(&announcement(1, 1, 10));
        assert_eq!(feed.channel_count(), 0);
    }

    #[test]
    fn streams_are_capped_and_closing_refuses_more() {
        let feed = LiveFeed::new(2, Duration::from_secs(60));
        let a = feed.admit().expect("first");
        let _b = feed.admit().expect("second");
        assert_eq!(feed.admit().err(), Some(Refusal::Full(2)));
        drop(a);
        assert!(feed.admit().is_ok(), "a place freed is taken again");
        feed.close();
        assert!(feed.closing().is_cancelled());
        assert_eq!(feed.admit().err(), Some(Refusal::Closing));

        let off = LiveFeed::new(0, Duration::from_secs(60));
        assert!(!off.is_enabled());
        assert_eq!(off.admit().err(), Some(Refusal::Off));
    }
}
