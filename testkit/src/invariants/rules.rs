//! The invariants of DESIGN.md §2 as pure functions of what was read, so
//! that the system tests, the benchmark and the chaos checker judge a
//! database and its answers by the same rules, worded the same way.
//! Reading the database and reporting (assert, count, list) stay with each
//! caller.

use std::fmt;

use shared::messages::ReservationStatus;

/// One event as the database has it, for invariants 1 and 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTally {
    pub capacity: i64,
    pub available: i64,
    /// Σ quantity of its confirmed reservations.
    pub confirmed: i64,
}

/// An event that breaks invariant 1 or 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventBreach {
    /// Invariant 1: `0 <= available <= capacity`.
    OutOfRange { available: i64, capacity: i64 },
    /// Invariant 2: `available + Σ confirmed == capacity`.
    NotConserved {
        available: i64,
        confirmed: i64,
        capacity: i64,
    },
}

impl EventBreach {
    /// The rule's name in the chaos checker's report.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::OutOfRange { .. } => "inv1-range",
            Self::NotConserved { .. } => "inv2-conservation",
        }
    }
}

impl fmt::Display for EventBreach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange {
                available,
                capacity,
            } => write!(f, "available {available} outside [0, {capacity}]"),
            Self::NotConserved {
                available,
                confirmed,
                capacity,
            } => write!(
                f,
                "available {available} + confirmed {confirmed} != capacity {capacity}"
            ),
        }
    }
}

/// Σ quantity of the confirmed reservations among `rows` (status, quantity).
pub fn confirmed_quantity(rows: impl IntoIterator<Item = (ReservationStatus, i32)>) -> i64 {
    rows.into_iter()
        .filter(|(status, _)| *status == ReservationStatus::Confirmed)
        .map(|(_, quantity)| i64::from(quantity))
        .sum()
}

/// Invariants 1 and 2 for one event.
pub fn event_breaches(event: EventTally) -> Vec<EventBreach> {
    let EventTally {
        capacity,
        available,
        confirmed,
    } = event;
    let mut found = Vec::new();
    if !(0..=capacity).contains(&available) {
        found.push(EventBreach::OutOfRange {
            available,
            capacity,
        });
    }
    if available + confirmed != capacity {
        found.push(EventBreach::NotConserved {
            available,
            confirmed,
            capacity,
        });
    }
    found
}

/// Invariant 4: a status a client was answered agrees with the final row.
/// A confirmation may since have been cancelled, when a cancel was asked.
pub fn answer_agrees(
    answered: ReservationStatus,
    row: ReservationStatus,
    cancel_asked: bool,
) -> bool {
    use ReservationStatus::{Cancelled, Confirmed, Pending, Rejected};
    match answered {
        Pending => true,
        Confirmed => row == Confirmed || (row == Cancelled && cancel_asked),
        Rejected => row == Rejected,
        Cancelled => row == Cancelled,
    }
}

/// Invariant 5: an acknowledged command reached its final state: a cancel
/// a cancelled row, any other command a decided row.
pub fn command_settled(cancel: bool, row: Option<ReservationStatus>) -> bool {
    match row {
        None => false,
        Some(status) if cancel => status == ReservationStatus::Cancelled,
        Some(status) => status.is_decided(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReservationStatus::{Cancelled, Confirmed, Pending, Rejected};

    #[test]
    fn a_balanced_event_breaks_nothing() {
        let event = EventTally {
            capacity: 10,
            available: 4,
            confirmed: 6,
        };
        assert_eq!(event_breaches(event), vec![]);
    }

    #[test]
    fn oversold_and_lost_tickets_break_invariants_1_and_2() {
        let oversold = event_breaches(EventTally {
            capacity: 10,
            available: -1,
            confirmed: 11,
        });
        assert_eq!(
            oversold,
            vec![EventBreach::OutOfRange {
                available: -1,
                capacity: 10
            }]
        );
        assert_eq!(oversold[0].rule(), "inv1-range");
        let lost = event_breaches(EventTally {
            capacity: 10,
            available: 5,
            confirmed: 4,
        });
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].rule(), "inv2-conservation");
        assert_eq!(
            lost[0].to_string(),
            "available 5 + confirmed 4 != capacity 10"
        );
    }

    #[test]
    fn only_confirmed_quantities_count() {
        let rows = [
            (Confirmed, 2),
            (Rejected, 5),
            (Cancelled, 1),
            (Confirmed, 3),
        ];
        assert_eq!(confirmed_quantity(rows), 5);
    }

    #[test]
    fn an_answer_agrees_only_with_its_own_outcome() {
        assert!(answer_agrees(Confirmed, Confirmed, false));
        assert!(!answer_agrees(Confirmed, Rejected, false));
        assert!(!answer_agrees(Confirmed, Cancelled, false));
        assert!(answer_agrees(Confirmed, Cancelled, true));
        assert!(answer_agrees(Rejected, Rejected, true));
        assert!(!answer_agrees(Rejected, Confirmed, false));
        assert!(!answer_agrees(Cancelled, Confirmed, true));
        assert!(answer_agrees(Pending, Rejected, false));
    }

    #[test]
    fn a_command_settles_on_a_final_row() {
        assert!(!command_settled(false, None));
        assert!(!command_settled(false, Some(Pending)));
        assert!(command_settled(false, Some(Rejected)));
        assert!(!command_settled(true, Some(Confirmed)));
        assert!(command_settled(true, Some(Cancelled)));
    }
}
