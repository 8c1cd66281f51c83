//! The decision rules by example, then by property over random batches.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use shared::messages::{Command, ReservationStatus};
use uuid::Uuid;

use super::{Booking, PerUser, Queue, Write, decide};

const EVENT: i64 = 7;

/// The database's time of the batches below.
fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n + 1)
}

fn reserve(n: u128, quantity: i32) -> Command {
    Command::Reserve {
        reservation_id: id(n),
        event_id: EVENT,
        quantity,
        user_id: None,
        client_id: 0,
        hold_seconds: None,
        ticket_type_id: None,
    }
}

fn reserve_for(n: u128, quantity: i32, user: i64) -> Command {
    Command::Reserve {
        reservation_id: id(n),
        event_id: EVENT,
        quantity,
        user_id: Some(user),
        client_id: 0,
        hold_seconds: None,
        ticket_type_id: None,
    }
}

fn limit(max: i32, taken: &[(i64, i32)]) -> Option<PerUser> {
    Some(PerUser {
        max,
        taken: taken.iter().copied().collect(),
    })
}

fn hold(n: u128, quantity: i32, seconds: i32) -> Command {
    Command::Reserve {
        reservation_id: id(n),
        event_id: EVENT,
        quantity,
        user_id: None,
        client_id: 0,
        hold_seconds: Some(seconds),
        ticket_type_id: None,
    }
}

fn confirm(n: u128) -> Command {
    Command::Confirm {
        reservation_id: id(n),
        event_id: EVENT,
        client_id: 0,
    }
}

fn expire(n: u128) -> Command {
    Command::Expire {
        reservation_id: id(n),
        event_id: EVENT,
    }
}

fn cancel(n: u128) -> Command {
    Command::Cancel {
        reservation_id: id(n),
        event_id: EVENT,
        client_id: 0,
    }
}

fn statuses(commands: &[Command], available: i32) -> Vec<ReservationStatus> {
    decide(
        EVENT,
        t0(),
        available,
        None,
        Queue::default(),
        HashMap::new(),
        commands,
    )
    .outcomes
    .iter()
    .map(|o| o.status)
    .collect()
}

#[test]
fn first_come_first_served_all_or_nothing() {
    use ReservationStatus::{Confirmed, Rejected};
    let batch = [reserve(0, 3), reserve(1, 3), reserve(2, 1), reserve(3, 2)];
    assert_eq!(
        statuses(&batch, 5),
        [Confirmed, Rejected, Confirmed, Rejected],
        "3 fits, 3 does not (2 left), 1 fits, 2 does not (1 left)"
    );
}

#[test]
fn a_reserve_and_its_cancel_in_one_batch_insert_the_final_row() {
    let decision = decide(
        EVENT,
        t0(),
        5,
        None,
        Queue::default(),
        HashMap::new(),
        &[reserve(0, 2), cancel(0)],
    );
    assert_eq!(decision.outcomes[0].status, ReservationStatus::Confirmed);
    assert_eq!(decision.outcomes[0].remaining_tickets, 3);
    assert_eq!(decision.outcomes[1].status, ReservationStatus::Cancelled);
    assert_eq!(decision.stock.event, 5);
    assert_eq!(decision.writes[&id(0)], Write::Insert);
    assert_eq!(
        decision.bookings[&id(0)].status,
        ReservationStatus::Cancelled
    );
}

#[test]
fn another_requests_booking_is_reported_never_changed() {
    let theirs = Booking {
        id: id(0),
        event_id: EVENT + 1,
        ticket_type_id: None,
        client_id: 0,
        user_id: None,
        quantity: 1,
        hold_seconds: None,
        status: ReservationStatus::Pending,
        expires_at: None,
    };
    let decision = decide(
        EVENT,
        t0(),
        5,
        None,
        Queue::default(),
        HashMap::from([(id(0), theirs.clone())]),
        &[reserve(0, 1), cancel(0)],
    );
    assert!(decision.writes.is_empty());
    assert_eq!(decision.stock.event, 5);
    assert_eq!(
        decision.outcomes[0].event_id,
        EVENT + 1,
        "names what it holds"
    );
    assert_eq!(decision.bookings[&id(0)], theirs);
}

#[test]
fn a_cancel_by_another_client_is_unknown() {
    let mine = Booking {
        id: id(0),
        event_id: EVENT,
        ticket_type_id: None,
        client_id: 4,
        user_id: None,
        quantity: 2,
        hold_seconds: None,
        status: ReservationStatus::Confirmed,
        expires_at: None,
    };
    let decision = decide(
        EVENT,
        t0(),
        3,
        None,
        Queue::default(),
        HashMap::from([(id(0), mine)]),
        &[cancel(0)],
    );
    assert_eq!(decision.outcomes[0].message, "Unknown reservation");
    assert_eq!(decision.stock.event, 3);
    assert!(decision.writes.is_empty());
}

