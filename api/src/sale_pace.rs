//! The pace of a sale: tickets taken per second over the last few seconds,
//! from the counts the workers announce. A pure rule (the instants are
//! given), kept apart from the channels that carry the counts
//! (`live_feed.rs`), so it is tested on its own.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// The window the pace is measured over: short enough that the figure
/// follows a burst within seconds, long enough that one batch of decisions
/// does not make it jump.
pub const WINDOW: Duration = Duration::from_secs(5);

/// Counts closer together than this are merged into one sample, so a hot
/// event's thousands of announcements a second keep a few dozen samples.
const RESOLUTION: Duration = Duration::from_millis(100);

/// An event's latest count, and the counts of the last [`WINDOW`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SalePace {
    /// The row version of the latest count; only newer ones are taken.
    version: Option<i64>,
    /// `(when it was seen, tickets left)`, oldest first; the first one may
    /// be older than the window: it is the count the window starts from.
    samples: VecDeque<(Instant, i32)>,
}

impl SalePace {
    /// Takes a count seen at `at` if its version is newer than the latest
    /// (announcements may arrive late or twice); says whether it did.
    pub fn observe(&mut self, version: i64, available: i32, at: Instant) -> bool {
        if self.version.is_some_and(|latest| version <= latest) {
            return false;
        }
        self.version = Some(version);
        let len = self.samples.len();
        let merge = len >= 2
            && self
                .samples
                .get(len - 2)
                .is_some_and(|(before, _)| at.saturating_duration_since(*before) < RESOLUTION);
        if merge {
            self.samples.pop_back();
        }
        self.samples.push_back((at, available));
        self.forget_before(at);
        true
    }

    /// Drops the samples the window starting before `now` no longer needs:
    /// all older than it but the latest of those (the starting count).
    fn forget_before(&mut self, now: Instant) {
        let Some(start) = now.checked_sub(WINDOW) else {
            return;
        };
        while self.samples.get(1).is_some_and(|(at, _)| *at <= start) {
            self.samples.pop_front();
        }
    }

    /// The latest count, if one was seen.
    pub fn available(&self) -> Option<i32> {
        self.samples.back().map(|(_, available)| *available)
    }

    /// Tickets taken per second over the window ending at `now`: the count
    /// at the window's start (or the first one seen, which held before it)
    /// less the latest, over the window. Negative when more tickets came
    /// back (cancellations, expired holds) than were taken.
    pub fn per_second(&self, now: Instant) -> f64 {
        let Some((_, latest)) = self.samples.back() else {
            return 0.0;
        };
        let start = now.checked_sub(WINDOW);
        let from = self
            .samples
            .iter()
            .rev()
            .find(|(at, _)| start.is_some_and(|start| *at <= start))
            .or(self.samples.front())
            .map_or(*latest, |(_, available)| *available);
        f64::from(from - latest) / WINDOW.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_pace_is_what_the_window_took_over_its_length() {
        let t0 = Instant::now();
        let mut pace = SalePace::default();
        assert_eq!(pace.per_second(t0), 0.0, "nothing seen, no pace");
        assert!(pace.observe(1, 100, t0));
        assert_eq!(pace.per_second(t0), 0.0);
        assert!(pace.observe(2, 90, t0 + ms(1000)));
        assert!(pace.observe(3, 75, t0 + ms(2000)));
        // 25 tickets over the 5 s window.
        assert_eq!(pace.per_second(t0 + ms(2000)), 5.0);
        assert_eq!(pace.available(), Some(75));
        // The window now starts after the 90: it counts from there.
        assert_eq!(pace.per_second(t0 + ms(6500)), 3.0);
        // Nothing sold for a whole window: the pace falls to zero.
        assert_eq!(pace.per_second(t0 + ms(7000)), 0.0);
    }

    #[test]
    fn late_or_repeated_versions_change_nothing() {
        let t0 = Instant::now();
        let mut pace = SalePace::default();
        pace.observe(5, 50, t0);
        let before = pace.clone();
        assert!(!pace.observe(5, 40, t0 + ms(500)));
        assert!(!pace.observe(4, 60, t0 + ms(600)));
        assert_eq!(pace, before);
    }

    #[test]
    fn returned_tickets_make_the_pace_negative() {
        let t0 = Instant::now();
        let mut pace = SalePace::default();
        pace.observe(1, 10, t0);
        pace.observe(2, 20, t0 + ms(1000));
        assert_eq!(pace.per_second(t0 + ms(1000)), -2.0);
    }

    #[test]
    fn close_counts_are_merged_and_old_ones_forgotten() {
        let t0 = Instant::now();
        let mut pace = SalePace::default();
        for i in 0..1000 {
            pace.observe(i, 10_000 - i as i32, t0 + ms(i as u64));
        }
        // One second of counts in at most one sample per resolution step.
        assert!(pace.samples.len() <= 12, "{} samples", pace.samples.len());
        assert_eq!(pace.available(), Some(9001));
        // Far later, only the starting count and the latest are kept.
        pace.observe(2000, 5000, t0 + ms(60_000));
        assert_eq!(pace.samples.len(), 2);
        assert_eq!(pace.per_second(t0 + ms(60_000)), (9001.0 - 5000.0) / 5.0);
    }
}
