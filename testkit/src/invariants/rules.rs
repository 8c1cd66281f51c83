//! The invariants of DESIGN.md §2 as pure functions of what was read, so
//! that the system tests, the benchmark and the chaos checker judge a
//! database and its answers by the same rules, worded the same way.
//! Reading the database and reporting (assert, count, list) stay with each
//! caller.

use std::fmt;

use shared::{
    entities::{quota, ticket_type},
    messages::ReservationStatus,
};

/// One event as the database has it, for invariants 1 and 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTally {
    pub capacity: i64,
    pub available: i64,
    /// Σ quantity of its reservations that take tickets: confirmed or held.
    pub taken: i64,
}

/// An event that breaks invariant 1 or 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventBreach {
    /// Invariant 1: `0 <= available <= capacity`.
    OutOfRange { available: i64, capacity: i64 },
    /// Invariant 2: `available + Σ taken (held or confirmed) == capacity`.
    NotConserved {
        available: i64,
        taken: i64,
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
                taken,
                capacity,
            } => write!(
                f,
                "available {available} + held or confirmed {taken} != capacity {capacity}"
            ),
        }
    }
}

/// Σ quantity of the reservations among `rows` (status, quantity) that
/// take tickets: confirmed or held.
pub fn taken_quantity(rows: impl IntoIterator<Item = (ReservationStatus, i32)>) -> i64 {
    rows.into_iter()
        .filter(|(status, _)| status.takes_tickets())
        .map(|(_, quantity)| i64::from(quantity))
        .sum()
}

/// Invariants 1 and 2 for one event.
pub fn event_breaches(event: EventTally) -> Vec<EventBreach> {
    let EventTally {
        capacity,
        available,
        taken,
    } = event;
    let mut found = Vec::new();
    if !(0..=capacity).contains(&available) {
        found.push(EventBreach::OutOfRange {
            available,
            capacity,
        });
    }
    if available + taken != capacity {
        found.push(EventBreach::NotConserved {
            available,
            taken,
            capacity,
        });
    }
    found
}

/// A ticket type's count as stored, and the quota it shares, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeCount {
    pub id: i64,
    pub quota: Option<i64>,
    pub capacity: i64,
    pub available: i64,
}

/// A quota's count as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaCount {
    pub id: i64,
    pub capacity: i64,
    pub available: i64,
}

impl From<&ticket_type::Model> for TypeCount {
    fn from(t: &ticket_type::Model) -> Self {
        Self {
            id: t.id,
            quota: t.quota_id,
            capacity: t.capacity.into(),
            available: t.available.into(),
        }
    }
}

impl From<&quota::Model> for QuotaCount {
    fn from(q: &quota::Model) -> Self {
        Self {
            id: q.id,
            capacity: q.capacity.into(),
            available: q.available.into(),
        }
    }
}

/// Invariants 1 and 2 for each of an event's ticket types and quotas,
/// over the event's reservations `rows` (ticket type, status, quantity):
/// a type counts its own, a quota those of its types. Each breach comes
/// with what broke it ("ticket type 3", "quota 1").
pub fn type_breaches(
    types: &[TypeCount],
    quotas: &[QuotaCount],
    rows: &[(Option<i64>, ReservationStatus, i32)],
) -> Vec<(String, EventBreach)> {
    let taken_by = |counts: &dyn Fn(i64) -> bool| {
        taken_quantity(
            rows.iter()
                .filter(|(kind, _, _)| kind.is_some_and(counts))
                .map(|(_, status, quantity)| (*status, *quantity)),
        )
    };
    let type_tallies = types.iter().map(|kind| {
        let tally = EventTally {
            capacity: kind.capacity,
            available: kind.available,
            taken: taken_by(&|t| t == kind.id),
        };
        (format!("ticket type {}", kind.id), tally)
    });
    let quota_tallies = quotas.iter().map(|quota| {
        let members = |t: i64| types.iter().any(|k| k.id == t && k.quota == Some(quota.id));
        let tally = EventTally {
            capacity: quota.capacity,
            available: quota.available,
            taken: taken_by(&members),
        };
        (format!("quota {}", quota.id), tally)
    });
    type_tallies
        .chain(quota_tallies)
        .flat_map(|(what, tally)| {
            event_breaches(tally)
                .into_iter()
                .map(move |breach| (what.clone(), breach))
        })
        .collect()
}