#[path = "rules_examples.rs"]
mod examples;

/// A random batch: reserves and holds of 1 to 4 tickets, ids often
/// repeated (a redelivery, a replay), confirms, expiries and cancels of any
/// of those ids.
fn batch() -> impl Strategy<Value = Vec<Command>> {
    let command = prop_oneof![
        3 => (0u128..12, 1i32..=4).prop_map(|(n, q)| reserve(n, q)),
        2 => (0u128..12, 1i32..=4).prop_map(|(n, q)| hold(n, q, 60)),
        1 => (0u128..12).prop_map(confirm),
        1 => (0u128..12).prop_map(expire),
        1 => (0u128..12).prop_map(cancel),
    ];
    proptest::collection::vec(command, 0..40)
}

/// Tickets out: in confirmed or held bookings.
fn taken(bookings: &HashMap<Uuid, Booking>) -> i32 {
    bookings
        .values()
        .filter(|b| b.status.takes_tickets())
        .map(|b| b.quantity)
        .sum()
}

proptest! {
    /// Never more tickets out than there are; every ticket is either left
    /// or in a confirmed or held booking, also once the holds are due.
    #[test]
    fn no_oversell(capacity in 0i32..30, commands in batch()) {
        let decision = decide(EVENT, t0(), capacity, None, Queue::default(), HashMap::new(), &commands);
        prop_assert!(decision.stock.event >= 0);
        prop_assert!(decision.stock.event <= capacity);
        prop_assert_eq!(decision.stock.event + taken(&decision.bookings), capacity);
        let later = t0() + TimeDelta::seconds(60);
        let after = decide(EVENT, later, decision.stock.event, None, Queue::default(), decision.bookings, &commands);
        prop_assert!((0..=capacity).contains(&after.stock.event));
        prop_assert_eq!(after.stock.event + taken(&after.bookings), capacity);
    }

    /// However a batch goes, no user ends it with more tickets held or
    /// confirmed than the limit (counting what they had before it).
    #[test]
    fn no_user_exceeds_the_limit(
        commands in proptest::collection::vec(
            prop_oneof![
                3 => (0u128..12, 1i32..=3, 1i64..=3).prop_map(|(n, q, u)| reserve_for(n, q, u)),
                1 => (0u128..12).prop_map(cancel),
            ],
            0..40,
        ),
        before in proptest::collection::vec(0i32..=4, 3),
    ) {
        let taken: Vec<(i64, i32)> = (1..=3).zip(before.iter().copied()).collect();
        let decision = decide(EVENT, t0(), 100, limit(4, &taken), Queue::default(), HashMap::new(), &commands);
        for (user, had) in taken {
            let now: i32 = decision
                .bookings
                .values()
                .filter(|b| b.user_id == Some(user) && b.status.takes_tickets())
                .map(|b| b.quantity)
                .sum();
            prop_assert!(had + now <= 4, "user {} had {} and took {}", user, had, now);
        }
    }

    /// Once a hold's time has come, whatever names it (confirm, cancel or
    /// expire) expires it and gives its tickets back; nothing confirms it.
    #[test]
    fn a_due_hold_only_expires(capacity in 0i32..30, commands in batch()) {
        let first = decide(EVENT, t0(), capacity, None, Queue::default(), HashMap::new(), &commands);
        let later = t0() + TimeDelta::seconds(60);
        let after = decide(EVENT, later, first.stock.event, None, Queue::default(), first.bookings.clone(), &commands);
        for (id, before) in &first.bookings {
            let now = after.bookings[id].status;
            if before.status == ReservationStatus::Held {
                let named = commands.iter().any(|c| {
                    c.reservation_id() == *id && !matches!(c, Command::Reserve { .. })
                });
                let expected = if named { ReservationStatus::Expired } else { ReservationStatus::Held };
                prop_assert_eq!(now, expected);
            }
        }
    }

    /// Each command is decided on what is left at its turn, as a plain
    /// ledger would: a new reserve is confirmed exactly when its whole
    /// quantity fits, a cancel of a confirmed booking gives its tickets
    /// back, and each outcome reports what is left after it.
    #[test]
    fn first_come_first_served_and_all_or_nothing(capacity in 0i32..30, commands in batch()) {
        use ReservationStatus::{Cancelled, Confirmed, Held, Rejected, Released};
        let decision = decide(EVENT, t0(), capacity, None, Queue::default(), HashMap::new(), &commands);
        let mut ledger: HashMap<Uuid, (i32, ReservationStatus)> = HashMap::new();
        let mut left = capacity;
        for (command, outcome) in commands.iter().zip(&decision.outcomes) {
            match *command {
                Command::Reserve { reservation_id, quantity, hold_seconds, .. } => {
                    let (_, status) = *ledger.entry(reservation_id).or_insert_with(|| {
                        let fits = quantity <= left;
                        if fits {
                            left -= quantity;
                        }
                        let taken = if hold_seconds.is_some() { Held } else { Confirmed };
                        (quantity, if fits { taken } else { Rejected })
                    });
                    // A replay with the other kind (hold or not) is
                    // another request: reported as stored, not decided.
                    prop_assert_eq!(outcome.status, status);
                }
                // The batches here have no waiting list to offer to.
                Command::Offer { .. } => {}
                Command::Confirm { reservation_id, .. }
                | Command::Cancel { reservation_id, .. }
                | Command::Expire { reservation_id, .. } => {
                    let Some((quantity, status)) = ledger.get_mut(&reservation_id) else {
                        prop_assert_eq!(outcome.message.as_str(), "Unknown reservation");
                        continue;
                    };
                    // Nothing is due in one batch: holds last 60 s.
                    let to = match (*status, command) {
                        (Held, Command::Confirm { .. }) => Confirmed,
                        (Held, Command::Cancel { .. }) => Released,
                        (Confirmed, Command::Cancel { .. }) => Cancelled,
                        (unchanged, _) => unchanged,
                    };
                    if status.takes_tickets() && !to.takes_tickets() {
                        left += *quantity;
                    }
                    *status = to;
                    prop_assert_eq!(outcome.status, *status);
                }
            }
            prop_assert_eq!(outcome.remaining_tickets, left);
        }
        prop_assert_eq!(decision.stock.event, left);
    }

    /// Replaying a batch on what it stored decides nothing again: same
    /// answers, nothing to write, no ticket moves.
    #[test]
    fn a_replay_returns_the_stored_decisions(capacity in 0i32..30, commands in batch()) {
        let first = decide(EVENT, t0(), capacity, None, Queue::default(), HashMap::new(), &commands);
        let reservations: Vec<Command> =
            commands.iter().filter(|c| matches!(c, Command::Reserve { .. })).cloned().collect();
        let replay = decide(EVENT, t0(), first.stock.event, None, Queue::default(), first.bookings.clone(), &reservations);
        prop_assert!(replay.writes.is_empty());
        prop_assert_eq!(replay.stock.event, first.stock.event);
        for outcome in &replay.outcomes {
            prop_assert_eq!(outcome.status, first.bookings[&outcome.reservation_id].status);
        }
    }

    /// Every write names a booking the batch changed, once; a booking that
    /// existed and was decided only ever moves on from a state that takes
    /// tickets: a confirmation is cancelled, a hold confirmed or released.
    #[test]
    fn decided_bookings_change_only_from_a_live_state(capacity in 0i32..30, commands in batch()) {
        use ReservationStatus::{Cancelled, Confirmed, Held, Released};
        let first = decide(EVENT, t0(), capacity, None, Queue::default(), HashMap::new(), &commands);
        let again = decide(EVENT, t0(), first.stock.event, None, Queue::default(), first.bookings.clone(), &commands);
        for (id, write) in &again.writes {
            let to = again.bookings[id].status;
            let allowed = matches!(
                (*write, to),
                (Write::Update { from: Confirmed }, Cancelled)
                    | (Write::Update { from: Held }, Confirmed | Released | Cancelled)
            );
            prop_assert!(allowed, "{:?} to {:?}", write, to);
        }
        prop_assert_eq!(again.stock.event + taken(&again.bookings), capacity);
    }

    /// The transitions a batch reports are each a step of a reservation's
    /// life, from the state it was read in; every booking written has them
    /// and ends in the state written, and no other booking has any.
    #[test]
    fn transitions_are_the_steps_to_what_is_written(capacity in 0i32..30, commands in batch()) {
        let first = decide(EVENT, t0(), capacity, None, Queue::default(), HashMap::new(), &commands);
        let later = t0() + TimeDelta::seconds(30);
        let again = decide(EVENT, later, first.stock.event, None, Queue::default(), first.bookings.clone(), &commands);
        for (before, decision) in [(&HashMap::new(), &first), (&first.bookings, &again)] {
            let mut state: HashMap<Uuid, ReservationStatus> =
                before.iter().map(|(id, b)| (*id, b.status)).collect();
            for (id, to) in &decision.transitions {
                let from = state.get(id).copied().unwrap_or(ReservationStatus::Pending);
                prop_assert!(from.can_become(*to), "{:?} to {:?}", from, to);
                state.insert(*id, *to);
                prop_assert!(decision.writes.contains_key(id));
            }
            for id in decision.writes.keys() {
                prop_assert_eq!(state.get(id).copied(), Some(decision.bookings[id].status));
            }
        }
    }
}
