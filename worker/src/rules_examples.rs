//! The rules by example for what sits around a reservation: per-user
//! limits, ticket types sharing a quota, the waiting list. The helpers are
//! the parent module's.

use std::collections::HashMap;

use shared::messages::{Command, ReservationStatus};

use super::*;
use crate::stock::{Stock, TypeStock};

#[test]
fn a_user_gets_no_more_than_the_limit_whatever_the_order() {
    use ReservationStatus::{Confirmed, Rejected};
    // User 7 already has 1 ticket; the limit is 4.
    let batch = [
        reserve_for(0, 2, 7),
        reserve_for(1, 1, 8),
        reserve_for(2, 2, 7),
        reserve_for(3, 1, 7),
        reserve_for(4, 3, 8),
    ];
    let decision = decide(
        EVENT,
        t0(),
        100,
        limit(4, &[(7, 1)]),
        Queue::default(),
        HashMap::new(),
        &batch,
    );
    let statuses: Vec<_> = decision.outcomes.iter().map(|o| o.status).collect();
    assert_eq!(
        statuses,
        [Confirmed, Confirmed, Rejected, Confirmed, Confirmed]
    );
    assert_eq!(
        decision.outcomes[2].message,
        "Limit of 4 tickets per user reached"
    );
    assert_eq!(decision.stock.event, 100 - 2 - 1 - 1 - 3);
}

#[test]
fn tickets_given_back_count_against_the_limit_no_more() {
    let batch = [reserve_for(0, 3, 7), cancel(0), reserve_for(1, 3, 7)];
    let decision = decide(
        EVENT,
        t0(),
        100,
        limit(3, &[]),
        Queue::default(),
        HashMap::new(),
        &batch,
    );
    assert_eq!(decision.outcomes[2].status, ReservationStatus::Confirmed);
    // Sold out decides before the limit: the message says so.
    let decision = decide(
        EVENT,
        t0(),
        1,
        limit(3, &[]),
        Queue::default(),
        HashMap::new(),
        &[reserve_for(0, 2, 7)],
    );
    assert_eq!(decision.outcomes[0].message, "Not enough tickets");
}

#[test]
fn a_shared_quota_drained_from_two_types_sells_no_more_than_itself() {
    use ReservationStatus::{Confirmed, Rejected};
    // Types 1 and 2 have 10 each but share a quota of 5.
    let kind = |available| TypeStock {
        available,
        quota: Some(9),
        closed: false,
        off_sale: None,
    };
    let stock = Stock {
        event: 100,
        typed: true,
        types: [(1, kind(10)), (2, kind(10))].into(),
        quotas: [(9, 5)].into(),
        off_sale: None,
    };
    let of_type = |n: u128, kind: i64| Command::Reserve {
        reservation_id: id(n),
        event_id: EVENT,
        quantity: 1,
        user_id: None,
        client_id: 0,
        hold_seconds: None,
        ticket_type_id: Some(kind),
    };
    let batch: Vec<Command> = (0..8).map(|n| of_type(n, 1 + (n % 2) as i64)).collect();
    let decision = decide(
        EVENT,
        t0(),
        stock,
        None,
        Queue::default(),
        HashMap::new(),
        &batch,
    );
    let statuses: Vec<_> = decision.outcomes.iter().map(|o| o.status).collect();
    assert_eq!(statuses[..5], [Confirmed; 5]);
    assert_eq!(statuses[5..], [Rejected; 3]);
    assert_eq!(decision.stock.quotas[&9], 0);
    assert_eq!(decision.stock.types[&1].available, 7);
    assert_eq!(decision.stock.types[&2].available, 8);
    assert_eq!(decision.stock.event, 95);
    // An untyped reserve of a typed event is refused by the rules too.
    let untyped = decide(
        EVENT,
        t0(),
        decision.stock,
        None,
        Queue::default(),
        HashMap::new(),
        &[reserve(20, 1)],
    );
    assert_eq!(untyped.outcomes[0].status, Rejected);
}

#[test]
fn tickets_given_back_go_to_the_waiting_list_in_order_before_new_buyers() {
    use ReservationStatus::{Cancelled, Confirmed, Held, Rejected};
    let entry = |n: u128, quantity| crate::rules::Waiting {
        id: id(100 + n),
        ticket_type_id: None,
        client_id: 5,
        user_id: None,
        quantity,
    };
    let queue = Queue {
        entries: [entry(0, 2), entry(1, 1), entry(2, 1)].into(),
        hold_seconds: 300,
    };
    let confirmed = |n: u128, quantity| Booking {
        id: id(n),
        event_id: EVENT,
        ticket_type_id: None,
        client_id: 0,
        user_id: None,
        quantity,
        hold_seconds: None,
        status: Confirmed,
        expires_at: None,
    };
    let bookings = HashMap::from([(id(0), confirmed(0, 1)), (id(1), confirmed(1, 2))]);
    // Sold out; one ticket back (too few for the first entry, which keeps
    // its place), a new buyer, then two more back.
    let batch = [cancel(0), reserve(7, 1), cancel(1), reserve(8, 1)];
    let decision = decide(EVENT, t0(), 0, None, queue, bookings, &batch);
    let statuses: Vec<_> = decision.outcomes.iter().map(|o| o.status).collect();
    assert_eq!(statuses, [Cancelled, Rejected, Cancelled, Rejected]);
    assert_eq!(decision.outcomes[1].message, crate::rules::LIST_FIRST);
    // Three back in all: the first entry (2), then the second (1).
    assert_eq!(decision.offered, [id(100), id(101)]);
    assert_eq!(decision.bookings[&id(100)].status, Held);
    assert_eq!(decision.bookings[&id(101)].quantity, 1);
    assert_eq!(decision.stock.event, 0);
    assert_eq!(decision.writes[&id(100)], Write::Insert);
}

#[test]
fn an_entry_whose_user_is_at_the_limit_is_passed_over_and_holds_nobody_back() {
    use ReservationStatus::{Confirmed, Held};
    let entry = |n: u128, user, quantity| crate::rules::Waiting {
        id: id(100 + n),
        ticket_type_id: None,
        client_id: 5,
        user_id: Some(user),
        quantity,
    };
    // Limit 2: user 7 already has 1, so its entry for 2 cannot be served;
    // user 8's entry behind it can.
    let queue = Queue {
        entries: [entry(0, 7, 2), entry(1, 8, 2)].into(),
        hold_seconds: 300,
    };
    let decision = decide(
        EVENT,
        t0(),
        3,
        limit(2, &[(7, 1)]),
        queue,
        HashMap::new(),
        &[reserve_for(0, 1, 9)],
    );
    assert_eq!(decision.offered, [id(101)]);
    assert_eq!(decision.bookings[&id(101)].status, Held);
    // The passed-over entry does not make new buyers wait for the list.
    assert_eq!(decision.outcomes[0].status, Confirmed);
    assert_eq!(decision.stock.event, 0);
}
