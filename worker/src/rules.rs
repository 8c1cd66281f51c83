//! The rules of a decision, apart from the SQL that loads and stores it
//! (`store`): given an event's availability, the reservations a batch names
//! and the batch's commands in arrival order, what each command gets and
//! what must be written. No I/O, so the rules can be tested on their own,
//! by example and by property (no oversell, first come first served, all or
//! nothing per command, the same answer on replay).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};
use shared::messages::{Command, Outcome, ReservationStatus};
use uuid::Uuid;

use crate::stock::{NOT_ENOUGH, Stock};

/// A reservation as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub id: Uuid,
    pub event_id: i64,
    pub ticket_type_id: Option<i64>,
    pub client_id: i64,
    pub user_id: Option<i64>,
    pub quantity: i32,
    pub hold_seconds: Option<i32>,
    pub status: ReservationStatus,
    /// When a hold ends, on the database's clock.
    pub expires_at: Option<DateTime<Utc>>,
}

/// How a booking the batch changed reaches the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// A new row, stored whole in its final state.
    Insert,
    /// An existing row, changed only if it is still in state `from`.
    Update { from: ReservationStatus },
}

/// An event's per-user limit, with what the users a batch names already
/// hold and have confirmed of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerUser {
    pub max: i32,
    /// Σ quantity of each user's held and confirmed reservations of the
    /// event, as stored before the batch (a user absent has none).
    pub taken: HashMap<i64, i32>,
}

/// A waiting-list entry not offered tickets yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// Also the id of the hold it is offered.
    pub id: Uuid,
    pub ticket_type_id: Option<i64>,
    pub client_id: i64,
    pub user_id: Option<i64>,
    pub quantity: i32,
}

/// An event's waiting list, in queue order, and how long an offer holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Queue {
    pub entries: VecDeque<Waiting>,
    pub hold_seconds: i32,
}

/// What the rejected reserve is told while a waiting list comes first.
pub const LIST_FIRST: &str = "Tickets go to the waiting list first";

#[derive(Debug)]
pub struct Decision {
    /// One outcome per command, in command order, each as of its command.
    pub outcomes: Vec<Outcome>,
    /// Tickets left after the batch: the event's, the types', the quotas'.
    pub stock: Stock,
    /// Every booking the batch named, in its final state.
    pub bookings: HashMap<Uuid, Booking>,
    /// The bookings to write, by id: sorted, so concurrent writers (after a
    /// lease expiry) lock rows in one order and cannot deadlock.
    pub writes: BTreeMap<Uuid, Write>,
    /// The waiting-list entries offered a hold (the booking of the same id).
    pub offered: Vec<Uuid>,
    /// Every state a booking reached, in the order it reached them: a
    /// booking held and confirmed in one batch is written once, confirmed,
    /// but both changes are owed to its client's webhooks.
    pub transitions: Vec<(Uuid, ReservationStatus)>,
}

/// Decides `commands` (all for `event_id`, in arrival order) against the
/// tickets left (`stock`: the event's, its types' and its quotas') and the
/// `bookings` they name that already exist, at the database's time `now`.
///
/// - A reserve is all or nothing: confirmed (or held, when it asks for a
///   hold) if its whole quantity is left when its turn comes, else
///   rejected; later commands see what it took.
/// - A reservation is decided once: a decided booking is returned as it is.
/// - A booking of another request that reused the id (other event,
///   quantity, user, client or hold) is never touched; its outcome names
///   what it holds, which tells the api so.
/// - With a per-user limit, a reserve that would take its user past it is
///   rejected (tickets released, expired or cancelled before it in the
///   batch count as given back).
/// - Tickets left are offered to the waiting list (`queue`) in order, as
///   holds, before the batch and whenever a command gives tickets back; an
///   entry that does not fit keeps its place and blocks those behind it of
///   the same type. While entries of a type wait, no reserve of it is
///   confirmed. An entry whose user is at the per-user limit is passed
///   over: it keeps its place and holds nobody back.
/// - A hold whose `expires_at` is not after `now` is expired by whatever
///   command names it first; before that, confirm confirms it and cancel
///   releases it. A cancel returns a confirmed booking's tickets. Both
///   only for the booking's own client; anything else is reported as it is.
pub fn decide(
    event_id: i64,
    now: DateTime<Utc>,
    stock: impl Into<Stock>,
    per_user: Option<PerUser>,
    queue: Queue,
    bookings: HashMap<Uuid, Booking>,
    commands: &[Command],
) -> Decision {
    let mut batch = Batch {
        event_id,
        now,
        stock: stock.into(),
        per_user,
        queue,
        passed_over: BTreeSet::new(),
        bookings,
        writes: BTreeMap::new(),
        offered: Vec::new(),
        transitions: Vec::new(),
    };
    batch.offer();
    let outcomes = commands.iter().map(|c| batch.apply(c)).collect();
    Decision {
        outcomes,
        stock: batch.stock,
        bookings: batch.bookings,
        writes: batch.writes,
        offered: batch.offered,
        transitions: batch.transitions,
    }
}