/// The per-user limit: no user holds and has confirmed more than `max` of
/// an event's tickets. `rows` are the event's (user, status, quantity);
/// the users over it, with what they have.
pub fn users_over_limit(
    max: i64,
    rows: impl IntoIterator<Item = (Option<i64>, ReservationStatus, i32)>,
) -> Vec<(i64, i64)> {
    let mut taken: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
    for (user, status, quantity) in rows {
        if let Some(user) = user.filter(|_| status.takes_tickets()) {
            *taken.entry(user).or_default() += i64::from(quantity);
        }
    }
    taken.into_iter().filter(|(_, has)| *has > max).collect()
}

/// Invariant 4: a status a client was answered agrees with the final row.
/// A confirmation may since have been cancelled, when a cancel was asked;
/// a hold may since have moved on to any state that follows a hold.
pub fn answer_agrees(
    answered: ReservationStatus,
    row: ReservationStatus,
    cancel_asked: bool,
) -> bool {
    use ReservationStatus::{Cancelled, Confirmed, Expired, Held, Pending, Rejected, Released};
    match answered {
        Pending => true,
        Confirmed => row == Confirmed || (row == Cancelled && cancel_asked),
        Held => {
            matches!(row, Held | Confirmed | Released | Expired)
                || (row == Cancelled && cancel_asked)
        }
        Rejected | Cancelled | Released | Expired => row == answered,
    }
}

/// The kind of command a request acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    Reserve,
    Confirm,
    Cancel,
}

/// Invariant 5: an acknowledged command reached its final state: a reserve
/// a decided row, a confirm a row that is no longer held, a cancel a row
/// that gave its tickets back.
pub fn command_settled(asked: Asked, row: Option<ReservationStatus>) -> bool {
    use ReservationStatus::{Cancelled, Expired, Held, Released};
    match (asked, row) {
        (_, None) => false,
        (Asked::Reserve, Some(status)) => status.is_decided(),
        (Asked::Confirm, Some(status)) => status.is_decided() && status != Held,
        (Asked::Cancel, Some(status)) => matches!(status, Cancelled | Released | Expired),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReservationStatus::{Cancelled, Confirmed, Expired, Held, Pending, Rejected, Released};

    #[test]
    fn a_balanced_event_breaks_nothing() {
        let event = EventTally {
            capacity: 10,
            available: 4,
            taken: 6,
        };
        assert_eq!(event_breaches(event), vec![]);
    }

    #[test]
    fn oversold_and_lost_tickets_break_invariants_1_and_2() {
        let oversold = event_breaches(EventTally {
            capacity: 10,
            available: -1,
            taken: 11,
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
            taken: 4,
        });
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].rule(), "inv2-conservation");
        assert_eq!(
            lost[0].to_string(),
            "available 5 + held or confirmed 4 != capacity 10"
        );
    }

    #[test]
    fn only_confirmed_and_held_quantities_count() {
        let rows = [
            (Confirmed, 2),
            (Rejected, 5),
            (Cancelled, 1),
            (Confirmed, 3),
            (Held, 4),
            (Released, 6),
            (Expired, 7),
        ];
        assert_eq!(taken_quantity(rows), 9);
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
        assert!(answer_agrees(Held, Expired, false));
        assert!(answer_agrees(Held, Confirmed, false));
        assert!(!answer_agrees(Held, Cancelled, false));
        assert!(!answer_agrees(Held, Rejected, false));
        assert!(!answer_agrees(Expired, Confirmed, false));
        assert!(answer_agrees(Released, Released, false));
    }

    #[test]
    fn a_command_settles_on_a_final_row() {
        assert!(!command_settled(Asked::Reserve, None));
        assert!(!command_settled(Asked::Reserve, Some(Pending)));
        assert!(command_settled(Asked::Reserve, Some(Rejected)));
        assert!(command_settled(Asked::Reserve, Some(Held)));
        assert!(!command_settled(Asked::Cancel, Some(Confirmed)));
        assert!(command_settled(Asked::Cancel, Some(Cancelled)));
        assert!(command_settled(Asked::Cancel, Some(Released)));
        assert!(command_settled(Asked::Cancel, Some(Expired)));
        assert!(!command_settled(Asked::Cancel, Some(Held)));
        assert!(!command_settled(Asked::Confirm, Some(Held)));
        assert!(command_settled(Asked::Confirm, Some(Expired)));
    }
}