/// Whether `quantity` more tickets would take `user` past the event's
/// per-user limit.
fn over_limit(limit: Option<&PerUser>, user: Option<i64>, quantity: i32) -> bool {
    match (limit, user) {
        (Some(limit), Some(user)) => {
            limit.taken.get(&user).copied().unwrap_or(0) + quantity > limit.max
        }
        _ => false,
    }
}

/// Counts `quantity` tickets `user` now holds or has (negative: gave back)
/// against the per-user limit.
fn count_for_user(limit: Option<&mut PerUser>, user: Option<i64>, quantity: i32) {
    if let (Some(limit), Some(user)) = (limit, user) {
        *limit.taken.entry(user).or_default() += quantity;
    }
}

/// What a command that ends or changes an existing booking asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Confirm,
    Cancel,
    Expire,
}

/// The state `change` moves `booking` to at `now`, if it moves it. Expiry
/// comes first: once its time has come, a hold can only expire.
fn transition(change: Change, booking: &Booking, now: DateTime<Utc>) -> Option<ReservationStatus> {
    use ReservationStatus::{Cancelled, Confirmed, Expired, Held, Released};
    let due = booking.expires_at.is_some_and(|at| at <= now);
    match (booking.status, change) {
        (Held, _) if due => Some(Expired),
        (Held, Change::Confirm) => Some(Confirmed),
        (Held, Change::Cancel) => Some(Released),
        (Confirmed, Change::Cancel) => Some(Cancelled),
        _ => None,
    }
}

struct Batch {
    event_id: i64,
    now: DateTime<Utc>,
    stock: Stock,
    per_user: Option<PerUser>,
    queue: Queue,
    /// Waiting entries the last offer passed over because their user is at
    /// the per-user limit: they keep their place but hold nobody back.
    passed_over: BTreeSet<Uuid>,
    offered: Vec<Uuid>,
    bookings: HashMap<Uuid, Booking>,
    writes: BTreeMap<Uuid, Write>,
    transitions: Vec<(Uuid, ReservationStatus)>,
}

impl Batch {
    fn apply(&mut self, command: &Command) -> Outcome {
        match *command {
            Command::Reserve {
                reservation_id,
                quantity,
                user_id,
                client_id,
                hold_seconds,
                ticket_type_id,
                ..
            } => self.reserve(Booking {
                id: reservation_id,
                event_id: self.event_id,
                ticket_type_id,
                client_id,
                user_id,
                quantity,
                hold_seconds,
                status: ReservationStatus::Pending,
                expires_at: None,
            }),
            Command::Confirm { client_id, .. } => {
                self.change(command, Some(client_id), Change::Confirm)
            }
            Command::Cancel { client_id, .. } => {
                self.change(command, Some(client_id), Change::Cancel)
            }
            Command::Expire { .. } => self.change(command, None, Change::Expire),
            // The offers were made before the batch: report the entry's.
            Command::Offer { reservation_id, .. } => match self.bookings.get(&reservation_id) {
                Some(booking) => outcome(booking, self.stock.event),
                None => Outcome {
                    status: ReservationStatus::Pending,
                    message: "Waiting for tickets".to_owned(),
                    ..refusal(command, "")
                },
            },
        }
    }

    /// Offers what is left to the waiting list, in order.
    fn offer(&mut self) {
        let mut blocked = BTreeSet::new();
        let mut kept = VecDeque::new();
        self.passed_over.clear();
        while let Some(entry) = self.queue.entries.pop_front() {
            if over_limit(self.per_user.as_ref(), entry.user_id, entry.quantity) {
                self.passed_over.insert(entry.id);
                kept.push_back(entry);
                continue;
            }
            let short = blocked.contains(&entry.ticket_type_id)
                || self
                    .stock
                    .shortfall(entry.ticket_type_id, entry.quantity)
                    .is_some();
            if short || self.bookings.contains_key(&entry.id) {
                blocked.insert(entry.ticket_type_id);
                kept.push_back(entry);
                continue;
            }
            self.stock.take(entry.ticket_type_id, entry.quantity);
            count_for_user(self.per_user.as_mut(), entry.user_id, entry.quantity);
            let seconds = self.queue.hold_seconds;
            self.bookings.insert(
                entry.id,
                Booking {
                    id: entry.id,
                    event_id: self.event_id,
                    ticket_type_id: entry.ticket_type_id,
                    client_id: entry.client_id,
                    user_id: entry.user_id,
                    quantity: entry.quantity,
                    hold_seconds: Some(seconds),
                    status: ReservationStatus::Held,
                    expires_at: Some(self.now + TimeDelta::seconds(seconds.into())),
                },
            );
            self.writes.insert(entry.id, Write::Insert);
            self.transitions.push((entry.id, ReservationStatus::Held));
            self.offered.push(entry.id);
        }
        self.queue.entries = kept;
    }

    fn reserve(&mut self, asked: Booking) -> Outcome {
        let id = asked.id;
        let fresh = !self.bookings.contains_key(&id);
        let booking = self.bookings.entry(id).or_insert_with(|| asked.clone());
        let same_request = booking.event_id == asked.event_id
            && booking.quantity == asked.quantity
            && booking.user_id == asked.user_id
            && booking.client_id == asked.client_id
            && booking.hold_seconds == asked.hold_seconds
            && booking.ticket_type_id == asked.ticket_type_id;
        let mut why_not = None;
        if !booking.status.is_decided() && same_request {
            let kind = booking.ticket_type_id;
            why_not =
                self.stock
                    .shortfall(kind, booking.quantity)
                    .or_else(|| {
                        let waits =
                            self.queue.entries.iter().any(|e| {
                                e.ticket_type_id == kind && !self.passed_over.contains(&e.id)
                            });
                        waits.then_some(LIST_FIRST)
                    })
                    .map(str::to_owned);
            if let Some(limit) = &self.per_user
                && why_not.is_none()
                && over_limit(Some(limit), booking.user_id, booking.quantity)
            {
                why_not = Some(format!("Limit of {} tickets per user reached", limit.max));
            }
            let fits = why_not.is_none();
            let from = booking.status;
            booking.status = match (fits, booking.hold_seconds) {
                (false, _) => ReservationStatus::Rejected,
                (true, None) => ReservationStatus::Confirmed,
                (true, Some(seconds)) => {
                    booking.expires_at = Some(self.now + TimeDelta::seconds(seconds.into()));
                    ReservationStatus::Held
                }
            };
            self.transitions.push((id, booking.status));
            if fits {
                self.stock.take(booking.ticket_type_id, booking.quantity);
                count_for_user(self.per_user.as_mut(), booking.user_id, booking.quantity);
            }
            self.writes.insert(
                id,
                if fresh {
                    Write::Insert
                } else {
                    Write::Update { from }
                },
            );
        }
        let mut outcome = outcome(booking, self.stock.event);
        if let Some(why) = why_not.filter(|why| why != NOT_ENOUGH) {
            outcome.message = why;
        }
        outcome
    }

    /// A change of an existing booking, by its own client (`None`: by the
    /// system, for expiry).
    fn change(&mut self, command: &Command, client_id: Option<i64>, change: Change) -> Outcome {
        let Some(booking) = self.bookings.get_mut(&command.reservation_id()) else {
            return unknown(command);
        };
        if booking.event_id != self.event_id || client_id.is_some_and(|c| c != booking.client_id) {
            return unknown(command);
        }
        if let Some(to) = transition(change, booking, self.now) {
            let from = booking.status;
            if from.takes_tickets() && !to.takes_tickets() {
                self.stock
                    .give_back(booking.ticket_type_id, booking.quantity);
                let user_taken = self.per_user.as_mut().zip(booking.user_id);
                if let Some(taken) = user_taken.and_then(|(l, user)| l.taken.get_mut(&user)) {
                    *taken -= booking.quantity;
                }
            }
            booking.status = to;
            self.transitions.push((booking.id, to));
            // A row inserted by this batch is inserted in its final state.
            self.writes
                .entry(booking.id)
                .or_insert(Write::Update { from });
            let outcome = outcome(booking, self.stock.event);
            if from.takes_tickets() && !to.takes_tickets() {
                self.offer();
            }
            return outcome;
        }
        outcome(booking, self.stock.event)
    }
}

/// The outcome of every command of a batch whose event does not exist.
pub fn unknown_event(commands: &[Command]) -> Vec<Outcome> {
    commands
        .iter()
        .map(|command| refusal(command, "Unknown event"))
        .collect()
}

/// A booking's outcome, with `remaining` tickets left to the event.
pub fn outcome(booking: &Booking, remaining: i32) -> Outcome {
    Outcome {
        reservation_id: booking.id,
        event_id: booking.event_id,
        ticket_type_id: booking.ticket_type_id,
        quantity: booking.quantity,
        user_id: booking.user_id,
        status: booking.status,
        remaining_tickets: remaining,
        hold_seconds: booking.hold_seconds,
        expires_at: booking.expires_at,
        message: booking.status.message().to_owned(),
        refused: None,
    }
}

fn unknown(command: &Command) -> Outcome {
    refusal(command, "Unknown reservation")
}

/// A rejection of `command` that stores nothing: it names nothing that
/// exists (`refused` unset), or the database refused it for good (set).
pub fn refusal(command: &Command, message: &str) -> Outcome {
    let (quantity, user_id, hold_seconds, ticket_type_id) = match *command {
        Command::Reserve {
            quantity,
            user_id,
            hold_seconds,
            ticket_type_id,
            ..
        } => (quantity, user_id, hold_seconds, ticket_type_id),
        Command::Confirm { .. }
        | Command::Expire { .. }
        | Command::Cancel { .. }
        | Command::Offer { .. } => (0, None, None, None),
    };
    Outcome {
        reservation_id: command.reservation_id(),
        event_id: command.event_id(),
        ticket_type_id,
        quantity,
        user_id,
        status: ReservationStatus::Rejected,
        remaining_tickets: 0,
        hold_seconds,
        expires_at: None,
        message: message.to_owned(),
        refused: None,
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
